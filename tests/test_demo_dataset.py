"""Procedural demo dataset: determinism, layout, idempotence and the domain scorer."""

from __future__ import annotations

import numpy as np
import pytest

from ugatit_paddle.data import check_layout, find_images
from ugatit_paddle.demo.dataset import CUES, DomainScorer, load_images, make_demo_dataset, render_image

SIZE = 64


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, n_train=80, n_test=20, size=SIZE, seed=0)
    return root


@pytest.fixture(scope="module")
def scorer(demo_root):
    return DomainScorer.from_folders(demo_root / "trainA", demo_root / "trainB")


def test_layout_and_counts(demo_root):
    folders = check_layout(demo_root)
    counts = {name: len(find_images(path)) for name, path in folders.items()}
    assert counts == {"trainA": 80, "trainB": 80, "testA": 20, "testB": 20}
    images = load_images(demo_root / "testB")
    assert images.shape == (20, SIZE, SIZE, 3) and images.dtype == np.uint8


def test_generation_is_deterministic(demo_root, tmp_path):
    np.testing.assert_array_equal(render_image("A", 0, 3, SIZE), render_image("A", 0, 3, SIZE))
    assert not np.array_equal(render_image("A", 0, 3, SIZE), render_image("A", 1, 3, SIZE))
    assert not np.array_equal(render_image("A", 0, 3, SIZE), render_image("A", 0, 3, SIZE, split="test"))
    make_demo_dataset(tmp_path, n_train=80, n_test=20, size=SIZE, seed=0)
    for folder in ("trainA", "testB"):
        np.testing.assert_array_equal(load_images(tmp_path / folder), load_images(demo_root / folder))


def test_idempotent_and_regenerates_when_incomplete(tmp_path):
    make_demo_dataset(tmp_path, n_train=3, n_test=2, size=32)
    first = tmp_path / "trainA" / "a_0000.png"
    stamp = first.stat().st_mtime_ns
    make_demo_dataset(tmp_path, n_train=3, n_test=2, size=32)
    assert first.stat().st_mtime_ns == stamp  # complete: nothing rewritten
    (tmp_path / "testB" / "b_0001.png").unlink()
    make_demo_dataset(tmp_path, n_train=3, n_test=2, size=32)
    assert (tmp_path / "testB" / "b_0001.png").is_file()
    make_demo_dataset(tmp_path, n_train=2, n_test=2, size=48)  # other arguments: rewritten
    assert load_images(tmp_path / "trainA").shape == (2, 48, 48, 3)  # no stale files left


def test_domains_differ_in_brightness_and_colour(demo_root):
    a = load_images(demo_root / "trainA").astype(float)
    b = load_images(demo_root / "trainB").astype(float)
    assert a.mean() > 150 > 80 > b.mean()  # light vs dark backgrounds
    # colourful pixels: blue-green (B > R) in A, orange-red (R > B) in B
    a_colourful = a[(a.max(-1) - a.min(-1)) > 60]
    b_colourful = b[(b.max(-1) - b.min(-1)) > 60]
    assert (a_colourful[:, 2] > a_colourful[:, 0]).mean() > 0.9
    assert (b_colourful[:, 0] > b_colourful[:, 2]).mean() > 0.9


def test_scorer_separates_domains(demo_root, scorer):
    test_a = load_images(demo_root / "testA")
    test_b = load_images(demo_root / "testB")
    assert scorer.score(test_a) < 0.2
    assert scorer.score(test_b) > 0.8
    probabilities = scorer.probabilities(test_a)
    assert probabilities.shape == (20,) and np.all((probabilities > 0) & (probabilities < 1))
    cues = scorer.cue_probabilities(test_b)
    assert set(cues) == set(CUES)
    np.testing.assert_allclose(np.mean(list(cues.values()), axis=0), scorer.probabilities(test_b))


def test_scorer_grades_partial_translations(demo_root, scorer):
    test_a = load_images(demo_root / "testA").astype(float)
    test_b = load_images(demo_root / "testB").astype(float)
    scores = [scorer.score(np.rint((1 - t) * test_a + t * test_b).astype(np.uint8)) for t in (0, 0.5, 1)]
    assert scores[0] < scores[1] < scores[2]
    flat_grey = np.full((4, SIZE, SIZE, 3), 128, np.uint8)  # a collapsed generator is not "B"
    assert scorer.score(flat_grey) < 0.5
    # any input resolution works (features are computed at a fixed size)
    assert scorer.probabilities(np.zeros((2, 100, 80, 3), np.uint8)).shape == (2,)
    with pytest.raises(ValueError, match="uint8"):
        scorer.score(np.zeros((2, SIZE, SIZE, 3), np.float32))
