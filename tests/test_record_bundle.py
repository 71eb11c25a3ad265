"""tools/record_bundle.py and parity/record.py: recording a parity bundle from the official code.

Without torch: the tool refuses bad settings and explains what it needs, leaving nothing behind. Opt-in (torch
installed and UGATIT_TORCH_SRC naming a clone of UGATIT-pytorch): a bundle of a size none of the repository's
bundles has is recorded with the tool and passes tools/parity.py, and the recording is deterministic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ugatit_paddle.parity import LIMITS
from ugatit_paddle.parity.record import BUNDLE_FILES, Recording

ROOT = Path(__file__).resolve().parents[1]
TORCH_SRC = os.environ.get("UGATIT_TORCH_SRC") or os.environ.get("UGATIT_OFFICIAL_SRC")
needs_official = pytest.mark.skipif(not TORCH_SRC, reason="opt-in: set UGATIT_TORCH_SRC to a clone of UGATIT-pytorch "
                                    "(and install torch) to record a bundle with the official code")


def _hidden_torch(tmp_path: Path) -> dict[str, str]:
    hidden = tmp_path / "hide" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    return {"PYTHONPATH": str(hidden.parent)}


def test_settings_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match="smallest valid img_size is 24"):
        Recording(img_size=16, ch=2, n_res=1, light=True, global_layers=5, local_layers=4).check()
    with pytest.raises(ValueError, match="no parity limits for dtype 'float16'"):
        Recording(img_size=32, ch=2, n_res=1, light=True, global_layers=5, local_layers=4, dtype="float16").check()
    with pytest.raises(ValueError, match="steps must be >= 1"):
        Recording(img_size=32, ch=2, n_res=1, light=True, global_layers=5, local_layers=4, steps=0).check()


def test_tool_explains_what_it_needs_and_leaves_nothing_behind(tmp_path, run_tool, load_tool, capsys):
    out = tmp_path / "bundle"
    common = ("--out", str(out), "--img-size", "32", "--ch", "2", "--global-layers", "5", "--local-layers", "4")
    run = run_tool("record_bundle", "--torch-src", str(tmp_path), *common, env=_hidden_torch(tmp_path))
    assert run.returncode == 2 and "needs PyTorch" in run.stderr and "Traceback" not in run.stderr
    main = load_tool("record_bundle").main
    assert main(["--torch-src", str(tmp_path), "--out", str(out), "--img-size", "32", "--ch", "2"]) == 2
    assert "smallest valid img_size is 96" in capsys.readouterr().err  # the official depths 7 and 5
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--torch-src", str(tmp_path), *common]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "hide"] and (out / "keep.txt").exists()


@needs_official
def test_a_recorded_bundle_passes_and_the_recording_is_deterministic(tmp_path, run_tool, load_tool):
    """A full float64 bundle of another size, batch and depths (28 px, ch 3, n_res 1, discriminators of 5 and 3
    layers, batch 2, 2 steps): recorded twice with the tool, identical, and checked by tools/parity.py."""
    pytest.importorskip("torch")
    args = ("--torch-src", TORCH_SRC, "--img-size", "28", "--ch", "3", "--n-res", "1", "--global-layers", "5",
            "--local-layers", "3", "--batch", "2", "--steps", "2", "--seed", "7")
    first, second = tmp_path / "full_28_ch3_b2", tmp_path / "again"
    run = run_tool("record_bundle", "--out", str(first), *args)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in first.iterdir()) == sorted(BUNDLE_FILES)
    ref = json.loads((first / "reference.json").read_text())
    assert (ref["img_size"], ref["global_layers"], ref["local_layers"], ref["batch"], ref["steps"]) == (28, 5, 3, 2, 2)
    assert ref["dtype"] == "float64" and ref["limits"] == LIMITS["float64"].to_dict() and len(ref["losses"]) == 2
    assert ref["official_rerun"]["worst"]["loss@each"] <= LIMITS["float64"].loss.value

    run = run_tool("parity", "--bundle", str(first), "--steps", "2", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["dtype"] == "float64" and result["failed"] == 0 and result["passed"] == 18 + 4 + 1 + 18

    assert load_tool("record_bundle").main(["--out", str(second), "--no-rerun", *args]) == 0
    assert json.loads((second / "reference.json").read_text())["losses"] == ref["losses"]
    for name in ("batch.npz", "eval_outputs_after_steps.npz"):
        a, b = np.load(first / name), np.load(second / name)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
