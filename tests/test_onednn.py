"""oneDNN convolutions, transposed convolutions and padding (ugatit_paddle/models/onednn.py): the values and
gradients of Paddle's ops, with any subset of the inputs needing gradients; non-contiguous inputs; the plan cache
bounded; the switch; and which layers compute through it."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ugatit_paddle.models import cpu_kernels, onednn
from ugatit_paddle.models.layers import conv2d

pytestmark = pytest.mark.skipif(onednn.library_path() is None, reason="this Paddle wheel ships no oneDNN library")


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_paddles_own_onednn_library_starts():
    """Paddle's CPU wheels (3.x and 2.6) ship oneDNN 3.x: it must load here, or the speed-up is silently lost."""
    assert onednn.available(), f"{onednn.library_path()} did not load as oneDNN 3.x"
    assert onednn.version()[0] == 3


@pytest.mark.parametrize("n, c_in, c_out, k, stride, size", [
    (2, 3, 16, 7, 1, (20, 17)), (1, 16, 32, 3, 2, (17, 16)), (2, 32, 16, 4, 2, (10, 11)), (1, 24, 16, 4, 1, (9, 9)),
])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("needs", ["x, weight, bias", "weight, bias", "x"])
def test_values_and_gradients_are_paddles_convolution(n, c_in, c_out, k, stride, size, bias, needs):
    """Output and the gradients asked for equal float64 Paddle's to float32 rounding; no gradient is returned for an
    input that needs none (Paddle's PyLayer would refuse one)."""
    rng = np.random.default_rng(0)
    values = {"x": rng.standard_normal((n, c_in, *size)), "weight": rng.standard_normal((c_out, c_in, k, k)) * 0.2,
              "bias": rng.standard_normal(c_out)}
    wanted = [name for name in ("x", "weight", "bias") if name in needs.split(", ") and (bias or name != "bias")]

    def tensors(dtype: str) -> dict[str, paddle.Tensor]:
        made = {name: paddle.to_tensor(v.astype(dtype), stop_gradient=name not in wanted) for name, v in values.items()}
        if not bias:
            made["bias"] = None
        return made

    ours, reference = tensors("float32"), tensors("float64")
    out = onednn.conv2d(ours["x"], ours["weight"], ours["bias"], stride)
    want = paddle.nn.functional.conv2d(reference["x"], reference["weight"], reference["bias"], stride=stride)
    assert out.shape == want.shape and out.dtype == paddle.float32
    assert relative_error(out.numpy(), want.numpy()) < 2e-6
    upstream = rng.standard_normal(out.shape)
    grads = paddle.grad(out, [ours[name] for name in wanted], paddle.to_tensor(upstream.astype("float32")))
    expected = paddle.grad(want, [reference[name] for name in wanted], paddle.to_tensor(upstream))
    for name, got, exp in zip(wanted, grads, expected):
        assert relative_error(got.numpy(), exp.numpy()) < 2e-6, name


@pytest.mark.parametrize("n, c_in, c_out, k, stride, padding, size", [
    (2, 16, 8, 4, 2, 3, (9, 7)), (1, 32, 3, 7, 1, 6, (14, 15)), (2, 8, 16, 3, 1, 2, (6, 6)),
])
def test_transposed_convolution_is_paddles(n, c_in, c_out, k, stride, padding, size):
    """conv2d_transpose (weight [C_in, C_out, k, k], Paddle's layout) with its three gradients equals float64
    Paddle's to float32 rounding."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((n, c_in, *size)), rng.standard_normal((c_in, c_out, k, k)) * 0.2,
              rng.standard_normal(c_out)]
    ours = [paddle.to_tensor(a.astype("float32"), stop_gradient=False) for a in arrays]
    reference = [paddle.to_tensor(a, stop_gradient=False) for a in arrays]
    out = onednn.conv2d_transpose(*ours, stride, padding)
    want = paddle.nn.functional.conv2d_transpose(*reference, stride=stride, padding=padding)
    assert out.shape == want.shape
    upstream = rng.standard_normal(out.shape)
    grads = paddle.grad(out, ours, paddle.to_tensor(upstream.astype("float32")))
    expected = paddle.grad(want, reference, paddle.to_tensor(upstream))
    for got, exp in zip([out, *grads], [want, *expected]):
        assert relative_error(got.numpy(), exp.numpy()) < 2e-6


def random(*shape: int) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(sum(shape)).standard_normal(shape).astype("float32"))


def test_non_contiguous_inputs_are_copied_first():
    x = random(2, 8, 9, 16).transpose([0, 3, 1, 2])  # [2, 16, 8, 9], strided where Paddle keeps views
    weight = random(16, 16, 3, 3)
    want = paddle.nn.functional.conv2d(x.contiguous(), weight).numpy()
    assert relative_error(onednn.conv2d(x, weight, None, 1).numpy(), want) < 2e-6


@pytest.mark.parametrize("shape, p, mode", [
    ((2, 3, 5, 7), 1, "reflect"), ((2, 3, 7, 6), 3, "reflect"), ((1, 2, 4, 4), 3, "reflect"),
    ((2, 4, 5, 7), 1, "edge"), ((2, 4, 3, 2), 2, "edge"), ((1, 1, 1, 1), 1, "edge"),
])
def test_padding_and_its_gradient_are_paddles(shape, p, mode):
    """Reflection and edge padding (corners included; padding as wide as the plane allows) give `F.pad`'s values
    exactly and its gradient to float32 rounding (the border sums are added in another order)."""
    x = random(*shape)
    x.stop_gradient = False
    out = onednn.pad(x, p, mode)
    want = paddle.nn.functional.pad(x, [p] * 4, mode="reflect" if mode == "reflect" else "replicate")
    np.testing.assert_array_equal(out.numpy(), want.numpy())
    upstream = random(*out.shape)
    (grad,), (expected,) = paddle.grad(out, x, upstream), paddle.grad(want, x, upstream)
    assert relative_error(grad.numpy(), expected.numpy()) < 1e-6


def test_padding_wider_than_the_plane_is_refused():
    with pytest.raises(ValueError, match="reflect-pad"):
        onednn.pad(random(1, 2, 3, 5), 3, "reflect")


def test_plans_are_kept_per_shape_and_bounded(monkeypatch):
    monkeypatch.setattr(onednn, "MAX_PLANS", 2)
    monkeypatch.setattr(onednn, "_plans", type(onednn._plans)())
    weight = random(16, 4, 3, 3)
    for x in [random(1, 4, s, s) for s in (5, 6, 7, 5)]:
        want = paddle.nn.functional.conv2d(x, weight).numpy()
        assert relative_error(onednn.conv2d(x, weight, None, 1).numpy(), want) < 2e-6
    assert [key[0] for key in onednn._plans] == [(1, 4, 7, 7), (1, 4, 5, 5)]  # the 5x5 plan rebuilt after eviction
    assert len(onednn._plans) == 2


def test_a_plan_dropped_from_the_cache_still_serves_the_pending_backward(monkeypatch):
    """Eviction only forgets a plan: a convolution whose backward has not run yet keeps its own."""
    monkeypatch.setattr(onednn, "MAX_PLANS", 1)
    monkeypatch.setattr(onednn, "_plans", type(onednn._plans)())
    x, weight = random(1, 4, 6, 6), random(16, 4, 3, 3)
    x.stop_gradient = False
    out = onednn.conv2d(x, weight, None, 1)
    onednn.conv2d(random(1, 4, 9, 9), weight, None, 1)  # evicts the plan of `out`
    assert list(onednn._plans)[0][0] == (1, 4, 9, 9)
    (grad,) = paddle.grad(out, x, paddle.ones_like(out))
    reference = x.detach()
    reference.stop_gradient = False
    (want,) = paddle.grad(paddle.nn.functional.conv2d(reference, weight), reference, paddle.ones_like(out))
    assert relative_error(grad.numpy(), want.numpy()) < 2e-6


def test_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv(onednn.ENV_SWITCH, "0")
    assert not onednn.available()
    monkeypatch.setenv(onednn.ENV_SWITCH, "1")
    assert onednn.available()


@pytest.mark.parametrize("dtype, c_out, k, max_weight, through_onednn", [
    ("float32", 16, 3, 2**21, True), ("float64", 16, 3, 2**21, False), ("float32", 3, 7, 2**21, False),
    ("float32", 16, 1, 2**21, False), ("float32", 16, 3, 16 * 8 * 9 - 1, False),
])
def test_layers_compute_float32_convolutions_through_onednn(dtype, c_out, k, max_weight, through_onednn, monkeypatch):
    """The CPU layers take oneDNN for float32 convolutions with k > 1, at least ONEDNN_MIN_OUT_CHANNELS outputs and
    at most ONEDNN_MAX_WEIGHT weights; float64 (parity, float64 trajectories), 1x1, narrow ones and larger weights
    keep Paddle's own kernels. Same values either way."""
    monkeypatch.setattr(cpu_kernels, "ONEDNN_MAX_WEIGHT", max_weight)
    calls = []
    monkeypatch.setattr(onednn, "conv2d", lambda *a: calls.append(1) or onednn._Convolution.apply(*a, 0, False))
    paddle.set_default_dtype(dtype)
    try:
        conv = conv2d(8, c_out, k, bias=True)
    finally:
        paddle.set_default_dtype("float32")
    x = random(2, 8, 11, 11).astype(dtype)
    out = conv(x)
    assert bool(calls) == through_onednn
    want = paddle.nn.functional.conv2d(x, conv.weight, conv.bias).numpy()
    assert relative_error(out.numpy(), want) < 2e-6
