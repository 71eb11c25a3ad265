"""The benchmark (ugatit_paddle.benchmark, tools/benchmark.py) on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import tiny_config
from ugatit_paddle.benchmark import format_result, run_benchmark
from ugatit_paddle.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_run_benchmark_reports_every_figure(tmp_path):
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
    text = format_result(result)
    assert "reuse_fakes on" in text and "peak memory" in text


def test_tool_prints_one_json_line(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), "-c", str(ROOT / "configs" / "demo.yaml"),
                          "--iters", "1", "--warmup", "1", "--no-export", "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert {"train_sec_per_iter", "infer_sec_per_image", "peak_rss_mb"} <= result.keys()


def test_tool_rejects_a_bad_config():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), "-o", "model.img_szie=64"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "did you mean 'model.img_size'" in run.stderr


def test_tool_profile_prints_the_operator_summary():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), "-c", str(ROOT / "configs" / "demo.yaml"),
                          "--iters", "1", "--warmup", "1", "--profile"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = run.stdout[run.stdout.index("Operator Summary"):]
    assert "conv2d" in summary and "Conv2dGradNode" in summary  # forward ops and their gradient nodes
