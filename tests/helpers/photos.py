"""Test photos made from the pictures scikit-image ships in its wheel (a test-only dependency): the NASA portrait
astronaut.png (public domain) with where her face is, and a phone-style copy stored sideways with an EXIF
Orientation tag."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

# The astronaut's face (x, y, w, h) in astronaut.png (512 x 512), found by drawing boxes on the photo: brows to
# chin, cheek to cheek. Her head is turned about 3 degrees clockwise (the eye on the right of the picture is lower).
FACE = (177, 66, 95, 95)
HEAD_ANGLE = -3.3  # degrees, counter-clockwise on screen; eye centres (202, 101) and (247, 104) by inspection
HAIR_TOP, CHIN = 20, 161  # y of the top of her hair and of her chin
TOLERANCE = 0.15  # a box is where the face is when x, y, w and h are all within 15 % of the face width
ORIENTATION = 0x0112  # the EXIF tag; 6: turn 90 degrees clockwise to view


def box_near(box, expected) -> bool:
    """Whether x, y, w and h of `box` are all within TOLERANCE x the face width of `expected`."""
    return all(abs(a - b) <= TOLERANCE * expected[2] for a, b in zip(box, expected))


def save_sideways(upright: Image.Image, path: Path) -> Path:
    """Store `upright` as a phone does a portrait: the pixels turned 90 degrees counter-clockwise, EXIF
    Orientation 6 (JPEG, quality 95)."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
    return path
