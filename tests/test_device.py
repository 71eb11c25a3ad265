"""`--device gpu|cpu`: the default, the refusal of a GPU that is not there, ONNX Runtime's providers."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.inference.device import (
    CPU_PROVIDER, CUDA_PROVIDER, DeviceUnavailableError, onnx_providers, resolve_device,
)

NO_GPU = not (paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0)


def test_default_is_the_device_paddle_sees():
    assert resolve_device(None, gpu=True) == "gpu"
    assert resolve_device(None, gpu=False) == "cpu"
    assert resolve_device("cpu", gpu=True) == "cpu"
    assert resolve_device("gpu", gpu=True) == "gpu"


def test_gpu_refused_when_absent_and_bad_names_rejected():
    with pytest.raises(DeviceUnavailableError, match="use --device cpu"):
        resolve_device("gpu", gpu=False)
    with pytest.raises(ValueError, match="cpu, gpu"):
        resolve_device("tpu", gpu=True)


def test_onnx_providers_follow_the_device_and_what_onnxruntime_lists():
    cpu_only, with_cuda = [CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER]
    assert onnx_providers(None, with_cuda, gpu=True) == [CUDA_PROVIDER, CPU_PROVIDER]
    assert onnx_providers(None, with_cuda, gpu=False) == [CPU_PROVIDER]
    assert onnx_providers(None, cpu_only, gpu=True) == [CPU_PROVIDER]  # default: no CUDA provider, no fuss
    assert onnx_providers("cpu", with_cuda, gpu=True) == [CPU_PROVIDER]
    assert onnx_providers("gpu", with_cuda, gpu=False) == [CUDA_PROVIDER, CPU_PROVIDER]
    with pytest.raises(DeviceUnavailableError, match="onnxruntime-gpu"):
        onnx_providers("gpu", cpu_only, gpu=True)


@pytest.mark.skipif(not NO_GPU, reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("tool", ["predict", "test", "benchmark"])
def test_tools_refuse_device_gpu_without_one_in_one_line(tool, tmp_path, load_tool, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    args = {"predict": ["--checkpoint", str(tmp_path / "none.pdparams"), "--input", str(image),
                        "--output", str(tmp_path / "out")],
            "test": ["--checkpoint", str(tmp_path / "none.pdparams")],
            "benchmark": []}[tool]
    assert load_tool(tool).main(args + ["--device", "gpu"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: --device gpu asked for, but ") and "--device cpu" in errors[0]
    assert paddle.device.get_device() == "cpu"


@pytest.mark.skipif(not NO_GPU, reason="checks the refusal on a machine without a GPU")
def test_predict_refusal_is_all_it_prints(tmp_path, run_tool):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    done = run_tool("predict", "--checkpoint", tmp_path / "none.pdparams", "--input", image, "--output", tmp_path,
                    "--device", "gpu")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: --device gpu asked for"), done.stderr
