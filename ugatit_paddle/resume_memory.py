"""Host memory of a data-parallel resume, rank by rank: what each process holds outside its tensors.

`measure_resume_memory(cfg, processes)` writes a checkpoint of `cfg`'s model after one training step (so that it
holds Adam's state) in a temporary folder, then starts `processes` processes with `paddle.distributed.launch` (on
the GPUs if Paddle has CUDA and there are enough of them, else on the CPU) twice: once resuming that checkpoint
(`Trainer.resume`, as `tools/train.py --resume`) and once starting fresh. Each process (this module run as
`python -m ugatit_paddle.resume_memory`) records, after building its `Trainer`, after the resume and after one
training step on synthetic images:

- `rss_mib`, `peak_rss_mib`: its resident set now and its peak so far (`/proc/self/status`, Linux);
- `tensors_mib`: what its model's tensors in host memory take (weights, buffers, gradients, optimiser
  accumulators on a CPU, which live on the card when training on GPUs; on a GPU only Adam's beta powers);
- `host_mib` = `rss_mib` - `tensors_mib`: the host memory besides the model's tensors, what a GPU process holds
  in host memory (Paddle's runtime, Python, and any host copy of the checkpoint, such as the optimiser state kept
  as arrays until the first step).

`extra_host_mib` per rank = resumed `host_mib` after the resume - fresh `host_mib` after building: the host memory
the resume costs that rank beyond a fresh start, to read against `optimizer_state_mib` (Adam's moments, about two
thirds of a checkpoint). On a CPU the tensors are host memory too: the resident peaks are given as they are.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from .config import Config, load_config, save_config
from .formats import checkpoint
from .training import optimizer_state
from .training.ugatit import UGATIT

LAUNCH_TIMEOUT_S = 900  # per launch of the processes
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the processes import this clone's ugatit_paddle


def measure_resume_memory(cfg: Config, processes: int = 2) -> dict[str, Any]:
    """Resume `cfg`'s model in `processes` processes and start it fresh, each process's memory at each stage
    (see the module's docstring); raises RuntimeError with the processes' logs if a launch fails."""
    with tempfile.TemporaryDirectory(prefix="ugatit_resume_memory_") as tmp:
        work = Path(tmp)
        cfg = dataclasses.replace(cfg, output_dir=str(work / "out"))
        config_path = work / "config.yaml"
        save_config(cfg, config_path)
        model = UGATIT(cfg)
        model.set_train_mode(True)
        model.step(*_synthetic_batches(cfg))
        state = model.state()
        del model
        optimizer_bytes = sum(np.asarray(v).nbytes for opt in state["optimizers"].values()
                              for k, v in opt.items() if k != optimizer_state.LR_SCHEDULER_KEY)
        path = checkpoint.save(state, work / "resume.pdparams")
        del state
        runs = {run: _launch(work, config_path, processes, path if run == "resumed" else None, run)
                for run in ("fresh", "resumed")}
        return {
            "processes": processes,
            "paddle": paddle.__version__,
            "device": runs["resumed"][0]["device"],
            "model": dataclasses.asdict(cfg.model),
            "float64": cfg.train.float64,
            "checkpoint_mib": path.stat().st_size / 2**20,
            "optimizer_state_mib": optimizer_bytes / 2**20,
            **runs,
            "extra_host_mib": [r["resumed"]["host_mib"] - f["built"]["host_mib"]
                               for f, r in zip(runs["fresh"], runs["resumed"])],
        }


def format_summary(result: dict[str, Any]) -> str:
    """A `measure_resume_memory` result as a few lines of text (MiB)."""
    m = result["model"]
    lines = [f"{'light' if m['light'] else 'full'}, {m['img_size']} px, ch {m['ch']}"
             f"{', float64' if result['float64'] else ''}, {result['processes']} {result['device'].upper()} "
             f"processes, Paddle {result['paddle']}: checkpoint {result['checkpoint_mib']:.0f} MiB, of which "
             f"optimiser state {result['optimizer_state_mib']:.0f} MiB",
             "| rank | run | host (RSS - tensors) after build / resume / step | peak RSS after resume / step "
             "| resume's extra host memory |", "|---|---|---|---|---|"]
    for rank, extra in enumerate(result["extra_host_mib"]):
        for run in ("fresh", "resumed"):
            s = result[run][rank]
            resumed = s.get("resumed", s["built"])
            lines.append(f"| {rank} | {run} | {s['built']['host_mib']:.0f} / {resumed['host_mib']:.0f} / "
                         f"{s['first_step']['host_mib']:.0f} | {resumed['peak_rss_mib']:.0f} / "
                         f"{s['first_step']['peak_rss_mib']:.0f} | {f'{extra:+.0f}' if run == 'resumed' else ''} |")
    return "\n".join(lines)


def _launch(work: Path, config_path: Path, processes: int, resume: Path | None, name: str) -> list[dict[str, Any]]:
    """Run the worker in `processes` processes; each one's stages, by rank."""
    logs, records = work / f"{name}_logs", work / f"{name}_records"
    records.mkdir()
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(processes),
               "--log_dir", str(logs), sys.executable, "-m", __name__, str(config_path), str(records),
               str(resume or "")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_", "FLAGS_selected"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=LAUNCH_TIMEOUT_S)
    found = sorted(records.glob("rank*.json"))
    if run.returncode != 0 or len(found) != processes:
        tails = "".join(p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("workerlog.*")))
        raise RuntimeError(f"the {name} run of {processes} processes failed (exit {run.returncode}):\n"
                           f"{run.stderr[-3000:]}{tails}")
    return [json.loads(p.read_text()) for p in found]


def _synthetic_batches(cfg: Config) -> tuple[paddle.Tensor, paddle.Tensor]:
    from .benchmark import synthetic_images  # here: benchmark imports the inference stack

    return (synthetic_images(cfg.train.batch_size, cfg.model.img_size, seed=1),
            synthetic_images(cfg.train.batch_size, cfg.model.img_size, seed=2))


def _proc_status_mib(field: str) -> float:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status: this measurement needs Linux")


def _memory(model: UGATIT) -> dict[str, float]:
    """This process's resident set now and at its peak, and what `model`'s tensors in host memory take (MiB):
    all of them on a CPU, Adam's beta powers only on a GPU."""
    tensors = [t for net in model.nets.values() for t in net.state_dict().values()]
    tensors += [p.grad for net in model.nets.values() for p in net.parameters() if p.grad is not None]
    tensors += [*optimizer_state.accumulators(model.G_optim).values(),
                *optimizer_state.accumulators(model.D_optim).values()]
    # (an optimiser given a state before its first step lists the arrays it keeps: host memory, not tensors)
    tensor_mib = sum(int(t.size) * t.element_size() for t in tensors
                     if isinstance(t, paddle.Tensor) and t.place.is_cpu_place()) / 2**20
    rss = _proc_status_mib("VmRSS")
    return {"rss_mib": rss, "peak_rss_mib": _proc_status_mib("VmHWM"), "tensors_mib": tensor_mib,
            "host_mib": rss - tensor_mib}


def _worker(config_path: str, records: str, resume: str) -> None:
    """One process of a measured run: build the Trainer, resume `resume` (unless empty), one step; its stages
    as records/rank<rank>.json."""
    from .training.loop import Trainer

    trainer = Trainer(load_config(config_path))
    stages = {"device": paddle.device.get_device().split(":")[0], "built": _memory(trainer.model)}
    if resume:
        trainer.resume(resume)
        stages["resumed"] = _memory(trainer.model)
    trainer.model.set_train_mode(True)
    trainer.model.step(*_synthetic_batches(trainer.cfg))
    stages["first_step"] = _memory(trainer.model)
    Path(records, f"rank{trainer.rank}.json").write_text(json.dumps(stages))


if __name__ == "__main__":
    from . import commands  # noqa: F401  (the tools' CPU set-up, before anything runs)

    _worker(*sys.argv[1:4])
