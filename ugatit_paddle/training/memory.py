"""Memory figures to plan a training run with: the peak the process reached, what the float32 weights and their
Adam state take alone, and the smallest common card a measured peak fits on.

The peak is the process's peak resident set on a CPU (`resource.getrusage`: everything, Paddle's runtime
included) and the allocator's peak on a GPU (`paddle.device.cuda.max_memory_allocated`: tensors only, without
the CUDA context, which `CARD_RESERVE_MIB` stands for).
"""

from __future__ import annotations

import sys

import paddle

CARD_SIZES_GB = (8, 12, 16, 24, 32, 40, 48, 80)  # memory of common GPU models (V100 16/32 GB, A100 40/80 GB, ...)
CARD_RESERVE_MIB = 1024  # per card: CUDA context, cuDNN workspaces and allocator slack, not in a tensor peak
TRAINING_BYTES_PER_WEIGHT = 16  # float32: the weight, its gradient, Adam's two moments


def peak_memory_mb() -> tuple[str, float]:
    """("gpu_allocated", MiB) on a GPU device, else ("cpu_rss", MiB): the peak so far in this process."""
    if paddle.device.is_compiled_with_cuda() and paddle.device.get_device().startswith("gpu"):
        return "gpu_allocated", paddle.device.cuda.max_memory_allocated() / 2**20
    import resource  # Unix only: imported where the CPU branch needs it

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return "cpu_rss", kib / (2**20 if sys.platform == "darwin" else 2**10)


def weights_and_adam_mib(nets: dict[str, paddle.nn.Layer]) -> float:
    """MiB that training's float32 weights, gradients and Adam moments of `nets` take, activations aside."""
    count = sum(int(p.size) for net in nets.values() for p in net.parameters())
    return count * TRAINING_BYTES_PER_WEIGHT / 2**20


def smallest_card_gb(peak_mib: float) -> int | None:
    """The smallest of `CARD_SIZES_GB` (taken as GiB) with `peak_mib` + `CARD_RESERVE_MIB` free, None if none."""
    for size in CARD_SIZES_GB:
        if peak_mib + CARD_RESERVE_MIB <= size * 1024:
            return size
    return None
