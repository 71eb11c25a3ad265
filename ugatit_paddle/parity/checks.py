"""Rows of a parity check, the limits they are held to, and how they are printed.

A `Row` compares one quantity of this project with its reference (the official recording or a live
official run) against a limit. The limits are `LIMITS`, one `Limits` per dtype; each `Limit` carries its rule
and the reason for its value, and each `Limits` how it was calibrated. `Report` is what a whole check returns:
the rows plus the bundle, dtype, steps and one-line notes, printable as a fixed-width table, a Markdown table or
one JSON line.

How close is close enough was measured on the official code itself (UGATIT-pytorch b8c4251, PyTorch 2.13.0 CPU),
on bundles of 96-128 px, ch 4-8, 3-4 steps:

float32. Running the official code twice on the same bundle with 1 and then 2 CPU threads (which only changes
the order of float32 reductions) gives: eval outputs from the same weights about 1e-6 of max|ref|; total D and G
loss of every iteration about 1e-6 relative; light model, weights after 3-4 iterations: about 1% of all values
off by more than 1e-6, the worst by 2e-4 = 2 x lr (Adam's first steps move a weight by about lr x sign(grad),
and a gradient that is zero up to rounding can flip sign), eval outputs after them up to 0.5e-2; full model: the
same flips hit many values of the 1M-weight `FC.0` layer and the generator amplifies them: 3-10% of the weights
off by more than 1e-5 and the generators' eval outputs after 2-3 iterations 0.02-0.36 apart, between two runs
of the official code itself. A float32 full-model trajectory is therefore comparable only in its losses and
its largest weight change; the float64 bundles check the rest.

float64. The rounding noise is 1e-16 instead of 1e-7, so Adam's sign flips practically vanish and the whole
trajectory is comparable, for the full model too. An implementation following the official arithmetic (same
normalisation statistics, spectral-norm power iteration, Adam with coupled weight decay, update order and rho
clipping) was measured at: eval outputs <= 3e-12 relative, losses <= 1e-12 relative at every iteration, weights
after the steps <= 2e-9, eval outputs after the steps <= 1e-7 relative. The float64 limits leave 50-1000x of
room above those figures, and a float32 computation of the same bundle misses them (tests/test_parity_bundles.py:
the repository's full bundle computed in float32 is 20-1700x over the four limits).

The bundles of the repository (tests/fixtures, recorded by `record.record_bundle`) copy their dtype's limits
into their reference.json with this calibration, so a bundle describes itself; the values used are always
these (`Bundle.limits`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import paddle

OUTPUTS = ("out", "cam_logit", "heatmap")  # what every network returns, in order


class Limit(NamedTuple):
    """One tolerance and its rule: what is compared, and why this value (see the module docstring)."""

    value: float
    rule: str


@dataclass(frozen=True)
class Limits:
    """The tolerances of one dtype. `weights` is max|diff| of every weight after the steps; `weights_per_lr_step`
    (float32) scales with lr x steps instead. `light_only` lists the after-step checks a full model skips."""

    dtype: str
    eval: Limit  # eval outputs from the converted initial weights: max|diff| / max|ref|
    loss: Limit  # every iteration's total D and G loss: relative difference
    eval_after: Limit  # eval outputs after the steps: max|diff| / max|ref|
    weights: Limit | None = None
    weights_per_lr_step: Limit | None = None
    off_fraction: Limit | None = None  # fraction of weights off by more than `off_threshold`
    off_threshold: float = 1e-5
    light_only: tuple[str, ...] = ()  # checks applied to light models only ("off_fraction", "eval_after")
    full_model_note: str = ""  # the one line a table prints when a full model skips `light_only`
    calibration: str = ""  # how the values were chosen (measured on the official code itself)

    def weight_limit(self, lr: float, steps: int) -> float:
        if self.weights is not None:
            return self.weights.value
        return self.weights_per_lr_step.value * lr * steps

    def applies(self, check: str, light: bool) -> bool:
        return light or check not in self.light_only

    def to_dict(self) -> dict[str, Any]:
        """The limits as a bundle's reference.json records them: `{name: {"value", "rule"}}` plus the lists."""
        limits = {name: {"value": limit.value, "rule": limit.rule} for name in self._LIMIT_NAMES
                  if (limit := getattr(self, name)) is not None}
        return {"dtype": self.dtype, **limits, "off_threshold": self.off_threshold,
                "light_only": list(self.light_only), "calibration": self.calibration}

    _LIMIT_NAMES = ("eval", "loss", "weights", "weights_per_lr_step", "off_fraction", "eval_after")


_F32 = "float32, measured: two runs of the official code with 1 and 2 threads differ by"
_F64 = "float64, measured: an implementation following the official arithmetic is within"
LIMITS: dict[str, Limits] = {
    "float32": Limits(
        dtype="float32",
        eval=Limit(1e-4, f"eval outputs of all six networks <= 1e-4 relative ({_F32} about 1e-6)"),
        loss=Limit(1e-4, f"every iteration's D and G loss <= 1e-4 relative ({_F32} about 1e-6)"),
        weights_per_lr_step=Limit(4.0, f"weights after the steps max|diff| <= 4 x lr x steps ({_F32} up to "
                                       "2 x lr: Adam's first steps move a weight by lr x sign(grad), and the "
                                       "sign of a gradient that is zero up to rounding can flip)"),
        off_fraction=Limit(0.05, f"light model only: at most 5% of weights off by more than 1e-5 ({_F32} about "
                                 "1%; a full model's FC.0 layer gets 3-10%, so it is not checked)"),
        eval_after=Limit(2e-2, f"light model only: eval outputs after the steps <= 2e-2 relative ({_F32} up to "
                               "0.5e-2; a full model's differ by 0.02-0.36, so they are not checked)"),
        light_only=("off_fraction", "eval_after"),
        full_model_note=("full model in float32: only losses and max|weight diff| after the steps are comparable "
                         "(Adam's sign flips in the 1M-weight FC.0 layer make two runs of the official code itself "
                         "differ in 3-10% of the weights); its trajectory is checked in float64"),
        calibration=("measured on the official code run twice on the same bundle with 1 and then 2 CPU threads "
                     "(only the order of float32 reductions changes); each limit is 4-100x that spread"),
    ),
    "float64": Limits(
        dtype="float64",
        eval=Limit(1e-9, f"eval outputs from the converted initial weights <= 1e-9 relative ({_F64} 3e-12)"),
        loss=Limit(1e-9, f"every iteration's D and G loss <= 1e-9 relative ({_F64} 1e-12)"),
        weights=Limit(1e-7, f"every weight after the steps (u/v included) max|diff| <= 1e-7 ({_F64} 2e-9)"),
        eval_after=Limit(1e-5, f"eval outputs after the steps <= 1e-5 relative ({_F64} 1e-7)"),
        calibration=("float64 rounding noise is 1e-16, so Adam's sign flips vanish and the whole trajectory is "
                     "comparable, full model too; an implementation following the official arithmetic was "
                     "measured at eval 3e-12, losses 1e-12, weights 2e-9, eval after the steps 1e-7 on bundles "
                     "of 96-112 px, ch 4-6, 3-4 steps; the limits leave 50-1000x of room and fail a float32 "
                     "computation of the same bundle"),
    ),
}


# Bundles recorded with the other implementations (eval outputs only; in ../shared/fixtures when present):
# max|diff| / max|ref| of every output, each limit measured on an independent loader of the same recording.
FOREIGN_LIMITS: dict[str, Limit] = {
    "tf": Limit(2e-4, "official TensorFlow bundles: every array of outputs.npz <= 2e-4 relative (an independent "
                      "float64 NumPy re-implementation reading only the checkpoint is within 3e-5 of max|ref|)"),
    "paddlegan": Limit(1e-4, "PaddleGAN bundles: every recorded output <= 1e-4 relative (the official PyTorch "
                             "networks with the converted weights are within 2.6e-5 absolute)"),
}


def limits_for(dtype: str) -> Limits:
    if dtype not in LIMITS:
        raise ValueError(f"no parity limits for dtype {dtype!r}; known: {', '.join(LIMITS)}")
    return LIMITS[dtype]


@dataclass(frozen=True)
class Row:
    """One line of the parity table: `value` (a relative error, an absolute one or a fraction) against `limit`."""

    check: str
    network: str
    output: str
    max_abs: float
    value: float
    limit: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.value)) and self.value <= self.limit

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "network": self.network, "output": self.output, "max_abs": self.max_abs,
                "value": self.value, "limit": self.limit, "ok": self.ok}


def compare(check: str, net: str, output: str, ours: np.ndarray, ref: np.ndarray, limit: float) -> Row:
    """Row of max|ours - ref| / max|ref| (max|diff| itself when ref is all zeros), computed in float64."""
    diff = np.abs(np.asarray(ours, np.float64) - np.asarray(ref, np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(np.asarray(ref, np.float64)).max()) if np.size(ref) else 0.0
    return Row(check, net, output, max_abs, max_abs / scale if scale > 0 else max_abs, limit)


def compare_loss(check: str, kind: str, ours: float, ref: float, limit: float) -> Row:
    """Row of the relative difference of one total loss."""
    diff = abs(float(ours) - float(ref))
    return Row(check, kind, "total", diff, diff / abs(ref) if ref else diff, limit)


def compare_weights(check: str, ours: Mapping[str, Mapping[str, np.ndarray]],
                    ref: Mapping[str, Mapping[str, np.ndarray]], limits: Limits, lr: float, steps: int,
                    light: bool) -> list[Row]:
    """Rows over every value of every network (same keys, same layout on both sides): max|diff|, and for the
    float32 rules the fraction of values off by more than `limits.off_threshold`."""
    missing = [f"{n}.{k}" for n, state in ref.items() for k in state if k not in ours.get(n, {})]
    if missing:
        raise ValueError(f"weights missing on our side: {missing[:5]}")
    diff = np.concatenate([np.abs(np.asarray(ours[n][k], np.float64) - np.asarray(v, np.float64)).ravel()
                           for n, state in ref.items() for k, v in state.items()])
    worst = float(diff.max()) if diff.size else 0.0
    rows = [Row(check, "all", "max|diff|", worst, worst, limits.weight_limit(lr, steps))]
    if limits.off_fraction is not None and limits.applies("off_fraction", light):
        rows.append(Row(check, "all", f"frac>{limits.off_threshold:g}", worst,
                        float((diff > limits.off_threshold).mean()), limits.off_fraction.value))
    return rows


def trajectory_rows(limits: Limits, light: bool, lr: float, steps: int,
                    losses: Sequence[tuple[float, float]], reference_losses: Sequence[tuple[float, float]],
                    weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                    reference_weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                    outputs: Mapping[str, np.ndarray] | None = None, reference_outputs: Any = None) -> list[Row]:
    """Rows of a training run against a reference run: each iteration's (D, G) total loss; with `weights`
    (both sides in the same layout) every weight after the `steps`; with `outputs` the eval outputs after them,
    where `limits` apply to this model (`light`)."""
    rows = [compare_loss(f"loss@{i + 1}", kind, value, ref, limits.loss.value)
            for i, (pair, ref_pair) in enumerate(zip(losses, reference_losses))
            for kind, value, ref in zip("DG", pair, ref_pair)]
    if weights is not None:
        rows += compare_weights(f"weights@{steps}", weights, reference_weights, limits, lr, steps, light)
    if outputs is not None and limits.applies("eval_after", light):
        rows += [compare(f"eval@{steps}", *key.split("."), value, reference_outputs[key], limits.eval_after.value)
                 for key, value in outputs.items()]
    return rows


def trajectory_note(limits: Limits, light: bool, steps: int) -> list[str]:
    """The one line a table prints when this model's after-step rows are not all checked in this dtype."""
    return [limits.full_model_note] if steps and not light and limits.full_model_note else []


def eval_outputs(nets: Mapping[str, paddle.nn.Layer], x: np.ndarray) -> dict[str, np.ndarray]:
    """`{"<net>.<output>": array}` of every network in eval mode on `x` [N, 3, S, S] (cast to the network's
    dtype; spectral-norm vectors unchanged)."""
    results = {}
    with paddle.no_grad():
        for name, net in nets.items():
            was_training = net.training
            net.eval()
            dtype = next(iter(net.parameters())).dtype
            for output, value in zip(OUTPUTS, net(paddle.to_tensor(x).astype(dtype))):
                results[f"{name}.{output}"] = value.numpy()
            if was_training:
                net.train()
    return results


def compare_eval(check: str, nets: Mapping[str, paddle.nn.Layer], x: np.ndarray, reference: Any,
                 limit: float) -> list[Row]:
    ours = eval_outputs(nets, x)
    return [compare(check, *key.split("."), ours[key], reference[key], limit) for key in ours]


@dataclass
class Report:
    """The result of one parity check: rows, what was checked, and one-line notes for the reader."""

    rows: list[Row]
    bundle: str = ""
    dtype: str = "float32"
    steps: int = 0
    source: str = "official"  # whose recording: "official", "tf" or "paddlegan"
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.ok for r in self.rows)

    @property
    def failed(self) -> int:
        return len(self.rows) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "source": self.source, "dtype": self.dtype, "steps": self.steps,
                "rows": [r.to_dict() for r in self.rows], "passed": self.passed, "failed": self.failed,
                "notes": list(self.notes)}


def format_table(rows: Sequence[Row], notes: Sequence[str] = ()) -> str:
    """A fixed-width table: check, network, output, max abs diff, compared value, limit, verdict; then notes."""
    width = max([8, *(len(r.network) for r in rows)])
    lines = [f"{'check':<11} {'network':<{width}} {'output':<10} {'max|diff|':>10} {'value':>10} {'limit':>9}  verdict"]
    for r in rows:
        lines.append(f"{r.check:<11} {r.network:<{width}} {r.output:<10} {r.max_abs:>10.3e} {r.value:>10.3e} "
                     f"{r.limit:>9.1e}  {'ok' if r.ok else 'FAIL'}")
    lines += [f"note: {n}" for n in notes]
    failed = sum(not r.ok for r in rows)
    lines.append(f"{len(rows) - failed} passed, {failed} failed")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text for a Markdown table cell ("max|diff|" would split the cell)."""
    return text.replace("|", "\\|")


def format_markdown(rows: Sequence[Row], notes: Sequence[str] = ()) -> str:
    """The rows as a Markdown table (for the README), notes as lines below it."""
    lines = ["| check | network | output | max abs diff | value | limit | ok |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.check} | {r.network} | {_cell(r.output)} | {r.max_abs:.2e} | {r.value:.2e} | {r.limit:.1e} | "
              f"{'yes' if r.ok else '**no**'} |" for r in rows]
    lines += [f"\n{n}" for n in notes]
    return "\n".join(lines)


def _groups(report: Report) -> dict[str, list[Row]]:
    """Rows by kind of check: "eval@init", "loss@each", "weights@K max|diff|", "eval@K", ..."""
    groups: dict[str, list[Row]] = {}
    for r in report.rows:
        kind = "loss@each" if r.check.startswith("loss@") else r.check
        groups.setdefault(f"{kind} {r.output}" if kind.startswith("weights@") else kind, []).append(r)
    return groups


def _worst(rows: Sequence[Row]) -> Row:
    return max(rows, key=lambda r: r.value / r.limit if r.limit else float("inf"))


def worst_by_kind(report: Report) -> dict[str, float]:
    """`{kind of check: its worst value}` ("eval@init", "loss@each", "weights@K max|diff|", "eval@K", ...)."""
    return {kind: _worst(rows).value for kind, rows in _groups(report).items()}


def format_summary(report: Report, markdown: bool = False) -> str:
    """One line per kind of check: how many rows, the worst value against its limit, the verdict
    (`markdown`: one Markdown table row per kind, headed by the bundle, dtype and steps)."""
    title = f"{report.bundle or 'live'} ({report.source}, {report.dtype}, {report.steps} steps)"
    groups = _groups(report)
    if markdown:
        lines = [f"**{Path(report.bundle).name or 'live'}** ({report.dtype}, {report.steps} steps): "
                 f"{report.passed} passed, {report.failed} failed", "",
                 "| check | rows | worst value | limit | ok |", "|---|---|---|---|---|"]
        for kind, rows in groups.items():
            worst = _worst(rows)
            lines.append(f"| {_cell(kind)} | {len(rows)} | {worst.value:.2e} | {worst.limit:.1e} | "
                         f"{'yes' if all(r.ok for r in rows) else '**no**'} |")
        return "\n".join(lines + [f"\n{n}" for n in report.notes])
    lines = [title]
    for kind, rows in groups.items():
        worst = _worst(rows)
        lines.append(f"  {kind:<24} {len(rows):>3} rows  worst {worst.value:.2e} / limit {worst.limit:.1e}  "
                     f"{'ok' if all(r.ok for r in rows) else 'FAIL'}")
    lines += [f"  note: {n}" for n in report.notes]
    lines.append(f"  {report.passed} passed, {report.failed} failed")
    return "\n".join(lines)


def format_json(report: Report) -> str:
    """One JSON line (see `Report.to_dict`)."""
    return json.dumps(report.to_dict())


# README columns of `format_bundles_markdown`: the kinds of check, by the prefix of `Row.check`
_COLUMNS = (("eval from the converted weights", ("eval@init", "tf eval", "paddlegan eval")),
            ("losses", ("loss@",)), ("weights after the steps", ("weights@",)), ("eval after the steps", ("eval@",)))


def format_bundles_markdown(reports: Sequence[Report]) -> str:
    """One Markdown table row per bundle: who recorded it, dtype, steps, rows passed, and for each kind of check
    its worst value with the limit in brackets (a kind with several limits, like max|diff| and the fraction of
    weights off, shows each)."""
    lines = ["| bundle | recorded with | dtype | steps | rows ok | " + " | ".join(c for c, _ in _COLUMNS) + " |",
             "|---|---|---|---|---|" + "---|" * len(_COLUMNS)]
    for report in reports:
        cells, taken = [], set()
        for _, prefixes in _COLUMNS:
            rows = [r for r in report.rows if r.check.startswith(prefixes) and id(r) not in taken]
            taken.update(id(r) for r in rows)
            by_output: dict[str, list[Row]] = {}
            for r in rows:  # weights rows differ by what they measure (max|diff|, frac>...): one entry each
                by_output.setdefault(r.output if r.check.startswith("weights@") else "", []).append(r)
            cells.append("; ".join(f"{_cell(k) + ' ' if k else ''}{_worst(g).value:.1e} ({_worst(g).limit:.1e})"
                                   + ("" if all(r.ok for r in g) else " **fails**")
                                   for k, g in by_output.items()) or "-")
        lines.append(f"| {Path(report.bundle).name} | {report.source} | {report.dtype} | {report.steps} | "
                     f"{report.passed}/{len(report.rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
