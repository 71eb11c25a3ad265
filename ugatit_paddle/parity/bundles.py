"""Checks against a parity bundle recorded from the unmodified official code (the layout `record.record_bundle`
writes, described in tests/fixtures/README.md; the repository's bundles live there).

`bundle_parity` converts the bundle's initial weights, compares the eval outputs of the six networks, and
with `steps` runs that many training iterations of `UGATIT` on the bundle's batch: the D and G loss of
each iteration, then (after all the recorded steps) every weight and the eval outputs. The bundle's `dtype`
(absent: float32) decides both the arithmetic (a float64 bundle is converted, built and trained in float64:
networks, batch, Adam, spectral-norm vectors) and the limits (`checks.LIMITS`). `official_rerun` puts the
official code itself (`official_torch.OfficialTraining`) through the same checks.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from ..config import ModelConfig, config_from_dict
from ..formats import checkpoint
from ..formats.official import from_official, infer_model_args
from ..formats.torch_pickle import load_torch
from ..training.ugatit import UGATIT
from .checks import (
    Limits, Report, Row, compare, compare_eval, eval_outputs, limits_for, trajectory_note, trajectory_rows,
)
from .official_torch import OfficialTraining, Recipe

StateDicts = Mapping[str, Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Bundle:
    """A parity bundle's folder and its reference.json."""

    path: Path
    reference: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> "Bundle":
        path = Path(path)
        ref_file = path / "reference.json"
        if not ref_file.is_file():
            raise ValueError(f"{path} is not a parity bundle: {ref_file} not found")
        reference = json.loads(ref_file.read_text())
        missing = [k for k in ("img_size", "ch", "n_res", "light", "batch", "steps", "lr", "losses") if k not in reference]
        if missing:
            raise ValueError(f"{ref_file} lacks {', '.join(missing)}")
        return cls(path, reference)

    @property
    def dtype(self) -> str:
        return self.reference.get("dtype", "float32")

    @property
    def steps(self) -> int:
        return int(self.reference["steps"])

    @property
    def light(self) -> bool:
        return bool(self.reference["light"])

    @property
    def limits(self) -> Limits:
        return limits_for(self.dtype)

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        batch = np.load(self.path / "batch.npz")
        return batch["real_A"], batch["real_B"]

    def npz(self, name: str) -> Any:
        return np.load(self.path / name)

    def check_architecture(self, args: ModelConfig) -> None:
        """ValueError when the weights' architecture (`args`, inferred from init_params.pt) is not the one
        reference.json names (the discriminator depths only where it names them: older bundles do not)."""
        names = ("ch", "n_res", "light", "global_layers", "local_layers")
        recorded = {k: self.reference[k] for k in names if k in self.reference}
        found = {k: getattr(args, k) for k in recorded}
        if found != recorded:
            raise ValueError(f"{self.path}: the weights say {found}, reference.json says {recorded}")

    def limits_notes(self) -> list[str]:
        """A note when reference.json recorded other limits than the ones this version checks with."""
        recorded = self.reference.get("limits")
        if recorded is None:
            return []
        current = self.limits.to_dict()
        changed = [k for k in current if isinstance(current[k], dict) and recorded.get(k, {}).get("value")
                   != current[k]["value"]]
        return [f"reference.json recorded other limits for {', '.join(changed)}; checked with this version's "
                f"(parity/checks.py)"] if changed else []

    def check_steps(self, steps: int) -> None:
        if not 0 <= steps <= self.steps:
            raise ValueError(f"{self.path} records {self.steps} training iterations; --steps must be 0..{self.steps}")


def _notes(bundle: Bundle, steps: int) -> list[str]:
    notes = trajectory_note(bundle.limits, bundle.light, steps)
    if 0 < steps < bundle.steps:
        notes.append(f"weights and eval outputs are recorded after {bundle.steps} iterations: --steps {bundle.steps} "
                     f"checks them")
    return notes


def _trajectory(bundle: Bundle, steps: int, losses: Sequence[tuple[float, float]], weights: StateDicts | None,
                reference_weights: StateDicts | None, outputs: Mapping[str, np.ndarray] | None) -> list[Row]:
    """Rows of a training run judged against the bundle's recording (weights and outputs only after all of
    its steps)."""
    ref = bundle.reference
    complete = steps == bundle.steps
    return trajectory_rows(bundle.limits, bundle.light, float(ref["lr"]), steps, losses,
                           [(r["D"], r["G"]) for r in ref["losses"]], weights if complete else None,
                           reference_weights, outputs if complete else None,
                           bundle.npz("eval_outputs_after_steps.npz") if complete else None)


def project_model(args: Any, states: StateDicts, recipe: Recipe, batch_size: int, steps: int, dtype: str,
                  path: str) -> UGATIT:
    """This project's `UGATIT` for `args` with the official recipe, in `dtype`, starting from the converted
    weights `states` (Paddle layout); the schedule is long enough that lr decay plays no part in `steps`."""
    cfg = config_from_dict({
        "model": dataclasses.asdict(args),
        "train": {"lr": recipe.lr, "beta1": recipe.beta1, "beta2": recipe.beta2, "weight_decay": recipe.weight_decay,
                  "batch_size": batch_size, "iterations": max(2 * steps, 2), "float64": dtype == "float64"},
        "loss": {"adv_weight": recipe.adv_weight, "cycle_weight": recipe.cycle_weight,
                 "identity_weight": recipe.identity_weight, "cam_weight": recipe.cam_weight},
    })
    model = UGATIT(cfg)
    checkpoint.load_networks(model.nets, checkpoint.model_payload(args, states), path)
    return model


def run_project(model: UGATIT, real_A: np.ndarray, real_B: np.ndarray, steps: int) -> list[tuple[float, float]]:
    """`steps` training iterations of `model` on one fixed batch; the (D, G) total losses of each."""
    model.set_train_mode(True)
    A, B = paddle.to_tensor(real_A), paddle.to_tensor(real_B)
    losses = []
    for _ in range(steps):
        terms = model.step(A, B)
        losses.append((terms["D/total"], terms["G/total"]))
    return losses


def network_states(nets: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    return {name: {k: v.numpy() for k, v in net.state_dict().items()} for name, net in nets.items()}


def _converted(path: Path, img_size: int) -> tuple[Any, dict[str, dict[str, np.ndarray]]]:
    args, states, _ = from_official(load_torch(path), img_size=img_size)
    return args, states


def bundle_parity(bundle: str | Path, steps: int = 0, dtype: str | None = None) -> Report:
    """Check this project against a parity bundle; `steps` > 0 also runs that many training iterations.

    `dtype` overrides the arithmetic (default: the bundle's dtype); the limits are always the bundle's, so a
    float32 run of a float64 bundle shows what float64 buys.
    """
    b = Bundle.open(bundle)
    b.check_steps(steps)
    dtype = dtype or b.dtype
    ref, limits = b.reference, b.limits
    args, states = _converted(b.path / "init_params.pt", int(ref["img_size"]))
    b.check_architecture(args)
    real_A, real_B = b.batch()
    model = project_model(args, states, Recipe.from_mapping(ref), int(ref["batch"]), b.steps, dtype,
                          str(b.path / "init_params.pt"))
    rows = compare_eval("eval@init", model.nets, real_A, b.npz("eval_outputs_init.npz"), limits.eval.value)
    report = Report(rows, bundle=str(b.path), dtype=b.dtype, steps=steps, notes=_notes(b, steps))
    report.notes += b.limits_notes()
    if dtype != b.dtype:
        report.notes.append(f"computed in {dtype}, judged by the {b.dtype} limits of the bundle")
    if steps == 0:
        return report
    losses = run_project(model, real_A, real_B, steps)
    complete = steps == b.steps
    reference = _converted(b.path / "after_steps_params.pt", int(ref["img_size"]))[1] if complete else None
    report.rows += _trajectory(b, steps, losses, network_states(model.nets), reference,
                               eval_outputs(model.nets, real_A) if complete else None)
    return report


def official_rerun(bundle: str | Path, torch_src: str | Path, threads: int | None = None,
                   dtype: str | None = None) -> Report:
    """Rerun the official code (torch, from the clone `torch_src`) through all the bundle's iterations and judge
    *it* with the same rows and limits: how reproducible the recording itself is (e.g. with 1 vs 2 threads)."""
    b = Bundle.open(bundle)
    ref = b.reference
    init = load_torch(b.path / "init_params.pt")
    args, _ = infer_model_args(init, int(ref["img_size"]))
    official = OfficialTraining(torch_src, args.img_size, args.ch, args.n_res, args.light, args.global_layers,
                                args.local_layers, dtype=dtype or b.dtype, states=init,
                                recipe=Recipe.from_mapping(ref), threads=threads)
    real_A, real_B = b.batch()
    reference = b.npz("eval_outputs_init.npz")
    rows = [compare("eval@init", *key.split("."), value, reference[key], b.limits.eval.value)
            for key, value in official.eval_outputs(real_A).items()]
    losses = [official.step(real_A, real_B) for _ in range(b.steps)]
    rows += _trajectory(b, b.steps, losses, official.state_dicts(), load_torch(b.path / "after_steps_params.pt"),
                        official.eval_outputs(real_A))
    return Report(rows, bundle=str(b.path), dtype=b.dtype, steps=b.steps, notes=_notes(b, b.steps))
