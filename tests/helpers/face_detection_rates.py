"""Measure the face search of `ugatit_paddle.inference.faces` on the pictures scikit-image ships: faces found and
false boxes, for the bare face cascade (what `find_faces` starts from) and for `find_faces` (eye-confirmed).

    PYTHONPATH=. python tests/helpers/face_detection_rates.py      # about a minute on one core

* astronaut.png at 6 scales and 6 tilts: is her face found, how many other boxes;
* every picture of skimage.data without a face (as is, turned 90 degrees, doubled): how many boxes;
* lfw_subset (100 faces, 100 non-faces, 25 x 25, tight crops): each enlarged 6x with a 60 px edge border.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import skimage.data as data
from PIL import Image

from ugatit_paddle.inference import faces

NO_FACE = ("chelsea", "coffee", "rocket", "horse", "hubble_deep_field", "coins", "brick", "grass", "gravel", "retina",
           "immunohistochemistry", "page", "text", "logo", "colorwheel", "cell", "moon", "clock", "microaneurysms",
           "cat", "binary_blobs", "shepp_logan_phantom")  # all in the wheel: nothing is downloaded
FACE_CENTRE, FACE_WIDTH = (224.5, 113.5), 95  # the astronaut's face: tests/test_faces.py FACE


def cascade_boxes(rgb: np.ndarray) -> list[tuple[int, ...]]:
    """The face cascade alone, searched as `find_faces` searches (same size reduction and window)."""
    gray = faces._gray(rgb)
    scale = min(1.0, faces.SEARCH_SIZE / max(gray.shape))
    if scale < 1:
        gray = cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    window = max(24, math.ceil(faces.MIN_FACE_SIZE * scale))
    boxes = faces._cascade(faces.FACE_CASCADE).detectMultiScale(cv2.equalizeHist(gray), 1.1, faces.FACE_NEIGHBORS,
                                                                minSize=(window, window))
    return [tuple(round(v / scale) for v in box) for box in np.reshape(boxes, (-1, 4))]


def confirmed_boxes(rgb: np.ndarray) -> list[tuple[int, ...]]:
    return [found.box for found in faces.find_faces(rgb)]


def as_rgb(picture: np.ndarray) -> np.ndarray:
    if picture.ndim == 3 and picture.shape[-1] > 4:
        picture = picture[picture.shape[0] // 2]  # a volume: its middle slice
    picture = picture.astype(np.float64)
    if picture.max() > 255 or picture.max() <= 1:
        picture = 255 * (picture - picture.min()) / max(1e-9, picture.max() - picture.min())
    picture = picture.astype(np.uint8)
    return np.ascontiguousarray(np.stack([picture] * 3, -1) if picture.ndim == 2 else picture[..., :3])


def main() -> None:
    astronaut = Image.fromarray(data.astronaut())
    variants = [(astronaut.resize((round(512 * f),) * 2, Image.Resampling.BILINEAR), f)
                for f in (0.5, 0.75, 1, 1.5, 2, 3)]
    variants += [(astronaut.rotate(t, resample=Image.Resampling.BILINEAR, center=FACE_CENTRE), 1)
                 for t in (-15, -10, -5, 5, 10, 15)]
    for name, search in (("face cascade", cascade_boxes), ("find_faces", confirmed_boxes)):
        found = false = 0
        for image, f in variants:
            boxes = search(np.asarray(image))
            near = [b for b in boxes if math.dist((b[0] + b[2] / 2, b[1] + b[3] / 2), (FACE_CENTRE[0] * f,
                    FACE_CENTRE[1] * f)) <= 0.15 * FACE_WIDTH * f]
            found += bool(near)
            false += len(boxes) - min(1, len(near))
        print(f"astronaut, {len(variants)} scales and tilts, {name}: face found in {found}, {false} false boxes")

    pictures = []
    for name in NO_FACE:
        try:
            picture = as_rgb(np.asarray(getattr(data, name)()))
        except Exception as e:  # noqa: BLE001 (a picture this scikit-image lacks or cannot fetch)
            print(f"  ({name} not available: {type(e).__name__})")
            continue
        pictures += [picture, np.ascontiguousarray(np.rot90(picture)), cv2.resize(picture, None, fx=2, fy=2)]
    for name, search in (("face cascade", cascade_boxes), ("find_faces", confirmed_boxes)):
        boxes = sum(len(search(p)) for p in pictures)
        print(f"{len(pictures)} pictures without a face, {name}: {boxes} false boxes")

    lfw = data.lfw_subset()
    enlarged = [np.stack([cv2.copyMakeBorder(cv2.resize(np.uint8(x * 255), None, fx=6, fy=6,
                                                        interpolation=cv2.INTER_CUBIC), 60, 60, 60, 60,
                                             cv2.BORDER_REPLICATE)] * 3, -1) for x in lfw]
    for name, search in (("face cascade", cascade_boxes), ("find_faces", confirmed_boxes)):
        hits = [bool(search(x)) for x in enlarged]
        print(f"lfw_subset x6, {name}: {sum(hits[:100])} of 100 faces found, a box on {sum(hits[100:])} of 100 "
              "non-faces")


if __name__ == "__main__":
    main()
