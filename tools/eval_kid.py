"""KID x100 (+- std), FID and mean_KID x100 of translated images, as in the U-GAT-IT paper. The command is ugatit_paddle/commands/eval_kid.py (installed: ugatit-eval-kid)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.eval_kid import main

if __name__ == "__main__":
    sys.exit(main())
