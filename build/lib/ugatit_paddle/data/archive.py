"""Datasets shipped as zip files (AI Studio mounts them read-only as /home/aistudio/data/data<ID>/<name>.zip).

`resolve_data_root(root, cache_dir)` returns a folder with the layout `<root>/{trainA,trainB,testA,testB}`:

* a folder is returned as it is;
* a `.zip` holding `trainA/ trainB/ testA/ testB/` at its top, or inside its single top folder, is extracted
  once into `<cache_dir>/<zip name>-<key>/` and reused while the zip's contents are unchanged. `key` hashes the
  zip's directory (member names, sizes and CRC-32s), so a zip copied again (new mtime, same contents, as after
  an AI Studio restart) still finds its extraction, and a changed zip gets a new one (older extractions of the
  same zip file are then deleted).

Extraction is safe: a member whose path is absolute or climbs out of the target (`..`), a symlink or another
special file, or a total size above `max_bytes` stops it with an `ArchiveError` before anything is written.
It goes to a temporary folder renamed into place when complete (an interrupted extraction is never reused), and
a reused extraction is verified against the recorded list of files and sizes first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from .images import DOMAIN_FOLDERS, DataError

DEFAULT_MAX_BYTES = 32 * 2**30  # 32 GiB uncompressed: selfie2anime is 0.4 GiB
MARKER = ".ugatit_extracted.json"  # written last: an extraction without it is incomplete
IGNORED_TOP = ("__MACOSX",)  # macOS resource-fork folder many zips carry
_CHUNK = 1 << 20


class ArchiveError(DataError):
    """A dataset zip that cannot be used: unsafe, too large, corrupt, or without the dataset layout."""


def is_archive(root: str | os.PathLike[str]) -> bool:
    return Path(root).suffix.lower() == ".zip" and Path(root).is_file()


def resolve_data_root(root: str | os.PathLike[str], cache_dir: str | os.PathLike[str],
                      max_bytes: int = DEFAULT_MAX_BYTES, log: Callable[[str], Any] = print) -> Path:
    """The dataset folder for `data.root`: `root` itself unless it is a zip file, else its (cached)
    extraction's dataset folder; `log` gets one line when extracting or reusing."""
    root = Path(root)
    if root.suffix.lower() == ".zip" and not root.is_file():
        raise ArchiveError(f"dataset zip '{root}' does not exist (data.root)")
    if not is_archive(root):
        return root
    try:
        with zipfile.ZipFile(root) as archive:
            members = archive.infolist()
            prefix = _dataset_prefix(root, members)
            key = _content_key(members)
            target = Path(cache_dir) / f"{root.stem}-{key}"
            if _verified(target):
                log(f"dataset: {root} already extracted in {target}")
            else:
                log(f"dataset: extracting {root} into {target} (once)")
                _extract(archive, root, members, target, key, max_bytes)
                _remove_older(Path(cache_dir), root, target)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"'{root}' is not a readable zip file ({e}); download or copy it again") from e
    return target / prefix if prefix else target


def _member_path(zip_path: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    """The member's relative path; ArchiveError if it could land outside the extraction folder."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and ":" in path.parts[0]) or ".." in path.parts:
        raise ArchiveError(f"'{zip_path}' has an unsafe member path '{info.filename}' (absolute or with '..'); "
                           f"refusing to extract it")
    return path


def _kind(info: zipfile.ZipInfo) -> str:
    """'dir', 'file' or the name of another kind (symlink, device, ...) from the member's Unix mode."""
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode):  # no type bits: written by a tool that records none
        return "file"
    return "symlink" if stat.S_ISLNK(mode) else "special file"


def _dataset_prefix(zip_path: Path, members: list[zipfile.ZipInfo]) -> str:
    """'' if the layout folders are at the zip's top, 'X' if they are inside its single top folder X."""
    tops, seconds = set(), set()
    for info in members:
        parts = _member_path(zip_path, info).parts
        if not parts or parts[0] in IGNORED_TOP or parts[0].startswith("."):
            continue
        tops.add(parts[0])
        if len(parts) > 1:
            seconds.add((parts[0], parts[1]))
    if all(f in tops for f in DOMAIN_FOLDERS):
        return ""
    if len(tops) == 1:
        top = next(iter(tops))
        missing = [f for f in DOMAIN_FOLDERS if (top, f) not in seconds]
        if not missing:
            return top
        raise ArchiveError(f"'{zip_path}' has no dataset layout: its folder '{top}/' lacks {', '.join(missing)}; "
                           f"expected trainA/ trainB/ testA/ testB/ at the top or inside one top folder")
    listed = ", ".join(sorted(tops)[:8]) or "nothing"
    raise ArchiveError(f"'{zip_path}' has no dataset layout: its top holds {listed}; expected trainA/ trainB/ "
                       f"testA/ testB/ at the top or inside one top folder")


def _content_key(members: list[zipfile.ZipInfo]) -> str:
    """12 hex digits identifying the zip's contents (names, sizes, CRC-32s): cheap, no decompression."""
    digest = hashlib.sha256()
    for info in members:
        digest.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\n".encode())
    return digest.hexdigest()[:12]


def _verified(target: Path) -> bool:
    """True if `target` is a complete extraction whose recorded files are all there with their sizes."""
    try:
        record = json.loads((target / MARKER).read_text(encoding="utf-8"))
        return all((target / name).stat().st_size == size for name, size in record["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _extract(archive: zipfile.ZipFile, zip_path: Path, members: list[zipfile.ZipInfo], target: Path, key: str,
             max_bytes: int) -> None:
    """Check every member, then extract them into a temporary folder renamed to `target`."""
    files = []
    for info in members:
        path = _member_path(zip_path, info)
        kind = _kind(info)
        if kind not in ("dir", "file"):
            raise ArchiveError(f"'{zip_path}' holds a {kind} '{info.filename}'; dataset zips may hold only files "
                               f"and folders, refusing to extract it")
        if kind == "file" and path.parts and path.parts[0] not in IGNORED_TOP:
            files.append((info, path))
    total = sum(info.file_size for info, _ in files)
    if total > max_bytes:
        raise ArchiveError(f"'{zip_path}' would extract to {total / 2**30:.1f} GiB, more than the limit of "
                           f"{max_bytes / 2**30:.1f} GiB; extract it yourself and set data.root to the folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if total > free:
        raise ArchiveError(f"'{zip_path}' needs {total / 2**30:.2f} GiB to extract but {target.parent} has "
                           f"{free / 2**30:.2f} GiB free; set data.cache_dir to a larger disk")
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        record = {}
        for info, path in files:
            out = tmp.joinpath(*path.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with archive.open(info) as src, open(out, "xb") as dst:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > info.file_size:  # a header that lies about the size
                        raise ArchiveError(f"'{zip_path}': member '{info.filename}' is larger than its header "
                                           f"says ({info.file_size} bytes); refusing to extract it")
                    dst.write(chunk)
            record[path.as_posix()] = written
        (tmp / MARKER).write_text(json.dumps({"source": str(zip_path.resolve()), "key": key, "files": record}),
                                  encoding="utf-8")
        try:
            os.rename(tmp, target)
        except OSError:
            if not _verified(target):  # not another process's complete extraction: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"'{zip_path}' is corrupt ({e}); download or copy it again") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_older(cache_dir: Path, zip_path: Path, keep: Path) -> None:
    """Delete the extractions of earlier contents of the same zip file (the cache holds one per zip)."""
    source = str(zip_path.resolve())
    for other in cache_dir.glob(f"{zip_path.stem}-*"):
        if other == keep or not other.is_dir():
            continue
        try:
            if json.loads((other / MARKER).read_text(encoding="utf-8")).get("source") == source:
                shutil.rmtree(other, ignore_errors=True)
        except (OSError, ValueError, AttributeError):
            continue
