"""Shared test fixtures (`tiny_config`, `data_root`, `golden_bundle`). Only `golden_bundle` touches ../shared (the official parity bundles); it skips
with a reason when that folder is absent, as in a user's clone."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures" / "official"
BUNDLES = ("light_128_ch8", "full_128_ch8", "full_112_ch4_f64", "light_96_ch6_b2_f64")


@pytest.fixture(params=BUNDLES)
def golden_bundle(request: pytest.FixtureRequest) -> Path:
    path = SHARED_FIXTURES / request.param
    if not (path / "reference.json").is_file():
        pytest.skip(f"golden parity bundle {path} not present (only in the project's shared fixtures)")
    return path


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny procedural unpaired dataset (6 train + 2 test images per domain, 64 px), made once per run."""
    from ugatit_paddle.demo.dataset import make_demo_dataset

    root = tmp_path_factory.mktemp("data")
    make_demo_dataset(root, n_train=6, n_test=2, size=64)
    return root


def _tiny_config(tmp_path: Path, **sections: dict) -> dict:
    """A config dict for a tiny, fast model (img 128, ch 8, light, n_res 2) writing into tmp_path."""
    cfg = {"output_dir": str(tmp_path / "out"),
           "model": {"img_size": 128, "ch": 8, "n_res": 2, "light": True},
           "data": {"root": str(tmp_path / "data"), "num_workers": 0},
           "train": {"iterations": 4, "save_every": 2, "sample_every": 2, "log_every": 1, "sample_count": 1}}
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values) if isinstance(values, dict) else cfg.update({name: values})
    return cfg


def _assert_same(a: object, b: object, torch_file: bool = False, path: str = "obj") -> None:
    """Exact structural equality of `a` (loaded) and `b` (expected); ndarrays compared by dtype, shape and value.
    `torch_file`: `a` was read from a torch file, where numpy scalars are stored as 0-d tensors and every array
    comes back C-contiguous."""
    if torch_file and isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and a.flags.c_contiguous, path
    if torch_file and isinstance(b, np.generic):
        b = np.asarray(b)
        assert isinstance(a, np.ndarray) and a.shape == (), path
    assert type(a) is type(b), (path, type(a), type(b))
    if isinstance(b, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), (path, a.dtype, b.dtype)
    elif isinstance(b, dict):
        assert list(a) == list(b), path
        for k in b:
            _assert_same(a[k], b[k], torch_file, f"{path}[{k!r}]")
    elif isinstance(b, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, torch_file, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.fixture
def assert_same() -> Callable[..., None]:
    """`assert_same(loaded, expected, torch_file=False)`: exact structural equality of nested containers and
    arrays (see `_assert_same`)."""
    return _assert_same


@pytest.fixture
def tiny_config() -> Callable[..., dict]:
    """`tiny_config(tmp_path, section={key: value}, ...)`: a config dict for a tiny, fast model (img 128, ch 8,
    light, n_res 2) writing into `tmp_path`; keyword sections update the defaults."""
    return _tiny_config


os.environ.setdefault("FLAGS_call_stack_level", "0")
