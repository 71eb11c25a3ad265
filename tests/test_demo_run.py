"""The CPU demo end to end, shortened: a tiny generated dataset and 3 training iterations (plumbing only;
the full run's learning is reported in configs/demo.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ugatit_paddle.data import DataError
from ugatit_paddle.demo.run import DemoError, run_demo

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "demo.yaml"
N_TRAIN, N_TEST, ITERATIONS = 12, 4, 3
SETS = ("testA", "testB", "genA2B(testA) untrained", "genA2B(testA)", "genB2A(testB) untrained", "genB2A(testB)")


def overrides(tmp: Path, iterations: int = ITERATIONS, out: str = "out") -> list[str]:
    return [f"output_dir={tmp / out}", f"data.root={tmp / 'data'}", f"train.iterations={iterations}",
            "train.sample_every=2", "train.save_every=2", "train.log_every=1"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    result = run_demo(CONFIG, overrides(tmp), n_train=N_TRAIN, n_test=N_TEST)
    return tmp, result


def test_outputs_exist(demo):
    tmp, result = demo
    out = tmp / "out"
    assert result.output_dir == out and result.iterations == ITERATIONS and result.interrupted is None
    # the generated dataset, at the model resolution
    for folder, count in (("trainA", N_TRAIN), ("trainB", N_TRAIN), ("testA", N_TEST), ("testB", N_TEST)):
        assert len(list((tmp / "data" / folder).glob("*.png"))) == count
    size = json.loads((tmp / "data" / "demo_data.json").read_text())["size"]
    # sample sheets of the trainer: every sample_every iterations and at the end
    for name in ("A2B", "B2A"):
        for it in (2, 3):
            sheet = Image.open(out / "samples" / f"{name}_{it:07d}.png")
            assert sheet.size == (8 * size, 7 * size)  # sample_count 4 train + 4 test images, 7 tiles each
    # translated test images and the before/after grids
    for name, prefix in (("A2B", "a"), ("B2A", "b")):
        files = sorted((out / "demo_translations" / name).glob("*.png"))
        assert [f.name for f in files] == [f"{prefix}_{i:04d}.png" for i in range(N_TEST)]
        assert np.asarray(Image.open(files[0])).shape == (size, size, 3)
        grid = Image.open(out / "demo_translations" / f"{name}_grid.png")
        assert grid.size == (N_TEST * size, 3 * size)
    assert result.checkpoint.is_file() and result.checkpoint.name == f"iter_{ITERATIONS:07d}.pdparams"


def test_result_json(demo):
    tmp, result = demo
    record = json.loads((tmp / "out" / "demo_result.json").read_text())
    assert record["iterations"] == ITERATIONS and record["test_images"] == {"A": N_TEST, "B": N_TEST}
    assert set(record["scores"]) == {"P(B)", "P(A)"} and "score_definition" in record
    for key in SETS:
        p_b, p_a = record["scores"]["P(B)"][key], record["scores"]["P(A)"][key]
        assert 0.0 <= p_b <= 1.0 and p_a == pytest.approx(1.0 - p_b)
        assert set(record["cues"][key]) == {"background", "colour", "texture"}
        assert all(0.0 <= p <= 1.0 for p in record["cues"][key].values())
    assert record["scores"] == result.scores
    # the scorer separates the real test images (held out from its fit)
    assert record["scores"]["P(B)"]["testA"] < 0.3 < 0.7 < record["scores"]["P(B)"]["testB"]
    assert record["train_seconds"] > 0 and record["total_seconds"] >= record["train_seconds"]


def test_time_limit_and_rerun_replaces_outputs(tmp_path):
    stopped = run_demo(CONFIG, overrides(tmp_path), n_train=N_TRAIN, n_test=N_TEST, time_limit=0.0, verbose=False)
    out = tmp_path / "out"
    assert stopped.iterations == 0 and stopped.interrupted == "time limit"
    assert (out / "checkpoints" / "iter_0000000.pdparams").is_file()
    assert (out / "samples" / "A2B_0000000.png").is_file()
    assert json.loads((out / "demo_result.json").read_text())["interrupted"] == "time limit"
    # a rerun into the same folder trains from scratch and drops the earlier checkpoints and sheets
    again = run_demo(CONFIG, overrides(tmp_path, iterations=1), n_train=N_TRAIN, n_test=N_TEST, verbose=False)
    assert again.iterations == 1 and again.interrupted is None
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter_0000001.pdparams"]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["A2B_0000001.png", "B2A_0000001.png"]


def test_refuses_foreign_output_and_data(tmp_path):
    foreign = tmp_path / "out" / "checkpoints"
    foreign.mkdir(parents=True)
    (foreign / "iter_0001000.pdparams").write_bytes(b"somebody's run")
    with pytest.raises(DemoError, match="another experiment"):
        run_demo(CONFIG, overrides(tmp_path), n_train=N_TRAIN, n_test=N_TEST, verbose=False)
    assert (foreign / "iter_0001000.pdparams").is_file()
    # a non-demo data folder is never written into
    data = tmp_path / "mine"
    (data / "trainA").mkdir(parents=True)
    (data / "trainA" / "x.png").write_bytes(b"not really")
    with pytest.raises(DataError, match="incomplete"):
        run_demo(CONFIG, overrides(tmp_path, out="out2") + [f"data.root={data}"], verbose=False)
    assert sorted(p.name for p in data.rglob("*")) == ["trainA", "x.png"]


def test_cli_config_error_exit_code(tmp_path, run_tool):
    proc = run_tool("demo", "-o", "model.img_size=30", "-o", f"output_dir={tmp_path / 'out'}", "-o",
                    f"data.root={tmp_path / 'data'}", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "config error" in proc.stderr and "img_size" in proc.stderr
    assert not (tmp_path / "data").exists()
