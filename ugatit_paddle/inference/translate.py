"""Translating images with a trained generator: the Python API, the test-set run and file-to-file prediction.

* :class:`Translator` -- one direction (A2B or B2A) of a checkpoint, a generator file, an exported inference
  model or an ONNX model;
  takes PIL images or uint8 [H, W, 3] arrays, returns PIL images (and CAM heatmap tiles).
* :func:`translate_test_set` -- what ``tools/test.py`` does: testA -> B and testB -> A with the official
  7-tile strips.
* :func:`collect_inputs` / :func:`translate_files` -- what ``tools/predict.py`` does: files, folders and
  globs in, one output file per readable input out (with ``face=True``: one per face, see `faces`).

Photos are read with :func:`faces.load_photo` (EXIF orientation applied, size bounded); the test set keeps the
official loader.

Pre- and post-processing are the official test pipeline: bilinear resize to the model's size, [-1, 1]
scaling (:func:`data.eval_transform`); outputs are the generator's image mapped back to uint8 and, with
``keep_size``, resized bilinearly to the input's size.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import paddle
from PIL import Image

from ..data import (
    DECODE_ERRORS, IMAGE_EXTENSIONS, ImageFolderDataset, eval_transform, find_images, iter_test_batches, to_rgb,
)
from ..formats.checkpoint import load_generators
from ..models import DIRECTIONS, GENERATORS, generator_name
from ..visualize import face_sheet, heatmap_tile, image_tile, save_png, translation_strips
from .export import InferenceModel
from .faces import Face, load_photo, prepare_faces
from .onnx import OnnxModel

TEST_FOLDERS = {"A2B": "testA", "B2A": "testB"}
STRIPS_DIR = "strips"  # sub-folder of the test outputs holding the 7-tile strips
HEATMAP_SUFFIX = "_heatmap"  # predict --heatmap writes `<stem>_heatmap.png` next to `<stem>.png`
FACE_SUFFIX = "_face"  # predict --face writes `<stem>_face1.png`, `<stem>_face2.png`, ... (largest face first)
SHEET_SUFFIX = "_face_sheet"  # predict --face-sheet writes `<stem>_face_sheet.png`
FACES_JSON = "faces.json"  # predict --face: where each face was found, per input (see translate_files)
TRANSLATION_TILE = 4  # index of the translation in a strip (see visualize.translation_strips)
BATCH_SIZE = 8  # images per generator forward pass, unless the caller says otherwise

# Runs a generator on float32 [N, 3, S, S] in [-1, 1]; returns numpy (image [N, 3, S, S], cam_logit [N, 2],
# heatmap [N, 1, S/4, S/4]). Implemented by `DygraphRunner`, `export.InferenceModel` and `onnx.OnnxModel`.
GeneratorRunner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
ImageInput = Image.Image | np.ndarray


class DygraphRunner:
    """A generator as a numpy function (eval mode, no grad): see `GeneratorRunner`."""

    def __init__(self, generator: paddle.nn.Layer) -> None:
        self.generator = generator

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.generator.eval()
        with paddle.no_grad():
            outputs = self.generator(paddle.to_tensor(images))
        return tuple(t.numpy() for t in outputs)


# ------------------------------------------------------------------------------------------------ the API
def as_rgb_image(image: ImageInput) -> Image.Image:
    """PIL image (any mode, see `data.to_rgb`) or uint8 [H, W, 3] array -> RGB PIL image."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 array of shape [H, W, 3], got {image.dtype} {list(image.shape)}")
        return Image.fromarray(np.ascontiguousarray(image), "RGB")
    raise TypeError(f"expected a PIL image or a uint8 [H, W, 3] numpy array, got {type(image).__name__}")


class Translator:
    """Translate images in one direction.

    `run` is the generator (see `GeneratorRunner`), `img_size` its input size S. Batched calls are split
    into chunks of `batch_size` images.

        translator = Translator.from_checkpoint("work/selfie2anime/checkpoints/iter_0100000.pdparams")
        anime = translator.translate(Image.open("me.jpg"), keep_size=True)
    """

    def __init__(self, run: GeneratorRunner, img_size: int, direction: str = "A2B", batch_size: int = BATCH_SIZE) -> None:
        generator_name(direction)  # validates
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.run, self.img_size, self.direction, self.batch_size = run, img_size, direction, batch_size

    @classmethod
    def from_checkpoint(cls, path: str | Path, direction: str = "A2B", batch_size: int = BATCH_SIZE) -> "Translator":
        """Load only the generator of `direction` from a project checkpoint (training, converted, or a generator
        file of `checkpoint.save_generators` / `export_model.py --weights-only`)."""
        args, nets = load_generators(path, (generator_name(direction),))
        return cls(DygraphRunner(nets[generator_name(direction)]), args.img_size, direction, batch_size)

    @classmethod
    def from_inference_model(cls, model_dir: str | Path, mkldnn: bool = False, threads: int | None = None,
                             batch_size: int = BATCH_SIZE) -> "Translator":
        """Use a model written by `export.export_checkpoint` through Paddle Inference."""
        model = InferenceModel(model_dir, mkldnn=mkldnn, threads=threads)
        return cls(model, model.img_size, model.direction, batch_size)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None, batch_size: int = BATCH_SIZE) -> "Translator":
        """Use an ONNX model written by `onnx.export_onnx` (a `.onnx` file or its folder) through
        ONNX Runtime (an optional dependency)."""

        model = OnnxModel(path, threads=threads)
        return cls(model, model.img_size, model.direction, batch_size)

    def translate(self, image: ImageInput, keep_size: bool = False) -> Image.Image:
        """One image -> its translation (S x S, or the input's size with `keep_size`)."""
        return self.translate_batch([image], keep_size)[0]

    def translate_with_heatmap(self, image: ImageInput, keep_size: bool = False) -> tuple[Image.Image, Image.Image]:
        """One image -> (translation, CAM heatmap tile of the same size, JET colours)."""
        return self.translate_batch_with_heatmaps([image], keep_size)[0]

    def translate_faces(self, faces: Sequence[Face], heatmaps: bool = False, keep_size: bool = False
                        ) -> list[tuple[Image.Image, Image.Image | None]]:
        """The faces of `faces.prepare_faces(photo).faces` -> (translation, CAM heatmap or None) each, in order:
        S x S, or each crop's size with `keep_size`.

        The same as `translate_with_heatmap(face.image)` for each face (what the page does), batched:

            preparation = prepare_faces(load_photo("me.jpg"))
            for face, (anime, heat) in zip(preparation.faces, translator.translate_faces(preparation.faces, True)):
                ...
        """
        images = [face.image for face in faces]
        if heatmaps:
            return self.translate_batch_with_heatmaps(images, keep_size)
        return [(out, None) for out in self.translate_batch(images, keep_size)]

    def translate_batch(self, images: Sequence[ImageInput], keep_size: bool = False) -> list[Image.Image]:
        """Several images (any sizes) -> their translations, in order."""
        return [out for out, _ in self._translate(images, keep_size, heatmaps=False)]

    def translate_batch_with_heatmaps(self, images: Sequence[ImageInput], keep_size: bool = False
                                      ) -> list[tuple[Image.Image, Image.Image]]:
        """Several images -> (translation, heatmap) pairs, in order."""
        return list(self._translate(images, keep_size, heatmaps=True))

    def _translate(self, images: Sequence[ImageInput], keep_size: bool, heatmaps: bool
                   ) -> Iterator[tuple[Image.Image, Image.Image | None]]:
        rgb = [as_rgb_image(image) for image in images]
        for start in range(0, len(rgb), self.batch_size):
            chunk = rgb[start:start + self.batch_size]
            batch = np.stack([eval_transform(image, self.img_size) for image in chunk])  # [n, 3, S, S]
            fake, _, heatmap = self.run(batch)
            for i, source in enumerate(chunk):
                out = Image.fromarray(image_tile(fake[i]))
                heat = Image.fromarray(heatmap_tile(heatmap[i], self.img_size)) if heatmaps else None
                if keep_size and out.size != source.size:
                    out = out.resize(source.size, Image.Resampling.BILINEAR)
                    heat = heat.resize(source.size, Image.Resampling.BILINEAR) if heat is not None else None
                yield out, heat


# ------------------------------------------------------------------------------------------ output names
def output_names(sources: Sequence[PurePosixPath], suffix: str = ".png") -> list[PurePosixPath]:
    """Output paths (relative) for source paths (relative): same folders and stem, extension `suffix`.

    Collisions are resolved deterministically: sources that differ only in their extension keep it in the
    stem (`a.jpg`, `a.png` -> `a_jpg.png`, `a_png.png`); any remaining duplicate gets `_2`, `_3`, ...
    """
    wanted = [PurePosixPath(s).with_suffix(suffix) for s in sources]
    extensions: dict[PurePosixPath, set[str]] = {}
    for source, name in zip(sources, wanted):
        extensions.setdefault(name, set()).add(PurePosixPath(source).suffix.lower())
    names = []
    for source, name in zip(sources, wanted):
        if len(extensions[name]) > 1:
            tag = PurePosixPath(source).suffix.lstrip(".").lower() or "noext"
            name = name.with_name(f"{name.stem}_{tag}{suffix}")
        names.append(name)
    return unique_names(names)


def unique_names(names: Sequence[PurePosixPath], taken: set[PurePosixPath] | None = None) -> list[PurePosixPath]:
    """`names` in order, each one already in `taken` (or earlier in `names`) renamed `<stem>_2`, `_3`, ...;
    the results are added to `taken`."""
    taken = set() if taken is None else taken
    result = []
    for name in names:
        candidate, k = name, 2
        while candidate in taken:
            candidate, k = name.with_name(f"{name.stem}_{k}{name.suffix}"), k + 1
        taken.add(candidate)
        result.append(candidate)
    return result


# ------------------------------------------------------------------------------------------- test set
@dataclass
class SplitResult:
    """What `translate_test_set` wrote for one direction."""

    direction: str
    source_folder: Path
    output_folder: Path  # translations here, strips in output_folder / STRIPS_DIR
    translated: int = 0
    skipped: list[Path] = field(default_factory=list)


def translate_test_set(checkpoint_path: str | Path, data_root: str | Path, output_dir: str | Path,
                       batch_size: int = BATCH_SIZE, directions: Sequence[str] = ("A2B", "B2A")) -> list[SplitResult]:
    """Translate `data_root`/testA to B and testB to A with the checkpoint's two generators.

    For each input `<rel>.<ext>` (`rel` relative to its test folder, sub-folders kept) writes
    `output_dir/<direction>/<rel>.png` (the translation, S x S) and `output_dir/<direction>/strips/<rel>.png`
    (the official 7-tile strip [7*S, S] with CAM heatmaps). Unreadable images are skipped with a warning.
    """
    args, nets = load_generators(checkpoint_path, GENERATORS)
    results = []
    for direction in directions:
        source_name, target_name = DIRECTIONS[direction]
        folder = Path(data_root) / TEST_FOLDERS[direction]
        dataset = ImageFolderDataset(folder, args.img_size, train=False)
        names = output_names([PurePosixPath(p.relative_to(folder).as_posix()) for p in dataset.paths])
        # an input sub-folder named "strips" must not collide with the strips
        strip_names = unique_names([STRIPS_DIR / name for name in names], taken=set(names))
        plain, strips = dict(zip(dataset.paths, names)), dict(zip(dataset.paths, strip_names))
        out = Path(output_dir) / direction
        result = SplitResult(direction, folder, out)
        for batch, paths in iter_test_batches(dataset, batch_size):
            size = batch.shape[-1]
            for path, strip in zip(paths, translation_strips(nets[source_name], nets[target_name], batch)):
                save_png(strip, out / strips[path])
                save_png(strip[TRANSLATION_TILE * size:(TRANSLATION_TILE + 1) * size], out / plain[path])
                result.translated += 1
        result.skipped = list(dataset.skipped_paths)
        results.append(result)
    return results


# ------------------------------------------------------------------------------------- files and folders
class InputError(ValueError):
    """An input path or glob that names nothing."""


_GLOB_MAGIC = re.compile(r"[*?[]")


def _glob_base(pattern: str) -> Path:
    """The longest leading part of a glob pattern without wildcards (outputs are named relative to it)."""
    parts = []
    for part in Path(pattern).parts:
        if _GLOB_MAGIC.search(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def collect_inputs(inputs: Sequence[str | Path]) -> list[tuple[Path, PurePosixPath]]:
    """Expand files, folders (recursive, image extensions only) and globs into (file, relative name) pairs.

    The relative name is the file name for a file, the path below the folder for a folder, and the path below
    the glob's fixed prefix for a glob match (`data/**/*.jpg` -> `sub/x.jpg`). A file named explicitly is always
    returned (it may still turn out unreadable); a file reached twice is returned once. Raises InputError for an
    input that matches nothing.
    """
    found: list[tuple[Path, PurePosixPath]] = []
    seen: set[Path] = set()

    def add(path: Path, relative: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append((path, PurePosixPath(relative.as_posix())))

    def add_folder(folder: Path) -> None:
        try:
            images = find_images(folder)
        except ValueError as e:
            raise InputError(str(e)) from None
        for image in images:
            add(image, image.relative_to(folder))

    for item in map(str, inputs):
        path = Path(item)
        if path.is_file():
            add(path, Path(path.name))
        elif path.is_dir():
            add_folder(path)
        elif _GLOB_MAGIC.search(item):
            base = _glob_base(item)
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            images = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_EXTENSIONS]
            if not images and not any(m.is_dir() for m in matches):
                raise InputError(f"no images match '{item}'")
            image_set = set(images)
            for match in matches:
                if match.is_dir():
                    add_folder(match)
                elif match in image_set:
                    add(match, match.relative_to(base))
        else:
            raise InputError(f"input '{item}' is not a file, a folder or a glob that matches images")
    return found


@dataclass
class FaceOptions:
    """predict --face: translate each face of a photo instead of the whole photo (see `faces.prepare_faces`).

    `max_faces` largest faces per photo (None: all); `strict`: a photo without a face is skipped instead of
    translated as its centre square; `sheet`: also write `<stem>_face_sheet.<format>` (`visualize.face_sheet`).
    """

    max_faces: int | None = None
    strict: bool = False
    sheet: bool = False


@dataclass
class PredictResult:
    """What `translate_files` did: the translations written, the inputs it could not read (with the reason) and,
    with faces, the number of photos translated, those translated as their centre square (no face found) and
    those skipped for having no face (strict)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    photos: int = 0
    centre_square: list[Path] = field(default_factory=list)
    no_face: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """'translated 12 images, skipped 1 unreadable: a.jpg'; with faces 'translated 3 faces of 2 photos, ...'."""
        if self.photos or self.no_face:
            text = (f"translated {len(self.written)} face{'s' if len(self.written) != 1 else ''} of {self.photos} "
                    f"photo{'s' if self.photos != 1 else ''}")
            if self.centre_square:
                text += f", the centre square of {len(self.centre_square)} without a face"
            if self.no_face:
                text += f", skipped {len(self.no_face)} without a face: " + ", ".join(map(str, self.no_face))
        else:
            text = f"translated {len(self.written)} image{'s' if len(self.written) != 1 else ''}"
        if self.skipped:
            text += f", skipped {len(self.skipped)} unreadable: " + ", ".join(str(p) for p, _ in self.skipped)
        return text


def translate_files(translator: Translator, inputs: Sequence[tuple[Path, PurePosixPath]], output_dir: str | Path,
                    keep_size: bool = False, heatmap: bool = False, image_format: str = "png",
                    on_skip: Callable[[Path, str], None] | None = None, faces: FaceOptions | None = None,
                    on_warning: Callable[[Path, str], None] | None = None) -> PredictResult:
    """Translate each (file, relative name) of `collect_inputs` to `output_dir/<relative stem>.<format>`.

    Files are read with `faces.load_photo` (EXIF orientation applied). With `heatmap`, the CAM heatmap tile
    (same size as the output) goes to `<stem>_heatmap.<format>` next to it. Unreadable files are skipped
    (reported through `on_skip(path, reason)` as they happen) and listed in the result.

    With `faces` (see FaceOptions), each face of a photo is translated instead, largest first, to
    `<stem>_face<K>.<format>` (K = 1, 2, ...; with `heatmap` also `<stem>_face<K>_heatmap.<format>`), and
    `output_dir/faces.json` records for each input (key: its relative name) {"size": [W, H], "fallback": bool,
    "faces": [{"box": [x, y, w, h], "angle": degrees, "crop": [[x, y] x 4], "output": "<file>"}]} in pixels of
    the photo after EXIF orientation (rewritten after every photo; entries of earlier runs are kept). A photo
    without a face is reported through `on_warning(path, message)`.
    """
    if faces is not None:
        return _translate_faces(translator, inputs, Path(output_dir), keep_size, heatmap, image_format, on_skip,
                                faces, on_warning)
    suffix = "." + image_format.lower().lstrip(".")
    names = output_names([name for _, name in inputs], suffix)
    # an input named `x_heatmap.png` must not collide with the heatmap of `x.png`
    wanted_heatmaps = [n.with_name(f"{n.stem}{HEATMAP_SUFFIX}{suffix}") for n in names]
    heatmap_names = dict(zip(names, unique_names(wanted_heatmaps, taken=set(names))))
    output_dir = Path(output_dir)
    result = PredictResult()
    pending: list[tuple[Image.Image, PurePosixPath]] = []

    def flush() -> None:
        images = [image for image, _ in pending]
        if heatmap:
            outputs = translator.translate_batch_with_heatmaps(images, keep_size)
        else:
            outputs = [(out, None) for out in translator.translate_batch(images, keep_size)]
        for (_, name), (out, heat) in zip(pending, outputs):
            target = output_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            out.save(target)
            if heat is not None:
                heat.save(output_dir / heatmap_names[name])
            result.written.append(target)
        pending.clear()

    for (path, _), name in zip(inputs, names):
        image = _read(path, result, on_skip)
        if image is None:
            continue
        pending.append((image, name))
        if len(pending) == translator.batch_size:
            flush()
    if pending:
        flush()
    return result


def _read(path: Path, result: PredictResult, on_skip: Callable[[Path, str], None] | None) -> Image.Image | None:
    """`load_photo(path)`, or None with the file recorded as skipped."""
    try:
        return load_photo(path)
    except DECODE_ERRORS as e:
        reason = f"{type(e).__name__}: {e}"
        result.skipped.append((path, reason))
        if on_skip is not None:
            on_skip(path, reason)
        return None


def _translate_faces(translator: Translator, inputs: Sequence[tuple[Path, PurePosixPath]], output_dir: Path,
                     keep_size: bool, heatmap: bool, image_format: str,
                     on_skip: Callable[[Path, str], None] | None, options: FaceOptions,
                     on_warning: Callable[[Path, str], None] | None) -> PredictResult:
    suffix = "." + image_format.lower().lstrip(".")
    stems = output_names([name for _, name in inputs], suffix)
    taken: set[PurePosixPath] = set()
    records = _read_faces_json(output_dir / FACES_JSON)
    result = PredictResult()
    warned_b2a = False
    for (path, relative), stem in zip(inputs, stems):
        photo = _read(path, result, on_skip)
        if photo is None:
            continue
        preparation = prepare_faces(photo, options.max_faces, options.strict, translator.direction)
        if preparation.fallback and on_warning is not None and (translator.direction != "B2A" or not warned_b2a):
            on_warning(path, preparation.note)
            warned_b2a = warned_b2a or translator.direction == "B2A"
        if not preparation.faces:
            result.no_face.append(path)
            if on_warning is not None:
                on_warning(path, "no face found: skipped (strict)")
        else:
            result.photos += 1
            if preparation.fallback and translator.direction != "B2A":
                result.centre_square.append(path)
        outputs = translator.translate_faces(preparation.faces, heatmap, keep_size)
        names = unique_names([stem.with_name(f"{stem.stem}{FACE_SUFFIX}{k}{suffix}")
                              for k in range(1, len(outputs) + 1)], taken)
        for name, (out, heat) in zip(names, outputs):
            target = output_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            out.save(target)
            if heat is not None:
                heat_name = unique_names([name.with_name(f"{name.stem}{HEATMAP_SUFFIX}{suffix}")], taken)[0]
                heat.save(output_dir / heat_name)
            result.written.append(target)
        if options.sheet:
            sheet_name = unique_names([stem.with_name(f"{stem.stem}{SHEET_SUFFIX}{suffix}")], taken)[0]
            sheet = face_sheet(photo, preparation, [out for out, _ in outputs],
                               [heat for _, heat in outputs] if heatmap else None)
            (output_dir / sheet_name).parent.mkdir(parents=True, exist_ok=True)
            sheet.save(output_dir / sheet_name)
        records[relative.as_posix()] = preparation.to_json([name.as_posix() for name in names])
        _write_json(output_dir / FACES_JSON, records)
    return result


def _read_faces_json(path: Path) -> dict:
    """The faces.json of an earlier run into the same folder (kept, entries replaced per input), or {}."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _write_json(path: Path, records: dict) -> None:
    """Write atomically: an interrupted run leaves the previous complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    lines = [f" {json.dumps(key)}: {json.dumps(value)}" for key, value in records.items()]  # one input a line
    partial.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    os.replace(partial, path)
