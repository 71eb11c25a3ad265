"""The command-line tools: `main(argv=None) -> int` of each, behind both ways in (`ugatit-train`, ... once
installed; `python tools/train.py` from a clone).

Importing this package sets the CPU defaults of `ugatit_paddle.runtime` and then imports Paddle, so every
command starts the same way: before any command module imports Paddle, once, here. The allocator settings follow
the import: they apply only when Paddle's place is the CPU.
"""

from ..runtime import configure_allocator, configure_cpu, import_paddle

configure_cpu()
import_paddle()
configure_allocator()
