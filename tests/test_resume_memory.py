"""The summary of `resume_memory.measure_resume_memory` (the measurement itself runs in test_distributed:
`test_resume_leaves_no_host_copy_of_the_optimiser_state_on_other_ranks`)."""

from __future__ import annotations

from ugatit_paddle.resume_memory import format_summary


def _stage(host: float, peak: float) -> dict[str, float]:
    return {"rss_mib": host + 100, "peak_rss_mib": peak, "tensors_mib": 100.0, "host_mib": host}


def test_summary_gives_each_rank_fresh_and_resumed_with_the_resume_s_extra_host_memory():
    fresh = {"device": "cpu", "built": _stage(300, 400), "first_step": _stage(2000, 2500)}
    resumed = {"device": "cpu", "built": _stage(300, 400), "resumed": _stage(303, 700), "first_step": _stage(2100, 2600)}
    result = {"processes": 2, "paddle": "3.3.1", "device": "cpu", "float64": False,
              "model": {"light": True, "img_size": 256, "ch": 32}, "checkpoint_mib": 384.2,
              "optimizer_state_mib": 256.1, "fresh": [fresh, fresh], "resumed": [resumed, resumed],
              "extra_host_mib": [387.0, 3.0]}
    lines = format_summary(result).splitlines()
    assert lines[0] == ("light, 256 px, ch 32, 2 CPU processes, Paddle 3.3.1: checkpoint 384 MiB, of which "
                        "optimiser state 256 MiB")
    assert lines[3:] == ["| 0 | fresh | 300 / 300 / 2000 | 400 / 2500 |  |",
                         "| 0 | resumed | 300 / 303 / 2100 | 700 / 2600 | +387 |",
                         "| 1 | fresh | 300 / 300 / 2000 | 400 / 2500 |  |",
                         "| 1 | resumed | 300 / 303 / 2100 | 700 / 2600 | +3 |"]
