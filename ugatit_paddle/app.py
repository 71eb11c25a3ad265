"""The page in the browser (`tools/app.py`): a photo in, each face's crop, translation and CAM heatmap out.

The Gradio code is only the layout: the work is `inference.photo.translate_photo`. Gradio is an optional
dependency (`pip install "ugatit-paddle[app]"`, pinned there); it is imported when the page is built, with its
analytics off, so that the page works offline (no share link, no calls home, fonts served locally, no SSR).

Which model, when none is named (`default_model`): the newest generator file under `work/pretrained/`
(tools/pretrained.py), else the demo's latest checkpoint (tools/demo.py), else an error naming both commands.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from .demo.run import DEFAULT_CONFIG
from .formats.checkpoint import latest_checkpoint
from .inference.faces import MAX_PHOTO_BYTES, PhotoError
from .inference.photo import PhotoResult, translate_photo
from .inference.translate import Translator
from .models import DIRECTIONS
from .pretrained import PRETRAINED_DIR, newest_generator

DEMO_OUTPUT_DIR = Path("work/demo")  # output_dir of configs/demo.yaml
GRADIO_REQUIREMENT = "gradio==6.31.0"  # the version the page is tested with (as in pyproject's `app` extra)
HOST = "127.0.0.1"
PORT = 7860


class NoModelError(FileNotFoundError):
    """No model named and none found where the project's commands write them."""


def default_model(pretrained_dir: str | Path = PRETRAINED_DIR, demo_dir: str | Path = DEMO_OUTPUT_DIR) -> Path:
    """The checkpoint the page uses when none is named (see the module docstring)."""
    found = newest_generator(pretrained_dir) or latest_checkpoint(demo_dir)
    if found is None:
        raise NoModelError(f"no model given and none found in {pretrained_dir}/ or {demo_dir}/checkpoints/; make one "
                           f"with `python tools/pretrained.py paddlegan-light` (downloads PaddleGAN's selfie2anime "
                           f"weights) or `python tools/demo.py` (trains a tiny model on shapes, {DEFAULT_CONFIG}), "
                           f"or pass --checkpoint / --inference-model / --onnx")
    return found


class PhotoTranslator:
    """`translate_photo` with a translator per direction, made on first use (`make(direction)`)."""

    def __init__(self, make: Callable[[str], Translator], directions: tuple[str, ...]) -> None:
        self.make, self.directions = make, directions
        self._translators: dict[str, Translator] = {}

    def __call__(self, photo: str | Path, find_faces: bool, direction: str) -> PhotoResult:
        if direction not in self.directions:
            raise ValueError(f"this model translates {', '.join(self.directions)} only")
        if direction not in self._translators:
            self._translators[direction] = self.make(direction)
        return translate_photo(self._translators[direction], photo, find_faces)


def build_page(translate: PhotoTranslator, model_name: str):
    """The Gradio page (a `gr.Blocks`), not launched."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import gradio as gr

    def run(photo: str | None, find_faces: bool, direction: str):
        if not photo:
            raise gr.Error("Upload a photo or take one with the webcam first.")
        try:
            result = translate(photo, find_faces, direction)
        except (PhotoError, OSError, ValueError) as e:
            raise gr.Error(str(e)) from None
        items = []  # (image, caption): crop, translation, heatmap of face 1, then face 2, ...
        for k, face in enumerate(result.faces, 1):
            items += [(face.crop, f"face {k}: photo"), (face.translation, f"face {k}: {direction}"),
                      (face.heatmap, f"face {k}: CAM heatmap")]
        return result.sheet, items, result.summary()

    with gr.Blocks(title="U-GAT-IT: your photo as anime", analytics_enabled=False) as page:
        gr.Markdown(f"## Your photo as anime\nModel: `{model_name}`")
        with gr.Row():
            with gr.Column():
                photo = gr.Image(sources=["upload", "webcam"], type="filepath", label="Photo", height=360,
                                 elem_id="photo")
                find_faces = gr.Checkbox(True, label="Find, align and crop faces", elem_id="faces")
                direction = gr.Radio(list(translate.directions), value=translate.directions[0], label="Direction",
                                     elem_id="direction")
                button = gr.Button("Translate", variant="primary", elem_id="run")
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                sheet = gr.Image(label="Faces found", format="png", height=260, interactive=False,
                                 buttons=["download", "fullscreen"], elem_id="sheet")
                gallery = gr.Gallery(label="Each face: crop, translation, CAM heatmap", columns=3, format="png",
                                     height=340, buttons=["download", "fullscreen"], elem_id="results")
        button.click(run, [photo, find_faces, direction], [sheet, gallery, status])
    return page


def make_page(checkpoint: str | Path | None = None, inference_model: str | Path | None = None,
              onnx: str | Path | None = None):
    """(the page, the model's name) for a checkpoint (default: `default_model()`), an exported inference model
    or an ONNX model. An AI Studio Gradio app's entry file can be `make_page()[0].launch()`."""
    if inference_model or onnx:
        single = Translator.from_onnx(onnx) if onnx else Translator.from_inference_model(inference_model)
        name, translate = str(onnx or inference_model), PhotoTranslator(lambda d: single, (single.direction,))
    else:
        path = checkpoint or default_model()
        Translator.from_checkpoint(path)  # fails here, not in the page, when the file is unusable
        name = str(path)
        translate = PhotoTranslator(lambda d: Translator.from_checkpoint(path, d), tuple(DIRECTIONS))
    return build_page(translate, name), name


def launch(page, host: str = HOST, port: int = PORT, block: bool = True) -> None:
    """Serve `page` on host:port (127.0.0.1 unless told), uploads bounded by MAX_PHOTO_BYTES, no share link."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up checks, logged per request
    page.launch(server_name=host, server_port=port, share=False, max_file_size=MAX_PHOTO_BYTES, ssr_mode=False,
                inbrowser=False, prevent_thread_lock=not block, quiet=True)


