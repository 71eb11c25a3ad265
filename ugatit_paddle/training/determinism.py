"""GPU kernel choice for training: fast (cuDNN autotuning) by default, deterministic with `train.deterministic`.

On a CPU a run is deterministic: resuming a checkpoint continues exactly as if never stopped. On a GPU it is
not, by default: cuDNN picks among convolution algorithms, some of which add in a varying order, and the
reflect-pad backward (`pad3d`) adds with atomics. `train.deterministic: true` sets `FLAGS_cudnn_deterministic`
(deterministic cuDNN algorithms, no autotuning) and makes `ReflectionPad2d` pad by slices, whose backward has
no atomics (`models/layers.py`); it costs speed. Otherwise `FLAGS_cudnn_exhaustive_search` lets cuDNN time
every algorithm once per shape (the shapes of a training run are fixed) and keep the fastest.
Flags exported in the environment win. `paddle.seed` draws initial weights from the device's generator, so a
GPU run starts from other weights than a CPU run with the same seed, deterministic or not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import paddle


def gpu_flags(deterministic: bool) -> dict[str, bool]:
    """The Paddle flags for training on a GPU in deterministic mode or not."""
    return {"FLAGS_cudnn_deterministic": deterministic, "FLAGS_cudnn_exhaustive_search": not deterministic}


def configure_gpu_kernels(deterministic: bool, environ: Mapping[str, str] | None = None) -> dict[str, bool]:
    """Set `gpu_flags(deterministic)` on a CUDA build of Paddle, except flags set in `environ` (default
    `os.environ`); nothing on other builds (which lack the flags). Returns what it set."""
    if not paddle.device.is_compiled_with_cuda():
        return {}
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in gpu_flags(deterministic).items() if k not in environ}
    if flags:
        paddle.set_flags(flags)
    return flags
