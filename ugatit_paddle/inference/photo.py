"""A photo in, its faces as anime out: the translation behind the page (`ugatit_paddle.app`), as a plain function.

    result = translate_photo(translator, "me.jpg")             # faces found, aligned, cropped (faces.py)
    for face in result.faces:
        face.crop, face.translation, face.heatmap                 # PIL images, S x S (the model's size)

With `find_faces` the photo goes through `faces.prepare_faces` exactly as `predict.py --face` does it (EXIF
applied by `faces.load_photo`, every face largest first, the centre square when none is found), so the page
shows the same pixels predict.py writes. Without it the whole photo is translated, squeezed to S x S as
predict.py without --face does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..visualize import face_sheet
from .faces import load_photo, prepare_faces
from .translate import Translator

MAX_FACES = 8  # faces translated per photo on the page


@dataclass
class FaceResult:
    """One face: where it is in the photo (x, y, w, h after EXIF orientation; the whole photo without face
    preparation), the aligned crop the model saw (before its resize to S x S), its translation and CAM heatmap
    (S x S)."""

    box: tuple[int, int, int, int]
    crop: Image.Image
    translation: Image.Image
    heatmap: Image.Image


@dataclass
class PhotoResult:
    """All faces of one photo (largest first); `fallback` when the centre square stands in for faces (`note`
    says why: none found, or B2A); with face preparation the `sheet` of predict.py --face-sheet."""

    size: tuple[int, int]
    fallback: bool
    faces: list[FaceResult] = field(default_factory=list)
    note: str = ""
    sheet: Image.Image | None = None  # visualize.face_sheet: the photo with the squares found, crops, outputs
    whole_photo: bool = False  # translated without face preparation

    def summary(self) -> str:
        if self.fallback:
            return f"{self.note[:1].upper()}{self.note[1:]}; translated."
        if self.whole_photo:
            return "The whole photo translated (no face preparation)."
        n = len(self.faces)
        return f"{n} face{'s' if n != 1 else ''} translated."


def translate_photo(translator: Translator, photo: str | Path, find_faces: bool = True,
                    max_faces: int | None = MAX_FACES) -> PhotoResult:
    """Translate the faces of the photo file `photo` (or the whole photo) with `translator`. Raises
    faces.PhotoError for an unreadable or too large photo (`faces.load_photo`'s bounds)."""
    image = load_photo(Path(photo))
    if not find_faces:
        out, heat = translator.translate_with_heatmap(image)
        crop = image.resize((translator.img_size,) * 2, Image.Resampling.BILINEAR)
        return PhotoResult(image.size, False, [FaceResult((0, 0, *image.size), crop, out, heat)], whole_photo=True)
    prepared = prepare_faces(image, max_faces=max_faces, strict=False, direction=translator.direction)
    outputs = translator.translate_faces(prepared.faces, heatmaps=True)
    faces = [FaceResult(tuple(int(v) for v in face.box), face.image, out, heat)
             for face, (out, heat) in zip(prepared.faces, outputs)]
    sheet = face_sheet(image, prepared, [out for out, _ in outputs], [heat for _, heat in outputs])
    return PhotoResult(tuple(prepared.size), prepared.fallback, faces, prepared.note, sheet)
