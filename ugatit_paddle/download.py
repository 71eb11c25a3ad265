"""Downloading a released weight file into a cache, the PaddleGAN way, with clean failures.

The cache convention is PaddleGAN's (`ppgan.utils.download`): the file is kept as `<cache>/<file name of the
URL>` (default `~/.cache/ppgan`, PaddleGAN's PPGAN_HOME, so a file PaddleGAN already fetched is reused), found
there on the next run, and checked against its md5 where one is known.

Why not `paddle.utils.download.get_path_from_url` itself: it cannot fail cleanly. Its code is the same on
Paddle 3.3 and 2.6.2 (httpx): any failure is logged at INFO level only and retried three times, then raised as
"Download from URL failed. Retry limit reached" without the cause (a 404 and a dropped connection read the same);
a body cut short leaves `<file>_tmp` in the cache (both seen against a local server); there is no timeout (a
stalled server hangs it forever), no size bound, no resume, and a tqdm bar even in a log file. So this module does
the same thing with `urllib`, plus:

* the body goes to `<file>.part` and is renamed into place only when complete (length and md5 checked); any
  failure or Ctrl-C deletes the `.part`, so the cache never holds half a file;
* a connection that drops mid-body is resumed with an HTTP Range request (`ATTEMPTS` tries in all), restarted
  from zero when the server ignores the Range;
* a size bound (`max_bytes`), a per-read timeout, one `DownloadError` line naming the URL and the cause;
* a progress bar on a terminal, a plain line every 10 % otherwise (`Progress`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import TextIO
from urllib.parse import urlparse

CACHE_DIR = Path("~/.cache/ppgan")  # PaddleGAN's PPGAN_HOME (expanded when used)
PART_SUFFIX = ".part"  # the file being downloaded; never left behind
TIMEOUT = 30.0  # seconds without data before a read fails
ATTEMPTS = 3  # connections per download (the first and up to two resumes)
CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download that failed: the message names the URL and the cause, in one line."""


class Progress:
    """Bytes received so far: a `\\r`-updated bar on a terminal, one plain line per 10 % (or per 10 MB when the
    size is unknown) otherwise. Writes to `stream` (stderr by default)."""

    def __init__(self, label: str, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._last_step = -1

    def update(self, done: int, total: int | None) -> None:
        mb = done / 1e6
        if self.tty:
            if total:
                filled = int(30 * done / total)
                text = f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {mb:.1f}/{total / 1e6:.1f} MB"
            else:
                text = f"\r{self.label} {mb:.1f} MB"
            self.stream.write(text)
            self.stream.flush()
            return
        step = int(10 * done / total) if total else int(mb // 10)
        if step != self._last_step:
            self._last_step = step
            size = f"{mb:.1f}/{total / 1e6:.1f} MB ({100 * done // total}%)" if total else f"{mb:.1f} MB"
            print(f"{self.label}: {size}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def cached_path(url: str, cache_dir: str | Path = CACHE_DIR) -> Path:
    """Where `download` keeps the file of `url`: `<cache_dir>/<last part of the URL's path>`."""
    name = Path(urlparse(url).path).name
    if not name:
        raise DownloadError(f"{url} names no file (nothing after the last '/')")
    return Path(cache_dir).expanduser() / name


def md5_of(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, cache_dir: str | Path = CACHE_DIR, md5: str | None = None, max_bytes: int = 2 << 30,
             progress: Progress | None = None, timeout: float = TIMEOUT, attempts: int = ATTEMPTS) -> Path:
    """The cached file of `url`, downloaded first unless the cache already holds it (with the right md5).

    Raises DownloadError (an HTTP error, no network, a body shorter than its Content-Length after `attempts`
    connections, more than `max_bytes`, an md5 mismatch); nothing is left in the cache then.
    """
    target = cached_path(url, cache_dir)
    if target.is_file() and (md5 is None or md5_of(target) == md5):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    try:
        _fetch(url, part, max_bytes, progress, timeout, attempts)
        if md5 is not None and (got := md5_of(part)) != md5:
            raise DownloadError(f"{url}: the file's md5 is {got}, expected {md5} (corrupt or changed upstream)")
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        if progress is not None:
            progress.close()
    return target


def _fetch(url: str, part: Path, max_bytes: int, progress: Progress | None, timeout: float, attempts: int) -> None:
    """Write the body of `url` into `part`, resuming after a dropped connection."""
    done, total, cause = 0, None, ""
    with open(part, "wb") as f:
        for _ in range(attempts):
            request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    if done and not _resumes_at(response, done):
                        done = 0  # the server sent the whole file again: restart
                        f.seek(0)
                        f.truncate()
                    length = response.headers.get("Content-Length")
                    total = done + int(length) if length is not None and length.isdigit() else None
                    if total is not None and total > max_bytes:
                        raise DownloadError(f"{url} is {total / 1e6:.1f} MB, more than the limit of "
                                            f"{max_bytes / 1e6:.0f} MB")
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        if done > max_bytes:
                            raise DownloadError(f"{url} sent more than the limit of {max_bytes / 1e6:.0f} MB")
                        if progress is not None:
                            progress.update(done, total)
                if total is None or done == total:
                    return
                cause = f"the connection closed after {done} of {total} bytes"
            except urllib.error.HTTPError as e:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
            except urllib.error.URLError as e:
                if done == 0:  # nothing arrived: no network, refused, unknown host; retrying will not help
                    raise DownloadError(f"cannot download {url}: {e.reason} (no network? download the file elsewhere "
                                        f"and pass it with --from)") from None
                cause = str(e.reason)
            except (HTTPException, ConnectionError, socket.timeout, TimeoutError) as e:
                cause = f"{type(e).__name__} after {done} bytes{f': {e}' if str(e) else ''}"
    raise DownloadError(f"download of {url} failed {attempts} times, the last time: {cause} (truncated file; "
                        f"try again, or download it yourself and pass it with --from)")


def _resumes_at(response, offset: int) -> bool:
    """Did the server answer a Range request with the bytes from `offset` on (206 and a matching Content-Range)?"""
    content_range = response.headers.get("Content-Range", "")
    return response.status == 206 and content_range.startswith(f"bytes {offset}-")
