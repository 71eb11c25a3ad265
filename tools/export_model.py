"""Export one generator of a checkpoint for Paddle Inference (paddle.jit.save, dynamic batch size).

    python tools/export_model.py --checkpoint model.pdparams --output exported/A2B
    python tools/export_model.py --checkpoint model.pdparams --output exported/B2A --direction B2A

The folder holds model.json (model.pdmodel with Paddle 2.x), model.pdiparams and export.json. The graph
takes image float32 [N, 3, S, S] in [-1, 1] and returns image, cam_logit [N, 2] and heatmap [N, 1, S/4, S/4].
Run it with: python tools/predict.py --inference-model exported/A2B --input photos/ --output out/
Exit status: 0 done, 1 errors.
"""

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from ugatit_paddle.runtime import configure_cpu  # noqa: E402  (before paddle is imported)

configure_cpu()

from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.inference.export import export_checkpoint, model_files
from ugatit_paddle.models import DIRECTIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help="project checkpoint")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder to write the inference model to")
    parser.add_argument("--direction", choices=tuple(DIRECTIONS), default="A2B",
                        help="generator to export (default A2B)")
    a = parser.parse_args(argv)
    try:
        out = export_checkpoint(a.checkpoint, a.output, a.direction)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    program, params, info = model_files(out)
    print(f"exported {info['generator']} ({a.direction}, input [N, 3, {info['img_size']}, {info['img_size']}]) "
          f"-> {program}, {params.name}, export.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
