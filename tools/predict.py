"""Translate image files with a checkpoint or an exported inference model. The command is ugatit_paddle/commands/predict.py (installed: ugatit-predict)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
