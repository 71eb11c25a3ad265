"""KID / mean_KID / FID arithmetic against straightforward independent computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ugatit_paddle.metrics.kid import (
    block_sizes,
    fid,
    kid,
    kid_block_estimates,
    kid_blocks,
    mean_kid,
    mmd2_unbiased,
    polynomial_kernel,
)


def features(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    return np.abs(rng.normal(size=(n, d))) + shift  # non-negative like ReLU pool features


def loop_kernel(x: np.ndarray, y: np.ndarray) -> float:
    return (sum(float(a) * float(b) for a, b in zip(x, y)) / len(x) + 1.0) ** 3


def loop_mmd2(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD^2 with explicit loops over pairs."""
    m, n = len(real), len(fake)
    rr = sum(loop_kernel(real[i], real[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    ff = sum(loop_kernel(fake[i], fake[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    rf = sum(loop_kernel(real[i], fake[j]) for i in range(m) for j in range(n)) / (m * n)
    return rr + ff - 2.0 * rf


def loop_kid(real: np.ndarray, fake: np.ndarray, max_block: int) -> tuple[float, float, list[float]]:
    """The paper tool's block estimator written out by hand."""
    n_blocks = -(-max(len(real), len(fake)) // max_block)

    def cut(items: np.ndarray) -> list[np.ndarray]:
        q, r = divmod(len(items), n_blocks)
        sizes = [q] * (n_blocks - r) + [q + 1] * r
        starts = [sum(sizes[:i]) for i in range(n_blocks)]
        return [items[s : s + z] for s, z in zip(starts, sizes)]

    estimates = [loop_mmd2(r, f) for r, f in zip(cut(real), cut(fake))]
    mean = sum(estimates) / n_blocks
    variance = sum((e - mean) ** 2 for e in estimates) / (n_blocks - 1)
    return mean, math.sqrt(variance / n_blocks), estimates


def test_polynomial_kernel_matches_definition():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 16)), rng.normal(size=(5, 16))
    k = polynomial_kernel(x, y)
    assert k.shape == (4, 5) and k.dtype == np.float64
    for i, j in itertools.product(range(4), range(5)):
        assert k[i, j] == pytest.approx(loop_kernel(x[i], y[j]), rel=1e-12)


def test_block_split_is_near_equal_smaller_blocks_first():
    assert block_sizes(100, 10) == [10] * 10
    assert block_sizes(23, 3) == [7, 8, 8]
    assert kid_blocks(100, 100) == ([10] * 10, [10] * 10)
    assert kid_blocks(23, 30) == ([7, 8, 8], [10, 10, 10])  # same block count for both sets
    assert kid_blocks(101, 100) == ([9] * 9 + [10] * 2, [9] * 10 + [10])  # 11 blocks
    with pytest.raises(ValueError, match="at least 2 samples"):
        kid_blocks(100, 15)  # 10 blocks, some fake block would hold a single image


def test_kid_matches_loops_on_unequal_sizes():
    rng = np.random.default_rng(1)
    real, fake = features(rng, 23, 16), features(rng, 30, 16, shift=0.3)
    expected_mean, expected_std, expected_blocks = loop_kid(real, fake, 10)
    np.testing.assert_allclose(kid_block_estimates(real, fake, 10), expected_blocks, rtol=1e-10)
    value, std = kid(real, fake)
    assert value == pytest.approx(expected_mean, rel=1e-10)
    assert std == pytest.approx(expected_std, rel=1e-10)
    assert value > 0


def test_kid_std_is_standard_error_of_block_estimates():
    rng = np.random.default_rng(2)
    real, fake = features(rng, 40, 8), features(rng, 40, 8, shift=0.1)
    blocks = kid_block_estimates(real, fake, 10)
    assert blocks.shape == (4,)
    value, std = kid(real, fake, 10)
    assert value == pytest.approx(blocks.mean())
    assert std == pytest.approx(np.std(blocks, ddof=1) / np.sqrt(4))


def test_mmd2_matches_loops():
    rng = np.random.default_rng(3)
    real, fake = features(rng, 6, 5), features(rng, 4, 5, shift=0.5)
    assert mmd2_unbiased(real, fake) == pytest.approx(loop_mmd2(real, fake), rel=1e-10)


def test_kid_of_identical_or_same_distribution_sets_is_about_zero():
    rng = np.random.default_rng(4)
    real = features(rng, 100, 32)
    scale = kid(real, features(rng, 100, 32, shift=1.0))[0]
    # Identical sets: the cross term keeps the k(x, x) pairs the within-set terms leave out,
    # so the unbiased estimate is slightly negative, not exactly 0.
    identical, _ = kid(real, real.copy())
    assert -0.02 * scale < identical <= 0
    same_distribution, std = kid(real, features(rng, 100, 32))
    assert abs(same_distribution) < 4 * std < 0.02 * scale


def test_single_block_has_nan_std():
    rng = np.random.default_rng(5)
    value, std = kid(features(rng, 8, 4), features(rng, 9, 4))
    assert np.isfinite(value) and math.isnan(std)


def test_mean_kid_weights_source_and_target():
    rng = np.random.default_rng(6)
    source, target, fake = features(rng, 20, 8), features(rng, 20, 8, 0.2), features(rng, 20, 8, 0.1)
    expected = (0.02 * kid(target, fake)[0] + 0.98 * kid(source, fake)[0]) / 2
    assert mean_kid(source, target, fake) == pytest.approx(expected, rel=1e-12)


def eig_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID with the trace of the square root taken from an eigen-decomposition.

    S_r^1/2 S_f S_r^1/2 is symmetric PSD with the eigenvalues of S_r S_f.
    """
    sigma_r, sigma_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    values, vectors = np.linalg.eigh(sigma_r)
    root_r = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root_r @ sigma_f @ root_r)
    diff = real.mean(0) - fake.mean(0)
    return float(diff @ diff + np.trace(sigma_r) + np.trace(sigma_f) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


@pytest.mark.parametrize("n_real, n_fake, dim", [(23, 30, 16), (12, 15, 40), (15, 12, 40)])
def test_fid_matches_eigen_decomposition(n_real, n_fake, dim):
    rng = np.random.default_rng(7)
    real, fake = features(rng, n_real, dim), features(rng, n_fake, dim, shift=0.4) ** 2
    assert fid(real, fake) == pytest.approx(eig_fid(real, fake), rel=1e-8)


def test_fid_of_identical_sets_is_about_zero_and_rejects_bad_input():
    rng = np.random.default_rng(8)
    real = features(rng, 50, 16)
    assert abs(fid(real, real.copy())) < 1e-6
    with pytest.raises(ValueError, match="feature sizes"):
        fid(real, real[:, :8])
    with pytest.raises(ValueError, match="at least 2"):
        kid(real[:1], real)
