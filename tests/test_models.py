"""The networks: shapes, sizes, initialisation, normalisation statistics and spectral norm."""

from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from ugatit_paddle.config import ModelConfig
from ugatit_paddle.models import (
    Discriminator, Generator, build_networks, check_model_config, clip_rho, output_size, smallest_img_size,
)
from ugatit_paddle.models import spectral_norm as spectral_norm_module
from ugatit_paddle.models.layers import (
    LeakyReLU, ReflectionPad2d, add_scalar, conv2d, global_max, linear, linear_in_float32,
)
from ugatit_paddle.models.norms import ILN, AdaILN, iln_statistics
from ugatit_paddle.models.spectral_norm import spectral_norm


def test_forward_shapes_light_and_full():
    x = paddle.uniform([2, 3, 128, 128], min=-1, max=1)
    for light in (True, False):
        out, cam, heat = Generator(ch=8, n_res=2, img_size=128, light=light)(x)
        assert out.shape == [2, 3, 128, 128] and cam.shape == [2, 2] and heat.shape == [2, 1, 32, 32]
        assert float(out.abs().max()) <= 1.0
    for layers, side in ((7, 2), (5, 14)):
        logits, cam, heat = Discriminator(ch=8, n_layers=layers)(x)
        assert logits.shape == [2, 1, side, side] and cam.shape == [2, 2] and heat.shape == [2, 1, side + 1, side + 1]
        assert output_size(128, layers) == side


def test_official_patch_sizes_at_256():
    assert output_size(256, 7) == 6 and output_size(256, 5) == 30


def _count(layer: paddle.nn.Layer) -> int:
    return sum(int(np.prod(p.shape)) for p in layer.parameters())


def test_parameter_counts_at_official_size_without_allocating():
    with paddle.LazyGuard():  # shapes only: the full generator alone would be 1.1 GB
        full, light = Generator(64, 4, 256, False), Generator(64, 4, 256, True)
        global_d, local_d = Discriminator(64, 7), Discriminator(64, 5)
    assert round(_count(full) / 1e6, 1) == 279.0
    assert round(_count(light) / 1e6, 1) == 10.6
    assert round(_count(global_d) / 1e6, 1) == 53.1
    assert round(_count(local_d) / 1e6, 1) == 3.3
    assert tuple(full.FC[0].weight.shape) == (64 * 64 * 256, 256)  # 268M weights in one layer


def test_state_dict_keys_mirror_the_official_names():
    nets = build_networks(ModelConfig(img_size=128, ch=8, n_res=2, light=True))
    g, d = nets["genA2B"].state_dict(), nets["disGA"].state_dict()
    for key in ("DownBlock.1.weight", "DownBlock.12.conv_block.5.weight", "UpBlock1_2.norm2.rho", "UpBlock2.3.gamma",
                "UpBlock2.11.weight", "FC.2.weight", "gamma.weight", "conv1x1.bias", "gap_fc.weight"):
        assert key in g
    for key in ("model.1.weight_orig", "model.1.weight_u", "model.1.weight_v", "model.1.bias", "gap_fc.weight_orig",
                "conv.weight_orig", "conv1x1.weight"):
        assert key in d
    assert "conv.bias" not in d and len(g) == 32 and len(d) == 35


def test_initialisation_follows_pytorch_defaults():
    paddle.seed(1)
    g = Generator(ch=8, n_res=1, img_size=128, light=True)
    w = g.DownBlock[5].weight.numpy()  # conv 8 -> 16, 3x3: fan_in 72
    bound = 1 / math.sqrt(72)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound
    assert np.all(g.UpBlock1_1.norm1.rho.numpy() == 0.9)
    iln = g.UpBlock2[3]
    assert np.all(iln.rho.numpy() == 0) and np.all(iln.gamma.numpy() == 1) and np.all(iln.beta.numpy() == 0)
    u = Discriminator(8, 5).model[1].weight_u.numpy()
    assert abs(np.linalg.norm(u) - 1) < 1e-5


@pytest.mark.parametrize("img_size, ok", [(256, True), (128, True), (96, True), (100, True), (92, False),
                                          (64, False), (130, False)])
def test_check_model_config_names_the_smallest_size(img_size, ok):
    assert smallest_img_size(7, 5) == 96
    if ok:
        check_model_config(ModelConfig(img_size, 8, 2, True))
    else:
        with pytest.raises(ValueError, match="smallest valid img_size is 96"):
            check_model_config(ModelConfig(img_size, 8, 2, True))


def test_smaller_discriminators_allow_smaller_images():
    assert smallest_img_size(5, 3) < 96
    check_model_config(ModelConfig(smallest_img_size(5, 3), 8, 2, True, 5, 3))


def test_iln_statistics_match_float64_at_default_size():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 256, 64, 64)) * 3 + 5).astype(np.float32)
    in_mean, in_var, ln_mean, ln_var = (t.numpy() for t in iln_statistics(paddle.to_tensor(x)))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(in_mean, x64.mean(axis=(2, 3), keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(in_var, x64.var(axis=(2, 3), keepdims=True, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(ln_mean, x64.mean(axis=(1, 2, 3), keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(ln_var, x64.var(axis=(1, 2, 3), keepdims=True, ddof=1), rtol=1e-6)


def test_adailn_formula():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    gamma, beta = rng.standard_normal((2, 4)).astype(np.float32), rng.standard_normal((2, 4)).astype(np.float32)
    norm = AdaILN(4)
    out = norm(paddle.to_tensor(x), paddle.to_tensor(gamma), paddle.to_tensor(beta)).numpy()
    x64 = x.astype(np.float64)
    out_in = (x64 - x64.mean((2, 3), keepdims=True)) / np.sqrt(x64.var((2, 3), ddof=1, keepdims=True) + 1e-5)
    out_ln = (x64 - x64.mean((1, 2, 3), keepdims=True)) / np.sqrt(x64.var((1, 2, 3), ddof=1, keepdims=True) + 1e-5)
    expected = (0.9 * out_in + 0.1 * out_ln) * gamma[:, :, None, None] + beta[:, :, None, None]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_float64_blocks_compute_in_float64():
    """Constants stay float64 in float64 networks (Paddle 2.6 passes Python floats to some kernels as float32
    attributes: LeakyReLU's 0.2, `x + 1e-5`); the float64 parity checks rely on it."""
    rng = np.random.default_rng(2)
    x64 = rng.standard_normal((2, 3, 4, 5))
    x = paddle.to_tensor(x64)
    x.stop_gradient = False
    out = LeakyReLU(0.2)(x)
    (grad,) = paddle.grad(out, x, paddle.ones_like(out))
    np.testing.assert_array_equal(out.numpy(), np.where(x64 > 0, x64, x64 * 0.2))
    np.testing.assert_array_equal(grad.numpy(), np.where(x64 > 0, 1.0, 0.2))
    np.testing.assert_array_equal(add_scalar(paddle.to_tensor(x64), 1e-5).numpy(), x64 + 1e-5)
    # AdaILN where eps decides: constant planes (zero variance), rsqrt(0 + eps) exactly
    x64 = np.ones((1, 2, 3, 3)) * np.array([1.0, 2.0])[None, :, None, None]
    x64[0, 1, 0, 0] = 3.0
    paddle.set_default_dtype("float64")
    try:
        norm = AdaILN(2)
    finally:
        paddle.set_default_dtype("float32")
    ones, zeros = paddle.ones([1, 2], dtype="float64"), paddle.zeros([1, 2], dtype="float64")
    out = norm(paddle.to_tensor(x64), ones, zeros).numpy()
    out_in = (x64 - x64.mean((2, 3), keepdims=True)) / np.sqrt(x64.var((2, 3), ddof=1, keepdims=True) + 1e-5)
    out_ln = (x64 - x64.mean((1, 2, 3), keepdims=True)) / np.sqrt(x64.var((1, 2, 3), ddof=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, 0.9 * out_in + 0.1 * out_ln, rtol=1e-13, atol=1e-13)


def test_clip_rho_clamps_generator_rho_to_unit_interval():
    g = Generator(ch=8, n_res=1, img_size=128, light=True)
    g.UpBlock1_1.norm1.rho.set_value(paddle.full([1, 32, 1, 1], 1.7))
    g.UpBlock2[3].rho.set_value(paddle.full([1, 16, 1, 1], -0.3))
    clip_rho(g)
    assert np.all(g.UpBlock1_1.norm1.rho.numpy() == 1.0) and np.all(g.UpBlock2[3].rho.numpy() == 0.0)
    assert isinstance(g.UpBlock2[3], ILN)


def test_spectral_norm_power_iteration_advances_only_in_train_mode():
    d = Discriminator(ch=8, n_layers=5)
    conv = d.model[1]
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1)
    u0, v0 = conv.weight_u.numpy().copy(), conv.weight_v.numpy().copy()
    d.eval()
    d(x)
    assert np.array_equal(conv.weight_u.numpy(), u0) and np.array_equal(conv.weight_v.numpy(), v0)
    d.train()
    d(x)
    u1, v1 = conv.weight_u.numpy(), conv.weight_v.numpy()
    w = conv.weight_orig.numpy().reshape(conv.weight_orig.shape[0], -1).astype(np.float64)
    v_expected = w.T @ u0 / np.linalg.norm(w.T @ u0)
    u_expected = w @ v_expected / np.linalg.norm(w @ v_expected)
    np.testing.assert_allclose(v1, v_expected, atol=1e-5)
    np.testing.assert_allclose(u1, u_expected, atol=1e-5)
    sigma = u1 @ w @ v1
    np.testing.assert_allclose(conv.weight.numpy().reshape(w.shape), w / sigma, rtol=1e-4, atol=1e-6)


class _NumpyCount:
    """Counts `Tensor.numpy()` and `Tensor.__array__` calls (device-to-host copies on a GPU) while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        for name in ("numpy", "__array__"):
            original = getattr(paddle.Tensor, name)
            monkeypatch.setattr(paddle.Tensor, name, self._counting(original))

    def _counting(self, original):
        def wrapper(tensor, *args, **kwargs):
            self.calls += 1
            return original(tensor, *args, **kwargs)
        return wrapper


def test_train_forward_and_clip_rho_make_no_host_copies(monkeypatch):
    """Paddle 2.6's `Tensor.set_value(tensor)` goes through numpy: the spectral-norm buffer updates and
    `clip_rho` must not (on a GPU each would be a blocking round trip). Run with 2.6 and 3.x."""
    d, g = Discriminator(ch=8, n_layers=5), Generator(ch=8, n_res=1, img_size=128, light=True)
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1)
    u0 = d.model[1].weight_u.clone()
    count = _NumpyCount(monkeypatch)
    d.train()
    logits, _, _ = d(x)
    (logits.mean() + g(x)[0].mean()).backward()
    clip_rho(g)
    assert count.calls == 0
    monkeypatch.undo()
    assert not np.array_equal(d.model[1].weight_u.numpy(), u0.numpy())  # the buffer was updated in place


def test_under_amp_spectral_norm_divides_the_weight_before_the_convolution(monkeypatch):
    """In float16 conv(x, weight_orig) can overflow before the division by sigma: under auto_cast (faked here,
    it is a no-op on a CPU) the hook hands every layer the normalised weight; the output is the same function."""
    paddle.seed(0)
    conv = spectral_norm(conv2d(64, 128, 4, stride=1, bias=True))
    conv.eval()
    x = paddle.uniform([2, 64, 5, 5], min=-1, max=1)
    scaled = conv(x)
    assert conv.scaled_weight is not None  # output [2, 128, 2, 2] smaller than the weight: scales the output
    monkeypatch.setattr(spectral_norm_module, "autocast_active", lambda: True)
    normalised_first = conv(x)
    assert conv.scaled_weight is None
    np.testing.assert_allclose(normalised_first.numpy(), scaled.numpy(), rtol=1e-5, atol=1e-4)  # float32 rounding


def test_mlp_first_layer_computes_in_float32_whatever_its_input():
    """The full model's FC.0 (268M weights) stays float32 under AMP instead of a float16 copy per call."""
    layer = linear(16, 8, bias=True)
    x = paddle.uniform([2, 16], min=-1, max=1)
    out = linear_in_float32(layer, x.astype("float16"))
    assert out.dtype == paddle.float32
    expected = paddle.nn.functional.linear(x.astype("float16").astype("float32"), layer.weight, layer.bias)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    np.testing.assert_array_equal(linear_in_float32(layer, x).numpy(), layer(x).numpy())


def test_reflection_pad_refuses_padding_as_large_as_a_side():
    with pytest.raises(ValueError, match="sides larger than 3"):
        ReflectionPad2d(3)(paddle.zeros([1, 1, 3, 8]))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("c_in, c_out, size, scales_output", [(64, 128, 5, True), (3, 8, 32, False)])
def test_spectral_norm_conv_equals_convolution_with_normalised_weight(c_in, c_out, size, scales_output, training):
    """Whether spectral norm scales the weight or (for an output smaller than the weight) the output, the
    layer computes conv(x, weight_orig / sigma) + bias with sigma = u . (W v) from the vectors of that forward
    (advanced by one power iteration in train mode), with autograd's gradients of that formula, to rounding of the
    largest value. In float64: in float32 the two orders of summation differ by up to 3e-5 of the largest weight
    gradient on some CPUs (an Intel Xeon; within 1e-5 on an AMD EPYC)."""
    paddle.seed(0)
    paddle.set_default_dtype("float64")
    try:
        conv = spectral_norm(conv2d(c_in, c_out, 4, stride=1, bias=True))
    finally:
        paddle.set_default_dtype("float32")
    conv.train() if training else conv.eval()
    u_before = conv.weight_u.numpy().copy()
    x = paddle.uniform([2, c_in, size, size], min=-1, max=1, dtype="float64")
    out = conv(x)
    assert (conv.scaled_weight is not None) == scales_output
    assert np.array_equal(conv.weight_u.numpy(), u_before) != training
    w = conv.weight_orig  # the vectors of this forward are in the buffers now
    sigma = paddle.dot(conv.weight_u, paddle.mv(w.reshape([c_out, -1]), conv.weight_v))
    expected = paddle.nn.functional.conv2d(x, w / sigma, conv.bias)
    upstream = paddle.uniform(out.shape, min=-1, max=1, dtype="float64")
    assert out.dtype == paddle.float64
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=0, atol=1e-12 * float(expected.abs().max()))
    grads = paddle.grad(out, [w, conv.bias], upstream)
    expected_grads = paddle.grad(expected, [w, conv.bias], upstream)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-12 * float(want.abs().max()))
    assert "weight" not in dict(conv.named_parameters())  # the checkpoint keys stay the official ones


def test_spectral_norm_linear_gradient_is_that_of_the_normalised_weight():
    """Linear weights are [in, out] (sigma from the transposed matrix); the gradient through sigma is autograd's."""
    paddle.seed(0)
    fc = spectral_norm(paddle.nn.Linear(16, 3))
    fc.train()
    x = paddle.uniform([4, 16], min=-1, max=1)
    upstream = paddle.uniform([4, 3], min=-1, max=1)
    (grad,) = paddle.grad(fc(x), fc.weight_orig, upstream)
    w = fc.weight_orig
    sigma = paddle.dot(fc.weight_u, paddle.mv(w.t(), fc.weight_v))
    (expected,) = paddle.grad(paddle.nn.functional.linear(x, w / sigma, fc.bias), w, upstream)
    np.testing.assert_allclose(grad.numpy(), expected.numpy(), rtol=0, atol=1e-6 * float(expected.abs().max()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_global_max_is_the_max_pool_with_its_gradient_on_the_first_maximum(dtype):
    x = paddle.randn([2, 5, 7, 9]).astype(dtype)
    x[0, 1] = 3.0  # a constant plane: every element ties for the maximum
    x.stop_gradient = False
    pooled = paddle.nn.functional.adaptive_max_pool2d(x, 1).flatten(1)
    mine = global_max(x)
    np.testing.assert_array_equal(mine.numpy(), pooled.numpy())
    weights = paddle.arange(10, dtype=dtype).reshape([2, 5])
    (grad,) = paddle.grad((mine * weights).sum(), x)
    (expected,) = paddle.grad((pooled * weights).sum(), x)
    np.testing.assert_array_equal(grad.numpy(), expected.numpy())
    tie = np.zeros([7, 9], dtype)
    tie[0, 0] = 1.0  # the first of the tied elements, as torch's adaptive max pool picks
    np.testing.assert_array_equal(grad.numpy()[0, 1], tie)


def test_global_max_gradient_stays_inside_planes_holding_nan():
    # The backward of a NaN activation (a diverging step, checked only after it) must not write out of bounds:
    # one gradient element per plane, wherever the NaNs are.
    x = paddle.randn([1, 3, 4, 4])
    x[0, 0] = float("nan")  # all NaN
    x[0, 1, 2, 3] = float("nan")  # one NaN
    x.stop_gradient = False
    (grad,) = paddle.grad(global_max(x).sum(), x)
    counts = (grad.numpy() != 0).reshape([3, 16]).sum(axis=1)
    np.testing.assert_array_equal(counts, [1, 1, 1])
    assert float(grad.sum()) == 3.0
