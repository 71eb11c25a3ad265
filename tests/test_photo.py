"""translate_photo, the page's work without Gradio: the faces predict.py --face would translate, or the whole
photo; the file size bound; PhotoTranslator's directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.app import PhotoTranslator
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.formats import checkpoint
from ugatit_paddle.inference import faces
from ugatit_paddle.inference.faces import PhotoError, load_photo, prepare_faces
from ugatit_paddle.inference.photo import translate_photo
from ugatit_paddle.inference.translate import Translator
from ugatit_paddle.models import build_networks


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> Translator:
    paddle.seed(0)
    args = ModelConfig(img_size=64, ch=4, n_res=1, light=True, global_layers=5, local_layers=3)
    path = checkpoint.save_generators(tmp_path_factory.mktemp("model") / "g.pdparams", args, build_networks(args))
    return Translator.from_checkpoint(path)


@pytest.fixture(scope="module")
def astronaut() -> Path:
    skimage = pytest.importorskip("skimage")
    return Path(skimage.__file__).parent / "data" / "astronaut.png"


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def test_faces_are_the_prepared_crops_translated(translator, astronaut):
    result = translate_photo(translator, astronaut)
    prepared = prepare_faces(load_photo(astronaut), direction="A2B")
    assert result.size == tuple(prepared.size) and result.fallback == prepared.fallback
    assert len(result.faces) == len(prepared.faces) >= 1
    for got, face in zip(result.faces, prepared.faces):
        out, heat = translator.translate_with_heatmap(face.image)
        assert got.box == tuple(int(v) for v in face.box)
        assert _same(got.crop, face.image) and _same(got.translation, out) and _same(got.heatmap, heat)
    assert result.sheet is not None and result.sheet.width > result.sheet.height  # photo left, faces right
    assert not result.fallback and result.summary() == f"{len(result.faces)} face{'s' * (len(result.faces) > 1)} translated."


def test_whole_photo_without_face_preparation(translator, astronaut):
    result = translate_photo(translator, astronaut, find_faces=False)
    assert len(result.faces) == 1 and not result.fallback and "whole photo" in result.summary()
    assert result.faces[0].box == (0, 0, 512, 512)
    assert _same(result.faces[0].translation, translator.translate(load_photo(astronaut)))


def test_file_size_is_bounded(translator, astronaut, monkeypatch):
    monkeypatch.setattr(faces, "MAX_PHOTO_BYTES", 1000)
    with pytest.raises(PhotoError, match="limit"):
        translate_photo(translator, astronaut)


def test_photo_translator_directions(translator, astronaut):
    made = []
    only = PhotoTranslator(lambda d: made.append(d) or translator, ("A2B",))
    only(astronaut, False, "A2B")
    only(astronaut, False, "A2B")
    assert made == ["A2B"]  # made once, on first use
    with pytest.raises(ValueError, match="A2B only"):
        only(astronaut, False, "B2A")


def test_b2a_uses_the_centre_square_and_says_why(translator, astronaut):
    b2a = Translator(translator.run, translator.img_size, "B2A")
    result = translate_photo(b2a, astronaut)
    assert result.fallback and len(result.faces) == 1 and result.faces[0].box == (0, 0, 512, 512)
    assert "anime faces" in result.summary()
