"""parity/bundles.py on the parity bundles recorded from the official PyTorch code: the repository's own
(tests/fixtures, recorded with tools/record_bundle.py, float64, always run) and, as extra checks when present,
those of ../shared/fixtures/official. Each bundle is checked in its own dtype (float64 bundles are converted,
built and trained in float64) against the limits of parity/checks.py for that dtype.

These tests never need PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path

import paddle
import pytest

from ugatit_paddle.formats.official import from_official
from ugatit_paddle.formats.torch_pickle import load_torch
from ugatit_paddle.parity import LIMITS, Report, bundle_parity, format_table
from ugatit_paddle.parity.bundles import Bundle, project_model
from ugatit_paddle.parity.official_torch import Recipe

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
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


def test_the_repository_holds_float64_light_and_full_bundles_that_describe_themselves():
    """A fresh clone checks the whole float64 trajectory of a light and a full model (never skipped): each bundle
    names its recording (torch, the official commit, the command) and carries the limits it is checked with."""
    bundles = [Bundle.open(p) for p in sorted(FIXTURES.iterdir()) if p.is_dir()]
    assert {(b.light, b.dtype) for b in bundles} >= {(True, "float64"), (False, "float64")}
    for b in bundles:
        ref = b.reference
        assert ref["steps"] >= 2 and ref["torch"] and len(ref["official_commit"]) == 40
        assert ref["command"].startswith("ugatit-record-bundle --torch-src ")
        assert set(ref["limits"]) == set(LIMITS[b.dtype].to_dict()) and ref["limits"]["calibration"]
        assert b.limits_notes() == []  # recorded with the limit values it is checked with
        assert ref["official_rerun"]["rows_ok"].split("/")[0] == ref["official_rerun"]["rows_ok"].split("/")[1]
    size = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    assert size < 1.6e6, f"tests/fixtures holds {size / 1e6:.2f} MB; keep the repository's bundles small"


def test_a_bundle_whose_weights_disagree_with_its_reference_is_refused(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    for f in (FIXTURES / "full_32_ch2_f64").iterdir():
        (bundle / f.name).write_bytes(f.read_bytes())
    ref = _reference(bundle)
    (bundle / "reference.json").write_text(json.dumps({**ref, "global_layers": ref["global_layers"] + 1}))
    with pytest.raises(ValueError, match="reference.json says"):
        bundle_parity(bundle)
    (bundle / "reference.json").write_text(json.dumps({**ref, "limits": {**ref["limits"], "loss": {"value": 1.0}}}))
    assert any("other limits for loss" in n for n in bundle_parity(bundle).notes)


def test_float64_path_computes_in_float64():
    """The float64 bundle run in float32 arithmetic misses the float64 limits, so passing them takes float64."""
    bundle = FIXTURES / "full_32_ch2_f64"
    args, states, _ = from_official(load_torch(bundle / "init_params.pt"), img_size=32)
    model = project_model(args, states, Recipe(), 1, 3, "float64", "init_params.pt")
    assert {v.dtype for net in model.nets.values() for v in net.state_dict().values()} == {paddle.float64}
    assert {str(v.dtype) for v in states["disGA"].values()} == {"float64"}  # u/v too

    in_float32 = bundle_parity(bundle, steps=3, dtype="float32")
    assert in_float32.dtype == "float64" and any("computed in float32" in n for n in in_float32.notes)
    failed = {r.check.split("@")[0] for r in in_float32.rows if not r.ok}
    assert {"eval", "loss", "weights"} <= failed, format_table(in_float32.rows)
