"""Shared test fixtures (`tiny_config`, `data_root`, `golden_bundle`). Only `golden_bundle` touches ../shared (the official parity bundles); it skips
with a reason when that folder is absent, as in a user's clone."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures" / "official"
BUNDLES = ("light_128_ch8", "full_128_ch8")


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


@pytest.fixture
def tiny_config() -> Callable[..., dict]:
    """`tiny_config(tmp_path, section={key: value}, ...)`: a config dict for a tiny, fast model (img 128, ch 8,
    light, n_res 2) writing into `tmp_path`; keyword sections update the defaults."""
    return _tiny_config


os.environ.setdefault("FLAGS_call_stack_level", "0")
