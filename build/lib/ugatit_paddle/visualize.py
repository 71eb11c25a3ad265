"""Pictures: image tiles, CAM heatmap tiles, the official 7-tile translation strips and the sample sheets.

A strip is a column of 7 tiles for one input: real, CAM(identity), identity, CAM(translation),
translation, CAM(cycle), cycle. A sample sheet puts strips side by side; training writes one per direction
(`A2B_<iteration>.png`, `B2A_<iteration>.png`) of fixed images (`sample_images`). Everything is RGB uint8.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import paddle
from PIL import Image

from .data import DECODE_ERRORS, eval_transform, find_images, load_rgb
from .models import DIRECTIONS


def image_tile(x: np.ndarray) -> np.ndarray:
    """[3, H, W] float in [-1, 1] -> [H, W, 3] uint8."""
    return np.clip((np.transpose(x, (1, 2, 0)) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def heatmap_tile(heatmap: np.ndarray, size: int) -> np.ndarray:
    """[1, h, w] or [h, w] CAM heatmap -> [size, size, 3] uint8 JET colours, min-max normalised.

    A constant map (max == min) gives a flat tile of the colour for 0 instead of NaN.
    """
    h = np.asarray(heatmap, np.float64).reshape(heatmap.shape[-2:])
    span = h.max() - h.min()
    h = (h - h.min()) / span if span > 0 and np.isfinite(span) else np.zeros_like(h)
    h = cv2.resize(np.uint8(255 * h), (size, size))
    return cv2.cvtColor(cv2.applyColorMap(h, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def translation_strips(source_gen: paddle.nn.Layer, target_gen: paddle.nn.Layer, real: paddle.Tensor) -> list[np.ndarray]:
    """The 7-tile strips [7*S, S, 3] of each image in `real` [N, 3, S, S], translated by `source_gen`
    (e.g. genA2B for A images) and cycled back / identity-mapped by `target_gen`. Runs under no-grad."""
    size = real.shape[-1]
    with paddle.no_grad():
        fake, _, fake_heat = source_gen(real)
        cycle, _, cycle_heat = target_gen(fake)
        identity, _, identity_heat = target_gen(real)
    arrays = [t.numpy() for t in (real, identity_heat, identity, fake_heat, fake, cycle_heat, cycle)]
    strips = []
    for i in range(real.shape[0]):
        tiles = [image_tile(arrays[0][i]), heatmap_tile(arrays[1][i], size), image_tile(arrays[2][i]),
                 heatmap_tile(arrays[3][i], size), image_tile(arrays[4][i]), heatmap_tile(arrays[5][i], size),
                 image_tile(arrays[6][i])]
        strips.append(np.concatenate(tiles, axis=0))
    return strips


def sample_sheet(strips: list[np.ndarray]) -> np.ndarray:
    """Strips side by side: [7*S, len(strips)*S, 3]."""
    return np.concatenate(strips, axis=1)


def sample_images(folders: Mapping[str, Path], count: int, size: int) -> dict[str, np.ndarray]:
    """Fixed images for the sample sheets, per domain "A"/"B": the first `count` readable images of train and of
    test (test transform), float32 [<= 2*count, 3, size, size]. Only these few files are decoded; unreadable
    ones are skipped silently (the training data set warns about them itself)."""
    result = {}
    for d in "AB":
        images = []
        for split in ("train", "test"):
            found = []
            for path in find_images(folders[f"{split}{d}"]):
                try:
                    found.append(eval_transform(load_rgb(path), size))
                except DECODE_ERRORS:
                    continue
                if len(found) == count:
                    break
            images += found
        result[d] = np.stack(images)
    return result


def sample_sheets(nets: Mapping[str, paddle.nn.Layer], images: Mapping[str, paddle.Tensor]) -> dict[str, np.ndarray]:
    """{"A2B": sheet of `images["A"]` through genA2B (identity and cycle through genB2A), "B2A": likewise}."""
    return {direction: sample_sheet(translation_strips(nets[source], nets[target], images[direction[0]]))
            for direction, (source, target) in DIRECTIONS.items()}


def save_sample_sheets(sheets: Mapping[str, np.ndarray], folder: str | Path, iteration: int) -> list[Path]:
    """Write each sheet as `folder/<direction>_<iteration, 7 digits>.png`."""
    return [save_png(sheet, Path(folder) / f"{direction}_{iteration:07d}.png") for direction, sheet in sheets.items()]


def save_png(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path
