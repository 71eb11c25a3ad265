"""A procedural, deterministic unpaired dataset and a translation score for the CPU demo.

Domain A: smooth, shaded blue-green discs and ellipses on a light background.
Domain B: orange-red striped squares and triangles on a dark, grainy background.
Both have random counts, positions, sizes, rotations, colours and pixel noise; A and B differ
in colour, texture (smooth vs striped), shape (round vs straight-edged) and background.

Translation score: :class:`DomainScorer`, fitted on trainA (label 0) and trainB (label 1),
numpy only. Three cues -- background (brightness), colour (chroma-weighted hue distribution)
and texture (edge strength, straightness, stripes) -- each get a logistic regression on
handcrafted features. An image's probability of "looks like B" is the mean of its three cue
probabilities; ``score(images)`` is the mean over images: about 0 on testA, about 1 on testB,
in between for partial translations (say, colours but no stripes), low for a flat grey image.
A model that learns A->B moves the score of its translations of testA towards 1 (and the
score of its B->A translations of testB towards 0).
"""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import DOMAIN_FOLDERS, find_images, load_rgb

__all__ = ["CUES", "MANIFEST", "N_TEST", "N_TRAIN", "NUM_FEATURES", "make_demo_dataset", "render_image", "load_images",
           "image_features", "DomainScorer"]

_FORMAT_VERSION = 1  # bump when the rendering changes, so old folders are regenerated
MANIFEST = "demo_data.json"  # written into a generated dataset's root: what was generated, and how
N_TRAIN, N_TEST = 400, 50  # default images per domain: training, held-out test
_FILE_NAME = re.compile(r"[ab]_\d{4}\.png")


# --------------------------------------------------------------------------------------------
# Rendering


def _hsv(h_degrees: float, s: float, v: float) -> np.ndarray:
    """HSV colour -> float RGB [3] in [0, 255]."""
    return np.array(colorsys.hsv_to_rgb((h_degrees % 360) / 360.0, s, v)) * 255.0


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x), each float32 [size, size]."""
    coords = np.arange(size, dtype=np.float32) + np.float32(0.5)
    return np.meshgrid(coords, coords, indexing="ij")


def _window(size: int, cy: float, cx: float, extent: float) -> tuple[slice, slice]:
    """Rows and columns of the square of half-width ``extent`` (+2 px) around (cy, cx), clipped."""
    low_y, high_y = int(max(cy - extent - 2, 0)), int(min(cy + extent + 3, size))
    low_x, high_x = int(max(cx - extent - 2, 0)), int(min(cx + extent + 3, size))
    return slice(low_y, high_y), slice(low_x, high_x)


def _rotated(y: np.ndarray, x: np.ndarray, cy: float, cx: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates relative to (cy, cx) in a frame rotated by ``angle`` radians: (u, v)."""
    dy, dx = y - np.float32(cy), x - np.float32(cx)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return c * dx + s * dy, -s * dx + c * dy


def _coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Anti-aliased inside mask [..., 1] from a signed distance in pixels (negative inside)."""
    return np.clip(np.float32(0.5) - signed_distance, 0.0, 1.0)[..., None]


def _paint(canvas: np.ndarray, window: tuple[slice, slice], coverage: np.ndarray, fill: np.ndarray) -> None:
    """Blend ``fill`` into ``canvas[window]`` with weight ``coverage`` (in place)."""
    region = canvas[window]
    region += coverage * (fill - region)


def _background(rng: np.random.Generator, size: int, low: float, high: float, tint: float) -> np.ndarray:
    """Flat colour in [low, high] with a small tint and a gentle linear gradient: float32 [size, size, 3]."""
    y, x = _grid(size)
    base = (rng.uniform(low, high) + rng.uniform(-tint, tint, size=3)).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.float32(np.cos(direction)) * x + np.float32(np.sin(direction)) * y) / np.float32(size) - 0.5
    strength = np.float32(rng.uniform(-0.15, 0.15) * (high - low + 40))
    return base + (strength * ramp)[..., None]


def _noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian pixel noise: float32 [size, size, 3]."""
    return rng.standard_normal((size, size, 3), dtype=np.float32) * np.float32(sigma)


def _render_a(rng: np.random.Generator, size: int) -> np.ndarray:
    """Domain A image: float32 [size, size, 3]."""
    y, x = _grid(size)
    canvas = _background(rng, size, 200.0, 240.0, 8.0)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0.2, 0.8, size=2) * size
        radius = rng.uniform(0.12, 0.28) * size
        ry = radius * rng.uniform(0.6, 1.0)  # 1.0: a disc
        window = _window(size, cy, cx, radius)
        u, v = _rotated(y[window], x[window], cy, cx, rng.uniform(0, np.pi))
        d = np.sqrt((u / np.float32(radius)) ** 2 + (v / np.float32(ry)) ** 2)  # 1 on the outline
        colour = _hsv(rng.uniform(160, 215), rng.uniform(0.5, 0.85), rng.uniform(0.6, 0.9)).astype(np.float32)
        # smooth "lit sphere" shading, brightest towards a random light direction
        light = rng.uniform(0, 2 * np.pi)
        lit = (np.float32(np.cos(light)) * u + np.float32(np.sin(light)) * v) / np.float32(radius)
        shade = np.clip(1.0 - 0.35 * d**2 + 0.2 * lit, 0.4, 1.3)[..., None]
        _paint(canvas, window, _coverage((d - 1.0) * np.float32(ry)), np.minimum(colour * shade, 255.0))
    return canvas + _noise(rng, size, 3.0)


def _render_b(rng: np.random.Generator, size: int) -> np.ndarray:
    """Domain B image: float32 [size, size, 3]."""
    y, x = _grid(size)
    canvas = _background(rng, size, 15.0, 50.0, 6.0) + _noise(rng, size, 5.0)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0.2, 0.8, size=2) * size
        half = rng.uniform(0.1, 0.24) * size
        window = _window(size, cy, cx, half * 1.5)
        yw, xw = y[window], x[window]
        u, v = _rotated(yw, xw, cy, cx, rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.5:  # square
            distance = np.maximum(np.abs(u), np.abs(v)) - np.float32(half)
        else:  # equilateral triangle: three half-planes at inradius 0.7 * half
            angles = np.pi / 2 + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
            planes = [np.float32(np.cos(a)) * u + np.float32(np.sin(a)) * v for a in angles]
            distance = np.maximum(np.maximum(planes[0], planes[1]), planes[2]) - np.float32(half * 0.7)
        colour = _hsv(rng.uniform(0, 35), rng.uniform(0.75, 1.0), rng.uniform(0.85, 1.0)).astype(np.float32)
        period = rng.uniform(0.05, 0.09) * size
        su, _ = _rotated(yw, xw, cy, cx, rng.uniform(0, np.pi))
        stripes = np.clip(2.0 * np.sin(su * np.float32(2 * np.pi / period)) + 0.5, 0.0, 1.0)[..., None]
        _paint(canvas, window, _coverage(distance), colour * (0.3 + 0.7 * stripes))
    return canvas


def render_image(domain: str, seed: int, index: int, size: int, split: str = "train") -> np.ndarray:
    """Image ``index`` of ``split`` ("train"/"test") of ``domain`` ("A"/"B"): uint8 [size, size, 3]."""
    if domain not in ("A", "B") or split not in ("train", "test"):
        raise ValueError(f"domain must be 'A' or 'B' and split 'train' or 'test', got {domain!r}, {split!r}")
    rng = np.random.default_rng([seed, "AB".index(domain), ("train", "test").index(split), index])
    canvas = _render_a(rng, size) if domain == "A" else _render_b(rng, size)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def _file_names(count: int, domain: str) -> list[str]:
    return [f"{domain.lower()}_{i:04d}.png" for i in range(count)]


def make_demo_dataset(root: str | Path, n_train: int = N_TRAIN, n_test: int = N_TEST, size: int = 128, seed: int = 0
                      ) -> None:
    """Write ``root/{trainA,trainB,testA,testB}/*.png`` (PNG, size x size).

    Idempotent: does nothing if ``root`` already holds a complete dataset made with the same
    arguments (recorded in ``root/demo_data.json``); otherwise deletes the earlier demo files
    (``a_0000.png`` ...) and writes every file. About 5 s for 400 + 50 images per domain at 128 px.
    """
    if n_train < 1 or n_test < 1 or size < 8:
        raise ValueError(f"need n_train >= 1, n_test >= 1 and size >= 8, got {n_train}, {n_test}, {size}")
    root = Path(root)
    manifest = {"version": _FORMAT_VERSION, "n_train": n_train, "n_test": n_test, "size": size, "seed": seed}
    counts = {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test}
    manifest_path = root / MANIFEST
    if manifest_path.is_file():
        try:
            previous = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            previous = None
        complete = previous == manifest and all(
            (root / folder / name).is_file() for folder in DOMAIN_FOLDERS for name in _file_names(counts[folder], folder[-1])
        )
        if complete:
            return
        manifest_path.unlink()
    for folder in DOMAIN_FOLDERS:
        split, domain = folder[:-1], folder[-1]
        (root / folder).mkdir(parents=True, exist_ok=True)
        for stale in (root / folder).iterdir():  # earlier demo files (a larger dataset would leave extras)
            if _FILE_NAME.fullmatch(stale.name):
                stale.unlink()
        for index, name in enumerate(_file_names(counts[folder], domain)):
            image = Image.fromarray(render_image(domain, seed, index, size, split))
            image.save(root / folder / name, compress_level=1)
    manifest_path.write_text(json.dumps(manifest, indent=1))


# --------------------------------------------------------------------------------------------
# Scoring

_ANALYSIS_SIZE = 64  # images are resized to this before feature extraction
_HUE_BINS = 6
_ORIENTATION_BINS = 8

# Feature columns of each cue (see _features_one); every cue gets its own classifier.
CUES: dict[str, slice] = {
    "background": slice(0, 3),  # mean brightness, dark fraction, light fraction
    "colour": slice(3, 3 + _HUE_BINS),  # chroma-weighted hue distribution
    "texture": slice(3 + _HUE_BINS, 7 + _HUE_BINS),  # edge strength, straightness, fine detail
}
NUM_FEATURES = 7 + _HUE_BINS


def load_images(folder: str | Path) -> np.ndarray:
    """All images below ``folder`` (sorted), as uint8 [N, H, W, 3]; they must share one size."""
    return np.stack([np.asarray(load_rgb(path)) for path in find_images(folder)])


def _features_one(image: np.ndarray) -> np.ndarray:
    """Handcrafted features of one uint8 [H, W, 3] image: float [NUM_FEATURES]."""
    if image.shape[:2] != (_ANALYSIS_SIZE, _ANALYSIS_SIZE):
        pil = Image.fromarray(image).resize((_ANALYSIS_SIZE, _ANALYSIS_SIZE), Image.Resampling.BILINEAR)
        image = np.asarray(pil)
    rgb = image.astype(np.float64) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    background = [luma.mean(), (luma < 0.3).mean(), (luma > 0.7).mean()]

    # hue distribution weighted by chroma^2 (chroma = max - min): grey and dark noisy pixels count little
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    hue = np.degrees(np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b)) % 360.0
    bins = (hue // (360 / _HUE_BINS)).astype(int).ravel() % _HUE_BINS
    colour = np.bincount(bins, weights=(chroma**2).ravel(), minlength=_HUE_BINS)
    colour = colour + 1e-3 * hue.size / _HUE_BINS  # grey image: uniform hues
    colour = colour / colour.sum()  # share of the colourful pixels in each hue range

    # edges: strength, straightness (peaked orientation histogram) and fine detail (stripes)
    gy, gx = np.gradient(luma)
    magnitude = np.hypot(gx, gy)
    orientation = np.arctan2(gy, gx) % np.pi
    orient_bins = (orientation / np.pi * _ORIENTATION_BINS).astype(int).ravel() % _ORIENTATION_BINS
    orient_hist = np.bincount(orient_bins, weights=magnitude.ravel(), minlength=_ORIENTATION_BINS)
    orient_hist = orient_hist + 1e-3 * magnitude.size / _ORIENTATION_BINS  # flat image: uniform, not peaked
    orient_hist = orient_hist / orient_hist.sum()
    orient_entropy = -(orient_hist * np.log(np.maximum(orient_hist, 1e-12))).sum() / np.log(_ORIENTATION_BINS)
    laplacian = np.abs(4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:])
    texture = [magnitude.mean(), orient_hist.max(), orient_entropy, laplacian.mean()]

    return np.concatenate([background, colour, texture])


def image_features(images: np.ndarray) -> np.ndarray:
    """Features of uint8 [N, H, W, 3] images (any H, W; resized to 64): float [N, NUM_FEATURES]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    return np.stack([_features_one(image) for image in images])


def _fit_logistic(x: np.ndarray, labels: np.ndarray, l2: float, steps: int = 30) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method: (weights [F], bias)."""
    x = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not penalised
    for _ in range(steps):  # minimise mean log-loss + l2/2 |w|^2
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - labels) / len(x) + penalty * w
        hessian = (x.T * (p * (1 - p))) @ x / len(x) + np.diag(penalty) + 1e-9 * np.eye(len(w))
        w = w - np.linalg.solve(hessian, gradient)
    return w[:-1], float(w[-1])


class DomainScorer:
    """How much images look like domain B rather than A, from handcrafted features (numpy only).

    Three cues -- ``background`` (brightness), ``colour`` (hue histogram) and ``texture``
    (edges, straightness, stripes) -- each get an L2-penalised logistic regression fitted on
    standardised features of A (label 0) and B (label 1). An image's probability of "looks like
    B" is the mean of its three cue probabilities, so partial translations (say, colours but
    not stripes) score in between, and degenerate outputs (flat grey) do not pass for B.
    """

    def __init__(self, mean: np.ndarray, scale: np.ndarray, cue_weights: dict[str, tuple[np.ndarray, float]]) -> None:
        self.mean = mean  # feature means [NUM_FEATURES]
        self.scale = scale  # feature standard deviations [NUM_FEATURES]
        self.cue_weights = cue_weights  # cue -> (weights [cue features], bias)

    @classmethod
    def fit(cls, images_a: np.ndarray, images_b: np.ndarray, l2: float = 0.01) -> "DomainScorer":
        """Fit on uint8 [N, H, W, 3] images of A and of B (deterministic)."""
        features = np.concatenate([image_features(images_a), image_features(images_b)])
        labels = np.concatenate([np.zeros(len(images_a)), np.ones(len(images_b))])
        mean = features.mean(axis=0)
        scale = features.std(axis=0) + 1e-6
        standard = (features - mean) / scale
        cue_weights = {cue: _fit_logistic(standard[:, columns], labels, l2) for cue, columns in CUES.items()}
        return cls(mean, scale, cue_weights)

    @classmethod
    def from_folders(cls, folder_a: str | Path, folder_b: str | Path) -> "DomainScorer":
        """Fit on all images of two folders, e.g. ``root/trainA`` and ``root/trainB``."""
        return cls.fit(load_images(folder_a), load_images(folder_b))

    def cue_probabilities(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Per cue, each image's probability of domain B: {cue: float [N]} for uint8 [N, H, W, 3]."""
        standard = (image_features(images) - self.mean) / self.scale
        result = {}
        for cue, columns in CUES.items():
            weights, bias = self.cue_weights[cue]
            result[cue] = 1.0 / (1.0 + np.exp(-(standard[:, columns] @ weights + bias)))
        return result

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Per-image probability of "looks like B" (mean over cues): float [N] in (0, 1)."""
        return np.mean(list(self.cue_probabilities(images).values()), axis=0)

    def score(self, images: np.ndarray) -> float:
        """Mean probability of "looks like B" over uint8 [N, H, W, 3] images."""
        return float(self.probabilities(images).mean())
