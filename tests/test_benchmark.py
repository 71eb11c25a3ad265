"""The benchmark (ugatit_paddle.benchmark, tools/benchmark.py) on the tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ugatit_paddle.benchmark import format_markdown, run_benchmark
from ugatit_paddle.config import config_from_dict, load_config
from ugatit_paddle.models import build_networks

ROOT = Path(__file__).resolve().parents[1]


def test_run_benchmark_reports_every_figure(tmp_path, tiny_config):
    cfg = config_from_dict(tiny_config(tmp_path))
    result = run_benchmark(cfg, iters=1, warmup=1, exported=True)
    for key in ("train_sec_per_iter", "train_sec_per_iter_reuse_on", "train_sec_per_iter_reuse_off",
                "reuse_fakes_speedup", "train_images_per_sec", "infer_sec_per_image", "peak_rss_mb"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["train_sec_per_iter"] == result["train_sec_per_iter_reuse_on"]  # the configured setting
    assert isinstance(result["infer_exported_sec_per_image"], float)  # plain Paddle Inference always works
    assert "infer_exported_onednn_sec_per_image" in result  # a time, or the reason it failed
    onnx = result["infer_exported_onnxruntime_sec_per_image"]  # a time when paddle2onnx/onnxruntime are installed
    assert isinstance(onnx, float) or onnx.startswith("unavailable: "), onnx
    assert cfg.train.reuse_fakes is True  # the interleaving restored the setting
    table = format_markdown(result, "python tools/benchmark.py --iters 1").splitlines()
    assert "(`python tools/benchmark.py --iters 1`)" in table[0] and table[2:4] == ["| measure | value |", "|---|---|"]
    rows = {cells[0].strip(): cells[1].strip() for cells in (line.strip("|").split("|") for line in table[4:])}
    assert rows["training, reuse_fakes on (configured)"].startswith(f"{result['train_sec_per_iter']:.3f} s/iteration")
    assert rows["reuse_fakes speed-up (median of paired off/on)"] == f"{result['reuse_fakes_speedup']:.2f}x"
    assert {"generator inference, batch 1, Paddle Inference", "generator inference, batch 1, ONNX Runtime",
            "peak memory, training"} <= rows.keys()


def test_tool_prints_one_json_line(tmp_path, run_tool):
    run = run_tool("benchmark", "-c", str(ROOT / "configs" / "demo.yaml"), "--iters", "1", "--warmup", "1",
                   "--no-export", "--json")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert {"train_sec_per_iter", "infer_sec_per_image", "peak_rss_mb"} <= result.keys()


def test_tool_prints_a_markdown_table_by_default(run_tool):
    args = ["-c", str(ROOT / "configs" / "demo.yaml"), "--iters", "1", "--warmup", "1", "--no-export"]
    run = run_tool("benchmark", *args)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert "--no-export`)" in lines[0] and lines[2] == "| measure | value |"
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[4:]) and len(lines) == 9


def test_memory_reports_the_peak_the_training_state_and_a_card(run_tool):
    args = ["-c", str(ROOT / "configs" / "demo.yaml"), "--memory"]
    run = run_tool("benchmark", *args, "-o", "train.recompute=true", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["recompute"] is True and result["iters"] == 2 and result["peak_memory_kind"] == "cpu_rss"
    assert result["peak_memory_mb"] > result["weights_and_adam_mb"] > 0 and result["fits_card_gb"] == 8
    cfg = load_config(str(ROOT / "configs" / "demo.yaml"))
    weights = sum(int(p.size) for net in build_networks(cfg.model).values() for p in net.parameters())
    assert result["weights_and_adam_mb"] == pytest.approx(weights * 16 / 2**20)  # float32 weight, gradient, 2 moments
    run = run_tool("benchmark", *args, "--iters", "1")
    assert run.returncode == 0, run.stderr
    header, rule, row = run.stdout.strip().splitlines()[-3:]
    assert header.startswith("| model | recompute | peak memory |") and "fits a card of" in header
    assert row.startswith("| light, 64 px, ch 8, batch 1 | off | ") and "| 8 GB |" in row


def test_tool_rejects_a_bad_config(run_tool):
    run = run_tool("benchmark", "-o", "model.img_szie=64")
    assert run.returncode == 2 and "did you mean 'model.img_size'" in run.stderr


def test_tool_profile_prints_the_operator_summary(run_tool):
    run = run_tool("benchmark", "-c", str(ROOT / "configs" / "demo.yaml"), "--iters", "1", "--warmup", "1", "--profile")
    assert run.returncode == 0, run.stderr
    summary = run.stdout[run.stdout.index("Operator Summary"):]
    assert "conv2d" in summary and "Conv2dGradNode" in summary  # forward ops and their gradient nodes


def test_compare_official_needs_a_clone(tmp_path, run_tool):
    run = run_tool("compare_official", "--torch-src", str(tmp_path))
    assert run.returncode == 2 and "has no networks.py" in run.stderr


@pytest.mark.skipif(not os.environ.get("UGATIT_TORCH_SRC"), reason="opt-in: set UGATIT_TORCH_SRC to a clone of "
                    "UGATIT-pytorch (and install torch) to time the official training iteration beside ours")
def test_compare_official_times_both_trainings(run_tool):
    pytest.importorskip("torch")
    run = run_tool("compare_official", "--torch-src", os.environ["UGATIT_TORCH_SRC"], "--img-size", "96", "--ch", "4",
                   "--n-res", "1", "--iters", "1", "--warmup", "0", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert all(result[f"{k}_sec_per_iter"] > 0 for k in ("official", "ours_reuse_on", "ours_reuse_off"))
