"""Export a trained model: for Paddle Inference, as ONNX, or as a small generator file.

    python tools/export_model.py --checkpoint model.pdparams --output exported/A2B
    python tools/export_model.py --checkpoint model.pdparams --output exported/B2A --direction B2A
    python tools/export_model.py --checkpoint model.pdparams --format onnx --output exported/A2B.onnx
    python tools/export_model.py --checkpoint model.pdparams --weights-only --output generators.pdparams
    python tools/export_model.py --checkpoint model.pdparams --weights-only --dtype float16 --output gen16.pdparams

Paddle Inference (default): the folder holds model.json (model.pdmodel with Paddle 2.x), model.pdiparams and
export.json. The graph takes image float32 [N, 3, S, S] in [-1, 1] (N dynamic) and returns image, cam_logit
[N, 2] and heatmap [N, 1, S/4, S/4].  Run it with: python tools/predict.py --inference-model exported/A2B ...
--format onnx: the same graph as one .onnx file (an --output not ending in .onnx is a folder for model.onnx),
converted by paddle2onnx: pip install "paddle2onnx>=2" onnx onnxruntime with Paddle 3.x, "paddle2onnx<2" (the
1.x line) with Paddle 2.6. Run it with: tools/predict.py --onnx FILE ...
--weights-only: genA2B and genB2A with the model settings in one checkpoint file, for sharing (a third of a
full-model training checkpoint, a few percent of a light one; --dtype float16 halves it). predict.py, test.py,
this tool and Translator.from_checkpoint take it like a checkpoint.
Exit status: 0 done, 1 errors.
"""

import argparse
import sys
from pathlib import Path

from ugatit_paddle import cli
from ugatit_paddle.formats.checkpoint import GENERATOR_DTYPES, CheckpointError, extract_generators
from ugatit_paddle.inference.export import ExportError, export_checkpoint, model_files
from ugatit_paddle.inference.onnx import DEFAULT_OPSET, export_checkpoint_onnx
from ugatit_paddle.models import DIRECTIONS


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help="project checkpoint or generator file")
    parser.add_argument("--output", required=True, metavar="PATH",
                        help="folder for the inference model; .onnx file (or folder) for ONNX; file for --weights-only")
    parser.add_argument("--direction", choices=tuple(DIRECTIONS), default="A2B",
                        help="generator to export (default A2B; --weights-only writes both)")
    parser.add_argument("--format", choices=("paddle", "onnx"), default="paddle",
                        help="paddle: Paddle Inference (default); onnx: ONNX through paddle2onnx")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--weights-only", action="store_true",
                        help="write the two generators only, as a small checkpoint file")
    parser.add_argument("--dtype", choices=GENERATOR_DTYPES, default="float32",
                        help="--weights-only: weight precision (float16 halves the file)")
    a = parser.parse_args(argv)
    if a.weights_only and a.format != "paddle":
        parser.error("--weights-only writes a checkpoint file; it does not take --format")
    if a.dtype != "float32" and not a.weights_only:
        parser.error("--dtype applies to --weights-only only")

    def work() -> int:
        if a.weights_only:
            out = extract_generators(a.checkpoint, a.output, a.dtype)
            print(f"wrote genA2B and genB2A ({a.dtype}) -> {out} ({_size(out)}; checkpoint {_size(Path(a.checkpoint))})")
        elif a.format == "onnx":
            out = export_checkpoint_onnx(a.checkpoint, a.output, a.direction, a.opset)
            print(f"exported {a.direction} as ONNX (opset {a.opset}, dynamic batch) -> {out} ({_size(out)})")
        else:
            out = export_checkpoint(a.checkpoint, a.output, a.direction)
            program, params, info = model_files(out)
            print(f"exported {info['generator']} ({a.direction}, input [N, 3, {info['img_size']}, "
                  f"{info['img_size']}]) -> {program}, {params.name}, export.json")
        return cli.EXIT_OK

    return cli.run(work, failures=(CheckpointError, ExportError, OSError))


if __name__ == "__main__":
    sys.exit(main())
