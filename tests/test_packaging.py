"""The package (pyproject.toml): every sub-package and the configs in the wheel, a console script for every tool,
`pip install .` importable from any folder, and the installed scripts working outside the clone."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCRIPTS = PROJECT["project"]["scripts"]
TOOLS = sorted(p.stem for p in (ROOT / "tools").glob("*.py") if not p.stem.startswith("_"))


def test_every_sub_package_is_packaged():
    found = {"ugatit_paddle"} | {f"ugatit_paddle.{p.parent.name}" for p in (ROOT / "ugatit_paddle").glob("*/__init__.py")}
    assert set(PROJECT["tool"]["setuptools"]["packages"]) == found | {"ugatit_paddle.configs"}


def test_every_tool_is_a_console_script_of_its_command():
    targets = {target.split(":")[0].rsplit(".", 1)[1] for target in SCRIPTS.values()}
    assert targets == set(TOOLS)
    for name in TOOLS:
        shim = (ROOT / "tools" / f"{name}.py").read_text(encoding="utf-8")
        assert f"from ugatit_paddle.commands.{name} import main" in shim


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_command_has_help(script, capsys):
    module, function = SCRIPTS[script].split(":")
    with pytest.raises(SystemExit) as exit_:
        getattr(importlib.import_module(module), function)(["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


def test_wheel_installs_and_imports_from_any_folder(tmp_path):
    """`pip install .`: the wheel built from this clone, installed into an empty folder, imported from `/`."""
    source = tmp_path / "clone"  # a copy, so that the build's own folders stay out of the clone
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "work", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("ugatit_paddle-*.whl")
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    probe = ("import ugatit_paddle, ugatit_paddle.commands.predict\n"
             "from ugatit_paddle.config import load_config\n"
             "print(ugatit_paddle.__file__)\n"
             "print(load_config('configs/selfie2anime_light.yaml').model.light)\n")
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    module_file, light = run.stdout.split()
    assert Path(module_file).is_relative_to(target) and light == "True"
    assert run.stderr == ""  # no notice of Paddle's at import through the commands


@pytest.mark.skipif(shutil.which("ugatit-predict") is None, reason="the package is not installed (pip install -e .)")
def test_installed_script_runs_outside_the_clone():
    run = subprocess.run(["ugatit-predict", "--help"], cwd="/", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("usage: ugatit-predict"), run.stderr
    assert run.stderr == ""
    assert importlib.metadata.version("ugatit-paddle") == importlib.import_module("ugatit_paddle").__version__


def test_images_decode_after_importing_the_package_and_paddle(tmp_path):
    """On Paddle 2.6, importing paddle before Pillow's decoders breaks every PNG read; the package loads them first."""
    png = tmp_path / "x.png"
    probe = ("import ugatit_paddle, paddle\n"
             "from PIL import Image\n"
             f"Image.new('RGB', (8, 8), (1, 2, 3)).save({str(png)!r})\n"
             f"print(Image.open({str(png)!r}).convert('RGB').getpixel((0, 0)))\n")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.split("\n")[-2] == "(1, 2, 3)", run.stderr[-2000:]
