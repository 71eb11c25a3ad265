"""Convert official UGATIT-pytorch checkpoints to this project's format, and back. PyTorch is not needed. The command is ugatit_paddle/commands/convert_torch.py (installed: ugatit-convert-torch)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.convert_torch import main

if __name__ == "__main__":
    sys.exit(main())
