"""parity/bundles.py on the recorded parity bundles (../shared/fixtures/official): agreement with the official
PyTorch code, each bundle in its own dtype (float64 bundles are converted, built and trained in float64) and held
to the limits of that folder's README for that dtype.

These tests skip when the bundles are absent (a user's clone). They never need PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path

import paddle

from ugatit_paddle.formats.official import from_official
from ugatit_paddle.formats.torch_pickle import load_torch
from ugatit_paddle.parity import LIMITS, Report, bundle_parity, format_table
from ugatit_paddle.parity.bundles import project_model
from ugatit_paddle.parity.official_torch import Recipe

ROOT = Path(__file__).resolve().parents[1]
_REPORTS: dict[Path, Report] = {}


def _reference(bundle: Path) -> dict:
    return json.loads((bundle / "reference.json").read_text())


def _full_run(bundle: Path) -> Report:
    """The bundle checked with all its recorded steps (computed once per session)."""
    if bundle not in _REPORTS:
        _REPORTS[bundle] = bundle_parity(bundle, steps=_reference(bundle)["steps"])
    return _REPORTS[bundle]


def test_eval_outputs_match_after_conversion(golden_bundle):
    report = bundle_parity(golden_bundle)
    assert len(report.rows) == 18  # six networks x (out, cam_logit, heatmap)
    assert report.dtype == _reference(golden_bundle).get("dtype", "float32")
    assert all(r.limit == LIMITS[report.dtype].eval.value for r in report.rows)
    assert report.ok, format_table(report.rows)


def test_training_losses_match_every_iteration(golden_bundle):
    steps = _reference(golden_bundle)["steps"]
    rows = [r for r in _full_run(golden_bundle).rows if r.check.startswith("loss@")]
    assert len(rows) == 2 * steps
    assert all(r.ok for r in rows), format_table(rows)


def test_weights_and_outputs_after_training_steps(golden_bundle):
    """Every weight after the steps; the fraction of weights off and the eval outputs after the steps for light
    models in float32 and for every model in float64 (the README's rules); a float32 full model says why not."""
    ref = _reference(golden_bundle)
    report = _full_run(golden_bundle)
    rows = [r for r in report.rows if r.check.startswith(("weights@", "eval@")) and r.check != "eval@init"]
    float64 = ref.get("dtype") == "float64"
    trajectory = ref["light"] or float64
    assert len(rows) == 1 + (not float64 and ref["light"]) + 18 * trajectory
    assert any("checked in float64" in n for n in report.notes) == (not trajectory)
    assert all(r.ok for r in rows), format_table(rows)


def test_parity_tool_json_where_torch_cannot_be_imported(golden_bundle, tmp_path, run_tool):
    hidden = tmp_path / "hide" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    ref = _reference(golden_bundle)
    run = run_tool("parity", "--bundle", str(golden_bundle), "--steps", str(ref["steps"]), "--json",
                   env={"PYTHONPATH": str(hidden.parent)})
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["source"] == "official" and result["steps"] == ref["steps"]
    assert result["dtype"] == ref.get("dtype", "float32")
    assert result["failed"] == 0 and result["passed"] == len(result["rows"]) > 18
    assert set(result["rows"][0]) == {"check", "network", "output", "max_abs", "value", "limit", "ok"}


def test_float64_path_computes_in_float64(shared_bundle):
    """The float64 bundle run in float32 arithmetic misses the float64 limits, so passing them takes float64."""
    bundle = shared_bundle("official", "full_112_ch4_f64")
    args, states, _ = from_official(load_torch(bundle / "init_params.pt"), img_size=112)
    model = project_model(args, states, Recipe(), 1, 3, "float64", "init_params.pt")
    assert {v.dtype for net in model.nets.values() for v in net.state_dict().values()} == {paddle.float64}
    assert {str(v.dtype) for v in states["disGA"].values()} == {"float64"}  # u/v too

    in_float32 = bundle_parity(bundle, steps=3, dtype="float32")
    assert in_float32.dtype == "float64" and any("computed in float32" in n for n in in_float32.notes)
    failed = {r.check.split("@")[0] for r in in_float32.rows if not r.ok}
    assert {"eval", "loss", "weights"} <= failed, format_table(in_float32.rows)
