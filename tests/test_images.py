"""Data pipeline: discovery, decoding, official transforms, bad files and reproducible sampling."""

from __future__ import annotations

import io
import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ugatit_paddle.data import (
    LAYOUT,
    BadImageWarning,
    DataError,
    ImageFolderDataset,
    StreamBatchSampler,
    augmentation_rng,
    build_train_loader,
    check_layout,
    epoch_permutation,
    find_images,
    iter_test_batches,
    load_rgb,
    eval_transform,
    train_transform,
)


def random_rgb(seed: int, height: int = 40, width: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_folder(folder: Path, count: int, size: tuple[int, int] = (40, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(random_rgb(i, *size)).save(path)
        paths.append(path)
    return paths


def expected_chw(image: Image.Image) -> np.ndarray:
    """ToTensor + Normalize(0.5, 0.5), computed independently in float64."""
    return (np.asarray(image, dtype=np.float64) / 255.0 * 2.0 - 1.0).transpose(2, 0, 1)


# --------------------------------------------------------------------------------------------
# Discovery and layout


def test_missing_and_empty_folders_explain_layout(tmp_path):
    with pytest.raises(DataError) as info:
        find_images(tmp_path / "trainA")
    assert str(tmp_path / "trainA") in str(info.value) and LAYOUT in str(info.value)

    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainB" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="contains no images") as info:
        find_images(tmp_path / "trainB")
    assert LAYOUT in str(info.value)

    with pytest.raises(DataError) as info:
        check_layout(tmp_path)
    message = str(info.value)
    assert "trainA' is missing" in message and "trainB' is empty" in message and "testB' is missing" in message


def test_check_layout_ok(tmp_path):
    for name in ("trainA", "trainB"):
        make_folder(tmp_path / name, 1)
    assert set(check_layout(tmp_path, ("trainA", "trainB"))) == {"trainA", "trainB"}


def test_find_images_recursive_case_insensitive(tmp_path):
    rgb = Image.fromarray(random_rgb(0))
    names = ["b.PNG", "a.jpg", "sub/c.JpEg", "sub/deeper/d.bmp", "e.webp", "f.TIF", "g.tiff"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF",
               ".tiff": "TIFF"}[Path(name).suffix.lower()]
        rgb.save(tmp_path / name, format=fmt)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "labels.json").write_text("{}")
    (tmp_path / "sub" / "image.png.bak").write_text("x")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    rgb.save(tmp_path / ".ipynb_checkpoints" / "h.png")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == sorted(names)


# --------------------------------------------------------------------------------------------
# Decoding to RGB


def test_rgb_is_unchanged(tmp_path):
    array = random_rgb(1)
    Image.fromarray(array).save(tmp_path / "x.png")
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / "x.png")), array)


def test_grayscale(tmp_path):
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = np.asarray(load_rgb(tmp_path / "g.png"))
    assert out.shape == (16, 16, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_palette_with_and_without_transparency(tmp_path):
    palette = [255, 0, 0, 0, 128, 255, 10, 20, 30] + [0] * (256 * 3 - 9)
    indices = np.array([[0, 1, 2, 1]], dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette)
    image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(
        np.asarray(load_rgb(tmp_path / "p.png"))[0], [[255, 0, 0], [0, 128, 255], [10, 20, 30], [0, 128, 255]]
    )
    image.info["transparency"] = 1  # palette entry 1 fully transparent -> white
    image.save(tmp_path / "pt.png", transparency=1)
    np.testing.assert_array_equal(
        np.asarray(load_rgb(tmp_path / "pt.png"))[0], [[255, 0, 0], [255, 255, 255], [10, 20, 30], [255, 255, 255]]
    )


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 100, 200, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = np.asarray(load_rgb(tmp_path / "a.png")).astype(int)[0]
    a = 128 / 255
    half = np.rint(np.array([0, 100, 200]) * a + 255 * (1 - a))
    np.testing.assert_array_equal(out, [[10, 20, 30], [255, 255, 255], half])

    la = np.array([[[50, 255], [50, 0]]], dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / "la.png"))[0], [[50] * 3, [255] * 3])


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    expected = np.rint(values / 257.0).astype(np.uint8)  # 0, 1, 4, 128, 255
    out = np.asarray(load_rgb(tmp_path / "g16.png"))
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 2], expected)

    Image.fromarray(values.astype(np.int32), "I").save(tmp_path / "g32.tif")  # mode "I"
    assert Image.open(tmp_path / "g32.tif").mode == "I"
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / "g32.tif"))[..., 1], expected)


# --------------------------------------------------------------------------------------------
# Transforms


def test_train_transform_matches_direct_pil(tmp_path):
    image = Image.fromarray(random_rgb(3, 50, 70))
    flips, tops = set(), set()
    for seed in range(40):
        out = train_transform(image, 32, np.random.default_rng(seed))
        assert out.shape == (3, 32, 32) and out.dtype == np.float32
        assert out.min() >= -1.0 and out.max() <= 1.0
        # the same draws, made by hand: flip, then top, then left
        rng = np.random.default_rng(seed)
        flip = rng.random() < 0.5
        top, left = int(rng.integers(0, 31)), int(rng.integers(0, 31))
        reference = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else image
        reference = reference.resize((62, 62), Image.Resampling.BILINEAR).crop((left, top, left + 32, top + 32))
        np.testing.assert_allclose(out, expected_chw(reference), rtol=0, atol=1e-6)
        flips.add(flip)
        tops.add(top)
    assert flips == {True, False} and len(tops) > 10


def test_test_transform_matches_direct_pil():
    image = Image.fromarray(random_rgb(4, 50, 70))
    out = eval_transform(image, 32)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    reference = image.resize((32, 32), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(out, expected_chw(reference), rtol=0, atol=1e-6)
    full = eval_transform(Image.fromarray(np.array([[[0, 255, 51]]], np.uint8)), 1)
    np.testing.assert_allclose(full[:, 0, 0], [-1.0, 1.0, -0.6], atol=1e-6)


def test_small_images_are_upscaled():
    tiny = Image.fromarray(random_rgb(5, 6, 9))
    assert train_transform(tiny, 32, np.random.default_rng(0)).shape == (3, 32, 32)
    assert eval_transform(tiny, 32).shape == (3, 32, 32)


# --------------------------------------------------------------------------------------------
# Bad files


def write_bad_files(folder: Path) -> tuple[Path, Path]:
    """A garbage .png (caught by the up-front scan) and a truncated .jpg (caught on load)."""
    garbage = folder / "img_01_garbage.png"
    garbage.write_bytes(b"this is not an image")
    buffer = io.BytesIO()
    Image.fromarray(random_rgb(9)).save(buffer, format="JPEG")
    truncated = folder / "img_02_truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return garbage, truncated


def test_corrupt_and_truncated_files_are_skipped_with_warnings(tmp_path):
    make_folder(tmp_path, 4)  # img_00 .. img_03
    garbage, truncated = write_bad_files(tmp_path)
    with pytest.warns(BadImageWarning, match="img_01_garbage.png"):
        dataset = ImageFolderDataset(tmp_path, 16, train=False)
    assert dataset.skipped == 1 and garbage not in dataset.paths and truncated in dataset.paths
    index = dataset.paths.index(truncated)
    with pytest.warns(BadImageWarning, match="img_02_truncated.jpg"):
        substitute = dataset[index]
    np.testing.assert_array_equal(substitute, dataset[index + 1])  # next readable item
    assert dataset.skipped == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known bad file is not decoded (nor warned about) again
        np.testing.assert_array_equal(dataset[index], substitute)

    with pytest.warns(BadImageWarning):
        train = ImageFolderDataset(tmp_path, 16, train=True, seed=1)
    with pytest.warns(BadImageWarning, match="truncated"):
        first = train[(index, 7)]
    np.testing.assert_array_equal(first, train[(index + 1, 7)])


def test_test_batches_skip_bad_files_and_keep_paths_aligned(tmp_path):
    good = make_folder(tmp_path, 4)
    write_bad_files(tmp_path)
    with pytest.warns(BadImageWarning):
        dataset = ImageFolderDataset(tmp_path, 16, train=False)
        batches = list(iter_test_batches(dataset, batch_size=2))
    assert [len(paths) for _, paths in batches] == [2, 2]
    assert [p for _, paths in batches for p in paths] == good
    images = np.concatenate([tensor.numpy() for tensor, _ in batches])
    assert images.shape == (4, 3, 16, 16)
    for image, path in zip(images, good):
        np.testing.assert_array_equal(image, eval_transform(load_rgb(path), 16))


def test_strict_raises_naming_the_file(tmp_path):
    make_folder(tmp_path, 2)
    garbage, truncated = write_bad_files(tmp_path)
    with pytest.raises(DataError, match="img_01_garbage.png"):
        ImageFolderDataset(tmp_path, 16, train=False, strict=True)
    garbage.unlink()
    dataset = ImageFolderDataset(tmp_path, 16, train=False, strict=True)
    with pytest.raises(DataError, match="img_02_truncated.jpg"):
        dataset[dataset.paths.index(truncated)]


def test_only_bad_files(tmp_path):
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.warns(BadImageWarning), pytest.raises(DataError, match="no readable images"):
        ImageFolderDataset(tmp_path, 16, train=False)


# --------------------------------------------------------------------------------------------
# Sampling


def take(sampler: StreamBatchSampler, count: int) -> list:
    return list(itertools.islice(iter(sampler), count))


def test_sampler_is_deterministic_and_walks_epochs():
    n, batch = 7, 3
    batches = take(StreamBatchSampler(n, batch, seed=4, domain_id=1), 10)
    assert batches == take(StreamBatchSampler(n, batch, seed=4, domain_id=1), 10)
    assert batches != take(StreamBatchSampler(n, batch, seed=4, domain_id=0), 10)  # domains independent
    assert batches != take(StreamBatchSampler(n, batch, seed=5, domain_id=1), 10)
    samples = [pair for b in batches for pair in b]
    assert [k for _, k in samples] == list(range(30))
    for epoch in range(4):
        items = [i for i, k in samples if k // n == epoch]
        assert items == list(epoch_permutation(4, 1, epoch, n)[: len(items)])
        if len(items) == n:
            assert sorted(items) == list(range(n))  # each epoch visits every item once


def test_sampler_resume_equals_skipping():
    full = take(StreamBatchSampler(5, 2, seed=0, domain_id=0), 12)
    for start in (0, 1, 3, 7):
        resumed = take(StreamBatchSampler(5, 2, seed=0, domain_id=0, start_iteration=start), 12 - start)
        assert resumed == full[start:]


def test_sampler_ranks_split_the_global_batch():
    single = take(StreamBatchSampler(9, 4, seed=2, domain_id=1), 6)
    rank0 = take(StreamBatchSampler(9, 2, seed=2, domain_id=1, rank=0, world_size=2), 6)
    rank1 = take(StreamBatchSampler(9, 2, seed=2, domain_id=1, rank=1, world_size=2), 6)
    assert [a + b for a, b in zip(rank0, rank1)] == single


def test_sampler_length_and_arguments():
    assert len(StreamBatchSampler(5, 1, 0, 0, start_iteration=3, stop_iteration=10)) == 7
    assert len(list(StreamBatchSampler(5, 1, 0, 0, start_iteration=3, stop_iteration=10))) == 7
    with pytest.raises(TypeError):
        len(StreamBatchSampler(5, 1, 0, 0))
    with pytest.raises(ValueError):
        StreamBatchSampler(5, 1, 0, 0, rank=2, world_size=2)


def test_augmentation_depends_only_on_sample_number(tmp_path):
    make_folder(tmp_path, 3)
    dataset = ImageFolderDataset(tmp_path, 16, train=True, seed=3, domain_id=1)
    image = load_rgb(dataset.paths[2])
    np.testing.assert_array_equal(dataset[(2, 11)], train_transform(image, 16, augmentation_rng(3, 1, 11)))
    np.testing.assert_array_equal(dataset[(2, 11)], dataset[(2, 11)])
    with pytest.raises(TypeError, match="sample_number"):
        dataset[2]


def loader_batches(folder: Path, count: int, **kwargs) -> list[np.ndarray]:
    options = dict(img_size=16, batch_size=2, seed=7, domain_id=0, num_workers=0, use_shared_memory=False)
    options.update(kwargs)
    loader = build_train_loader(folder, **options)
    return [batch.numpy() for batch in itertools.islice(loader, count)]


def test_loader_resume_and_world_size_equivalence(tmp_path):
    make_folder(tmp_path, 5)
    full = loader_batches(tmp_path, 6)
    assert full[0].shape == (2, 3, 16, 16) and full[0].dtype == np.float32
    resumed = loader_batches(tmp_path, 3, start_iteration=3)
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a, b)
    rank0 = loader_batches(tmp_path, 6, batch_size=1, world_size=2, rank=0)
    rank1 = loader_batches(tmp_path, 6, batch_size=1, world_size=2, rank=1)
    for whole, a, b in zip(full, rank0, rank1):
        np.testing.assert_array_equal(whole, np.concatenate([a, b]))


def test_loader_workers_do_not_change_batches(tmp_path):
    make_folder(tmp_path, 5)
    in_process = loader_batches(tmp_path, 8, stop_iteration=8)
    with_workers = loader_batches(tmp_path, 8, stop_iteration=8, num_workers=2)
    assert len(in_process) == len(with_workers) == 8
    for a, b in zip(in_process, with_workers):
        np.testing.assert_array_equal(a, b)
