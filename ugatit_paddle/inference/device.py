"""Which device a translating tool runs on: `--device gpu|cpu` of predict, test, benchmark (and the app).

The default is the device Paddle sees: a GPU when this Paddle is built with CUDA and a card is visible, else
the CPU. Asking for a GPU that is not there is refused with `DeviceUnavailableError` (one line, exit status 2
in the tools) rather than silently running on the CPU. The same choice drives the three runners:

- eager (checkpoints): `use_device` calls `paddle.set_device` before the weights are loaded;
- Paddle Inference (`export.InferenceModel`): `Config.enable_use_gpu` or `disable_gpu`;
- ONNX Runtime (`onnx.OnnxModel`): `onnx_providers` puts `CUDAExecutionProvider` first when ONNX Runtime lists
  it (the `onnxruntime-gpu` package); by default a missing CUDA provider means the CPU one, asked-for it is refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import paddle

DEVICES = ("cpu", "gpu")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
GPU_MEMORY_POOL_MB = 256  # Paddle Inference's initial GPU memory pool (it grows as needed)


class DeviceUnavailableError(ValueError):
    """A GPU was asked for but this process cannot use one; the message says why and what to do."""


def gpu_visible() -> bool:
    """True when this Paddle is built with CUDA and sees at least one card."""
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """`--device gpu|cpu` (default: None, meaning the device Paddle sees; see `resolve_device`)."""
    parser.add_argument("--device", choices=DEVICES,
                        help="run on the GPU or the CPU (default: the GPU when Paddle sees one, else the CPU)")


def resolve_device(requested: str | None, gpu: bool | None = None) -> str:
    """"gpu" or "cpu": `requested`, or the device Paddle sees when None. `gpu` overrides the check of
    `gpu_visible()` (tests). Raises DeviceUnavailableError for "gpu" without one, ValueError for other names."""
    gpu = gpu_visible() if gpu is None else gpu
    if requested is None:
        return "gpu" if gpu else "cpu"
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "gpu" and not gpu:
        why = ("this Paddle is built without CUDA (install paddlepaddle-gpu)" if not paddle.device.is_compiled_with_cuda()
               else "Paddle sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)")
        raise DeviceUnavailableError(f"--device gpu asked for, but {why}; use --device cpu")
    return requested


def use_device(requested: str | None) -> str:
    """Resolve `requested` and make it Paddle's device for eager tensors and newly built layers; returns it."""
    device = resolve_device(requested)
    paddle.set_device(device)
    return device


def onnx_providers(requested: str | None, available: Sequence[str], gpu: bool | None = None) -> list[str]:
    """ONNX Runtime execution providers, given `onnxruntime.get_available_providers()`: for "gpu" the CUDA
    provider (refused when ONNX Runtime lacks it), for "cpu" the CPU one, for None the CUDA provider when Paddle
    sees a GPU (`gpu` overrides that check) and ONNX Runtime has it, else the CPU one."""
    if requested not in (None, *DEVICES):
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "gpu" and CUDA_PROVIDER not in available:
        raise DeviceUnavailableError(f"--device gpu asked for, but ONNX Runtime here has no {CUDA_PROVIDER} (it "
                                     f"lists {', '.join(available)}; install onnxruntime-gpu); use --device cpu")
    if requested == "gpu" or (requested is None and CUDA_PROVIDER in available and resolve_device(None, gpu) == "gpu"):
        return [CUDA_PROVIDER, CPU_PROVIDER]
    return [CPU_PROVIDER]
