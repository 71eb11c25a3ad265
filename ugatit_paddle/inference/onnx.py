"""ONNX export of a generator (through paddle2onnx) and its ONNX Runtime runner.

`export_onnx` writes the same graph as `export.export_generator` (the `InferenceGenerator` form, exported to
Paddle Inference in a temporary folder) converted by `paddle2onnx` into one self-contained `.onnx` file:

    input  image      float32 [N, 3, S, S] in [-1, 1], N dynamic
    output translated float32 [N, 3, S, S] in [-1, 1]
           cam_logit  float32 [N, 2]
           heatmap    float32 [N, 1, S/4, S/4]

with what `export.json` holds for a Paddle export (direction, architecture, S) in the model's metadata under
the key `ugatit_paddle`. `OnnxModel` runs it with ONNX Runtime and is called like `export.InferenceModel`, so
`translate.Translator` takes either. paddle2onnx, onnx and onnxruntime are optional dependencies; without
them these functions raise `OnnxUnavailableError` saying so. paddle2onnx comes in two lines that each convert
one Paddle: 2.x needs Paddle 3 (it refuses to import under Paddle 2.6), 1.x reads only Paddle 2's programs
(under Paddle 3 it writes a graph without outputs). `paddle2onnx_requirement` names the line for the running
Paddle, and the export checks the installed one first: `pip install "paddle2onnx>=2" onnx onnxruntime` with
Paddle 3.x, `pip install "paddle2onnx<2" onnx onnxruntime` (tested: 1.3.1) with Paddle 2.6.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import paddle

from .export import OUTPUT_NAMES as EXPORT_OUTPUT_NAMES, ExportError, export_generator, model_files
from ..config import ModelConfig
from ..formats.checkpoint import load_generators
from ..models import Generator, generator_name
from .device import CUDA_PROVIDER, onnx_providers

ONNX_FILE = "model.onnx"  # the file inside a folder given as the output
METADATA_KEY = "ugatit_paddle"
INFO_FORMAT = "ugatit_paddle_onnx"
# `export.OUTPUT_NAMES`, but the image output renamed: ONNX names must differ from the input's ("image")
OUTPUT_NAMES = ("translated",) + EXPORT_OUTPUT_NAMES[1:]
DEFAULT_OPSET = 13  # paddle2onnx raises lower requests for this graph to 13 anyway


class OnnxUnavailableError(ExportError):
    """paddle2onnx / onnx / onnxruntime is not installed, or not the paddle2onnx line this Paddle needs."""


def _major(version: str) -> int:
    match = re.match(r"\s*(\d+)", version)
    return int(match.group(1)) if match else 0


def paddle2onnx_requirement(paddle_version: str | None = None) -> str:
    """The pip requirement of the paddle2onnx line that converts this Paddle's (or `paddle_version`'s) models:
    "paddle2onnx>=2" for Paddle 3.x and develop builds (version 0.0.0), "paddle2onnx<2" for Paddle 2.x."""
    version = paddle_version or paddle.__version__
    return "paddle2onnx<2" if 1 <= _major(version) < 3 else "paddle2onnx>=2"


def install_command(paddle_version: str | None = None) -> str:
    """The pip command that installs the ONNX dependencies for this Paddle (or `paddle_version`)."""
    return f'pip install "{paddle2onnx_requirement(paddle_version)}" onnx onnxruntime'


def check_paddle2onnx_version(installed: str, paddle_version: str | None = None) -> None:
    """Raise OnnxUnavailableError (one line naming the right line and the pip command) if paddle2onnx
    `installed` (e.g. "2.1.0") cannot convert models of this Paddle (or `paddle_version`)."""
    version = paddle_version or paddle.__version__
    needs_1x = paddle2onnx_requirement(version) == "paddle2onnx<2"
    if needs_1x != (_major(installed) < 2):
        line, other = ("1.x", "Paddle 3") if needs_1x else ("2.x", "Paddle 2")
        raise OnnxUnavailableError(f"ONNX export with Paddle {version} needs paddle2onnx {line}, but paddle2onnx "
                                   f"{installed} (made for {other}) is installed; install the right one with: "
                                   f"{install_command(version)}")


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency or raise OnnxUnavailableError naming the pip command; paddle2onnx only
    in the line this Paddle needs (checked before importing it: 2.x raises at import under Paddle 2.6)."""
    package = {"onnxruntime": "onnxruntime", "onnx": "onnx"}.get(module, "paddle2onnx")
    if package == "paddle2onnx":
        try:
            check_paddle2onnx_version(importlib.metadata.version("paddle2onnx"))
        except importlib.metadata.PackageNotFoundError:
            pass  # the import below says so
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise OnnxUnavailableError(f"{purpose} needs the optional package '{package}', which is not installed "
                                   f"({e}); install it with: {install_command()}") from e


def onnx_file(path: str | Path) -> Path:
    """`path` itself if it names a `.onnx` file, else `path`/model.onnx."""
    path = Path(path)
    return path if path.suffix.lower() == ".onnx" else path / ONNX_FILE


def export_onnx(generator: Generator, img_size: int, output: str | Path, direction: str,
                model_args: ModelConfig | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Write `generator` as ONNX to `output` (a `.onnx` file, or a folder to hold model.onnx); returns the file."""
    paddle2onnx = require("paddle2onnx", "ONNX export")
    onnx = require("onnx", "ONNX export")
    target = onnx_file(output)
    with tempfile.TemporaryDirectory() as folder:
        export_generator(generator, img_size, folder, direction, model_args)
        program, params, info = model_files(folder)
        try:
            # save_file=None: the model's bytes, without paddle2onnx's optional Polygraphy pass (which pip-installs
            # onnx_graphsurgeon at run time); ONNX Runtime folds the constants itself when it loads the model.
            data = paddle2onnx.export(str(program), str(params), save_file=None, opset_version=opset,
                                      enable_onnx_checker=True)
        except Exception as e:  # paddle2onnx logs its own error and then fails on the missing result
            raise ExportError(f"paddle2onnx {getattr(paddle2onnx, '__version__', '?')} could not convert the "
                              f"generator (opset {opset}): {type(e).__name__}: {e}; see its log above") from e
    model = onnx.load_from_string(data)
    _rename_outputs(model, OUTPUT_NAMES)
    meta = dict(info, format=INFO_FORMAT, opset=opset, paddle2onnx_version=getattr(paddle2onnx, "__version__", "?"))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def export_checkpoint_onnx(checkpoint_path: str | Path, output: str | Path, direction: str = "A2B",
                           opset: int = DEFAULT_OPSET) -> Path:
    """Export the `direction` generator of a project checkpoint or generator file as ONNX."""
    name = generator_name(direction)
    args, nets = load_generators(checkpoint_path, (name,))
    return export_onnx(nets[name], args.img_size, output, direction, args, opset)


def _rename_outputs(model, names: tuple[str, ...]) -> None:
    """Give the graph's outputs `names` (paddle2onnx calls them fetch_name_0, ...)."""
    graph = model.graph
    if len(graph.output) != len(names):
        raise ExportError(f"the ONNX graph has {len(graph.output)} outputs, expected {len(names)} "
                          f"({', '.join(names)})")
    renames = {out.name: new for out, new in zip(graph.output, names) if out.name != new}
    for node in graph.node:
        for i, value in enumerate(node.output):
            if value in renames:
                node.output[i] = renames[value]
        for i, value in enumerate(node.input):
            if value in renames:
                node.input[i] = renames[value]
    for out in graph.output:
        out.name = renames.get(out.name, out.name)


class OnnxModel:
    """An ONNX generator run by ONNX Runtime; called like `export.InferenceModel`:
    float32 [N, 3, S, S] -> (image, cam_logit, heatmap). `threads` sets ONNX Runtime's intra-op threads;
    `device` "gpu", "cpu" or None picks the execution providers (`device.onnx_providers`)."""

    def __init__(self, path: str | Path, threads: int | None = None, device: str | None = "cpu") -> None:
        ort = require("onnxruntime", "Running an ONNX model")
        self.path = onnx_file(path)
        if not self.path.is_file():
            raise ExportError(f"ONNX model '{self.path}' does not exist; create it with tools/export_model.py "
                              f"--checkpoint CKPT --format onnx --output {path}")
        providers = onnx_providers(device, ort.get_available_providers())
        self.device = "gpu" if providers[0] == CUDA_PROVIDER else "cpu"
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ExportError(f"ONNX Runtime cannot load '{self.path}': {type(e).__name__}: {e}") from e
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        try:
            info = json.loads(raw) if raw else None
        except ValueError:
            info = None
        if not isinstance(info, dict) or info.get("format") != INFO_FORMAT or not isinstance(info.get("img_size"), int):
            raise ExportError(f"'{self.path}' was not written by tools/export_model.py --format onnx (no "
                              f"'{METADATA_KEY}' metadata)")
        self.info = info
        self.img_size: int = info["img_size"]
        self.direction: str = info["direction"]
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        expected = (3, self.img_size, self.img_size)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"expected images of shape [N, {', '.join(map(str, expected))}], got {list(images.shape)}")
        outputs = self.session.run(self.output_names, {self.input_name: images})
        return tuple(outputs)

