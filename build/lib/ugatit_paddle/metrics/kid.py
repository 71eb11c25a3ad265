"""KID, mean_KID and FID on feature vectors (numpy, float64).

KID follows the block estimator of the paper's metric tool (TF-GAN's
``kernel_classifier_distance_and_std_from_activations`` with ``max_block_size=10``):

* ``n_blocks = ceil(max(N_real, N_fake) / max_block_size)``; the SAME number of blocks is used
  for both sets, each set is cut, in its given order (no shuffling), into ``n_blocks``
  contiguous blocks of near-equal size: with ``N = q * n_blocks + r`` the first
  ``n_blocks - r`` blocks hold ``q`` rows and the last ``r`` blocks ``q + 1`` rows.
  100 vs 100 images -> 10 blocks of 10; 23 vs 30 -> 3 blocks of (7, 8, 8) and (10, 10, 10).
* block ``i`` pairs real block ``i`` with fake block ``i`` and gives the unbiased MMD^2 with the
  cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``.
* ``kid`` = mean of the block estimates, ``kid_std = sqrt(unbiased variance of the block
  estimates / n_blocks)`` (NaN for a single block, as in TF-GAN).

Every function returns raw values; the paper (and ``tools/eval_kid.py``) reports KID x 100.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg

__all__ = [
    "KID_MAX_BLOCK_SIZE",
    "MEAN_KID_SOURCE_WEIGHT",
    "polynomial_kernel",
    "block_sizes",
    "kid_blocks",
    "mmd2_unbiased",
    "kid_block_estimates",
    "kid",
    "mean_kid",
    "fid",
]

KID_MAX_BLOCK_SIZE = 10  # the paper's tool: 10 blocks for the 100 test images
MEAN_KID_SOURCE_WEIGHT = 0.98  # mean_KID weights KID(source, fake) by 0.98 and KID(target, fake) by 0.02


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D] of features, got shape {array.shape}")
    return array


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel ``(x.y / d + 1)^3``: [N, D] x [M, D] -> float64 [N, M]."""
    x = _as_features(x, "x")
    y = _as_features(y, "y")
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def block_sizes(n_items: int, n_blocks: int) -> list[int]:
    """Sizes of the ``n_blocks`` contiguous blocks ``n_items`` rows are cut into (smaller ones first)."""
    if n_blocks < 1 or n_items < n_blocks:
        raise ValueError(f"cannot cut {n_items} rows into {n_blocks} blocks")
    base, extra = divmod(n_items, n_blocks)
    return [base] * (n_blocks - extra) + [base + 1] * extra


def mmd2_unbiased(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD^2 estimate between two sets (each >= 2 rows) with the polynomial kernel."""
    real = _as_features(real, "real")
    fake = _as_features(fake, "fake")
    m, n = real.shape[0], fake.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD^2 needs at least 2 samples per set, got {m} and {n}")
    k_rr = polynomial_kernel(real, real)
    k_ff = polynomial_kernel(fake, fake)
    k_rf = polynomial_kernel(real, fake)
    within_real = (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
    within_fake = (k_ff.sum() - np.trace(k_ff)) / (n * (n - 1))
    return float(within_real + within_fake - 2.0 * k_rf.mean())


def kid_blocks(n_real: int, n_fake: int, max_block_size: int = KID_MAX_BLOCK_SIZE) -> tuple[list[int], list[int]]:
    """Block sizes of the real and of the fake set (same number of blocks; see module docstring).

    Raises ValueError if a block would hold fewer than 2 samples of either set.
    """
    if max_block_size < 2:
        raise ValueError(f"max_block_size must be >= 2, got {max_block_size}")
    n_blocks = max(1, math.ceil(max(n_real, n_fake) / max_block_size))
    if min(n_real, n_fake) < 2 * n_blocks:
        raise ValueError(
            f"KID with {n_real} real and {n_fake} fake samples in blocks of at most {max_block_size}: "
            f"each of the {n_blocks} blocks needs at least 2 samples of each set"
        )
    return block_sizes(n_real, n_blocks), block_sizes(n_fake, n_blocks)


def kid_block_estimates(
    real_feats: np.ndarray, fake_feats: np.ndarray, max_block_size: int = KID_MAX_BLOCK_SIZE
) -> np.ndarray:
    """Per-block unbiased MMD^2 estimates (see module docstring): float64 [n_blocks]."""
    real = _as_features(real_feats, "real_feats")
    fake = _as_features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    real_sizes, fake_sizes = kid_blocks(real.shape[0], fake.shape[0], max_block_size)
    real_ends, fake_ends = np.cumsum(real_sizes), np.cumsum(fake_sizes)
    estimates = []
    real_start = fake_start = 0
    for real_end, fake_end in zip(real_ends, fake_ends):
        estimates.append(mmd2_unbiased(real[real_start:real_end], fake[fake_start:fake_end]))
        real_start, fake_start = real_end, fake_end
    return np.asarray(estimates, dtype=np.float64)


def kid(
    real_feats: np.ndarray, fake_feats: np.ndarray, max_block_size: int = KID_MAX_BLOCK_SIZE
) -> tuple[float, float]:
    """Kernel Inception Distance (raw, not x100) and its standard error.

    ``real_feats`` [N, D], ``fake_feats`` [M, D] -> ``(kid, kid_std)``; ``kid_std`` is NaN when
    there is only one block.
    """
    estimates = kid_block_estimates(real_feats, fake_feats, max_block_size)
    n_blocks = estimates.size
    mean = float(estimates.mean())
    if n_blocks < 2:
        return mean, float("nan")
    variance = float(((estimates - mean) ** 2).sum() / (n_blocks - 1))
    return mean, math.sqrt(variance / n_blocks)


def mean_kid(
    source_feats: np.ndarray,
    target_feats: np.ndarray,
    fake_feats: np.ndarray,
    max_block_size: int = KID_MAX_BLOCK_SIZE,
) -> float:
    """mean_KID of the paper's tool (raw): ``(0.02 * KID(target, fake) + 0.98 * KID(source, fake)) / 2``.

    ``source_feats``: real images of the input domain, ``target_feats``: real images of the
    output domain, ``fake_feats``: translations of the source images.
    """
    kid_target, _ = kid(target_feats, fake_feats, max_block_size)
    kid_source, _ = kid(source_feats, fake_feats, max_block_size)
    return ((1.0 - MEAN_KID_SOURCE_WEIGHT) * kid_target + MEAN_KID_SOURCE_WEIGHT * kid_source) / 2.0


def _sqrtm_trace(matrix: np.ndarray) -> float:
    """Trace of the principal square root of ``matrix`` (scipy ``sqrtm``), NaN if it is not finite.

    Imaginary parts below 1e-3 on the diagonal are numerical noise and dropped (as in
    pytorch-fid); a larger one raises ValueError.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "matrix is singular ...": expected here, handled by the caller
        root = scipy.linalg.sqrtm(matrix)
    if not np.isfinite(root).all():
        return float("nan")
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0.0, atol=1e-3):
            raise ValueError(f"FID: sqrtm has an imaginary component of {np.max(np.abs(root.imag)):.3g}")
        root = root.real
    return float(np.trace(root))


def fid(real_feats: np.ndarray, fake_feats: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to [N, D] and [M, D] features (N, M >= 2).

    ``|mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr(sqrtm(S_r S_f))``, sample covariances (N - 1).

    ``tr(sqrtm(S_r S_f))`` is computed with scipy's ``sqrtm`` as in pytorch-fid (retried with
    ``eps`` added to both diagonals if the result is not finite; tiny imaginary parts dropped).
    With fewer samples than dimensions (100 test images, D = 2048) the same trace is taken on
    the equivalent small matrix: for centred features ``R`` [N, D], ``F`` [M, D] and
    ``C = R F^T / sqrt((N-1)(M-1))``, ``S_r S_f`` has the non-zero eigenvalues of ``C C^T``
    (N x N, or ``C^T C`` if M < N), so both square roots have the same trace.
    """
    real = _as_features(real_feats, "real_feats")
    fake = _as_features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    n_real, n_fake, dim = real.shape[0], fake.shape[0], real.shape[1]
    if n_real < 2 or n_fake < 2:
        raise ValueError(f"FID needs at least 2 samples per set, got {n_real} and {n_fake}")
    mu_real, mu_fake = real.mean(axis=0), fake.mean(axis=0)
    real_centred, fake_centred = real - mu_real, fake - mu_fake
    trace_real = float((real_centred**2).sum() / (n_real - 1))
    trace_fake = float((fake_centred**2).sum() / (n_fake - 1))
    trace_root = float("nan")
    if min(n_real, n_fake) < dim:
        cross = real_centred @ fake_centred.T / math.sqrt((n_real - 1) * (n_fake - 1))
        trace_root = _sqrtm_trace(cross @ cross.T if n_real <= n_fake else cross.T @ cross)
    if not math.isfinite(trace_root):
        sigma_real = np.atleast_2d(np.cov(real, rowvar=False))
        sigma_fake = np.atleast_2d(np.cov(fake, rowvar=False))
        trace_root = _sqrtm_trace(sigma_real @ sigma_fake)
        if not math.isfinite(trace_root):
            offset = np.eye(dim) * eps
            trace_root = _sqrtm_trace((sigma_real + offset) @ (sigma_fake + offset))
    diff = mu_real - mu_fake
    return float(diff @ diff + trace_real + trace_fake - 2.0 * trace_root)
