"""Numerical agreement with the official PyTorch code.

* `checks` -- `Row`, the limits per dtype (`LIMITS`, each with its rule and calibration), comparisons, `Report` and
  its table / Markdown / JSON forms;
* `bundles` -- checks against parity bundles recorded from the official code (no torch needed; the repository's
  are in tests/fixtures);
* `record` -- recording such a bundle by running the official code (needs torch and a clone);
* `foreign` -- bundles recorded with the official TensorFlow code and PaddleGAN; `check_bundle` for any bundle;
* `live` -- the official code beside ours on a user's checkpoint, and the float32 precision check;
* `official_torch` -- the official PyTorch training iteration (the one reference every comparison uses);
* `speed` -- training/inference speed and memory beside the official code.
"""

from .bundles import Bundle, bundle_parity, official_rerun
from .checks import (
    FOREIGN_LIMITS, LIMITS, OUTPUTS, Limit, Limits, Report, Row, compare, compare_eval, eval_outputs,
    format_bundles_markdown, format_json, format_markdown, format_summary, format_table, limits_for,
)
from .foreign import bundle_source, check_bundle
from .live import live_parity, precision_check
from .official_torch import OfficialTraining, Recipe, TorchUnavailable

__all__ = [
    "FOREIGN_LIMITS", "LIMITS", "OUTPUTS", "Bundle", "Limit", "Limits", "OfficialTraining", "Recipe", "Report",
    "Row", "TorchUnavailable", "bundle_parity", "bundle_source", "check_bundle", "compare", "compare_eval",
    "eval_outputs", "format_bundles_markdown", "format_json", "format_markdown", "format_summary", "format_table",
    "limits_for", "live_parity", "official_rerun", "precision_check",
]
