"""The page: which model it picks, and the page itself in a real browser (headless Chromium driven by Selenium):
upload the astronaut photo, press Translate, and the face translation shown equals `predict.py --face` on the
same file within 2/255. Skipped, with the reason, only outside CI when Gradio or Chromium is missing."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.app import NoModelError, default_model
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.formats import checkpoint
from ugatit_paddle.models import build_networks

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000")


def astronaut() -> Path:
    skimage = pytest.importorskip("skimage")
    return Path(skimage.__file__).parent / "data" / "astronaut.png"


def tiny_generators(path: Path) -> Path:
    paddle.seed(0)
    args = ModelConfig(img_size=64, ch=4, n_res=1, light=True, global_layers=5, local_layers=3)
    return checkpoint.save_generators(path, args, build_networks(args))


def test_default_model_prefers_pretrained_then_demo(tmp_path):
    pretrained, demo = tmp_path / "pretrained", tmp_path / "demo"
    with pytest.raises(NoModelError, match="tools/pretrained.py paddlegan-light.*tools/demo.py"):
        default_model(pretrained, demo)
    demo_checkpoint = tiny_generators(checkpoint.checkpoint_path(demo, 1000))
    assert default_model(pretrained, demo) == demo_checkpoint
    older = tiny_generators(pretrained / "a.pdparams")
    os.utime(older, (1, 1))
    newer = tiny_generators(pretrained / "b.pdparams")
    assert default_model(pretrained, demo) == newer


def _browser_tools() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skips outside CI when something is missing, fails in CI."""
    missing = []
    try:
        import gradio  # noqa: F401
        import selenium  # noqa: F401
    except ImportError as e:
        missing.append(f"{e.name} (pip install -e '.[dev,app]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        missing.append("chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {', '.join(missing)}: .ci/run installs them")
        pytest.skip(f"the browser test needs {', '.join(missing)}")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_served(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited ({proc.returncode}): {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the app did not answer at {url} within {timeout} s")


def _image_at(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"), dtype=np.int16)


def test_page_translates_the_uploaded_photo_like_predict(tmp_path, run_tool):
    chromium, driver_path = _browser_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    photo, model = astronaut(), tiny_generators(tmp_path / "tiny.pdparams")
    done = run_tool("predict", "--checkpoint", model, "--face", "--input", photo, "--output", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    expected = np.asarray(Image.open(tmp_path / "out" / "astronaut_face1.png").convert("RGB"), dtype=np.int16)

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    app = subprocess.Popen([sys.executable, str(ROOT / "tools" / "app.py"), "--checkpoint", str(model), "--port",
                            str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={tmp_path / 'chromium-profile'}",):
        options.add_argument(flag)
    browser = None
    try:
        _wait_until_served(url, app)
        browser = webdriver.Chrome(service=Service(driver_path), options=options)
        wait = WebDriverWait(browser, 120)
        browser.get(url)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]"))).send_keys(str(photo))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
        wait.until(ec.element_to_be_clickable((By.ID, "run"))).click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#results img")) >= 3)
        shown = browser.find_elements(By.CSS_SELECTOR, "#results img")
        captions = [img.get_attribute("alt") for img in shown]
        sources = [img.get_attribute("src") for img in shown]
        images = [_image_at(source) for source in sources]  # crop, translation, heatmap of face 1, ...
        assert "translated" in browser.find_element(By.ID, "status").text
    finally:
        if browser is not None:
            browser.quit()
        app.terminate()
        app.wait(timeout=30)
    translation = images[1]
    assert translation.shape == expected.shape, (captions, translation.shape, expected.shape)
    assert np.abs(translation - expected).max() <= 2, captions
    assert not np.array_equal(images[0], translation)  # the crop is the photo, not the output


def test_app_without_a_model_says_which_command_makes_one(tmp_path, monkeypatch, load_tool, capsys):
    monkeypatch.chdir(tmp_path)  # no work/pretrained, no work/demo here
    assert load_tool("app").main([]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tools/pretrained.py paddlegan-light" in errors[0] and "tools/demo.py" in errors[0]


def test_gradio_pin_is_the_same_everywhere():
    import tomllib

    from ugatit_paddle.app import GRADIO_REQUIREMENT

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["app"] == [GRADIO_REQUIREMENT]
    assert f'pip install "{GRADIO_REQUIREMENT}"' in (ROOT / "README.md").read_text()
    assert "gradio" not in (ROOT / "requirements.txt").read_text().lower()
