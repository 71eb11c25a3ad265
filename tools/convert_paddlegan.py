"""Convert PaddleGAN U-GAT-IT weights (`ugatit_light.pdparams`, `epoch_N_weight.pdparams`, The command is ugatit_paddle/commands/convert_paddlegan.py (installed: ugatit-convert-paddlegan)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.convert_paddlegan import main

if __name__ == "__main__":
    sys.exit(main())
