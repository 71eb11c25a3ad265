"""Export a trained model: for Paddle Inference, as ONNX, or as a small generator file. The command is ugatit_paddle/commands/export_model.py (installed: ugatit-export-model)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.export_model import main

if __name__ == "__main__":
    sys.exit(main())
