"""Puts this clone's `ugatit_paddle` first on `sys.path`, so that `python tools/<name>.py` runs the code of the
clone it belongs to, installed or not (`pip install -e .` installs this same folder)."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
