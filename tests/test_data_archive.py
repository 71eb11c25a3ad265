"""Zip datasets: extraction once into the cache, reuse, layouts, and refusal of unsafe or oversized zips."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from ugatit_paddle.data import check_layout
from ugatit_paddle.data.archive import MARKER, ArchiveError, resolve_data_root
from ugatit_paddle.config import ConfigError, config_from_dict


def _zip_folder(folder: Path, zip_path: Path, top: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, f"{top}{path.relative_to(folder).as_posix()}")
        z.writestr("__MACOSX/._trainA", b"resource fork")
    return zip_path


def _quiet(*args) -> None:
    pass


@pytest.mark.parametrize("top", ["", "selfie2anime/"])
def test_zip_is_extracted_once_and_reused(tmp_path, data_root, top):
    zip_path = _zip_folder(data_root, tmp_path / "selfie2anime.zip", top)
    zip_path.chmod(stat.S_IRUSR)  # read-only, like AI Studio's mounted data sets
    cache = tmp_path / "cache"
    messages = []
    root = resolve_data_root(zip_path, cache, log=messages.append)
    assert "extracting" in messages[-1]
    assert check_layout(root).keys() == {"trainA", "trainB", "testA", "testB"}
    assert root.parent.parent == cache if top else root.parent == cache
    originals = sorted(p.relative_to(data_root).as_posix() for p in data_root.rglob("*") if p.is_file())
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MARKER) \
        == originals
    assert (root / originals[0]).read_bytes() == (data_root / originals[0]).read_bytes()

    again = resolve_data_root(zip_path, cache, log=messages.append)
    assert again == root and "already extracted" in messages[-1]

    # a damaged extraction is not reused
    next(p for p in root.rglob("*.png")).unlink()
    assert resolve_data_root(zip_path, cache, log=messages.append) == root and "extracting" in messages[-1]


def test_changed_zip_gets_a_new_extraction_and_the_old_one_goes(tmp_path, data_root):
    zip_path = _zip_folder(data_root, tmp_path / "d.zip")
    cache = tmp_path / "cache"
    first = resolve_data_root(zip_path, cache, log=_quiet)
    zip_path.unlink()
    with zipfile.ZipFile(_zip_folder(data_root, zip_path), "a") as z:
        z.writestr("trainA/extra.png", (data_root / "trainA" / sorted(p.name for p in (data_root / "trainA").iterdir())[0]).read_bytes())
    second = resolve_data_root(zip_path, cache, log=_quiet)
    assert second != first and (second / "trainA" / "extra.png").is_file()
    assert not first.exists()


def test_a_folder_is_returned_as_it_is(tmp_path, data_root):
    assert resolve_data_root(data_root, tmp_path / "cache") == data_root
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ArchiveError, match="does not exist"):
        resolve_data_root(tmp_path / "missing.zip", tmp_path / "cache")


def _layout_zip(path: Path, extra: dict[str, bytes] | None = None, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for folder in ("trainA", "trainB", "testA", "testB"):
            z.writestr(f"{folder}/a.png", b"x")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("name", ["../escape.txt", "trainA/../../escape.txt", "/tmp/absolute.txt", "C:/x.txt"])
def test_paths_escaping_the_target_are_refused(tmp_path, name):
    zip_path = _layout_zip(tmp_path / "evil.zip", {name: b"owned"})
    with pytest.raises(ArchiveError, match="unsafe member path"):
        resolve_data_root(zip_path, tmp_path / "cache" / "deep", log=_quiet)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "cache" / "escape.txt").exists()
    assert not list((tmp_path / "cache").rglob("*.txt")) if (tmp_path / "cache").exists() else True


def test_symlinks_are_refused(tmp_path):
    zip_path = _layout_zip(tmp_path / "link.zip", symlink="trainA/link.png")
    with pytest.raises(ArchiveError, match="symlink 'trainA/link.png'"):
        resolve_data_root(zip_path, tmp_path / "cache", log=_quiet)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_size_limit(tmp_path):
    zip_path = _layout_zip(tmp_path / "bomb.zip", {"trainA/big.png": b"\0" * 1_000_000})
    with pytest.raises(ArchiveError, match="more than the limit"):
        resolve_data_root(zip_path, tmp_path / "cache", max_bytes=100_000, log=_quiet)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_zip_without_the_layout_or_not_a_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as z:
        z.writestr("a.png", b"x")
        z.writestr("b/c.png", b"x")
    with pytest.raises(ArchiveError, match="no dataset layout"):
        resolve_data_root(tmp_path / "flat.zip", tmp_path / "cache")
    with zipfile.ZipFile(tmp_path / "partial.zip", "w") as z:
        z.writestr("top/trainA/a.png", b"x")
    with pytest.raises(ArchiveError, match="lacks trainB, testA, testB"):
        resolve_data_root(tmp_path / "partial.zip", tmp_path / "cache")
    (tmp_path / "bad.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        resolve_data_root(tmp_path / "bad.zip", tmp_path / "cache")


def test_cache_dir_config_key():
    assert config_from_dict({}).data.cache_dir == "work/datasets"
    assert config_from_dict({"data": {"cache_dir": "/tmp/c"}}).data.cache_dir == "/tmp/c"
    with pytest.raises(ConfigError, match="data.cache_dir"):
        config_from_dict({"data": {"cache_dir": " "}})
