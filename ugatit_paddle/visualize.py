"""Pictures: image tiles, CAM heatmap tiles, the official 7-tile translation strips and the sample sheets.

A strip is a column of 7 tiles for one input: real, CAM(identity), identity, CAM(translation),
translation, CAM(cycle), cycle. A sample sheet puts strips side by side; training writes one per direction
(`A2B_<iteration>.png`, `B2A_<iteration>.png`) of fixed images (`sample_images`). Everything is RGB uint8.
A face sheet (`face_sheet`, predict --face-sheet) shows a photo with its faces boxed beside each crop and its
translation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import paddle
from PIL import Image, ImageDraw, ImageFont

from .data import DECODE_ERRORS, eval_transform, find_images, load_rgb
from .models import DIRECTIONS

if TYPE_CHECKING:
    from .inference.faces import FacePreparation

SHEET_TILE = 256  # side of each crop and translation on a face sheet
FACE_COLOUR, BOX_COLOUR, FALLBACK_COLOUR = (0, 220, 0), (255, 220, 0), (255, 128, 0)


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


def face_sheet(photo: Image.Image, preparation: "FacePreparation", translations: Sequence[Image.Image],
               heatmaps: Sequence[Image.Image] | None = None) -> Image.Image:
    """One picture of a photo's face preparation: left the photo with each crop square drawn (green, numbered
    1, 2, ... as the outputs; orange for the centre-square fallback) and each detection box (yellow); right one
    row per face: the crop, its translation (and heatmap) as SHEET_TILE squares. RGB."""
    if len(translations) != len(preparation.faces) or (heatmaps is not None and len(heatmaps) != len(translations)):
        raise ValueError(f"{len(preparation.faces)} faces, {len(translations)} translations"
                         + (f", {len(heatmaps)} heatmaps" if heatmaps is not None else ""))
    rows = max(1, len(preparation.faces))
    columns = 2 if heatmaps is None else 3
    height = max(2, rows) * SHEET_TILE
    scale = min(height / photo.height, 2 * height / photo.width)
    shown = photo.convert("RGB").resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                                        Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(shown)
    width = max(2, round(shown.width / 200))
    try:
        font = ImageFont.load_default(size=8 * width)
    except TypeError:  # Pillow < 10.1: one small bitmap font
        font = ImageFont.load_default()
    for k, face in enumerate(preparation.faces, 1):
        corners = [(x * scale, y * scale) for x, y in face.crop]
        colour = FALLBACK_COLOUR if preparation.fallback else FACE_COLOUR
        draw.line(corners + corners[:1], fill=colour, width=width)
        if not preparation.fallback:
            x, y, w, h = (v * scale for v in face.box)
            draw.rectangle((x, y, x + w, y + h), outline=BOX_COLOUR, width=max(1, width // 2))
        draw.text((corners[0][0] + 2 * width, corners[0][1] + 2 * width), str(k), fill=colour, font=font)
    sheet = Image.new("RGB", (shown.width + columns * SHEET_TILE, max(shown.height, rows * SHEET_TILE)), "white")
    sheet.paste(shown, (0, 0))
    for row, face in enumerate(preparation.faces):
        tiles = [face.image, translations[row]] + ([heatmaps[row]] if heatmaps is not None else [])
        for column, tile in enumerate(tiles):
            tile = tile.convert("RGB").resize((SHEET_TILE, SHEET_TILE), Image.Resampling.BILINEAR)
            sheet.paste(tile, (shown.width + column * SHEET_TILE, row * SHEET_TILE))
    return sheet
