"""tools/gpu_check.py: refuses on a CPU; its rows and table (the GPU runs themselves need a GPU)."""

from __future__ import annotations

import paddle
import pytest

from ugatit_paddle.commands import gpu_check

pytestmark = pytest.mark.skipif(paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0,
                                reason="these check the CPU-only behaviour")


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

    rows = gpu_check.memory_rows(gpu_check.Options(iters=2, amp_iters=3), run_json=fake_benchmark)
    assert len(rows) == 8 and all(c[:4] == ["--memory", "--json", "--iters", "2"] for c in calls)
    settings = [r.setting for r in rows]
    assert len(set(settings)) == 8 and sum("recompute on" in s for s in settings) == 4
    failed = [r for r in rows if r.result.startswith("failed")]
    assert [r.setting for r in failed] == ["full, 256 px, ch 64, batch 1, recompute off"]
    assert "Out of memory" in failed[0].result
    table = gpu_check.format_table(rows, "Tesla V100-SXM2-16GB").splitlines()
    assert table[2] == "| check | setting | result | s/iteration |" and len(table) == 4 + 8
    assert "5000 MiB (fits 8 GB); weights + Adam alone 900 MiB" in table[4]
