"""Face preparation for translating photos: load a photo upright, find its faces, cut each one out level and square.

The selfie2anime generator was trained on square face crops (trainA: selfies in which the head fills the
frame); a whole portrait squeezed to 256x256 is not what it knows. So, as every face-to-anime tool does:

* :func:`load_photo` -- decode a file with its EXIF orientation applied, bounded in bytes and pixels;
* :func:`find_faces` -- frontal faces found with the Haar cascades that OpenCV ships inside its wheel
  (``cv2.data.haarcascades``; nothing is downloaded; OpenCV 5 dropped ``CascadeClassifier`` from the main wheel,
  hence ``opencv-python-headless<5``), each confirmed by the eye cascade, largest first;
* :func:`prepare_faces` -- each face rotated so that its eyes are level, cropped to a square with the margins of
  the training crops (see :data:`CROP_SCALE`), and a centre-square fallback when no face is found.

All coordinates are pixels of the photo after EXIF orientation, x to the right and y down; angles are degrees,
counter-clockwise as seen on screen (PIL's ``Image.rotate`` convention).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..data import to_rgb

# ----------------------------------------------------------------------------------------------- limits
MAX_PHOTO_BYTES = 200 * 1024 * 1024  # a 48 MP phone photo is ~20 MB; a larger file is not a photo
MAX_PHOTO_PIXELS = 64 * 1024 * 1024  # 67 MP: phone (48-50 MP) and full-frame (61 MP) cameras; 200 MB as RGB

# ----------------------------------------------------------------------------------------------- search
FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
SEARCH_SIZE = 800  # photos are searched with their longest side reduced to this (boxes mapped back)
MIN_FACE_SIZE = 40  # default smallest face (box width, photo pixels) worth a crop: 40 px -> 80 px crop
FACE_NEIGHBORS = 5  # minNeighbors of the face cascade (OpenCV's samples use 3-5)
STRONG_NEIGHBORS = 20  # a face without a pair of eyes found is kept only with this many overlapping hits
EYE_FACE_SIZE = 160  # face boxes are resampled to this width for the eye search

# ----------------------------------------------------------------------------------------------- crop
CROP_SCALE = 2.0  # square side = CROP_SCALE x the face box width
CROP_RAISE = 0.15  # square centre above the box centre, in face box widths
MAX_CROP_SIZE = 512  # crops are at the photo's resolution, at most this many pixels wide (model input: 256)


class PhotoError(ValueError):
    """A photo that cannot be used: unreadable, too large or a decompression bomb."""


# ------------------------------------------------------------------------------------------------ loading
def load_photo(source: str | Path | IO[bytes]) -> Image.Image:
    """Decode a photo file (path or binary file object) as RGB with its EXIF orientation applied.

    Phones store portraits sideways with an Orientation tag; every viewer turns them upright and so does this
    (``ImageOps.exif_transpose``). Training data keeps the official loader (no EXIF, `data.load_rgb`).
    Raises PhotoError naming the source for files over MAX_PHOTO_BYTES or MAX_PHOTO_PIXELS (decompression
    bombs) and for files PIL cannot decode.
    """
    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "uploaded photo")
    size = _byte_size(source)
    if size is not None and size > MAX_PHOTO_BYTES:
        raise PhotoError(f"{name}: file of {size / 2**20:.0f} MB is larger than the {MAX_PHOTO_BYTES / 2**20:.0f} MB "
                         "limit for photos")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > MAX_PHOTO_PIXELS:
                    raise PhotoError(f"{name}: {width}x{height} pixels is more than the limit of "
                                     f"{MAX_PHOTO_PIXELS / 1e6:.0f} megapixels; reduce the photo first")
                if width < 1 or height < 1:
                    raise PhotoError(f"{name}: image has no pixels")
                image.load()
                upright = ImageOps.exif_transpose(image)
                return to_rgb(upright if upright is not None else image).copy()
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PhotoError(f"{name}: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:  # what PIL raises on broken files
        raise PhotoError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None


def _byte_size(source: str | Path | IO[bytes]) -> int | None:
    if isinstance(source, (str, Path)):
        try:
            return os.stat(source).st_size
        except OSError:
            return None  # PIL reports the missing file
    try:
        position = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(position)
        return end - position
    except (AttributeError, OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------ finding
Point = tuple[float, float]
Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass
class Detection:
    """One face found by :func:`find_faces`: its box and, when both were found, the eye centres (the eye on the
    left of the picture first)."""

    box: Box
    eyes: tuple[Point, Point] | None = None

    @property
    def angle(self) -> float:
        """Degrees the face is turned counter-clockwise on screen (0 when the eyes are level or unknown)."""
        if self.eyes is None:
            return 0.0
        (lx, ly), (rx, ry) = self.eyes
        return -math.degrees(math.atan2(ry - ly, rx - lx))


@lru_cache(maxsize=None)
def _cascade(name: str) -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved it out of the main "
                           "wheel): pip install 'opencv-python-headless>=4.5,<5'")
    path = os.path.join(cv2.data.haarcascades, name)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path} shipped with OpenCV; reinstall "
                           "opencv-python-headless")
    return cascade


def _gray(image: Image.Image | np.ndarray) -> np.ndarray:
    rgb = np.asarray(to_rgb(image) if isinstance(image, Image.Image) else image)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def find_faces(image: Image.Image | np.ndarray, max_faces: int | None = None,
               min_size: int = MIN_FACE_SIZE) -> list[Detection]:
    """Frontal faces of an RGB photo (PIL image or uint8 [H, W, 3]) at least `min_size` pixels wide, largest
    first, at most `max_faces`.

    The photo is searched with its longest side reduced to SEARCH_SIZE (boxes mapped back to its pixels), by
    OpenCV's frontal-face cascade with FACE_NEIGHBORS; each hit is then searched for eyes at full resolution.
    A hit without a plausible pair of eyes (one in each half, level within 35 degrees, 25-65 % of the box apart)
    is taken for a false detection unless it is very strong (STRONG_NEIGHBORS overlapping hits): textures such
    as fur, foliage, fabric or text trip the face cascade, rarely the eye cascade twice in the right places.
    """
    gray = _gray(image)
    height, width = gray.shape
    scale = min(1.0, SEARCH_SIZE / max(height, width))
    small = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else gray
    small = cv2.equalizeHist(small)
    window = max(24, math.ceil(min_size * scale))
    boxes, neighbors = _cascade(FACE_CASCADE).detectMultiScale2(small, scaleFactor=1.1, minNeighbors=FACE_NEIGHBORS,
                                                                minSize=(window, window))
    found = []
    for (x, y, w, h), count in zip(np.reshape(boxes, (-1, 4)), np.ravel(neighbors)):
        box = (round(x / scale), round(y / scale), round(w / scale), round(h / scale))
        box = _clip_box(box, width, height)
        if box[2] < min_size:
            continue
        eyes = _eye_pair(_find_eyes(gray, box), box)
        if eyes is None and count < STRONG_NEIGHBORS:
            continue
        found.append(Detection(box, eyes))
    found.sort(key=lambda d: (-d.box[2] * d.box[3], d.box[0], d.box[1]))
    return found[:max_faces] if max_faces is not None else found


def _clip_box(box: Box, width: int, height: int) -> Box:
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    return x0, y0, min(width, x + w) - x0, min(height, y + h) - y0


def _find_eyes(gray: np.ndarray, box: Box) -> list[tuple[Point, float]]:
    """Eye candidates (centre in photo pixels, size) in the upper part of a face box."""
    x, y, w, h = box
    top = gray[y:y + int(h * 0.6), x:x + w]
    if top.size == 0:
        return []
    factor = EYE_FACE_SIZE / w
    roi = cv2.resize(top, (EYE_FACE_SIZE, max(1, round(top.shape[0] * factor))), interpolation=cv2.INTER_AREA
                     if factor < 1 else cv2.INTER_LINEAR)
    roi = cv2.equalizeHist(roi)
    eyes = _cascade(EYE_CASCADE).detectMultiScale(roi, scaleFactor=1.05, minNeighbors=4,
                                                  minSize=(EYE_FACE_SIZE // 8,) * 2,
                                                  maxSize=(EYE_FACE_SIZE * 2 // 5,) * 2)
    result = []
    for ex, ey, ew, eh in np.reshape(eyes, (-1, 4)):
        cx, cy = (ex + ew / 2) / factor + x, (ey + eh / 2) / factor + y
        if y + 0.15 * h <= cy <= y + 0.55 * h:  # eyes sit between brows and nose
            result.append(((cx, cy), ew / factor))
    return result


def _eye_pair(candidates: list[tuple[Point, float]], box: Box) -> tuple[Point, Point] | None:
    """The most plausible (left, right) pair: one eye in each half of the box, similar sizes, 25-65 % of the
    box width apart; None when there is no such pair."""
    x, _, w, _ = box
    middle = x + w / 2
    best, best_cost = None, math.inf
    for (left, left_size) in candidates:
        for (right, right_size) in candidates:
            if not (left[0] < middle < right[0]):
                continue
            distance = math.dist(left, right)
            if not 0.25 * w <= distance <= 0.65 * w:
                continue
            slope = abs(right[1] - left[1]) / (right[0] - left[0])
            if slope > math.tan(math.radians(35)):
                continue
            cost = abs(left_size - right_size) / w + abs((left[0] + right[0]) / 2 - middle) / w
            if cost < best_cost:
                best, best_cost = (left, right), cost
    return best


# --------------------------------------------------------------------------------------------- preparing
@dataclass
class Face:
    """One face cut out of a photo: `box` (x, y, w, h) as found, `angle` the face's turn (degrees,
    counter-clockwise on screen; the crop is turned back by it), `crop` the 4 corners of the square in the photo
    (top-left, top-right, bottom-right, bottom-left of the crop) and `image` the square crop (RGB, at the photo's
    resolution up to MAX_CROP_SIZE)."""

    box: Box
    angle: float
    crop: list[list[float]]
    image: Image.Image

    def to_json(self, output: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"box": [int(v) for v in self.box], "angle": round(float(self.angle), 2),
                                 "crop": [[round(float(x), 2), round(float(y), 2)] for x, y in self.crop]}
        if output is not None:
            entry["output"] = output
        return entry


@dataclass
class FacePreparation:
    """What :func:`prepare_faces` made of one photo: its `size` (W, H), whether the centre square stands in for
    faces (`fallback`, with `note` saying why) and the `faces`, largest first."""

    size: tuple[int, int]
    fallback: bool
    faces: list[Face] = field(default_factory=list)
    note: str = ""

    def to_json(self, outputs: list[str] | None = None) -> dict[str, Any]:
        """The faces.json entry: {"size": [W, H], "fallback": bool, "faces": [{"box", "angle", "crop",
        "output"}]}, `outputs` being the file written for each face."""
        names = outputs if outputs is not None else [None] * len(self.faces)
        if len(names) != len(self.faces):
            raise ValueError(f"{len(names)} output names for {len(self.faces)} faces")
        return {"size": [int(v) for v in self.size], "fallback": bool(self.fallback),
                "faces": [face.to_json(name) for face, name in zip(self.faces, names)]}


NO_FACE = "no face found: the centre square is used"
ANIME_FACES = ("B2A: OpenCV's Haar cascades are trained on photos and do not find anime faces: the centre "
               "square is used")


def prepare_faces(image: Image.Image | np.ndarray, max_faces: int | None = None, strict: bool = False,
                  direction: str = "A2B", min_size: int = MIN_FACE_SIZE) -> FacePreparation:
    """Find the faces of an RGB photo (after EXIF orientation, see `load_photo`) and cut each one out.

    Each face is turned so that its eyes are level (when both are found) and cut to a square of CROP_SCALE (2.0)
    face box widths whose centre is CROP_RAISE (0.15) box widths above the box's centre. Why: the selfie2anime
    photos (trainA) are selfies in which the whole head with its hair fills about the middle half of the frame,
    with some neck and shoulders below. The Haar box spans brows to chin and cheek to cheek; the hair
    reaches about half a box above it (0.48 on the astronaut photo). This square starts 0.65 box above the box
    (hair inside with room to spare), ends 0.35 box below the chin (neck) and leaves half a box each side (ears,
    hair): the face is half the width of the crop, as in the training photos.

    Where the square leaves the photo it is padded by repeating the edge pixels (cv2.BORDER_REPLICATE).
    Not reflection: a face cut by the photo's top edge (a close selfie) would get its eyes mirrored into the
    band above, and the generator paints a second face there; not a constant colour: flat black or white
    regions never occur in the training photos. Edge streaks read as background or hair.

    No face found: `fallback` with the photo's centre square (largest square, angle 0) and a `note` for the
    warning, or with `strict` no faces at all (the caller skips the photo). B2A (anime to photo) always uses the
    centre square: the Haar cascades do not find anime faces.
    """
    rgb = np.ascontiguousarray(np.asarray(to_rgb(image) if isinstance(image, Image.Image) else image))
    height, width = rgb.shape[:2]
    size = (width, height)
    if direction == "B2A":
        return FacePreparation(size, True, [_centre_square(rgb)], ANIME_FACES)
    found = find_faces(rgb, max_faces=max_faces, min_size=min_size)
    if not found:
        if strict:
            return FacePreparation(size, False, [], "no face found")
        return FacePreparation(size, True, [_centre_square(rgb)], NO_FACE)
    return FacePreparation(size, False, [_cut_face(rgb, detection) for detection in found])


def crop_corners(box: Box, angle: float) -> list[list[float]]:
    """The crop square of a face box turned by `angle`: corners top-left, top-right, bottom-right, bottom-left
    (of the upright crop) in photo pixels."""
    x, y, w, h = box
    theta = math.radians(angle)
    # the crop's unit vectors on screen: right (ex) and down (ey) of a face turned counter-clockwise by theta
    ex = (math.cos(theta), -math.sin(theta))
    ey = (math.sin(theta), math.cos(theta))
    centre = (x + w / 2 - CROP_RAISE * w * ey[0], y + h / 2 - CROP_RAISE * w * ey[1])
    half = CROP_SCALE * w / 2
    return [[centre[0] + u * half * ex[0] + v * half * ey[0], centre[1] + u * half * ex[1] + v * half * ey[1]]
            for u, v in ((-1, -1), (1, -1), (1, 1), (-1, 1))]


def _cut_face(rgb: np.ndarray, detection: Detection) -> Face:
    corners = crop_corners(detection.box, detection.angle)
    return Face(detection.box, detection.angle, corners, _warp_square(rgb, corners))


def _centre_square(rgb: np.ndarray) -> Face:
    height, width = rgb.shape[:2]
    side = min(width, height)
    x, y = (width - side) // 2, (height - side) // 2
    corners = [[float(x), float(y)], [float(x + side), float(y)], [float(x + side), float(y + side)],
               [float(x), float(y + side)]]
    return Face((x, y, side, side), 0.0, corners, _warp_square(rgb, corners))


def _warp_square(rgb: np.ndarray, corners: list[list[float]]) -> Image.Image:
    """The square with these corners (continuous pixel coordinates) sampled bilinearly into an upright image of
    its own side (at most MAX_CROP_SIZE; larger squares come from an INTER_AREA-reduced photo)."""
    (x0, y0), (x1, y1), _, (x3, y3) = corners
    side = math.dist((x0, y0), (x1, y1))
    out = max(1, min(MAX_CROP_SIZE, round(side)))
    step = side / out  # photo pixels per crop pixel
    source, fx, fy = rgb, 1.0, 1.0
    if step > 1.5:
        height, width = rgb.shape[:2]
        new_w, new_h = max(1, round(width / step)), max(1, round(height / step))
        source = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
        fx, fy = new_w / width, new_h / height
    # crop pixel (i, j) has its centre at continuous crop coordinates (i + 0.5, j + 0.5) -> photo continuous
    # coordinates corner0 + (i + 0.5) * step * ex + (j + 0.5) * step * ey -> source index = continuous - 0.5
    ex = ((x1 - x0) / out, (y1 - y0) / out)
    ey = ((x3 - x0) / out, (y3 - y0) / out)
    matrix = np.array([
        [fx * ex[0], fx * ey[0], fx * (x0 + 0.5 * (ex[0] + ey[0])) - 0.5],
        [fy * ex[1], fy * ey[1], fy * (y0 + 0.5 * (ex[1] + ey[1])) - 0.5],
    ], dtype=np.float64)
    crop = cv2.warpAffine(source, matrix, (out, out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(crop, "RGB")
