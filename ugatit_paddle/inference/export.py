"""Exporting a generator for Paddle Inference, and running the exported model.

An exported model is a folder:

    model.json (Paddle >= 3 PIR program; model.pdmodel with Paddle 2.x)   the generator's static graph
    model.pdiparams                                                      its weights
    export.json                                                          what predict needs (below)

The graph takes `image`: float32 [N, 3, S, S] in [-1, 1] (N dynamic) and returns, in this order,
image [N, 3, S, S] in [-1, 1], cam_logit [N, 2] and heatmap [N, 1, S/4, S/4] -- the same as
`Generator.forward`. `export.json` records the direction, the architecture, S and the output names.

What is saved is `InferenceGenerator(generator)` (`inference_generator.py`): the generator's own blocks traced
into a static graph, where they take the forms Paddle Inference runs fastest (`models/static_forms.py`; same
results to float32 rounding). oneDNN
(`InferenceModel(..., mkldnn=True)`, `predict.py --mkldnn`) is the fast CPU path; the graph has no
`nearest_interp`, which Paddle 3.3's oneDNN executor cannot run ("ConvertPirAttribute2RuntimeAttribute not
support pir::ArrayAttribute<pir::DoubleAttribute>"). Plain CPU inference is the default.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import paddle
from paddle.static import InputSpec

from ..config import ModelConfig
from ..formats.checkpoint import load_generators
from ..models import Generator, generator_name
from .device import GPU_MEMORY_POOL_MB, resolve_device
from .inference_generator import InferenceGenerator

MODEL_PREFIX = "model"
INFO_FILE = "export.json"
INFO_FORMAT, INFO_VERSION = "ugatit_paddle_inference", 1
INPUT_NAME = "image"
OUTPUT_NAMES = ("image", "cam_logit", "heatmap")
PROGRAM_SUFFIXES = (".json", ".pdmodel")  # PIR program (Paddle 3), legacy program (Paddle 2.x)


class ExportError(ValueError):
    """An inference-model folder that is missing files or cannot be run; the message says what to do."""


def export_generator(generator: Generator, img_size: int, output_dir: str | Path, direction: str,
                     model_args: ModelConfig | None = None) -> Path:
    """`paddle.jit.save` `generator` (as `InferenceGenerator`) with input [None, 3, img_size, img_size] into
    `output_dir` (see the module docstring for the files); returns `output_dir`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    graph = InferenceGenerator(generator)
    graph.eval()
    spec = [InputSpec([None, 3, img_size, img_size], "float32", name=INPUT_NAME)]
    paddle.jit.save(graph, str(output_dir / MODEL_PREFIX), input_spec=spec)
    info = {"format": INFO_FORMAT, "version": INFO_VERSION, "direction": direction,
            "generator": generator_name(direction), "img_size": img_size,
            "model_args": dataclasses.asdict(model_args) if model_args is not None else None,
            "input": {"name": INPUT_NAME, "shape": [-1, 3, img_size, img_size], "dtype": "float32", "range": [-1, 1]},
            "outputs": list(OUTPUT_NAMES), "paddle_version": paddle.__version__}
    (output_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return output_dir


def export_checkpoint(checkpoint_path: str | Path, output_dir: str | Path, direction: str = "A2B") -> Path:
    """Export the `direction` generator of a project checkpoint (only that generator is loaded)."""
    name = generator_name(direction)
    args, nets = load_generators(checkpoint_path, (name,))
    return export_generator(nets[name], args.img_size, output_dir, direction, args)


def model_files(model_dir: str | Path) -> tuple[Path, Path, dict]:
    """(program file, params file, export.json contents) of an exported model; ExportError naming what is
    missing otherwise."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ExportError(f"inference model folder '{model_dir}' does not exist; "
                          f"create it with tools/export_model.py --checkpoint CKPT --output {model_dir}")
    programs = [p for p in (model_dir / f"{MODEL_PREFIX}{s}" for s in PROGRAM_SUFFIXES) if p.is_file()]
    params = model_dir / f"{MODEL_PREFIX}.pdiparams"
    info_path = model_dir / INFO_FILE
    missing = ([] if programs else [f"{MODEL_PREFIX}.json (or {MODEL_PREFIX}.pdmodel)"]) + \
        [p.name for p in (params, info_path) if not p.is_file()]
    if missing:
        raise ExportError(f"'{model_dir}' is not an exported U-GAT-IT model: missing {', '.join(missing)}; "
                          f"create it with tools/export_model.py --checkpoint CKPT --output {model_dir}")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ExportError(f"{info_path} is not valid JSON: {e}") from e
    if not isinstance(info, dict) or info.get("format") != INFO_FORMAT or not isinstance(info.get("img_size"), int):
        raise ExportError(f"{info_path} was not written by tools/export_model.py (no '{INFO_FORMAT}' format tag)")
    return programs[0], params, info


class InferenceModel:
    """An exported generator run by Paddle Inference (`paddle.inference.create_predictor`).

    Call it like the generator, with numpy: float32 [N, 3, S, S] -> (image, cam_logit, heatmap). `mkldnn`
    turns on oneDNN (see the README for the Paddle versions where this works); `threads` sets the CPU math
    library threads (Paddle's default otherwise). `device` "gpu", "cpu" or None (the GPU when Paddle sees one;
    see `device.resolve_device`); on a GPU `mkldnn` and `threads` do not apply.
    """

    def __init__(self, model_dir: str | Path, mkldnn: bool = False, threads: int | None = None,
                 device: str | None = "cpu") -> None:
        program, params, info = model_files(model_dir)
        self.model_dir = Path(model_dir)
        self.img_size: int = info["img_size"]
        self.direction: str = info["direction"]
        self.info = info
        config = paddle.inference.Config(str(program), str(params))
        self.device = resolve_device(device)
        config.disable_glog_info()
        if self.device == "gpu":  # card 0 of those CUDA_VISIBLE_DEVICES shows; oneDNN and threads do not apply
            config.enable_use_gpu(GPU_MEMORY_POOL_MB, 0)
        else:
            config.disable_gpu()
            if mkldnn:
                config.enable_mkldnn()
            elif hasattr(config, "disable_mkldnn"):  # Paddle 3 turns oneDNN on by default; 2.6 has it off
                config.disable_mkldnn()
            if threads is not None:
                config.set_cpu_math_library_num_threads(threads)
        try:
            self.predictor = paddle.inference.create_predictor(config)
        except Exception as e:  # Paddle raises several C++-backed exception types
            raise ExportError(f"Paddle Inference cannot load '{model_dir}': {type(e).__name__}: {e}") from e
        self.mkldnn = mkldnn

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        expected = (3, self.img_size, self.img_size)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"expected images of shape [N, {', '.join(map(str, expected))}], got {list(images.shape)}")
        handle = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        handle.reshape(list(images.shape))
        handle.copy_from_cpu(images)
        try:
            self.predictor.run()
        except Exception as e:
            hint = ""
            if self.mkldnn:
                hint = " (run it without oneDNN"
                if "ArrayAttribute<pir::DoubleAttribute>" in str(e):
                    hint += "; this graph has an op oneDNN cannot take, e.g. nearest_interp with a scale list"
                hint += ")"
            raise ExportError(f"Paddle Inference failed on '{self.model_dir}'{hint}: {type(e).__name__}: {e}") from e
        outputs = [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.predictor.get_output_names()]
        if len(outputs) != len(OUTPUT_NAMES):
            raise ExportError(f"'{self.model_dir}' returns {len(outputs)} outputs, expected {len(OUTPUT_NAMES)} "
                              f"({', '.join(OUTPUT_NAMES)})")
        return tuple(outputs)
