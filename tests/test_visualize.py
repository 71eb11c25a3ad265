"""Pictures: tiles, heatmaps, the 7-tile strips and the sample sheets training writes."""

from __future__ import annotations

import numpy as np
import paddle
from PIL import Image

from ugatit_paddle.visualize import (
    heatmap_tile, image_tile, sample_images, sample_sheets, save_sample_sheets, translation_strips,
)

S = 8


class _ShiftGenerator(paddle.nn.Layer):
    """A stand-in generator: image + `shift` (clipped), a fixed CAM logit and a heatmap of ones."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x: paddle.Tensor):
        n = x.shape[0]
        return (x + self.shift).clip(-1, 1), paddle.zeros([n, 2]), paddle.ones([n, 1, S // 4, S // 4])


def test_image_tile_maps_minus_one_to_one_onto_uint8():
    x = np.stack([np.full((2, 2), v, np.float32) for v in (-1.0, 0.0, 1.0)])  # [3, 2, 2]
    tile = image_tile(x)
    assert tile.shape == (2, 2, 3) and tile.dtype == np.uint8
    assert tile[0, 0].tolist() == [0, 128, 255]


def test_heatmap_tile_is_resized_and_survives_a_constant_map():
    ramp = heatmap_tile(np.arange(4, dtype=np.float32).reshape(1, 2, 2), 16)
    assert ramp.shape == (16, 16, 3) and ramp.dtype == np.uint8 and len(np.unique(ramp.reshape(-1, 3), axis=0)) > 1
    flat = heatmap_tile(np.ones((1, 2, 2), np.float32), 16)
    assert (flat == flat[0, 0]).all()  # the colour of 0, not NaN garbage


def test_translation_strips_stack_the_seven_tiles():
    real = paddle.uniform([2, 3, S, S], min=-0.5, max=0.5, seed=0)
    strips = translation_strips(_ShiftGenerator(0.25), _ShiftGenerator(-0.5), real)
    assert len(strips) == 2 and strips[0].shape == (7 * S, S, 3)
    x = real.numpy()[1]
    np.testing.assert_array_equal(strips[1][:S], image_tile(x))  # real
    np.testing.assert_array_equal(strips[1][2 * S:3 * S], image_tile(np.clip(x - 0.5, -1, 1)))  # identity
    np.testing.assert_array_equal(strips[1][4 * S:5 * S], image_tile(np.clip(x + 0.25, -1, 1)))  # translation
    cycle = np.clip(np.clip(x + 0.25, -1, 1) - 0.5, -1, 1)
    np.testing.assert_allclose(strips[1][6 * S:].astype(int), image_tile(cycle).astype(int), atol=1)  # cycle


def test_sample_sheets_use_each_direction_s_generators(tmp_path):
    nets = {"genA2B": _ShiftGenerator(0.5), "genB2A": _ShiftGenerator(-0.5)}
    images = {"A": paddle.zeros([3, 3, S, S]), "B": paddle.zeros([2, 3, S, S])}
    sheets = sample_sheets(nets, images)
    assert set(sheets) == {"A2B", "B2A"}
    assert sheets["A2B"].shape == (7 * S, 3 * S, 3) and sheets["B2A"].shape == (7 * S, 2 * S, 3)
    translation = slice(4 * S, 5 * S)
    assert (sheets["A2B"][translation] == image_tile(np.full((3, 1, 1), 0.5, np.float32))[0, 0]).all()
    assert (sheets["B2A"][translation] == image_tile(np.full((3, 1, 1), -0.5, np.float32))[0, 0]).all()
    paths = save_sample_sheets(sheets, tmp_path / "samples", 42)
    assert [p.name for p in paths] == ["A2B_0000042.png", "B2A_0000042.png"]
    assert Image.open(paths[1]).size == (2 * S, 7 * S)


def test_sample_images_take_the_first_readable_train_and_test_images(tmp_path):
    rng = np.random.default_rng(0)
    folders = {}
    for split in ("train", "test"):
        for d in "AB":
            folder = folders[f"{split}{d}"] = tmp_path / f"{split}{d}"
            folder.mkdir()
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folders["trainA"] / "0.png").write_bytes(b"not an image")  # skipped, the next one taken
    images = sample_images(folders, count=2, size=S)
    assert images["A"].shape == (4, 3, S, S) and images["B"].shape == (4, 3, S, S)
    assert images["A"].dtype == np.float32 and images["A"].min() >= -1 and images["A"].max() <= 1
    expected_first = np.asarray(Image.open(folders["trainA"] / "1.png").resize((S, S), Image.Resampling.BILINEAR))
    np.testing.assert_allclose((images["A"][0].transpose(1, 2, 0) + 1) * 127.5, expected_first, atol=0.5)
