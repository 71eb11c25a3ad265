"""The parity package: limits per dtype, rows and their formats, the command line, and (opt-in, with torch and a
clone of UGATIT-pytorch named by UGATIT_TORCH_SRC) live float64 training beside the official code and the
official code rerun on a recorded bundle (recording a bundle: tests/test_record_bundle.py)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from ugatit_paddle.config import ModelConfig
from ugatit_paddle.parity import (
    LIMITS, Report, Row, compare, format_bundles_markdown, format_json, format_markdown, format_summary, format_table,
    live_parity, official_rerun, precision_check,
)
from ugatit_paddle.parity.checks import compare_weights, trajectory_rows
from ugatit_paddle.parity.official_torch import OfficialTraining

ROOT = Path(__file__).resolve().parents[1]
TORCH_SRC = os.environ.get("UGATIT_TORCH_SRC") or os.environ.get("UGATIT_OFFICIAL_SRC")
needs_official = pytest.mark.skipif(not TORCH_SRC, reason="opt-in: set UGATIT_TORCH_SRC to a clone of UGATIT-pytorch "
                                    "(and install torch) to run the official code beside ours")


# ------------------------------------------------------------------------------------------ limits and rows
def test_one_table_of_limits_per_dtype_each_with_its_rule_and_calibration():
    f32, f64 = LIMITS["float32"], LIMITS["float64"]
    for limits in (f32, f64):
        assert "measured" in limits.calibration
        for limit in (limits.eval, limits.loss, limits.eval_after, limits.weights or limits.weights_per_lr_step):
            assert f"{limits.dtype}, measured" in limit.rule
    assert (f32.eval.value, f32.loss.value, f32.eval_after.value, f32.weight_limit(1e-4, 3)) == (1e-4, 1e-4, 2e-2,
                                                                                                4 * 1e-4 * 3)
    assert (f64.eval.value, f64.loss.value, f64.eval_after.value, f64.weight_limit(1e-4, 3)) == (1e-9, 1e-9, 1e-5, 1e-7)
    assert not f32.applies("eval_after", light=False) and f32.applies("eval_after", light=True)
    assert f64.applies("eval_after", light=False) and f64.off_fraction is None


def test_rows_compare_relative_to_the_reference_and_refuse_nan():
    row = compare("eval@init", "genA2B", "out", np.array([1.0, 2.5]), np.array([1.0, 2.0]), 0.3)
    assert (row.max_abs, row.value, row.ok) == (0.5, 0.25, True)
    assert not Row("x", "n", "o", math.nan, math.nan, 1.0).ok


def test_weights_rows_follow_the_dtype_rules():
    ours = {"genA2B": {"w": np.array([0.0, 2e-5, 0.0, 0.0])}}
    ref = {"genA2B": {"w": np.zeros(4)}}
    light32 = compare_weights("weights@3", ours, ref, LIMITS["float32"], 1e-4, 3, light=True)
    assert [r.output for r in light32] == ["max|diff|", "frac>1e-05"] and light32[1].value == 0.25
    assert not light32[1].ok  # 25% of the weights off by more than 1e-5: more than 5%
    full32 = compare_weights("weights@3", ours, ref, LIMITS["float32"], 1e-4, 3, light=False)
    assert [r.output for r in full32] == ["max|diff|"] and full32[0].ok
    full64 = compare_weights("weights@3", ours, ref, LIMITS["float64"], 1e-4, 3, light=False)
    assert not full64[0].ok  # 2e-5 > 1e-7
    rows = trajectory_rows(LIMITS["float64"], False, 1e-4, 1, [(1.0, 2.0)], [(1.0, 2.0 + 1e-8)])
    assert [(r.check, r.network, r.ok) for r in rows] == [("loss@1", "D", True), ("loss@1", "G", False)]  # 5e-9 > 1e-9


def test_report_formats():
    rows = [Row("eval@init", "genA2B", "out", 1e-12, 2e-12, 1e-9), Row("loss@1", "G", "total", 1.0, 1e-3, 1e-9)]
    report = Report(rows, bundle="b", dtype="float64", steps=1, notes=["a note"])
    data = json.loads(format_json(report))
    assert {k: data[k] for k in ("bundle", "source", "dtype", "steps", "passed", "failed")} == {
        "bundle": "b", "source": "official", "dtype": "float64", "steps": 1, "passed": 1, "failed": 1}
    assert data["rows"][1] == {"check": "loss@1", "network": "G", "output": "total", "max_abs": 1.0, "value": 1e-3,
                               "limit": 1e-9, "ok": False}
    markdown = format_markdown(rows, report.notes).splitlines()
    assert markdown[0].startswith("| check | network |") and len([m for m in markdown if m.startswith("| ")]) == 3
    assert "1 passed, 1 failed" in format_table(rows) and "FAIL" in format_table(rows)
    assert "loss@each" in format_summary(report) and "a note" in format_summary(report)


def test_one_readme_row_per_bundle_with_the_worst_value_of_each_kind():
    official = Report([Row("eval@init", "genA2B", "out", 1, 2e-5, 1e-4), Row("eval@init", "disGA", "out", 1, 3e-5, 1e-4),
                       Row("loss@1", "D", "total", 1, 1e-6, 1e-4),
                       Row("weights@1", "all", "max|diff|", 1, 2e-4, 1.2e-3),
                       Row("weights@1", "all", "frac>1e-05", 1, 0.2, 0.05)],
                      bundle="/x/light_128_ch8", steps=1)
    tf = Report([Row("tf eval", "genA2B", "fake", 1, 1e-5, 2e-4)], bundle="/x/full_64_ch8", source="tf")
    header, rule, first, second = format_bundles_markdown([official, tf]).splitlines()
    assert header.startswith("| bundle | recorded with | dtype | steps | rows ok |") and rule.startswith("|---|")
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", first.strip("|"))]  # "\|" is a "|" inside a cell
    assert cells[:6] == ["light_128_ch8", "official", "float32", "1", "4/5", "3.0e-05 (1.0e-04)"]
    assert cells[6] == "1.0e-06 (1.0e-04)" and cells[8] == "-"
    assert "max\\|diff\\| 2.0e-04 (1.2e-03); frac>1e-05 2.0e-01 (5.0e-02) **fails**" in first
    assert [c.strip() for c in second.strip("|").split("|")][1:7] == ["tf", "float32", "0", "1/1", "1.0e-05 (2.0e-04)",
                                                                    "-"]


# ------------------------------------------------------------------------------------------ the command line
def test_tool_flags_are_unambiguous(tmp_path, run_tool):
    run = run_tool("parity", "--bundle", str(tmp_path), "--float64")
    assert run.returncode == 2 and "--precision" in run.stderr
    run = run_tool("parity", "--steps", "1")
    assert run.returncode == 2 and "give one of" in run.stderr
    run = run_tool("parity", "--bundle", str(tmp_path), "--json")
    assert run.returncode == 2 and "not a parity bundle" in run.stderr and "Traceback" not in run.stderr
    assert "--precision" in run_tool("parity", "--help").stdout


def test_live_mode_explains_what_it_needs(tmp_path, run_tool):
    hidden = tmp_path / "hide" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    ckpt = tmp_path / "x.pt"
    ckpt.write_bytes(b"unused")
    run = run_tool("parity", "--torch-ckpt", str(ckpt), "--torch-src", str(tmp_path), "--float64", "--steps", "2",
                env={"PYTHONPATH": str(hidden.parent)})
    assert run.returncode == 2 and "live parity needs PyTorch" in run.stderr and "Traceback" not in run.stderr


def test_steps_beyond_the_recording_are_refused(run_tool):
    bundle = ROOT / "tests" / "fixtures" / "light_32_ch2_b2_f64"
    run = run_tool("parity", "--bundle", str(bundle), "--steps", "4")
    assert run.returncode == 2 and "--steps must be 0..3" in run.stderr


@pytest.mark.parametrize("bundle", ["tf/full_64_ch8", "tf/light_96_ch8", "paddlegan/light_96_ch8"])
def test_tool_recognises_tf_and_paddlegan_bundles(bundle, shared_bundle, run_tool):
    path = shared_bundle(*bundle.split("/"))
    run = run_tool("parity", "--bundle", str(path), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["source"] == bundle.split("/")[0] and result["failed"] == 0 and result["passed"] >= 18
    assert {r["network"] for r in result["rows"]} >= {"genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB"}
    refused = run_tool("parity", "--bundle", str(path), "--steps", "1")
    assert refused.returncode == 2 and "eval outputs only" in refused.stderr


def test_float32_generator_is_close_to_float64():
    report = precision_check(ModelConfig(img_size=128, ch=8, n_res=1, light=False))
    assert [r.network for r in report.rows[::3]] == ["paddle", "exported", "exported+onednn"]
    assert all(r.value < 2e-5 for r in report.rows), format_table(report.rows)


# ------------------------------------------------------------------------------------------ opt-in: official code
@needs_official
def test_live_float32_forwards_on_a_recorded_checkpoint(shared_bundle):
    pytest.importorskip("torch")
    bundle = shared_bundle("official", "light_128_ch8")
    report = live_parity(bundle / "init_params.pt", TORCH_SRC, img_size=128)
    assert len(report.rows) == 18 + 6 * 3 * 3 and report.ok, format_table(report.rows)


def _official_checkpoint(path: Path, img_size: int, ch: int, n_res: int, light: bool, seed: int) -> Path:
    """An official checkpoint (as UGATIT.save() writes it) of randomly initialised official networks."""
    torch = pytest.importorskip("torch")
    official = OfficialTraining(TORCH_SRC, img_size, ch, n_res, light, seed=seed)
    torch.save({n: net.state_dict() for n, net in official.nets.items()}, path)
    return path


@needs_official
@pytest.mark.parametrize("light, img_size, ch, batch", [(True, 100, 4, 2), (False, 96, 3, 1)])
def test_live_float64_training_beside_the_official_code(tmp_path, light, img_size, ch, batch):
    """Both codes train K iterations in float64 from a float32 official checkpoint: float64 limits, full model too."""
    pytest.importorskip("torch")
    ckpt = _official_checkpoint(tmp_path / "official.pt", img_size, ch, 1, light, seed=5)
    report = live_parity(ckpt, TORCH_SRC, img_size=img_size, steps=2, float64=True, batch=batch)
    assert report.dtype == "float64" and report.ok, format_table(report.rows, report.notes)
    assert [r.check for r in report.rows].count("eval@2") == 18 and report.notes == []


@needs_official
def test_official_code_rerun_reproduces_a_float64_bundle(shared_bundle):
    pytest.importorskip("torch")
    bundle = shared_bundle("official", "full_112_ch4_f64")
    report = official_rerun(bundle, TORCH_SRC, threads=1)
    assert report.ok and len(report.rows) == 18 + 6 + 1 + 18, format_table(report.rows)
