"""Released U-GAT-IT weights: the table of known releases, getting one, and converting it into a generator file.

    install("paddlegan-light")                          # download (cached), convert -> work/pretrained/...
    install("tf-selfie2anime", source="~/Downloads/selfie2anime_checkpoint.zip")   # offline: the user's file

A release is fetched with `download.download` (PaddleGAN's cache, clean failures) unless `source` names a local
copy, converted with the project's converters (`formats.paddlegan`, `formats.tf`) and written as a generator file
(`checkpoint.save_generators`: genA2B and genB2A only, what predict.py, the page and export need) under
`PRETRAINED_DIR`, atomically. A zip (the TF release is one) is read in place: the checkpoint's `.index` and
`.data-*` members are copied, size-bounded, into a temporary folder beside the output and removed afterwards.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .config import ModelConfig
from .download import CACHE_DIR, Progress, download
from .formats import checkpoint
from .formats.paddlegan import from_paddlegan, load_file
from .formats.tensorbundle import INDEX_SUFFIX
from .formats.tf import from_tf_checkpoint

PRETRAINED_DIR = Path("work/pretrained")  # where converted releases go (the page's first choice)
GB = 1 << 30


class PretrainedError(ValueError):
    """A release that cannot be had as asked (unknown name, no URL, an unusable --from file)."""


@dataclass(frozen=True)
class Release:
    """A published set of U-GAT-IT weights and how to get and read it."""

    name: str
    description: str
    source_format: str  # "paddlegan" (.pdparams) or "tf" (TensorFlow checkpoint, a folder or a zip of one)
    img_size: int  # the training size (light models do not record it)
    url: str | None  # direct download; None: the user fetches it (`manual` says from where) and passes --from
    md5: str | None = None  # of the downloaded file, where published
    max_bytes: int = 2 * GB  # download / unpacked size bound
    manual: str = ""


RELEASES = {r.name: r for r in (
    Release("paddlegan-light", "PaddleGAN's selfie2anime U-GAT-IT light, 256 px (selfie -> anime as A2B)",
            "paddlegan", 256, "https://paddlegan.bj.bcebos.com/models/ugatit_light.pdparams", max_bytes=1 * GB),
    Release("tf-selfie2anime", "the paper's selfie2anime model (official TensorFlow code, full, 256 px)", "tf", 256,
            None, max_bytes=8 * GB,
            manual="its zip is on Google Drive (no direct link), linked from the README of taki0112/UGATIT "
                   "(\"pretrained model\"); download it in a browser and pass the zip or its unpacked folder "
                   "with --from"),
)}


def get_release(name: str) -> Release:
    if name not in RELEASES:
        raise PretrainedError(f"unknown release '{name}'; known: {', '.join(RELEASES)} (--list describes them)")
    return RELEASES[name]


def default_output(name: str) -> Path:
    return PRETRAINED_DIR / f"{name}.pdparams"


def newest_generator(folder: str | Path = PRETRAINED_DIR) -> Path | None:
    """The most recently written `.pdparams` in `folder`, or None."""
    files = sorted(Path(folder).glob("*.pdparams"), key=lambda p: p.stat().st_mtime) if Path(folder).is_dir() else []
    return files[-1] if files else None


@dataclass
class Installed:
    """What `install` did."""

    release: Release
    output: Path
    source: Path  # the downloaded (cached) file or the user's --from path
    model: ModelConfig
    notes: list[str]


def install(name: str, output: str | Path | None = None, url: str | None = None, source: str | Path | None = None,
            cache_dir: str | Path = CACHE_DIR, progress: Progress | None = None) -> Installed:
    """Get release `name` (from `source`, else `url` or the release's own URL) and write its generator file to
    `output` (default `default_output(name)`). Raises PretrainedError, download.DownloadError, and the
    converters' errors (ValueError subclasses)."""
    release = get_release(name)
    output = Path(output) if output is not None else default_output(name)
    if source is not None:
        path = Path(source).expanduser()
        if not path.exists():
            raise PretrainedError(f"--from {path}: no such file or folder")
    else:
        url = url or release.url
        if url is None:
            raise PretrainedError(f"{name} has no direct download: {release.manual}")
        path = download(url, cache_dir, md5=release.md5 if url == release.url else None,
                        max_bytes=release.max_bytes, progress=progress)
    model, networks, notes = read_release(release, path, output.parent)
    checkpoint.save_generators(output, model, networks)
    return Installed(release, output, path, model, notes)


def read_release(release: Release, path: Path, scratch: Path) -> tuple[ModelConfig, dict, list[str]]:
    """(architecture, {network: state dict}, notes) of a release's file; `scratch` holds a zip's temporary copy."""
    if release.source_format == "paddlegan":
        if path.is_dir():
            raise PretrainedError(f"{path} is a folder; {release.name} is one .pdparams file")
        return from_paddlegan(load_file(path), str(path), img_size=release.img_size)
    with tf_checkpoint(path, scratch, release.max_bytes) as prefix:
        return from_tf_checkpoint(prefix, img_size=release.img_size)


_DATA = re.compile(r"\.data-\d{5}-of-\d{5}$")


@contextlib.contextmanager
def tf_checkpoint(path: Path, scratch: Path, max_bytes: int) -> Iterator[Path]:
    """A TF checkpoint prefix (or folder) for `path`: a folder or checkpoint file as it is; a zip's checkpoint
    copied out to a temporary folder under `scratch` (its folder name kept: the converter reads the
    `_smoothing` flag from it), deleted on exit."""
    if not zipfile.is_zipfile(path):
        yield path
        return
    with zipfile.ZipFile(path) as archive:
        prefix, members = _zip_checkpoint(archive, path)
        total = sum(m.file_size for m in members)
        if total > max_bytes:
            raise PretrainedError(f"{path}: the checkpoint unpacks to {total / 1e9:.1f} GB, more than the limit of "
                                  f"{max_bytes / 1e9:.1f} GB")
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch, prefix=".unzip-") as tmp:
            folder = Path(tmp) / (prefix.parent.name or "checkpoint")
            folder.mkdir()
            for member in members:
                with archive.open(member) as src, open(folder / PurePosixPath(member.filename).name, "wb") as dst:
                    remaining = member.file_size
                    while chunk := src.read(min(1 << 20, remaining) or 1):
                        remaining -= len(chunk)
                        if remaining < 0:
                            raise PretrainedError(f"{path}: {member.filename} is larger than its zip entry says")
                        dst.write(chunk)
            yield folder / prefix.name


def _zip_checkpoint(archive: zipfile.ZipFile, path: Path) -> tuple[PurePosixPath, list[zipfile.ZipInfo]]:
    """The prefix of the one checkpoint in a zip (the one its `checkpoint` file names when there are several)
    and its index and data members."""
    names = {PurePosixPath(i.filename): i for i in archive.infolist() if not i.is_dir()}
    prefixes = sorted(n.with_name(n.name[:-len(INDEX_SUFFIX)]) for n in names if n.name.endswith(INDEX_SUFFIX))
    if not prefixes:
        raise PretrainedError(f"{path} holds no TensorFlow checkpoint (no *.index file); is it the selfie2anime zip?")
    if len(prefixes) > 1:
        listed = [n for n in names if n.name == "checkpoint"]
        text = archive.read(names[listed[0]]).decode("utf-8", "replace") if len(listed) == 1 else ""
        match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', text, re.M)
        chosen = [p for p in prefixes if match and p.name == PurePosixPath(match.group(1)).name]
        if len(chosen) != 1:
            raise PretrainedError(f"{path} holds several checkpoints ({', '.join(p.name for p in prefixes)}); unpack "
                                  f"it and pass the prefix of one with --from")
        prefixes = chosen
    prefix = prefixes[0]
    members = [names[prefix.with_name(prefix.name + INDEX_SUFFIX)]]
    members += [info for name, info in names.items()
                if name.parent == prefix.parent and name.name.startswith(prefix.name) and _DATA.search(name.name)
                and name.name[:_DATA.search(name.name).start()] == prefix.name]
    return prefix, members


def predict_command(generator: str | Path) -> str:
    """The predict.py command line that turns a photo into an anime face with `generator`."""
    return f"python tools/predict.py --checkpoint {generator} --face --input photo.jpg --output out/"
