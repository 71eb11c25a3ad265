"""tools/pretrained.py against a local HTTP server (127.0.0.1, a thread) serving a small PaddleGAN-format file:
a download (then found in the cache), a dropped connection resumed with a Range request or restarted, a 404, a
truncated body, no server at all, the size bound; `--from` a TF checkpoint zip and a PaddleGAN file; the
progress output on and off a terminal."""

from __future__ import annotations

import http.server
import io
import pickle
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.tensorbundle_writer import tf_ugatit_variables, write_bundle
from test_paddlegan import _paddlegan_layout, _states
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.download import DownloadError, Progress, download
from ugatit_paddle.formats import checkpoint
from ugatit_paddle.formats.tf import from_tf_checkpoint
from ugatit_paddle.inference.translate import Translator
from ugatit_paddle.pretrained import newest_generator

ARGS = ModelConfig(img_size=256, ch=4, n_res=1, light=True, global_layers=5, local_layers=3)


@pytest.fixture(scope="module")
def weights() -> tuple[bytes, dict]:
    """A PaddleGAN `ugatit_light.pdparams` of a tiny light model (its frozen InstanceNorm scale/bias included)."""
    states = _states(ARGS)
    return pickle.dumps(_paddlegan_layout(states, n_res=1), protocol=4), states


class Server:
    """Serves `files[path]` with a behaviour per path: "ok"; "cut-once" (the first answer stops halfway, later
    ones honour Range); "cut-once-no-range" (same, but later ones send the whole file with 200); "cut" (always
    stops halfway); "huge" (announces 10 GB). Unknown paths are 404. `requests` records the Range headers."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                if self.path not in server.files:
                    self.send_error(404)
                    return
                body, mode = server.files[self.path]
                if mode == "huge":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10 << 30))
                    self.end_headers()
                    return
                first = sum(p == self.path for p, _ in server.requests) == 1
                start = int(rng[len("bytes="):-1]) if rng and mode == "cut-once" else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = mode == "cut" or (mode.startswith("cut-once") and first)
                self.wfile.write(body[start:len(body) // 2] if cut else body[start:])
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _run(load_tool, *argv: str) -> int:
    return load_tool("pretrained").main([str(a) for a in argv])


def _assert_generators_equal(path: Path, states: dict) -> None:
    stored = checkpoint.load(path)
    assert stored["kind"] == "generators" and set(stored["networks"]) == {"genA2B", "genB2A"}
    for name, state in stored["networks"].items():
        for key, value in state.items():
            assert np.array_equal(value, states[name][key]), (name, key)


def test_download_convert_and_cache(tmp_path, server, weights, load_tool, capsys):
    body, states = weights
    server.files["/models/ugatit_light.pdparams"] = (body, "ok")
    cache, out = tmp_path / "cache", tmp_path / "pretrained" / "light.pdparams"
    url = server.url("/models/ugatit_light.pdparams")
    assert _run(load_tool, "paddlegan-light", "--url", url, "--cache-dir", cache, "-o", out) == 0
    printed = capsys.readouterr()
    assert f"python tools/predict.py --checkpoint {out} --face --input" in printed.out
    assert "downloading paddlegan-light" in printed.err  # plain progress lines (not a terminal)
    assert sorted(p.name for p in cache.iterdir()) == ["ugatit_light.pdparams"]
    assert (cache / "ugatit_light.pdparams").read_bytes() == body
    _assert_generators_equal(out, states)
    assert Translator.from_checkpoint(out).img_size == 256
    assert newest_generator(out.parent) == out
    # a second run finds the file in the cache: no request
    assert _run(load_tool, "paddlegan-light", "--url", url, "--cache-dir", cache, "-o", out) == 0
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode,ranges", [("cut-once", [None, "bytes={half}-"]),
                                         ("cut-once-no-range", [None, "bytes={half}-"])])
def test_dropped_connection_is_resumed_or_restarted(tmp_path, server, weights, mode, ranges):
    body, _ = weights
    server.files["/w.pdparams"] = (body, mode)
    path = download(server.url("/w.pdparams"), tmp_path)
    assert path.read_bytes() == body  # resumed at the cut (206) or restarted whole (200)
    assert server.requests == [("/w.pdparams", r and r.format(half=len(body) // 2)) for r in ranges]
    assert [p.name for p in tmp_path.iterdir()] == ["w.pdparams"]


@pytest.mark.parametrize("case,message", [
    ("404", "HTTP 404"),
    ("cut", "the connection closed after"),
    ("huge", "more than the limit"),
    ("no server", "cannot download"),
])
def test_failures_are_one_line_and_leave_nothing(tmp_path, server, weights, load_tool, capsys, case, message):
    body, _ = weights
    if case in ("cut", "huge"):
        server.files["/w.pdparams"] = (body, case)
    url = server.url("/w.pdparams")
    if case == "no server":
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/w.pdparams"
    cache, out = tmp_path / "cache", tmp_path / "out.pdparams"
    assert _run(load_tool, "paddlegan-light", "--url", url, "--cache-dir", cache, "-o", out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert not out.exists() and list(cache.iterdir()) == []


def test_md5_mismatch_is_refused(tmp_path, server, weights):
    body, _ = weights
    server.files["/w.pdparams"] = (body, "ok")
    with pytest.raises(DownloadError, match="md5"):
        download(server.url("/w.pdparams"), tmp_path, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def _tf_zip(path: Path, folder: str, variables: dict) -> Path:
    prefix = write_bundle(path.parent / "unzipped" / folder / "UGATIT.model-1000000", variables)
    (prefix.parent / "checkpoint").write_text('model_checkpoint_path: "/train/UGATIT.model-1000000"\n')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted(prefix.parent.iterdir()):
            z.write(file, f"checkpoint/{folder}/{file.name}")
    return prefix


def test_from_tf_zip(tmp_path, load_tool, capsys):
    folder = "UGATIT_selfie2anime_lsgan_4resblock_6dis_1_1_10_10_1000_sn_smoothing"
    variables = tf_ugatit_variables(False, 256, 2, 1, 6, True)
    prefix = _tf_zip(tmp_path / "selfie2anime.zip", folder, variables)
    out = tmp_path / "pretrained" / "tf.pdparams"
    assert _run(load_tool, "tf-selfie2anime", "--from", tmp_path / "selfie2anime.zip", "-o", out) == 0
    assert "--face" in capsys.readouterr().out
    args, states, _ = from_tf_checkpoint(prefix)  # the same checkpoint read unpacked
    assert checkpoint.model_config_of(checkpoint.load(out)) == args and args.variant == "tf" and args.tf_smoothing
    _assert_generators_equal(out, states)
    assert sorted(p.name for p in out.parent.iterdir()) == ["tf.pdparams"]  # the temporary copy is gone


def test_from_paddlegan_file_and_errors(tmp_path, weights, load_tool, capsys):
    body, states = weights
    (tmp_path / "ugatit_light.pdparams").write_bytes(body)
    out = tmp_path / "out.pdparams"
    assert _run(load_tool, "paddlegan-light", "--from", tmp_path / "ugatit_light.pdparams", "-o", out) == 0
    _assert_generators_equal(out, states)
    capsys.readouterr()
    assert _run(load_tool, "tf-selfie2anime", "-o", out) == 1  # no URL: says where to get it
    assert "Google Drive" in capsys.readouterr().err
    (tmp_path / "empty.zip").write_bytes(_empty_zip())
    assert _run(load_tool, "tf-selfie2anime", "--from", tmp_path / "empty.zip", "-o", out) == 1
    assert "no TensorFlow checkpoint" in capsys.readouterr().err


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "nothing")
    return buffer.getvalue()


def test_progress_bar_on_a_terminal_and_lines_otherwise():
    tty, plain = io.StringIO(), io.StringIO()
    bar, lines = Progress("x", tty, tty=True), Progress("x", plain, tty=False)
    for done in range(0, 101, 5):
        bar.update(done * 10_000, 1_000_000)
        lines.update(done * 10_000, 1_000_000)
    bar.close()
    assert tty.getvalue().count("\r") == 21 and "[" + "#" * 30 + "]" in tty.getvalue()
    assert plain.getvalue().count("\n") == 11 and "\r" not in plain.getvalue()
