"""Convert a checkpoint of the official TensorFlow U-GAT-IT code (taki0112/UGATIT) to this project's format. The command is ugatit_paddle/commands/convert_tf.py (installed: ugatit-convert-tf)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.convert_tf import main

if __name__ == "__main__":
    sys.exit(main())
