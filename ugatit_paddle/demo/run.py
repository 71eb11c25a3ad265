"""The CPU demo: make the procedural dataset, train a tiny U-GAT-IT, and measure the translation.

    python tools/demo.py                       # configs/demo.yaml; a few minutes on 2 CPU cores

Steps of :func:`run_demo`:

1. write the procedural unpaired dataset of :mod:`ugatit_paddle.demo.dataset` into ``data.root`` (at
   ``model.img_size`` pixels; skipped when it is already there);
2. build the :class:`~ugatit_paddle.training.loop.Trainer` and score its *untrained* generators (iteration 0);
3. train (``Trainer.train``: sample sheets in ``output_dir/samples``, checkpoints in
   ``output_dir/checkpoints``; ``time_limit`` is its ``should_stop`` callback);
4. translate the held-out test images (testA with genA2B, testB with genB2A), write them to
   ``output_dir/demo_translations``, score them, print a table and write ``output_dir/demo_result.json``.

The translation score
---------------------
``P(looks like B)`` of a set of images is :meth:`DomainScorer.score`: a scorer fitted on the
*training* images only (trainA = 0, trainB = 1; the test images are held out) gives each image a
probability of domain B -- the mean of three logistic regressions on handcrafted features, one
per cue: background brightness, colour (hue histogram) and texture (edges, straightness,
stripes) -- and the score is the mean over the images. ``P(looks like A)`` is ``1 - P(looks like B)``.
Real testA scores near 0 and real testB near 1. A generator that has learned A -> B moves its
translations of testA from near 0 (at initialisation, the untrained generator's output is a
blurry, low-contrast copy of its input) towards 1; likewise genB2A(testB) towards ``P(A)`` = 1.
All images are scored at the model resolution, as the generator sees and produces them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import paddle

from ..config import load_config
from ..data import ImageFolderDataset, check_layout, iter_test_batches
from ..formats.checkpoint import list_checkpoints
from ..training.loop import StopReason, Trainer
from ..visualize import image_tile, save_png
from .dataset import CUES, MANIFEST, N_TEST, N_TRAIN, DomainScorer, make_demo_dataset

__all__ = ["DEFAULT_CONFIG", "DemoError", "DemoResult", "run_demo", "prepare_dataset", "load_at_size",
           "translate_folder", "score_table"]

DEFAULT_CONFIG = "configs/demo.yaml"
_MARKER = ".ugatit_demo"  # marks an output_dir as the demo's own (its old outputs may be replaced)
_GRID_IMAGES = 8  # images per domain on the before/after grids


class DemoError(RuntimeError):
    """The demo cannot run as asked (e.g. its output folder holds another experiment)."""


@dataclass
class DemoResult:
    """What :func:`run_demo` measured and wrote.

    ``scores`` maps ``"P(B)"`` and ``"P(A)"`` to {image set: score}; image sets are ``"testA"``,
    ``"testB"`` and ``"genA2B(testA)"`` / ``"genB2A(testB)"`` (trained) and the same with
    ``" untrained"`` appended (iteration 0). ``cues`` holds the per-cue P(B) of every image set.
    """

    scores: dict[str, dict[str, float]]
    cues: dict[str, dict[str, float]]
    iterations: int  # completed training iterations
    interrupted: StopReason | None  # SIGINT, SIGTERM or TIME_LIMIT if training stopped early, else None
    train_seconds: float
    total_seconds: float
    output_dir: Path
    samples_dir: Path
    translations_dir: Path
    result_path: Path
    checkpoint: Path
    dataset: dict[str, Any] = field(default_factory=dict)

    @property
    def learned(self) -> bool:
        """Did training move both translations towards their target domain (by at least 0.2)?"""
        p_b, p_a = self.scores["P(B)"], self.scores["P(A)"]
        return (p_b["genA2B(testA)"] - p_b["genA2B(testA) untrained"] >= 0.2
                and p_a["genB2A(testB)"] - p_a["genB2A(testB) untrained"] >= 0.2)


# --------------------------------------------------------------------------------------------
# Pieces


def prepare_dataset(root: str | Path, size: int, n_train: int, n_test: int, seed: int = 0) -> dict[str, Any]:
    """Make sure ``root`` holds a dataset; returns a description of it.

    Writes the procedural demo dataset (``make_demo_dataset``; idempotent) when ``root`` is absent,
    empty or an earlier demo dataset. A complete dataset that is not a demo dataset is used as it is;
    anything else (a non-demo folder with an incomplete layout) raises DataError rather than writing
    demo images into someone's data.
    """
    root = Path(root)
    manifest = root / MANIFEST
    ours = manifest.is_file()
    empty = not root.exists() or (root.is_dir() and not any(root.iterdir()))
    if ours or empty:
        stamp = manifest.stat().st_mtime_ns if ours else None
        start = time.perf_counter()
        make_demo_dataset(root, n_train=n_train, n_test=n_test, size=size, seed=seed)
        info = json.loads(manifest.read_text())
        info["seconds"] = round(time.perf_counter() - start, 2)
        info["generated"] = stamp is None or manifest.stat().st_mtime_ns != stamp  # False: already there
        info["demo"] = True
        return info
    check_layout(root)  # raises DataError naming what is missing
    return {"generated": False, "demo": False}


def load_at_size(folder: str | Path, size: int, batch_size: int = 64) -> np.ndarray:
    """All images of ``folder`` as the model sees them at test time (resized to ``size``): uint8 [N, S, S, 3].

    For the generated dataset (already ``size`` px) this is exactly ``dataset.load_images(folder)``.
    """
    dataset = ImageFolderDataset(folder, size, train=False)
    return np.concatenate([_to_uint8(batch) for batch, _ in iter_test_batches(dataset, batch_size)])


def _translate(generator: paddle.nn.Layer, images: paddle.Tensor) -> np.ndarray:
    """uint8 [N, S, S, 3] translations of float32 [N, 3, S, S] images (no grad, eval mode)."""
    with paddle.no_grad():
        fake, _, _ = generator(images)
    return np.stack([image_tile(x) for x in fake.numpy()])


def _to_uint8(images: paddle.Tensor) -> np.ndarray:
    return np.stack([image_tile(x) for x in images.numpy()])


def translate_folder(generator: paddle.nn.Layer, dataset: ImageFolderDataset, batch_size: int = 16
                     ) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Translate every image of a test-mode dataset: (inputs uint8 [N, S, S, 3], outputs, source paths)."""
    was_training = generator.training
    generator.eval()
    inputs, outputs, paths = [], [], []
    try:
        for batch, batch_paths in iter_test_batches(dataset, batch_size):
            inputs.append(_to_uint8(batch))
            outputs.append(_translate(generator, batch))
            paths += batch_paths
    finally:
        generator.train() if was_training else generator.eval()
    return np.concatenate(inputs), np.concatenate(outputs), paths


def _cue_means(scorer: DomainScorer, images: np.ndarray) -> dict[str, float]:
    return {cue: float(p.mean()) for cue, p in scorer.cue_probabilities(images).items()}


def score_table(scores: Mapping[str, Mapping[str, float]], cues: Mapping[str, Mapping[str, float]]) -> str:
    """The printed table: one row per image set with P(B), P(A) and the per-cue P(B)."""
    labels = {"testA": "testA (real A)", "testB": "testB (real B)",
              "genA2B(testA) untrained": "genA2B(testA), iteration 0", "genA2B(testA)": "genA2B(testA), trained",
              "genB2A(testB) untrained": "genB2A(testB), iteration 0", "genB2A(testB)": "genB2A(testB), trained"}
    width = max(len(v) for v in labels.values())
    cue_names = list(CUES)
    cue_width = max(len(c) for c in cue_names)
    cue_block = "  ".join(f"{c:>{cue_width}}" for c in cue_names)
    head = f"{'images':<{width}}  P(looks like B)  P(looks like A)  |  {cue_block}"
    over = f"{'':<{width}}  {'':15}  {'':15}  |  {'per-cue P(looks like B)':^{len(cue_block)}}"
    lines = [over.rstrip(), head, "-" * len(head)]
    for key, label in labels.items():
        cue_text = "  ".join(f"{cues[key][c]:>{cue_width}.2f}" for c in cue_names)
        lines.append(f"{label:<{width}}  {scores['P(B)'][key]:>15.3f}  {scores['P(A)'][key]:>15.3f}  |  {cue_text}")
    return "\n".join(lines)


def _prepare_output(out: Path) -> None:
    """Claim ``out`` for the demo; replace the checkpoints and sheets of an earlier demo run there."""
    old_checkpoints = [p for _, p in list_checkpoints(out)]
    old_samples = sorted((out / "samples").glob("*.png")) if (out / "samples").is_dir() else []
    if (old_checkpoints or old_samples) and not (out / _MARKER).is_file():
        raise DemoError(
            f"output_dir '{out}' holds checkpoints or samples of another experiment; the demo trains from "
            f"scratch and would mix with them: choose another folder (e.g. -o output_dir=work/demo2)"
        )
    for path in old_checkpoints + old_samples:
        path.unlink(missing_ok=True)
    for folder in ("A2B", "B2A"):
        for path in (out / "demo_translations" / folder).glob("*.png"):
            path.unlink(missing_ok=True)
    if old_checkpoints or old_samples:
        print(f"removed the checkpoints and sample sheets of the previous demo run in {out}")
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("output folder of ugatit_paddle.demo.run_demo; its outputs are replaced on rerun\n")


def _time_limit(seconds: float | None) -> tuple[Callable[[int], bool] | None, dict[str, bool]]:
    """A `should_stop` callback that is true once `seconds` have passed from now (None: no callback), and the
    record of whether it fired."""
    state = {"hit": False}
    if seconds is None:
        return None, state
    deadline = time.perf_counter() + seconds

    def should_stop(iteration: int) -> bool:
        state["hit"] = state["hit"] or time.perf_counter() > deadline
        return state["hit"]

    return should_stop, state


def _grid(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of uint8 [N, S, S, 3] images -> one [len(rows)*S, N*S, 3] picture."""
    return np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)


# --------------------------------------------------------------------------------------------
# The demo


def run_demo(
    config_path: str | Path | None = DEFAULT_CONFIG,
    overrides: Sequence[str] = (),
    n_train: int = N_TRAIN,
    n_test: int = N_TEST,
    data_seed: int = 0,
    time_limit: float | None = None,
    verbose: bool = True,
) -> DemoResult:
    """Generate the demo data, train, translate the test images and score them (see the module docstring).

    Args:
        config_path, overrides: as for ``load_config`` (default ``configs/demo.yaml``).
        n_train, n_test: images per domain of the generated dataset (train / held-out test).
        data_seed: seed of the procedural dataset.
        time_limit: stop training after this many seconds (with a checkpoint and a final sample sheet)
            even if ``train.iterations`` is not reached; None: no limit.
        verbose: print the demo's messages and the score table (the trainer prints its own log regardless).

    Raises ConfigError, DataError, DemoError, CheckpointError or NonFiniteLossError.
    """
    say = print if verbose else (lambda *a, **k: None)
    start = time.perf_counter()
    cfg = load_config(config_path, overrides)
    out = Path(cfg.output_dir)
    size = cfg.model.img_size

    # 1. data
    dataset_info = prepare_dataset(cfg.data.root, size, n_train, n_test, data_seed)
    if dataset_info["demo"]:
        made = f"generated in {dataset_info['seconds']:.1f} s" if dataset_info["generated"] else "already there"
        say(f"dataset: {cfg.data.root} ({n_train} train + {n_test} test images per domain, {size}x{size} px, "
            f"seed {data_seed}; {made})")
    else:
        say(f"dataset: {cfg.data.root} (existing, not a generated demo dataset: used as it is)")
    folders = check_layout(cfg.data.root)
    _prepare_output(out)
    # = DomainScorer.from_folders(trainA, trainB) on the generated dataset; any resolution works
    scorer = DomainScorer.fit(load_at_size(folders["trainA"], size), load_at_size(folders["trainB"], size))
    tests = {d: ImageFolderDataset(folders[f"test{d}"], size, train=False) for d in "AB"}

    # 2. the untrained generators (iteration 0): forward passes only, no random numbers drawn
    trainer = Trainer(cfg)
    inputs, before = {}, {}
    for d, gen in (("A", "genA2B"), ("B", "genB2A")):
        inputs[d], before[d], _ = translate_folder(trainer.model.nets[gen], tests[d])

    # 3. train
    say(f"training {cfg.train.iterations} iterations; sample sheets every {cfg.train.sample_every} "
        f"in {out / 'samples'}")
    should_stop, limit = _time_limit(time_limit)
    train_start = time.perf_counter()
    checkpoint = trainer.train(should_stop=should_stop)
    train_seconds = time.perf_counter() - train_start
    if limit["hit"]:
        say(f"time limit of {time_limit:.0f} s reached at iteration {trainer.iteration}: training stopped")
    interrupted = StopReason.TIME_LIMIT if limit["hit"] else trainer.interrupted

    # 4. translate, save and score the held-out test images
    trainer.model.set_train_mode(False)
    translations = out / "demo_translations"
    after, paths = {}, {}
    for d, gen in (("A", "genA2B"), ("B", "genB2A")):
        _, after[d], paths[d] = translate_folder(trainer.model.nets[gen], tests[d])
        name = "A2B" if d == "A" else "B2A"
        for image, path in zip(after[d], paths[d]):
            save_png(image, translations / name / f"{Path(path).stem}.png")
        k = min(_GRID_IMAGES, len(after[d]))
        save_png(_grid([inputs[d][:k], before[d][:k], after[d][:k]]), translations / f"{name}_grid.png")

    sets = {"testA": inputs["A"], "testB": inputs["B"],
            "genA2B(testA) untrained": before["A"], "genA2B(testA)": after["A"],
            "genB2A(testB) untrained": before["B"], "genB2A(testB)": after["B"]}
    p_b = {key: scorer.score(images) for key, images in sets.items()}
    scores = {"P(B)": p_b, "P(A)": {key: 1.0 - value for key, value in p_b.items()}}
    cues = {key: _cue_means(scorer, images) for key, images in sets.items()}
    total_seconds = time.perf_counter() - start

    result = DemoResult(
        scores=scores, cues=cues, iterations=trainer.iteration, interrupted=interrupted,
        train_seconds=train_seconds, total_seconds=total_seconds, output_dir=out,
        samples_dir=out / "samples", translations_dir=translations, result_path=out / "demo_result.json",
        checkpoint=Path(checkpoint), dataset=dataset_info,
    )
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result).items()}
    record["learned"] = result.learned
    record["test_images"] = {"A": len(paths["A"]), "B": len(paths["B"])}
    record["score_definition"] = (
        "P(B) = mean over the images of DomainScorer(trainA, trainB) probabilities of domain B (mean of "
        "background, colour and texture logistic regressions; fitted on the training images only); P(A) = 1 - P(B)")
    record["config"] = cfg.to_dict()
    result.result_path.write_text(json.dumps(record, indent=1))

    say("")
    say(f"translation score on the held-out test images ({len(paths['A'])} A, {len(paths['B'])} B; "
        "DomainScorer fitted on trainA/trainB):")
    say(score_table(scores, cues))
    say("")
    say(f"learning: P(B) of genA2B(testA) {p_b['genA2B(testA) untrained']:.2f} (iteration 0) -> "
        f"{p_b['genA2B(testA)']:.2f} (iteration {trainer.iteration}); P(A) of genB2A(testB) "
        f"{scores['P(A)']['genB2A(testB) untrained']:.2f} -> {scores['P(A)']['genB2A(testB)']:.2f}"
        f"   (real testA {p_b['testA']:.2f}, real testB {p_b['testB']:.2f})")
    say(f"sample sheets: {result.samples_dir}/A2B_*.png, B2A_*.png (7 rows: input, CAM, identity, CAM, "
        "translation, CAM, cycle)")
    say(f"translations:  {translations}/A2B/, B2A/; before/after grids {translations}/A2B_grid.png, B2A_grid.png "
        "(rows: input, iteration 0, trained)")
    say(f"scores:        {result.result_path}")
    say(f"checkpoint:    {result.checkpoint}")
    rate = f", {train_seconds / max(trainer.iteration, 1):.2f} s/iteration" if trainer.iteration else ""
    say(f"wall time:     {total_seconds:.0f} s in total, of which training {train_seconds:.0f} s "
        f"({trainer.iteration} iterations{rate})" + (f"; training stopped early ({interrupted})" if interrupted else ""))
    return result
