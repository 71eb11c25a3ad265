"""Shared test fixtures: `tiny_config`, `data_root`, `assert_same`, `load_tool`, `run_tool`,
`small_train`, `wait_for`, and the parity bundles: `golden_bundle` runs over the official bundles of the
repository (tests/fixtures, always present) and then those of ../shared; the ones of ../shared (also
`shared_bundle`, `tf_bundle`) skip with a reason when that folder is absent, as in a user's clone."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ugatit_paddle.demo.dataset import make_demo_dataset

ROOT = Path(__file__).resolve().parents[1]

REPO_FIXTURES = ROOT / "tests" / "fixtures"
REPO_BUNDLES = tuple(sorted(p.name for p in REPO_FIXTURES.iterdir() if (p / "reference.json").is_file()))
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
OFFICIAL_BUNDLES = ("light_128_ch8", "full_128_ch8", "full_112_ch4_f64", "light_96_ch6_b2_f64")
TF_BUNDLES = ("full_64_ch8", "light_96_ch8")


def _shared_bundle(source: str, name: str) -> Path:
    """../shared/fixtures/<source>/<name>, a parity bundle recorded with the official, TF or PaddleGAN code;
    skips the test when it is absent."""
    path = SHARED_FIXTURES / source / name
    if not (path / "reference.json").is_file():
        pytest.skip(f"{source} parity bundle {path} not present (only in the project's shared fixtures)")
    return path


@pytest.fixture
def shared_bundle() -> Callable[[str, str], Path]:
    """`shared_bundle(source, name)`: the path of one shared parity bundle (skips the test when absent)."""
    return _shared_bundle


def repo_bundle(name: str) -> Path:
    """tests/fixtures/<name>, a parity bundle of the repository (recorded with tools/record_bundle.py)."""
    return REPO_FIXTURES / name


@pytest.fixture(params=[f"repo/{n}" for n in REPO_BUNDLES] + [f"shared/{n}" for n in OFFICIAL_BUNDLES])
def golden_bundle(request: pytest.FixtureRequest) -> Path:
    """Each parity bundle recorded with the official PyTorch code: the repository's, then ../shared's (skipped
    when absent)."""
    where, name = request.param.split("/")
    return repo_bundle(name) if where == "repo" else _shared_bundle("official", name)


@pytest.fixture(params=TF_BUNDLES)
def tf_bundle(request: pytest.FixtureRequest) -> Path:
    """Each parity bundle recorded with the official TensorFlow code."""
    return _shared_bundle("tf", request.param)


def _load_tool(name: str) -> ModuleType:
    """The command behind tools/<name>.py (`ugatit_paddle.commands.<name>`), to call its `main(argv)` in-process."""
    return importlib.import_module(f"ugatit_paddle.commands.{name}")


def _tool_command(name: str) -> list[str]:
    """The command line that runs tools/<name>.py with this Python."""
    return [sys.executable, str(ROOT / "tools" / f"{name}.py")]


def _run_tool(name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600
              ) -> subprocess.CompletedProcess:
    """`python tools/<name>.py ARGS` in a fresh process from the project folder, output captured as text."""
    return subprocess.run(_tool_command(name) + [str(a) for a in args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _small_train(out: Path, data: Path, iterations: int, *extra: str) -> list[str]:
    """The command line of a `tools/train.py` run of a 64 px model with shallow discriminators (about 0.3 s per
    iteration on 2 cores) writing into `out`; `extra` arguments are appended."""
    settings = {"output_dir": out, "data.root": data, "model.img_size": 64, "model.ch": 4, "model.n_res": 1,
                "model.light": "true", "model.global_layers": 5, "model.local_layers": 3, "data.num_workers": 0,
                "train.iterations": iterations, "train.save_every": 1000, "train.sample_every": 1,
                "train.sample_count": 1}
    return _tool_command("train") + [a for k, v in settings.items() for a in ("-o", f"{k}={v}")] + list(extra)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until `path` exists, failing if `proc` ends first or `timeout` seconds pass."""
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.fixture
def small_train() -> Callable[..., list[str]]:
    """`small_train(out, data, iterations, *extra)`: the command line of a tiny, fast training run."""
    return _small_train


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """`wait_for(path, proc, timeout=120)`: wait for a file a child process writes (see `_wait_for`)."""
    return _wait_for


@pytest.fixture
def load_tool() -> Callable[[str], ModuleType]:
    """`load_tool(name)`: tools/<name>.py as a module (call its `main(argv)` in-process)."""
    return _load_tool


@pytest.fixture
def run_tool() -> Callable[..., subprocess.CompletedProcess]:
    """`run_tool(name, *args, env=None, timeout=600)`: run tools/<name>.py in a fresh process (see `_run_tool`)."""
    return _run_tool


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny procedural unpaired dataset (6 train + 2 test images per domain, 64 px), made once per run."""
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


_READS = ("numpy", "item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__array__")


@pytest.fixture
def device_reads(monkeypatch) -> list[str]:
    """Every device-to-host read of a tensor from here on, by method name (a read made inside another, such as
    `float(t)` calling `t.numpy()`, counts once)."""
    import paddle

    reads: list[str] = []
    depth = [0]

    def counting(name, original):
        def method(self, *args, **kwargs):
            if depth[0] == 0:
                reads.append(name)
            depth[0] += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
        return method

    for name in _READS:
        if hasattr(paddle.Tensor, name):
            monkeypatch.setattr(paddle.Tensor, name, counting(name, getattr(paddle.Tensor, name)))
    return reads
