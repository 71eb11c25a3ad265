"""The benchmark (ugatit_paddle.benchmark, tools/benchmark.py) on the tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import paddle
import pytest

from ugatit_paddle.benchmark import (
    discriminator_flops, format_markdown, generator_flops, matmul_peak_gflops, official_iteration_flops, run_benchmark,
)
from ugatit_paddle.config import ModelConfig, config_from_dict, load_config
from ugatit_paddle.models import build_networks, cpu_kernels, onednn
from ugatit_paddle.models.layers import UnpaddedConv2D

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
    assert result["cpu_convolutions"] == (f"oneDNN {'.'.join(map(str, onednn.version()))}" if onednn.available()
                                          else "Paddle")
    table = format_markdown(result, "python tools/benchmark.py --iters 1").splitlines()
    assert f"CPU convolutions by {result['cpu_convolutions']}" in table[0]
    assert "(`python tools/benchmark.py --iters 1`)" in table[0] and table[2:4] == ["| measure | value |", "|---|---|"]
    rows = {cells[0].strip(): cells[1].strip() for cells in (line.strip("|").split("|") for line in table[4:])}
    assert rows["training, reuse_fakes on (configured)"].startswith(f"{result['train_sec_per_iter']:.3f} s/iteration")
    assert rows["reuse_fakes speed-up (median of paired off/on)"] == f"{result['reuse_fakes_speedup']:.2f}x"
    assert {"generator inference, batch 1, Paddle Inference", "generator inference, batch 1, ONNX Runtime",
            "peak memory, training"} <= rows.keys()
    assert result["official_iteration_gflop"] == official_iteration_flops(cfg.model) / 1e9
    assert result["train_gflops_per_sec"] == pytest.approx(result["official_iteration_gflop"]
                                                           / result["train_sec_per_iter"])
    assert result["train_share_of_peak"] == pytest.approx(result["train_gflops_per_sec"] / result["matmul_peak_gflops"])
    work = rows[f"training, official iteration's FLOPs per second ({result['official_iteration_gflop']:.1f} "
                "GFLOP/iteration)"]
    assert work == (f"{result['train_gflops_per_sec']:.1f} GFLOP/s, {100 * result['train_share_of_peak']:.0f}% "
                    "of the matmul peak")
    assert rows["matmul peak (2048x2048 float32, same threads)"] == f"{result['matmul_peak_gflops']:.1f} GFLOP/s"


TINY = ModelConfig(img_size=16, ch=2, n_res=1, light=True, global_layers=3, local_layers=3)


def test_flop_count_of_a_tiny_model_by_hand():
    # generator, c 2, S 16 (d 8, s 4): 2*k*k*Cin*Cout*H*W per convolution, 2*in*out per linear
    generator = (2 * 49 * 3 * 2 * 16 * 16  # conv7x7 3->2 at 16
                 + 2 * 9 * 2 * 4 * 8 * 8 + 2 * 9 * 4 * 8 * 4 * 4  # stride-2 conv3x3 2->4 at 8, 4->8 at 4
                 + 2 * (2 * 9 * 8 * 8 * 4 * 4)  # one residual block: two conv3x3 8->8 at 4
                 + 2 * (2 * 8 * 1) + 2 * 16 * 8 * 4 * 4  # CAM: two linears 8->1, conv1x1 16->8 at 4
                 + 4 * (2 * 8 * 8)  # light MLP: FC.0, FC.2, gamma, beta, 8->8
                 + 2 * (2 * 9 * 8 * 8 * 4 * 4)  # one AdaILN block
                 + 2 * 9 * 8 * 4 * 8 * 8 + 2 * 9 * 4 * 2 * 16 * 16  # up-sampling conv3x3 8->4 at 8, 4->2 at 16
                 + 2 * 49 * 2 * 3 * 16 * 16)  # conv7x7 2->3 at 16
    assert generator == 471584 == generator_flops(TINY)
    # discriminator of 3 layers: conv4x4 stride 2 3->2 at 8, conv4x4 stride 1 2->4 at 7, CAM (two linears 4->1,
    # conv1x1 8->4 at 7), logits conv4x4 4->1 at 6
    discriminator = 2 * 16 * 3 * 2 * 8 * 8 + 2 * 16 * 2 * 4 * 7 * 7 + 2 * (2 * 4) + 2 * 8 * 4 * 7 * 7 + 2 * 16 * 4 * 6 * 6
    assert discriminator == 32592 == discriminator_flops(TINY, 3)
    # official iteration: (forward + 2x backward) x (D step: 2 G, 8 D; G step: 6 G, 4 D), per image
    assert official_iteration_flops(TINY) == 3 * (8 * 471584 + 12 * 32592) == 12491328
    assert official_iteration_flops(TINY, batch_size=3) == 3 * 12491328


@pytest.mark.parametrize("model", [
    ModelConfig(img_size=96, ch=4, n_res=2, light=True),
    ModelConfig(img_size=96, ch=4, n_res=1, light=False, global_layers=6, local_layers=4),
    ModelConfig(img_size=96, ch=4, n_res=1, variant="tf"),
], ids=["light", "full", "tf"])
def test_flop_count_matches_the_layers_the_networks_run(model, monkeypatch):
    """The analytic count equals 2*k*k*Cin*Cout*Hout*Wout and 2*in*out summed over the convolutions and linears
    each network actually runs on one image (convolutions counted in `UnpaddedConv2D.convolve`, which every
    convolution goes through, linears by forward hooks)."""
    counted = {"flops": 0}
    convolve = UnpaddedConv2D.convolve

    def counting_convolve(layer, x, *weights):
        out = convolve(layer, x, *weights)
        counted["flops"] += 2 * layer._kernel_size[0] ** 2 * int(x.shape[1]) * int(out.size)
        return out

    def count_linear(layer, inputs, output):
        counted["flops"] += 2 * int(inputs[0].shape[1]) * int(output.size)

    monkeypatch.setattr(UnpaddedConv2D, "convolve", counting_convolve)
    # the layers' own forwards, as the official code runs them: on CPU the up-sampling convolutions otherwise go
    # through `cpu_kernels.upsample_conv3x3` (the same product, by a transposed convolution), not `convolve`
    monkeypatch.setattr(cpu_kernels, "applies", lambda x: False)
    nets = build_networks(model)
    x = paddle.rand([1, 3, model.img_size, model.img_size])
    for name, expected in (("genA2B", generator_flops(model)), ("disGA", discriminator_flops(model, model.global_layers)),
                           ("disLA", discriminator_flops(model, model.local_layers))):
        hooks = [layer.register_forward_post_hook(count_linear) for layer in nets[name].sublayers()
                 if isinstance(layer, paddle.nn.Linear)]
        counted["flops"] = 0
        with paddle.no_grad():
            nets[name](x)
        for hook in hooks:
            hook.remove()
        if name == "genA2B":  # FC.0 runs through F.linear (`layers.linear_in_float32`), which no hook sees
            counted["flops"] += 2 * int(nets[name].FC[0].weight.size)
        assert counted["flops"] == expected, name


def test_matmul_peak_is_a_plausible_rate():
    assert 0.1 < matmul_peak_gflops(size=256, repeats=3) < 1e5


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
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[4:]) and len(lines) == 11


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
