"""Recording a parity bundle by running the unmodified official code (a user's clone of UGATIT-pytorch, torch).

`record_bundle` builds the six official networks with torch's random initialisation under a seed
(`official_torch.OfficialTraining`, the one definition of the official iteration), draws one batch, and writes
the layout `bundles.Bundle` reads:

* `init_params.pt` / `after_steps_params.pt`: the weights before and after the steps, as the official
  `UGATIT.save()` writes them (spectral-norm `u`/`v` included);
* `batch.npz`: `real_A`, `real_B` [batch, 3, S, S] in [-1, 1], fed at every iteration;
* `eval_outputs_init.npz` / `eval_outputs_after_steps.npz`: `<net>.<out|cam_logit|heatmap>` of every network in
  eval mode on `real_A`, before and after the steps;
* `reference.json`: the architecture (discriminator depths included), optimiser settings and loss weights, dtype,
  seed, torch version, the clone's commit, the total D and G loss of every iteration, and the limits of the
  bundle's dtype (`checks.LIMITS`) with their calibration; with `rerun_threads`, "official_rerun": the worst
  difference of each kind of check when the official code itself is run again with another thread count (the
  noise floor of the recording).

Everything is written into `<out>.partial` first and renamed at the end, so an interrupted recording leaves no
folder that looks like a bundle.

torch is imported inside `OfficialTraining`, so importing this module never needs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..models import check_model_config
from .bundles import official_rerun
from .checks import limits_for, worst_by_kind
from .official_torch import OfficialTraining, Recipe

BUNDLE_FILES = ("reference.json", "init_params.pt", "batch.npz", "eval_outputs_init.npz", "after_steps_params.pt",
                "eval_outputs_after_steps.npz")


@dataclass(frozen=True)
class Recording:
    """What to record: the architecture, the batch, the number of official iterations and the arithmetic."""

    img_size: int
    ch: int
    n_res: int
    light: bool
    global_layers: int = ModelConfig.global_layers
    local_layers: int = ModelConfig.local_layers
    batch: int = 1
    steps: int = 3
    dtype: str = "float64"
    seed: int = 0

    def check(self) -> None:
        """ValueError naming the bad setting (architecture bounds as for this project's models)."""
        check_model_config(ModelConfig(img_size=self.img_size, ch=self.ch, n_res=self.n_res, light=self.light,
                                       global_layers=self.global_layers, local_layers=self.local_layers))
        limits_for(self.dtype)
        if self.batch < 1 or self.steps < 1:
            raise ValueError(f"batch and steps must be >= 1, got batch={self.batch} steps={self.steps}")


def clone_commit(torch_src: str | Path) -> str | None:
    """The commit of the official clone (git rev-parse HEAD), or None when it is not a git work tree."""
    try:
        run = subprocess.run(["git", "-C", str(torch_src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = run.stdout.strip() if run.returncode == 0 else ""
    return commit or None


def record_bundle(torch_src: str | Path, out: str | Path, recording: Recording, recipe: Recipe = Recipe(),
                  threads: int | None = 2, rerun_threads: int | None = 1, command: str = "") -> Path:
    """Record one parity bundle into the new folder `out` from the official clone `torch_src`; returns `out`.

    `threads`: torch CPU threads for the recording; `rerun_threads` (None: no rerun) reruns the official code
    on the written bundle with that many threads and stores the worst difference of each kind of check in
    reference.json's "official_rerun". `command`: the command line to store in reference.json.
    """
    recording.check()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder: record into a new folder")
    r = recording
    official = OfficialTraining(torch_src, r.img_size, r.ch, r.n_res, r.light, r.global_layers, r.local_layers,
                                dtype=r.dtype, recipe=recipe, threads=threads, seed=r.seed)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        reference = _record(official, partial, r, recipe)
        reference.update(threads=threads, official_commit=clone_commit(torch_src), command=command)
        _write_reference(partial, reference)
        if rerun_threads is not None:
            report = official_rerun(partial, torch_src, threads=rerun_threads, dtype=r.dtype)
            reference["official_rerun"] = {"threads": rerun_threads, "rows_ok": f"{report.passed}/{len(report.rows)}",
                                           "worst": worst_by_kind(report)}
            _write_reference(partial, reference)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    partial.rename(out)
    return out


def _record(official: OfficialTraining, folder: Path, r: Recording, recipe: Recipe) -> dict[str, Any]:
    """Write the bundle's data files into `folder`; returns reference.json's settings, losses and limits."""
    real_A = official.images(r.batch, r.img_size, seed=r.seed + 1).numpy()
    real_B = official.images(r.batch, r.img_size, seed=r.seed + 2).numpy()
    np.savez_compressed(folder / "batch.npz", real_A=real_A, real_B=real_B)
    official.save(folder / "init_params.pt")
    np.savez_compressed(folder / "eval_outputs_init.npz", **official.eval_outputs(real_A))
    losses = [official.step(real_A, real_B) for _ in range(r.steps)]
    official.save(folder / "after_steps_params.pt")
    np.savez_compressed(folder / "eval_outputs_after_steps.npz", **official.eval_outputs(real_A))
    return {**asdict(r), **asdict(recipe), "torch": official.torch.__version__,
            "losses": [{"D": d, "G": g} for d, g in losses], "limits": limits_for(r.dtype).to_dict()}


def _write_reference(folder: Path, reference: dict[str, Any]) -> None:
    (folder / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
