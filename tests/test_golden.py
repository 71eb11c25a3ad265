"""Agreement with the official PyTorch code on the recorded parity bundles (../shared/fixtures/official).

These tests skip when the bundles are absent (a user's clone). They never need PyTorch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ugatit_paddle.parity import bundle_parity, format_table

ROOT = Path(__file__).resolve().parents[1]


def test_eval_outputs_match_after_conversion(golden_bundle):
    rows = bundle_parity(golden_bundle)
    assert len(rows) == 18  # six networks x (out, cam_logit, heatmap)
    assert all(r.ok for r in rows), format_table(rows)


def test_training_losses_match_every_iteration(golden_bundle):
    steps = json.loads((golden_bundle / "reference.json").read_text())["steps"]
    rows = [r for r in bundle_parity(golden_bundle, steps=steps) if r.check.startswith("loss@")]
    assert len(rows) == 2 * steps
    assert all(r.ok for r in rows), format_table(rows)


def test_weights_and_outputs_after_training_steps(golden_bundle, request):
    if golden_bundle.name.startswith("full"):
        request.applymarker(pytest.mark.xfail(strict=True, reason=
            "known gap: in the full model's 1M-weight FC.0 layer Adam's first steps move each weight by ~lr*sign(grad), "
            "and signs of near-zero gradients differ between any two runs; the official code itself, rerun on this "
            "bundle with 1 or 2 threads, also misses these limits (tools/parity.py --official-rerun shows it)"
        ))
    steps = json.loads((golden_bundle / "reference.json").read_text())["steps"]
    rows = [r for r in bundle_parity(golden_bundle, steps=steps) if r.check.startswith(("weights@", "eval@"))]
    assert all(r.ok for r in rows), format_table(rows)


def test_parity_tool_runs_where_torch_cannot_be_imported(golden_bundle, tmp_path):
    hidden = tmp_path / "hide" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    steps = "3" if golden_bundle.name.startswith("light") else "0"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "parity.py"), "--bundle", str(golden_bundle),
                          "--steps", steps], capture_output=True, text=True, env={"PYTHONPATH": str(hidden.parent)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 failed" in run.stdout


def test_live_mode_explains_what_it_needs(tmp_path):
    hidden = tmp_path / "hide" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    ckpt = tmp_path / "x.pt"
    ckpt.write_bytes(b"unused")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "parity.py"), "--torch-ckpt", str(ckpt), "--torch-src",
                          str(tmp_path)], capture_output=True, text=True, env={"PYTHONPATH": str(hidden.parent)})
    assert run.returncode == 2 and "live parity needs PyTorch" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.skipif(not os.environ.get("UGATIT_OFFICIAL_SRC"), reason="opt-in: set UGATIT_OFFICIAL_SRC to a clone of "
                    "UGATIT-pytorch (and install torch) to run live parity against the official networks.py")
def test_live_parity_against_the_official_networks(golden_bundle):
    pytest.importorskip("torch")
    from ugatit_paddle.parity import live_parity

    rows = live_parity(golden_bundle / "init_params.pt", os.environ["UGATIT_OFFICIAL_SRC"], img_size=128)
    assert all(r.ok for r in rows), format_table(rows)


def test_float32_generator_is_close_to_float64():
    from ugatit_paddle.config import ModelConfig
    from ugatit_paddle.parity import precision_check

    rows = precision_check(ModelConfig(img_size=128, ch=8, n_res=1, light=False))
    assert [r.network for r in rows[::3]] == ["paddle", "exported", "exported+onednn"]
    assert all(r.value < 2e-5 for r in rows), format_table(rows)
