"""Translating images: tools/test.py on a test set, tools/predict.py on files/folders/globs, the Translator API."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.formats import checkpoint
from ugatit_paddle.formats.official import convert_file, to_official
from ugatit_paddle.data import load_rgb
from ugatit_paddle.demo.dataset import make_demo_dataset
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.formats.torch_writer import save_torch
from ugatit_paddle.models import build_networks
from ugatit_paddle.inference.translate import Translator, collect_inputs, output_names
from ugatit_paddle.data import eval_transform
from ugatit_paddle.inference import faces
from ugatit_paddle.inference.faces import load_photo, prepare_faces
from ugatit_paddle.visualize import SHEET_TILE, image_tile

from helpers.photos import FACE, box_near, save_sideways

ROOT = Path(__file__).resolve().parents[1]
ARGS = ModelConfig(img_size=128, ch=8, n_res=1, light=True)
S = ARGS.img_size



def _states() -> dict[str, dict[str, np.ndarray]]:
    paddle.seed(1)
    return {n: {k: v.numpy() for k, v in net.state_dict().items()} for n, net in build_networks(ARGS).items()}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A run folder with a 0-iteration checkpoint and a tiny dataset (sub-folder, name clash, broken file)."""
    root = tmp_path_factory.mktemp("work")
    checkpoint.save_model(checkpoint.checkpoint_path(root / "out", 0), ARGS, _states())
    make_demo_dataset(root / "data", n_train=1, n_test=2, size=64)
    test_a = root / "data" / "testA"
    (test_a / "sub").mkdir()
    load_rgb(test_a / "a_0000.png").resize((80, 50)).save(test_a / "sub" / "wide.png")
    load_rgb(test_a / "a_0001.png").save(test_a / "a_0000.jpg", quality=95)  # a_0000.png and a_0000.jpg
    (test_a / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def _image(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# ------------------------------------------------------------------------------------------ tools/test.py
def test_test_tool_writes_strips_and_translations_named_after_inputs(work, run_tool):
    out = work / "out" / "test"
    run = run_tool("test", "-o", f"output_dir={work / 'out'}", "-o", f"data.root={work / 'data'}", "--batch-size", "2")
    assert run.returncode == 0, run.stderr
    assert "iter_0000000.pdparams" in run.stdout
    assert "A2B: translated 4 images" in run.stdout and "skipped 1 unreadable" in run.stdout
    assert "B2A: translated 2 images" in run.stdout and str(out / "B2A") in run.stdout
    expected_a = {"a_0000_png.png", "a_0000_jpg.png", "a_0001.png", "sub/wide.png"}  # clash resolved, sub-folder kept
    written = {p.relative_to(out / "A2B").as_posix() for p in (out / "A2B").rglob("*.png")}
    assert written == expected_a | {f"strips/{n}" for n in expected_a}
    assert {p.name for p in (out / "B2A").glob("*.png")} == {"b_0000.png", "b_0001.png"}

    translator = Translator.from_checkpoint(checkpoint.latest_checkpoint(work / "out"), "A2B")
    for name, source in (("a_0001.png", "a_0001.png"), ("sub/wide.png", "sub/wide.png"),
                         ("a_0000_jpg.png", "a_0000.jpg")):
        strip, plain = _image(out / "A2B" / "strips" / name), _image(out / "A2B" / name)
        assert strip.shape == (7 * S, S, 3) and plain.shape == (S, S, 3)
        assert np.array_equal(plain, strip[4 * S:5 * S])  # the translation tile
        assert np.array_equal(strip[:S], _real_tile(work / "data" / "testA" / source))  # the input, resized
        api = np.asarray(translator.translate(load_rgb(work / "data" / "testA" / source)))
        assert np.abs(api.astype(int) - plain).max() <= 1  # batch 2 vs batch 1: rounding at most


def _real_tile(path: Path) -> np.ndarray:
    return image_tile(eval_transform(load_rgb(path), S))


def test_test_tool_errors(work, tmp_path, capsys, load_tool):
    test = load_tool("test")
    assert test.main(["-o", f"output_dir={tmp_path / 'empty'}", "-o", f"data.root={work / 'data'}"]) == 1
    assert "no checkpoint in" in capsys.readouterr().err
    only_a2b = checkpoint.save_model(tmp_path / "a2b.pdparams", ARGS, {"genA2B": _states()["genA2B"]})
    assert test.main(["-o", f"data.root={work / 'data'}", "--checkpoint", str(only_a2b)]) == 1
    assert "has no weights for genB2A" in capsys.readouterr().err
    assert test.main(["--checkpoint", str(tmp_path / "missing.pdparams")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert test.main(["-o", "model.nope=1"]) == 2


# --------------------------------------------------------------------------------------- tools/predict.py
@pytest.fixture(scope="module")
def inputs(work) -> Path:
    """in/{x.png, sub/y.jpg, broken.png, notes.txt} and glob/{g1.png, g2.png}; x is 100 x 60."""
    root = work / "inputs"
    (root / "in" / "sub").mkdir(parents=True)
    (root / "glob").mkdir()
    source = load_rgb(work / "data" / "testA" / "a_0000.png")
    source.resize((100, 60)).save(root / "in" / "x.png")
    source.save(root / "in" / "sub" / "y.jpg")
    (root / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (root / "in" / "notes.txt").write_text("not an image")
    for name in ("g1.png", "g2.png"):
        source.rotate(90).save(root / "glob" / name)
    return root


def test_predict_files_folders_globs_skips_unreadable(work, inputs, tmp_path, load_tool, run_tool):
    ckpt = checkpoint.latest_checkpoint(work / "out")
    out = tmp_path / "pred"
    run = run_tool("predict", "--checkpoint", str(ckpt), "--input", str(inputs / "in"), str(inputs / "glob" / "*.png"),
                   str(inputs / "in" / "x.png"), "--output", str(out), "--keep-size", "--heatmap", "--batch-size", "2")
    assert run.returncode == 0, run.stderr
    broken = inputs / "in" / "broken.png"
    assert f"translated 4 images, skipped 1 unreadable: {broken}" in run.stdout
    assert f"skipping unreadable image {broken}" in run.stderr and "Traceback" not in run.stderr
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == {"x.png", "x_heatmap.png", "sub/y.png", "sub/y_heatmap.png", "g1.png", "g1_heatmap.png",
                       "g2.png", "g2_heatmap.png"}
    assert Image.open(out / "x.png").size == (100, 60) and Image.open(out / "x_heatmap.png").size == (100, 60)
    assert Image.open(out / "sub" / "y.png").size == (64, 64)

    predict = load_tool("predict")  # without --keep-size: the model's size, and jpg output
    assert predict.main(["--checkpoint", str(ckpt), "--input", str(inputs / "in" / "x.png"), "--output",
                         str(tmp_path / "plain"), "--format", "jpg"]) == 0
    assert Image.open(tmp_path / "plain" / "x.jpg").size == (S, S)
    assert not (tmp_path / "plain" / "x_heatmap.jpg").exists()


def test_predict_errors(work, inputs, tmp_path, capsys, load_tool):
    predict = load_tool("predict")
    ckpt = str(checkpoint.latest_checkpoint(work / "out"))
    assert predict.main(["--checkpoint", ckpt, "--input", str(inputs / "nothing*.png"), "--output", str(tmp_path)]) == 1
    assert "no images match" in capsys.readouterr().err
    assert predict.main(["--checkpoint", ckpt, "--input", str(inputs / "missing.png"), "--output", str(tmp_path)]) == 1
    assert "is not a file, a folder or a glob" in capsys.readouterr().err
    broken = str(inputs / "in" / "broken.png")
    assert predict.main(["--checkpoint", ckpt, "--input", broken, "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "skipping unreadable image" in err and "no readable images" in err
    assert predict.main(["--checkpoint", str(tmp_path / "no.pdparams"), "--input", str(inputs / "glob"),
                         "--output", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    only_b2a = checkpoint.save_model(tmp_path / "b2a.pdparams", ARGS, {"genB2A": _states()["genB2A"]})
    assert predict.main(["--checkpoint", str(only_b2a), "--input", str(inputs / "glob"),
                         "--output", str(tmp_path)]) == 1
    assert "has no weights for genA2B" in capsys.readouterr().err
    assert predict.main(["--checkpoint", str(only_b2a), "--direction", "B2A", "--input", str(inputs / "glob"),
                         "--output", str(tmp_path / "b2a")]) == 0
    assert "translated 2 images (B2A)" in capsys.readouterr().out


def test_collect_inputs_names(inputs):
    found = collect_inputs([inputs / "in", str(inputs / "glob" / "*.png"), inputs / "in" / "x.png",
                            str(inputs / "**" / "g1.png")])
    assert [name.as_posix() for _, name in found] == ["broken.png", "sub/y.jpg", "x.png", "g1.png", "g2.png"]


def test_output_names_resolve_collisions():
    names = output_names([PurePosixPath(p) for p in ("a.jpg", "a.png", "b.png", "s/b.png", "b.webp", "c.PNG", "c.png")])
    assert [n.as_posix() for n in names] == ["a_jpg.png", "a_png.png", "b_png.png", "s/b.png", "b_webp.png",
                                             "c.png", "c_2.png"]


# ----------------------------------------------------------------------------------------- Translator API
def test_translator_api_pil_numpy_and_batch_agree(work):
    translator = Translator.from_checkpoint(checkpoint.latest_checkpoint(work / "out"), direction="B2A", batch_size=2)
    assert translator.direction == "B2A" and translator.img_size == S
    pil = load_rgb(work / "data" / "testB" / "b_0000.png").resize((90, 70))
    array = np.asarray(pil)
    single = translator.translate(pil)
    assert single.size == (S, S) and single.mode == "RGB"
    assert np.array_equal(np.asarray(translator.translate(array)), np.asarray(single))
    batch = translator.translate_batch([pil, load_rgb(work / "data" / "testB" / "b_0001.png"), array])
    assert len(batch) == 3 and np.abs(np.asarray(batch[0]).astype(int) - np.asarray(batch[2])).max() == 0
    assert np.abs(np.asarray(batch[0]).astype(int) - np.asarray(single)).max() <= 1
    kept, heat = translator.translate_with_heatmap(pil, keep_size=True)
    assert kept.size == heat.size == (90, 70)
    assert np.array_equal(np.asarray(kept), np.asarray(translator.translate(pil, keep_size=True)))
    pairs = translator.translate_batch_with_heatmaps([array], keep_size=False)
    assert pairs[0][1].size == (S, S) and np.array_equal(np.asarray(pairs[0][0]), np.asarray(single))
    with pytest.raises(ValueError, match=r"uint8 array of shape \[H, W, 3\]"):
        translator.translate(array.astype(np.float32))
    with pytest.raises(ValueError, match="direction must be one of"):
        Translator.from_checkpoint(checkpoint.latest_checkpoint(work / "out"), direction="A2A")


def test_translator_on_a_converted_official_light_checkpoint(tmp_path, work):
    """convert_torch's output has networks only and a light model defaults to img_size 256."""
    official = tmp_path / "official.pt"
    save_torch(to_official(_states()), official)
    convert_file(str(official), str(tmp_path / "converted.pdparams"))
    translator = Translator.from_checkpoint(tmp_path / "converted.pdparams")
    assert translator.img_size == 256
    image = load_rgb(work / "data" / "testA" / "a_0000.png")
    assert translator.translate(image).size == (256, 256)
    assert translator.translate(image, keep_size=True).size == (64, 64)


@pytest.mark.parametrize("stored", ["float16", "float64"])
def test_predict_with_a_halved_or_float64_official_checkpoint(tmp_path, work, stored, load_tool, run_tool):
    """An official checkpoint shared in float16 (or saved in float64) converts keeping its dtype, and
    tools/predict.py translates with it (weights cast to float32 on load, said in one line)."""
    official = tmp_path / f"official_{stored}.pt"
    save_torch({n: {k: v.astype(stored) for k, v in s.items()} for n, s in to_official(_states()).items()}, official)
    converted = tmp_path / "converted.pdparams"
    convert_file(str(official), str(converted), img_size=S)
    run = run_tool("predict", "--checkpoint", str(converted), "--input", str(work / "data" / "testA" / "a_0001.png"),
                   "--output", str(tmp_path / "pred"))
    assert run.returncode == 0, run.stderr
    assert f"stores {stored} weights; loaded as float32" in run.stderr and "Traceback" not in run.stderr
    assert Image.open(tmp_path / "pred" / "a_0001.png").size == (S, S)
    assert load_tool("predict").main(["--checkpoint", str(checkpoint.latest_checkpoint(work / "out")), "--input",
                                  str(work / "data" / "testA" / "a_0001.png"), "--output", str(tmp_path / "ref")]) == 0
    diff = np.abs(_image(tmp_path / "pred" / "a_0001.png").astype(int) - _image(tmp_path / "ref" / "a_0001.png"))
    # same float32 weights: a level at most (float32 rounding across processes); float16-rounded ones: one more
    assert diff.max() <= (2 if stored == "float16" else 1)


# ------------------------------------------------------------------------------------ tools/predict.py --face
@pytest.fixture(scope="module")
def photos(work) -> Path:
    """photos/{astronaut.png, phone.jpg (512 x 400 stored sideways, EXIF), chelsea.png (a cat), two.png (two
    astronauts)} made from scikit-image's pictures."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the dev extra) ships the test photos")
    root = work / "photos"
    root.mkdir()
    astronaut = Image.fromarray(skimage_data.astronaut())
    astronaut.save(root / "astronaut.png")
    save_sideways(astronaut.crop((0, 0, 512, 400)), root / "phone.jpg")
    Image.fromarray(skimage_data.chelsea()).save(root / "chelsea.png")
    two = Image.new("RGB", (512 + 384, 512), (200, 200, 200))
    two.paste(astronaut.resize((384, 384), Image.Resampling.BILINEAR), (512, 128))
    two.paste(astronaut, (0, 0))
    two.save(root / "two.png")
    return root


def test_predict_face_writes_each_face_faces_json_and_sheets(work, photos, tmp_path, load_tool, capsys):
    ckpt = checkpoint.latest_checkpoint(work / "out")
    out = tmp_path / "faces"
    assert load_tool("predict").main(["--checkpoint", str(ckpt), "--input", str(photos), "--output", str(out),
                                      "--face", "--heatmap", "--face-sheet"]) == 0
    captured = capsys.readouterr()
    assert "translated 5 faces of 4 photos, the centre square of 1 without a face (A2B)" in captured.out
    assert f"{photos / 'chelsea.png'}: no face found: the centre square is used" in captured.err
    written = {p.name for p in out.iterdir()}
    face_names = ["astronaut_face1", "phone_face1", "chelsea_face1", "two_face1", "two_face2"]
    sheets = {f"{stem}_face_sheet.png" for stem in ("astronaut", "phone", "chelsea", "two")}
    assert written == ({f"{f}.png" for f in face_names} | {f"{f}_heatmap.png" for f in face_names} | sheets
                       | {"faces.json"})

    records = json.loads((out / "faces.json").read_text())
    assert set(records) == {"astronaut.png", "phone.jpg", "chelsea.png", "two.png"}
    second = tuple(v * 0.75 + o for v, o in zip(FACE, (512, 128, 0, 0)))  # the smaller astronaut of two.png
    for name, size, boxes in (("astronaut.png", [512, 512], [FACE]), ("phone.jpg", [512, 400], [FACE]),
                              ("two.png", [896, 512], [FACE, second])):
        record = records[name]
        assert record["size"] == size and record["fallback"] is False  # phone.jpg: pixels after EXIF orientation
        assert len(record["faces"]) == len(boxes)
        for face, box in zip(record["faces"], boxes):
            assert box_near(face["box"], box), (name, face["box"], box)
            assert len(face["crop"]) == 4 and (out / face["output"]).is_file()
    assert records["chelsea.png"]["fallback"] is True
    assert records["chelsea.png"]["faces"][0]["box"] == [75, 0, 300, 300]  # the centre square of 451 x 300

    # what the page does (prepare_faces, then translate_with_heatmap on each face) gives the same pictures
    translator = Translator.from_checkpoint(ckpt)
    face = prepare_faces(load_photo(photos / "phone.jpg")).faces[0]
    page, heat = translator.translate_with_heatmap(face.image)
    assert page.size == (S, S)
    assert np.abs(np.asarray(page).astype(int) - _image(out / "phone_face1.png")).max() <= 1
    assert np.abs(np.asarray(heat).astype(int) - _image(out / "phone_face1_heatmap.png")).max() <= 1
    sheet = Image.open(out / "two_face_sheet.png")
    assert sheet.height == 2 * SHEET_TILE and sheet.width > 3 * SHEET_TILE  # photo, crop, translation, heatmap


def test_predict_face_strict_and_max_faces(work, photos, tmp_path, load_tool, capsys):
    predict = load_tool("predict")
    ckpt = str(checkpoint.latest_checkpoint(work / "out"))
    out = tmp_path / "strict"
    assert predict.main(["--checkpoint", ckpt, "--input", str(photos / "two.png"), str(photos / "chelsea.png"),
                         "--output", str(out), "--face", "--face-strict", "--max-faces", "1", "--format", "jpg"]) == 0
    captured = capsys.readouterr()
    assert f"skipped 1 without a face: {photos / 'chelsea.png'}" in captured.out
    assert f"{photos / 'chelsea.png'}: no face found: skipped (strict)" in captured.err
    assert {p.name for p in out.iterdir()} == {"two_face1.jpg", "faces.json"}
    records = json.loads((out / "faces.json").read_text())
    assert records["chelsea.png"] == {"size": [451, 300], "fallback": False, "faces": []}
    assert [f["output"] for f in records["two.png"]["faces"]] == ["two_face1.jpg"]
    assert box_near(records["two.png"]["faces"][0]["box"], FACE)  # the larger face

    # a second run into the same folder keeps the first one's entries; a name given twice gets "_2"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "astronaut.png").write_bytes((photos / "two.png").read_bytes())
    assert predict.main(["--checkpoint", ckpt, "--input", str(photos / "astronaut.png"),
                         str(tmp_path / "other" / "astronaut.png"), "--output", str(out), "--face"]) == 0
    records = json.loads((out / "faces.json").read_text())
    assert set(records) == {"two.png", "chelsea.png", "astronaut.png", "astronaut_2.png"}
    assert records["astronaut.png"]["size"] == [512, 512] and records["astronaut_2.png"]["size"] == [896, 512]
    assert [f["output"] for f in records["astronaut_2.png"]["faces"]] == ["astronaut_2_face1.png",
                                                                          "astronaut_2_face2.png"]
    assert predict.main(["--checkpoint", ckpt, "--input", str(photos / "chelsea.png"), "--output", str(tmp_path / "x"),
                         "--face", "--face-strict"]) == 1
    assert "no faces found" in capsys.readouterr().err

    # B2A: the centre square, said once
    assert predict.main(["--checkpoint", ckpt, "--direction", "B2A", "--input", str(photos / "two.png"),
                         str(photos / "astronaut.png"), "--output", str(tmp_path / "b2a"), "--face"]) == 0
    assert capsys.readouterr().err.count("do not find anime faces") == 1
    assert json.loads((tmp_path / "b2a" / "faces.json").read_text())["two.png"]["faces"][0]["box"] == [192, 0, 512, 512]

    for wrong in (["--max-faces", "1"], ["--face-sheet"], ["--face", "--max-faces", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            predict.main(["--checkpoint", ckpt, "--input", str(photos), "--output", str(tmp_path), *wrong])
        assert exit_info.value.code == 2


def test_predict_applies_exif_orientation_and_bounds_photos(work, photos, tmp_path, load_tool, capsys, monkeypatch):
    """Without --face too: phone.jpg is stored 400 x 512 and shown 512 x 400. A photo over the pixel limit is
    skipped with a warning naming it."""
    ckpt = str(checkpoint.latest_checkpoint(work / "out"))
    predict = load_tool("predict")
    assert predict.main(["--checkpoint", ckpt, "--input", str(photos / "phone.jpg"), "--output", str(tmp_path),
                         "--keep-size"]) == 0
    assert Image.open(tmp_path / "phone.png").size == (512, 400)
    monkeypatch.setattr(faces, "MAX_PHOTO_PIXELS", 512 * 400 - 1)
    assert predict.main(["--checkpoint", ckpt, "--input", str(photos / "phone.jpg"), "--output",
                         str(tmp_path / "big"), "--face"]) == 1
    err = capsys.readouterr().err
    assert f"skipping unreadable image {photos / 'phone.jpg'}" in err and "more than the limit of" in err
