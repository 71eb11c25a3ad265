"""tools/gpu_check.py and ugatit_paddle/gpu_check.py: the tool refuses on a CPU; every row function's CPU-runnable
part (the comparisons run with device "cpu", the skip and "unsupported" branches forced), the table, and that a
failing row becomes an error row. The GPU measurements themselves need a GPU."""

from __future__ import annotations

import paddle
import pytest

from ugatit_paddle import gpu_check
from ugatit_paddle.gpu_check import Options, Row
from ugatit_paddle.runtime import uses_glibc

pytestmark = pytest.mark.skipif(paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0,
                                reason="these check the CPU-only behaviour")

CPU = Options(device="cpu", small=True, check_iters=2, amp_iters=2, overflow_iters=2)


def test_refuses_on_a_cpu_with_one_line_and_status_2(run_tool):
    run = run_tool("gpu_check")
    assert run.returncode == 2
    assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1 and "no GPU" in run.stderr


def test_memory_rows_cover_the_four_configurations_with_and_without_recompute():
    calls = []

    def fake_benchmark(args):
        calls.append(args)
        if "model.img_size=256" in args and "model.light=false" in args and "train.recompute=false" in args:
            raise RuntimeError("Out of memory error on GPU 0")
        return {"peak_memory_mb": 5000.0, "weights_and_adam_mb": 900.0, "fits_card_gb": 8, "train_sec_per_iter": 0.5}

    rows = gpu_check.memory_rows(Options(iters=2, amp_iters=3), run_json=fake_benchmark)
    assert len(rows) == 8 and all(c[:4] == ["--memory", "--json", "--iters", "2"] for c in calls)
    settings = [r.setting for r in rows]
    assert len(set(settings)) == 8 and sum("recompute on" in s for s in settings) == 4
    failed = [r for r in rows if r.result.startswith("failed")]
    assert [r.setting for r in failed] == ["full, 256 px, ch 64, batch 1, recompute off"]
    assert "Out of memory" in failed[0].result
    table = gpu_check.format_table(rows, "Tesla V100-SXM2-16GB").splitlines()
    assert table[2] == "| check | setting | result | s/iteration (unless stated) |" and len(table) == 4 + 8
    assert "5000 MiB (fits 8 GB); weights + Adam alone 900 MiB" in table[4]


def test_a_failing_row_function_becomes_an_error_row_and_the_others_still_run():
    def broken_rows(o):
        raise MemoryError("Out of memory error on GPU 0.\n  Tried to allocate 2 GB")

    def fine_rows(o):
        return [Row("fine", "s", "pass")]

    titles = []
    rows = gpu_check.run_rows(CPU, [fine_rows, broken_rows, fine_rows], progress=titles.append)
    assert [r.check for r in rows] == ["fine", "broken", "fine"] and titles == ["fine", "broken", "fine"]
    assert rows[1].result == "error: MemoryError: Out of memory error on GPU 0. Tried to allocate 2 GB"


def test_every_row_function_is_in_the_table():
    names = {f.__name__ for f in gpu_check.ROWS}
    assert names == {"amp_rows", "memory_rows", "spectral_norm_rows", "fc0_rows", "overflow_rows", "bfloat16_rows",
                     "deterministic_rows", "reads_rows", "inference_rows", "host_memory_rows", "nccl_rows",
                     "resume_memory_rows"}


@pytest.mark.parametrize("rows", [gpu_check.amp_rows, gpu_check.fc0_rows, gpu_check.overflow_rows])
def test_the_mixed_precision_rows_say_they_need_a_gpu(rows):
    [row] = rows(CPU)
    assert row.result == "skipped: needs a GPU (mixed precision)" and row.setting


def test_bfloat16_row_says_when_the_card_has_no_bfloat16():
    [row] = gpu_check.bfloat16_rows(Options(device="gpu"), supported=False)
    assert row.result == "not supported by this card"
    # on a CPU the row is skipped whatever the CPU supports (Paddle's answer there is about the CPU: AVX512-BF16)
    for supported in (None, True, False):
        [row] = gpu_check.bfloat16_rows(CPU, supported=supported)
        assert row.result == "skipped: needs a GPU (mixed precision)"


def test_fc0_row_reports_both_peaks_from_fresh_processes():
    calls = []

    def fake(function, **kwargs):
        calls.append((function, kwargs))
        return {"peak_mib": 9000.0 if kwargs["float32_fc0"] else 12000.0, "seconds": 0.5}

    [row] = gpu_check.fc0_rows(Options(), run=fake)
    assert calls == [("fc0_peak", {"float32_fc0": True, "small": False}),
                     ("fc0_peak", {"float32_fc0": False, "small": False})]
    assert "9000 MiB with float32 FC.0, 12000 MiB with it autocast: 3000 MiB saved" in row.result
    assert row.setting.startswith("full, 256 px, ch 64")


def test_fc0_autocast_replaces_the_float32_call_of_the_full_generator(monkeypatch):
    from ugatit_paddle.models import Generator, generator

    calls = []
    monkeypatch.setattr(generator, "linear_in_float32", lambda layer, x: calls.append(layer) or layer(x))
    g = Generator(ch=8, n_res=1, img_size=64, light=False)
    x = paddle.uniform([1, 3, 64, 64], min=-1, max=1)
    g(x)
    assert calls == [g.FC[0]]
    with gpu_check.fc0_autocast():
        g(x)
    assert calls == [g.FC[0]]  # not called again: FC.0 went through a plain call


def test_spectral_norm_row_counts_no_host_copies_on_the_cpu():
    [row] = gpu_check.spectral_norm_rows(CPU)
    assert row.result == "pass: 0 host copies (Tensor.numpy/__array__)" and float(row.sec_per_iter.split()[0]) > 0


def test_host_copies_counts_numpy_calls_and_restores_the_methods():
    original = paddle.Tensor.numpy
    with gpu_check.HostCopies() as copies:
        paddle.ones([2]).numpy()
    assert copies.calls == 1 and paddle.Tensor.numpy is original


def test_deterministic_row_compares_two_runs_bit_for_bit_on_the_cpu():
    [row] = gpu_check.deterministic_rows(CPU)
    assert row.result == "pass: weights bit-equal" and "(deterministic)" in row.sec_per_iter


def test_reads_row_compares_the_two_read_strategies_on_the_cpu():
    [row] = gpu_check.reads_rows(CPU)
    assert row.result.startswith("pass: totals within") and "(one read)" in row.sec_per_iter


def test_inference_rows_compare_with_the_cpu():
    rows = gpu_check.inference_rows(CPU)
    assert [r.check for r in rows] == ["Paddle Inference --device cpu", "ONNX Runtime --device cpu"]
    assert rows[0].result.startswith("pass: outputs within") and rows[0].sec_per_iter.endswith("ms/image")
    assert rows[1].result.startswith(("pass: outputs within", "skipped:"))  # ONNX packages are optional


def test_onnx_row_is_skipped_on_a_gpu_without_the_cuda_provider():
    def export(images):
        raise AssertionError("nothing is exported when the provider is missing")

    row = gpu_check.onnx_row(Options(device="gpu"), "tiny", export, (), None, providers=["CPUExecutionProvider"])
    assert row.result.startswith("skipped: ONNX Runtime here lists no CUDAExecutionProvider")


def test_host_memory_row_in_a_fresh_process_on_the_cpu():
    [row] = gpu_check.host_memory_rows(CPU)
    assert row.setting.endswith("1 iteration on the CPU") and "resident" in row.result
    if uses_glibc():
        assert "MALLOC_MMAP_MAX_=0" in row.result  # the CPU keeps them; a GPU run must not (checked there)


def test_host_memory_row_verdict_on_a_gpu():
    result = {"before": 3000.0, "after": 3100.0, "peak": 6000.0, "checkpoint_mib": 2000.0, "allocator": {},
              "device": "gpu"}
    [row] = gpu_check.host_memory_rows(Options(), run=lambda f, **k: result)
    assert row.result.startswith("pass, returned: resident 3000 MiB before the save, 3100 MiB after")
    kept = dict(result, after=5000.0, allocator={"MALLOC_MMAP_MAX_": "0"})
    [row] = gpu_check.host_memory_rows(Options(), run=lambda f, **k: kept)
    assert row.result.startswith("FAIL, KEPT") and "MALLOC_MMAP_MAX_=0" in row.result


def test_nccl_rows_need_two_gpus():
    [row] = gpu_check.nccl_rows(CPU, gpus=1)
    assert row.result == "skipped: needs 2 GPUs, this machine has 1"


def test_resume_memory_rows_pass_when_no_other_rank_holds_the_optimiser_state():
    [row] = gpu_check.resume_memory_rows(CPU, gpus=1)
    assert row.result == "skipped: needs 2 GPUs, this machine has 1"
    result = {"extra_host_mib": [1100.0, 3.0], "optimizer_state_mib": 1024.0, "checkpoint_mib": 1536.0}
    [row] = gpu_check.resume_memory_rows(CPU, gpus=2, measure=lambda cfg, processes: result)
    assert row.result == ("pass: host memory after the resume beyond a fresh start, rank 0 +1100 MiB, other ranks "
                          "+3 MiB (optimiser state 1024 MiB, checkpoint 1536 MiB)")
    result["extra_host_mib"][1] = 1030.0  # a host copy of the optimiser state on rank 1
    [row] = gpu_check.resume_memory_rows(CPU, gpus=2, measure=lambda cfg, processes: result)
    assert row.result.startswith("FAIL: ") and "other ranks +1030 MiB" in row.result
