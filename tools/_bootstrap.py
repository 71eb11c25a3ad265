"""Make `ugatit_paddle` importable when a tool is run from a clone (python tools/x.py), without installing."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
