"""The exported form of the generator computes the generator's function (checked in float64, eager mode;
tests/test_export.py checks the exported graph itself against the generator)."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ugatit_paddle.inference.inference_generator import InferenceGenerator
from ugatit_paddle.models import Generator
from ugatit_paddle.models.static_forms import edge_pad1, reflection_pad, upsample_conv3x3
from ugatit_paddle.models.layers import NearestUpsample2x, ReflectionPad2d
from ugatit_paddle.models.norms import ILN, AdaILN


@pytest.fixture
def float64():
    paddle.set_default_dtype("float64")
    yield
    paddle.set_default_dtype("float32")


@pytest.mark.parametrize("light", [True, False])
def test_inference_generator_computes_the_generator(float64, light):
    paddle.seed(0)
    generator = Generator(ch=4, n_res=2, img_size=32, light=light)
    for name, p in generator.named_parameters():  # initial rho 0.9 / 0, gamma 1 and beta 0 would hide terms
        if name.endswith(("rho", "gamma", "beta")) and "UpBlock" in name:
            p.set_value(paddle.uniform(p.shape, dtype="float64", min=0.1, max=0.9))
    generator.eval()
    x = paddle.uniform([2, 3, 32, 32], dtype="float64", min=-1, max=1)
    want = generator(x)
    got = InferenceGenerator(generator)(x)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape, p", [([2, 3, 9, 7], 1), ([1, 4, 8, 10], 3)])
def test_reflection_pad_by_slices(float64, shape, p):
    x = paddle.uniform(shape, dtype="float64")
    np.testing.assert_array_equal(reflection_pad(x, p).numpy(), ReflectionPad2d(p)(x).numpy())


def test_edge_pad(float64):
    x = paddle.uniform([2, 3, 5, 4], dtype="float64")
    np.testing.assert_array_equal(edge_pad1(x).numpy(), paddle.nn.functional.pad(x, [1] * 4, mode="replicate").numpy())


def test_upsample_conv3x3_is_upsample_pad_conv(float64):
    x = paddle.uniform([2, 5, 6, 7], dtype="float64", min=-1, max=1)
    weight = paddle.uniform([4, 5, 3, 3], dtype="float64", min=-1, max=1)
    want = paddle.nn.functional.conv2d(ReflectionPad2d(1)(NearestUpsample2x()(x)), weight)
    got = upsample_conv3x3(x, weight)
    assert got.shape == [2, 4, 12, 14]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-12)


def test_static_iln_on_flattened_planes_matches_the_layers(float64):
    """In static graphs AdaILN/ILN reduce over flattened [H * W] planes (`norms.mix_norm`): same values."""
    x = paddle.uniform([2, 6, 5, 7], dtype="float64", min=-2, max=3)
    gamma, beta = paddle.uniform([2, 6], dtype="float64"), paddle.uniform([2, 6], dtype="float64")
    norm = AdaILN(6)
    norm.rho.set_value(paddle.uniform([1, 6, 1, 1], dtype="float64"))
    static = paddle.jit.to_static(norm.forward, full_graph=True)
    np.testing.assert_allclose(static(x, gamma, beta).numpy(), norm(x, gamma, beta).numpy(), rtol=0, atol=1e-12)
    layer_norm = ILN(6)
    for p in (layer_norm.rho, layer_norm.gamma, layer_norm.beta):
        p.set_value(paddle.uniform([1, 6, 1, 1], dtype="float64"))
    static = paddle.jit.to_static(layer_norm.forward, full_graph=True)
    np.testing.assert_allclose(static(x).numpy(), layer_norm(x).numpy(), rtol=0, atol=1e-12)
