"""`train.deterministic`: the GPU flags it sets, and reflection padding whose backward has no atomics."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F

from ugatit_paddle.models import cpu_kernels, layers, static_forms
from ugatit_paddle.training import determinism


def test_flags_set_on_cuda_builds_only_and_the_environment_wins(monkeypatch):
    calls = []
    monkeypatch.setattr(paddle, "set_flags", calls.append)
    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: False)
    assert determinism.configure_gpu_kernels(True, environ={}) == {} and calls == []
    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)
    assert determinism.configure_gpu_kernels(True, environ={}) == {
        "FLAGS_cudnn_deterministic": True, "FLAGS_cudnn_exhaustive_search": False}
    assert determinism.configure_gpu_kernels(False, environ={"FLAGS_cudnn_deterministic": "1"}) == {
        "FLAGS_cudnn_exhaustive_search": True}
    assert calls[-1] == {"FLAGS_cudnn_exhaustive_search": True}


def test_deterministic_reflection_pad_is_the_same_function_and_gradient(monkeypatch):
    """In deterministic mode (a GPU flag, forced here) ReflectionPad2d pads by slices: same values and gradient
    as `F.pad(mode="reflect")`, whose GPU backward adds with atomics."""
    monkeypatch.setattr(cpu_kernels, "applies", lambda x: False)  # the path a GPU tensor takes
    monkeypatch.setattr(layers, "deterministic_mode", lambda: True)
    calls = []
    original = static_forms.reflection_pad
    monkeypatch.setattr(static_forms, "reflection_pad", lambda x, p: calls.append(p) or original(x, p))
    x = paddle.uniform([2, 3, 7, 6], min=-1, max=1)
    x.stop_gradient = False
    weight = paddle.uniform([2, 3, 13, 12])
    out = layers.ReflectionPad2d(3)(x)
    (grad,) = paddle.grad((out * weight).sum(), x)
    x_ref = x.detach()
    x_ref.stop_gradient = False
    ref = F.pad(x_ref, [3, 3, 3, 3], mode="reflect")
    (ref_grad,) = paddle.grad((ref * weight).sum(), x_ref)
    assert calls == [3]
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-6, atol=1e-6)
