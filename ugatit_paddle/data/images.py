"""Unpaired image data: discovery, decoding, the official transforms and resumable sampling.

Layout: ``<root>/{trainA,trainB,testA,testB}``, images anywhere below each folder.

Transforms reproduce the official torchvision pipeline on PIL images:

* train: RandomHorizontalFlip(0.5), Resize((img+30, img+30), BILINEAR), RandomCrop(img),
  ToTensor, Normalize(0.5, 0.5)  ->  float32 [3, img, img] in [-1, 1]
* test: Resize((img, img), BILINEAR), ToTensor, Normalize(0.5, 0.5)

Randomness never comes from global state. Training draws an infinite stream of samples per
domain: the order of epoch ``e`` is :func:`epoch_permutation` and sample number ``k`` of the
stream is augmented with :func:`augmentation_rng` ``(seed, domain_id, k)``. Batches are therefore
identical whatever the number of DataLoader workers, the iteration training resumes at, or the
way a global batch is split over processes (2 processes x batch 1 == 1 process x batch 2).

Unreadable images are skipped with a :class:`BadImageWarning` naming the file (or raise
:class:`DataError` with ``strict=True``); see :class:`ImageFolderDataset`.
"""

from __future__ import annotations

import functools
import os
import random
import struct
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import paddle
from PIL import Image

from .workers import end_with_parent

__all__ = [
    "IMAGE_EXTENSIONS",
    "DOMAIN_FOLDERS",
    "LAYOUT",
    "RESIZE_MARGIN",
    "DataError",
    "BadImageWarning",
    "DECODE_ERRORS",
    "find_images",
    "check_layout",
    "load_rgb",
    "to_rgb",
    "to_chw",
    "train_transform",
    "eval_transform",
    "epoch_permutation",
    "augmentation_rng",
    "StreamBatchSampler",
    "ImageFolderDataset",
    "build_train_loader",
    "iter_test_batches",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
DOMAIN_FOLDERS: tuple[str, ...] = ("trainA", "trainB", "testA", "testB")
LAYOUT = "<root>/{trainA,trainB,testA,testB}"
RESIZE_MARGIN = 30  # train images are resized to img_size + 30 before the random crop (official)

# Distinct tags keep the shuffling and the augmentation random streams independent.
_PERMUTATION_STREAM = 0
_AUGMENTATION_STREAM = 1

# What a broken or truncated file can raise while PIL opens, verifies or decodes it.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


class DataError(ValueError):
    """Missing or empty dataset folder, or (with strict=True) an unreadable image."""


class BadImageWarning(UserWarning):
    """An unreadable image file was skipped."""


# --------------------------------------------------------------------------------------------
# Discovery


def find_images(folder: str | Path) -> list[Path]:
    """All image files below ``folder`` (recursive, sorted by relative path).

    Extensions are matched case-insensitively against IMAGE_EXTENSIONS; other files and
    hidden entries (names starting with '.', e.g. ``.ipynb_checkpoints``) are ignored.
    Raises DataError naming the folder (and, for a dataset folder, the expected layout) if it is missing or
    has no images.
    """
    folder = Path(folder)
    layout = f"; expected the dataset layout {LAYOUT}" if folder.name in DOMAIN_FOLDERS else ""
    if not folder.is_dir():
        raise DataError(f"image folder '{folder}' does not exist{layout}")
    paths = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            paths.append(path)
    if not paths:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"image folder '{folder}' contains no images ({extensions}){layout}")
    return sorted(paths, key=lambda p: p.relative_to(folder).as_posix())


def check_layout(root: str | Path, folders: Sequence[str] = DOMAIN_FOLDERS) -> dict[str, Path]:
    """Check that each of ``root/<folder>`` exists and holds images; returns {folder: path}.

    Raises one DataError listing every missing or empty folder.
    """
    root = Path(root)
    found, problems = {}, []
    for name in folders:
        try:
            find_images(root / name)
            found[name] = root / name
        except DataError:
            state = "is empty" if (root / name).is_dir() else "is missing"
            problems.append(f"'{root / name}' {state}")
    if problems:
        raise DataError(f"dataset '{root}' is incomplete: {'; '.join(problems)}; expected the layout {LAYOUT}")
    return found


# --------------------------------------------------------------------------------------------
# Decoding


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB.

    * L, 1, CMYK, YCbCr, ...: PIL's standard conversion.
    * 16/32-bit grayscale (I;16*, I): scaled as value / 257 (65535 -> 255), rounded, not clipped.
    * Alpha (RGBA, LA, PA, P with transparency, premultiplied modes): composited on white,
      i.e. ``rgb * a + 255 * (1 - a)`` -- what an image viewer shows. (The official loader's
      ``convert('RGB')`` drops alpha instead; the two agree on opaque images such as selfie2anime.)
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.float64)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "P", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA")).astype(np.float64)
        alpha = rgba[..., 3:] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")
    return image.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Decode the image file at ``path`` fully and return it as 8-bit RGB (see :func:`to_rgb`).

    Raises what PIL raises for unreadable files (OSError, SyntaxError, ...).
    No EXIF rotation is applied (as in the official code).
    """
    with Image.open(path) as image:
        image.load()
        return to_rgb(image)


def _verify(path: Path) -> str | None:
    """Cheap integrity check (header + PIL's verify); returns a reason if the file is bad."""
    try:
        with Image.open(path) as image:
            image.verify()
            if image.width < 1 or image.height < 1:
                return "image has no pixels"
    except DECODE_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# --------------------------------------------------------------------------------------------
# Transforms (match torchvision on PIL images)


def to_chw(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> float32 [3, H, W] in [-1, 1] (ToTensor then Normalize(0.5, 0.5))."""
    values = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    values = (values - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(values.transpose(2, 0, 1))


def train_transform(image: Image.Image, img_size: int, rng: np.random.Generator) -> np.ndarray:
    """Official train augmentation -> float32 [3, img_size, img_size] in [-1, 1].

    Draw order: flip (``rng.random() < 0.5``), then crop top, then crop left, each uniform
    in [0, 30]. Small images are upscaled by the fixed-size resize.
    """
    flip = rng.random() < 0.5
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    load_size = img_size + RESIZE_MARGIN
    image = image.resize((load_size, load_size), Image.Resampling.BILINEAR)
    top = int(rng.integers(0, RESIZE_MARGIN + 1))
    left = int(rng.integers(0, RESIZE_MARGIN + 1))
    image = image.crop((left, top, left + img_size, top + img_size))
    return to_chw(image)


def eval_transform(image: Image.Image, img_size: int) -> np.ndarray:
    """Official test transform (bilinear resize to img_size) -> float32 [3, img_size, img_size]."""
    image = image.resize((img_size, img_size), Image.Resampling.BILINEAR)
    return to_chw(image)


# --------------------------------------------------------------------------------------------
# Reproducible sampling


def epoch_permutation(seed: int, domain_id: int, epoch: int, num_items: int) -> np.ndarray:
    """Visiting order of the items in ``epoch`` of the stream: int64 [num_items]."""
    return np.random.default_rng([seed, domain_id, _PERMUTATION_STREAM, epoch]).permutation(num_items)


def augmentation_rng(seed: int, domain_id: int, sample_number: int) -> np.random.Generator:
    """Random generator for the augmentation of global sample ``sample_number`` of a domain."""
    return np.random.default_rng([seed, domain_id, _AUGMENTATION_STREAM, sample_number])


class StreamBatchSampler(paddle.io.Sampler):
    """Infinite (or until ``stop_iteration``), resumable stream of batches over one domain.

    Global sample ``k`` is item ``epoch_permutation(seed, domain_id, k // n)[k % n]``. At
    iteration ``t`` the global batch is samples ``[t*B*W, (t+1)*B*W)`` (B = per-process
    ``batch_size``, W = ``world_size``), of which ``rank`` takes ``[rank*B, (rank+1)*B)``.
    Yields lists of ``(item_index, sample_number)`` tuples, starting at ``start_iteration``.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        domain_id: int,
        start_iteration: int = 0,
        rank: int = 0,
        world_size: int = 1,
        stop_iteration: int | None = None,
    ) -> None:
        super().__init__()
        if num_items < 1 or batch_size < 1 or world_size < 1:
            raise ValueError("num_items, batch_size and world_size must be positive")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if start_iteration < 0 or seed < 0 or domain_id < 0:
            raise ValueError("start_iteration, seed and domain_id must be >= 0")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.domain_id = domain_id
        self.start_iteration = start_iteration
        self.rank = rank
        self.world_size = world_size
        self.stop_iteration = stop_iteration
        self._permutations: dict[int, np.ndarray] = {}

    def _item(self, sample_number: int) -> int:
        epoch, position = divmod(sample_number, self.num_items)
        if epoch not in self._permutations:
            if len(self._permutations) >= 2:  # keep the current and the previous epoch
                self._permutations.pop(min(self._permutations))
            self._permutations[epoch] = epoch_permutation(self.seed, self.domain_id, epoch, self.num_items)
        return int(self._permutations[epoch][position])

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        """This rank's ``(item_index, sample_number)`` pairs for ``iteration``."""
        first = (iteration * self.world_size + self.rank) * self.batch_size
        return [(self._item(k), k) for k in range(first, first + self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        iteration = self.start_iteration
        while self.stop_iteration is None or iteration < self.stop_iteration:
            yield self.batch(iteration)
            iteration += 1

    def __len__(self) -> int:
        if self.stop_iteration is None:
            raise TypeError("StreamBatchSampler without stop_iteration is infinite and has no length")
        return max(0, self.stop_iteration - self.start_iteration)


# --------------------------------------------------------------------------------------------
# Dataset and loaders


class ImageFolderDataset(paddle.io.Dataset):
    """The images of one domain folder, transformed for training or testing.

    * train mode: ``dataset[(item_index, sample_number)]`` -> float32 [3, img, img], augmented
      with ``augmentation_rng(seed, domain_id, sample_number)`` (use with StreamBatchSampler).
    * test mode: ``dataset[i]`` -> float32 [3, img, img] of ``dataset.paths[i]``.

    Bad images: every file is verified cheaply when the dataset is built; failures are dropped
    from ``paths``. A file that still fails to decode later is skipped by substituting the next
    readable item (cyclically, so the result is deterministic). Each skipped file triggers a
    BadImageWarning naming it and is counted in ``skipped`` (lazy failures inside DataLoader
    worker processes are counted in those processes). With ``strict=True`` any bad file raises
    DataError naming it instead.
    """

    def __init__(
        self,
        folder: str | Path,
        img_size: int,
        train: bool,
        seed: int = 0,
        domain_id: int = 0,
        strict: bool = False,
    ) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.img_size = img_size
        self.train = train
        self.seed = seed
        self.domain_id = domain_id
        self.strict = strict
        self.skipped_paths: list[Path] = []
        self.paths: list[Path] = []
        self._unreadable: set[int] = set()  # indices into paths that failed to decode
        for path in find_images(self.folder):
            reason = _verify(path)
            if reason is None:
                self.paths.append(path)
            else:
                self._reject(path, reason)
        if not self.paths:
            raise DataError(f"image folder '{self.folder}' has no readable images ({self.skipped} skipped)")

    @property
    def skipped(self) -> int:
        """Number of files skipped as unreadable so far (in this process)."""
        return len(self.skipped_paths)

    def _reject(self, path: Path, reason: str) -> None:
        if self.strict:
            raise DataError(f"unreadable image '{path}': {reason} (set data.strict=false to skip such files)")
        warnings.warn(f"skipping unreadable image '{path}': {reason}", BadImageWarning, stacklevel=3)
        self.skipped_paths.append(path)

    def load(self, index: int) -> Image.Image | None:
        """Decode ``paths[index]`` as RGB; None (after warning and counting) if it is unreadable."""
        if index in self._unreadable:
            return None
        try:
            return load_rgb(self.paths[index])
        except DECODE_ERRORS as exc:
            self._unreadable.add(index)
            self._reject(self.paths[index], f"{type(exc).__name__}: {exc}")
            return None

    def _load_or_next(self, index: int) -> Image.Image:
        """``load(index)``, or the next readable item after it (cyclically)."""
        count = len(self.paths)
        for offset in range(count):
            image = self.load((index + offset) % count)
            if image is not None:
                return image
        raise DataError(f"image folder '{self.folder}' has no readable images ({self.skipped} skipped)")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> np.ndarray:
        if self.train:
            if not (isinstance(key, (tuple, list)) and len(key) == 2):
                raise TypeError(
                    f"a training dataset is indexed with (item_index, sample_number) pairs, got {key!r}"
                )
            index, sample_number = (int(k) for k in key)
            rng = augmentation_rng(self.seed, self.domain_id, sample_number)
            return train_transform(self._load_or_next(index), self.img_size, rng)
        return eval_transform(self._load_or_next(int(key)), self.img_size)


def _init_worker(parent_pid: int, seed: int, domain_id: int, rank: int, worker_id: int) -> None:
    """DataLoader worker_init_fn: end the worker with its parent (`workers.end_with_parent`), and make any
    global RNG use in a worker deterministic."""
    end_with_parent(parent_pid)
    state = int(np.random.SeedSequence([seed, domain_id, rank, worker_id]).generate_state(1)[0])
    random.seed(state)
    np.random.seed(state)
    paddle.seed(state)


def build_train_loader(
    folder: str | Path,
    img_size: int,
    batch_size: int,
    seed: int,
    domain_id: int,
    start_iteration: int = 0,
    num_workers: int = 0,
    use_shared_memory: bool = True,
    rank: int = 0,
    world_size: int = 1,
    strict: bool = False,
    stop_iteration: int | None = None,
) -> paddle.io.DataLoader:
    """Training batches of one domain: an iterable of float32 tensors [batch_size, 3, img, img].

    The ``num_workers`` worker processes end when this process ends, however it ends (`workers`).

    Batch ``j`` of the loader is iteration ``start_iteration + j`` of the StreamBatchSampler;
    the stream is infinite unless ``stop_iteration`` is given.
    """
    dataset = ImageFolderDataset(folder, img_size, train=True, seed=seed, domain_id=domain_id, strict=strict)
    sampler = StreamBatchSampler(
        len(dataset), batch_size, seed, domain_id, start_iteration, rank, world_size, stop_iteration
    )
    return paddle.io.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        use_shared_memory=use_shared_memory,
        worker_init_fn=functools.partial(_init_worker, os.getpid(), seed, domain_id, rank),
        return_list=True,
    )


def iter_test_batches(
    dataset: ImageFolderDataset, batch_size: int
) -> Iterator[tuple[paddle.Tensor, list[Path]]]:
    """Test-mode ``dataset`` in file order: (float32 tensor [b, 3, img, img], the b source paths).

    Images that fail to decode are skipped (warned, counted), so tensors and paths stay aligned.
    """
    if dataset.train:
        raise ValueError("iter_test_batches needs a test-mode dataset (train=False)")
    images: list[np.ndarray] = []
    paths: list[Path] = []
    for index, path in enumerate(dataset.paths):
        image = dataset.load(index)
        if image is None:
            continue
        images.append(eval_transform(image, dataset.img_size))
        paths.append(path)
        if len(images) == batch_size:
            yield paddle.to_tensor(np.stack(images)), paths
            images, paths = [], []
    if images:
        yield paddle.to_tensor(np.stack(images)), paths
