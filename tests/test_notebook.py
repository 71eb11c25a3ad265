"""Training from a real Jupyter kernel (nbclient + ipykernel), as on AI Studio: the Python API trains, a kernel
interrupt during `train()` writes a checkpoint and returns with the kernel alive, `train(resume=True)` continues
exactly, and the last sample sheet shows inline; a kernel that dies during training (SIGKILL of the kernel
process alone, as the out-of-memory killer does) leaves no data-loader worker behind, and a restarted kernel
resumes in the same folder."""

from __future__ import annotations

import asyncio
import importlib.util
import base64
import contextlib
import os
import signal
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import processes
from ugatit_paddle.formats import checkpoint

MISSING = [m for m in ("nbclient", "nbformat", "ipykernel") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed "
                                                      f"(pip install nbclient ipykernel)")
ITERATIONS = 12


def _config(out: Path, data: Path) -> dict:
    """The 64 px model of test_faults (about 0.3 s per iteration on 2 cores), a sample sheet every iteration."""
    return {"output_dir": str(out), "data": {"root": str(data), "num_workers": 0},
            "model": {"img_size": 64, "ch": 4, "n_res": 1, "light": True, "global_layers": 5, "local_layers": 3},
            "train": {"iterations": ITERATIONS, "save_every": 1000, "sample_every": 1, "sample_count": 1}}


def _cell(source: str):
    import nbformat

    return nbformat.v4.new_code_cell(textwrap.dedent(source))


def _weights(path: Path) -> dict[str, np.ndarray]:
    nets = checkpoint.load(path)["networks"]
    return {f"{n}.{k}": v for n, state in nets.items() for k, v in state.items()}


def _errors(cell) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.outputs if o.get("output_type") == "error"]


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream") + "".join(
        o.get("data", {}).get("text/plain", "") for o in cell.outputs if o.get("output_type") == "execute_result")


async def _run(tmp_path: Path, data_root: Path) -> dict:
    import nbformat
    from nbclient import NotebookClient

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    cells = [
        _cell(f"""
            import sys
            from ugatit_paddle.training.loop import Trainer
            straight = Trainer.from_dict({_config(straight, data_root)!r})
            print("final", straight.train())
        """),
        _cell(f"""
            trainer = Trainer.from_dict({_config(interrupted, data_root)!r})
            path = trainer.train()  # interrupted from outside
            print("interrupted:", trainer.interrupted, "at", trainer.iteration)
        """),
        _cell("""
            resumed = Trainer.from_dict(trainer.cfg.to_dict())
            print("final", resumed.train(resume=True), resumed.iteration)
        """),
        _cell(f"""
            from pathlib import Path
            from IPython.display import Image, display
            display(Image(filename=str(sorted(Path({str(interrupted)!r}, "samples").glob("A2B_*.png"))[-1])))
            from ugatit_paddle.training.progress import in_notebook, make_progress
            print("notebook progress:", in_notebook(), type(make_progress(0, 2, 1)).__name__)
        """),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    times = {}
    async with client.async_setup_kernel():
        await client.async_execute_cell(nb.cells[0], 0)
        task = asyncio.ensure_future(client.async_execute_cell(nb.cells[1], 1))
        marker = interrupted / "samples" / "A2B_0000001.png"
        deadline = time.time() + 90
        while not marker.exists():
            assert not task.done(), _errors(nb.cells[1]) or "the training cell ended before it was interrupted"
            assert time.time() < deadline, f"{marker} did not appear"
            await asyncio.sleep(0.05)
        await client.km.interrupt_kernel()
        await task
        await client.async_execute_cell(nb.cells[2], 2)
        await client.async_execute_cell(nb.cells[3], 3)
        times["alive"] = await client.km.is_alive()
    return {"nb": nb, "straight": straight, "interrupted": interrupted, **times}


def test_train_interrupt_resume_and_show_samples_in_a_kernel(tmp_path, data_root):
    result = asyncio.run(_run(tmp_path, data_root))
    nb = result["nb"]
    for cell in nb.cells:
        assert not _errors(cell), _errors(cell)
    assert f"iter_{ITERATIONS:07d}.pdparams" in _text(nb.cells[0])

    stopped = _text(nb.cells[1])
    assert "interrupted: SIGINT at" in stopped, stopped
    stopped_at = int(stopped.split("interrupted: SIGINT at")[1].split()[0])
    assert 1 <= stopped_at < ITERATIONS
    assert f"checkpoint: {result['interrupted'] / 'checkpoints' / f'iter_{stopped_at:07d}.pdparams'}" in stopped
    assert [i for i, _ in checkpoint.list_checkpoints(result["interrupted"])][-1] == ITERATIONS
    assert result["alive"]

    assert f"final {result['interrupted'] / 'checkpoints' / f'iter_{ITERATIONS:07d}.pdparams'} {ITERATIONS}" \
        in _text(nb.cells[2])
    a = _weights(checkpoint.latest_checkpoint(result["straight"]))
    b = _weights(checkpoint.latest_checkpoint(result["interrupted"]))
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-6  # as tools/train.py --resume (test_faults)

    assert "notebook progress: True BarProgress" in _text(nb.cells[3])  # the tqdm.auto bar, not plain lines
    images = [o for o in nb.cells[3].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    png = base64.b64decode(images[0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG") and png == sorted((result["interrupted"] / "samples").glob("A2B_*.png"))[-1].read_bytes()


KILLED_ITERATIONS = 8


async def _kill_and_restart(tmp_path: Path, data_root: Path) -> dict:
    import nbformat
    from nbclient import NotebookClient

    def config(out: Path) -> dict:  # 2 data-loader workers per domain, a checkpoint every iteration
        cfg = _config(out, data_root)
        cfg["data"]["num_workers"] = 2
        cfg["train"].update(iterations=KILLED_ITERATIONS, save_every=1)
        return cfg

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    setup = "import os, sys; from ugatit_paddle.training.loop import Trainer"
    cells = [
        _cell(f"{setup}\nprint(os.getpid())"),
        _cell(f"Trainer.from_dict({config(killed)!r}).train()"),
        _cell(f"""
            {setup}
            resumed = Trainer.from_dict({config(killed)!r})
            print("final", resumed.train(resume=True), resumed.iteration)
            Trainer.from_dict({config(straight)!r}).train()
        """),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    result = {"nb": nb, "straight": straight, "killed": killed}
    async with client.async_setup_kernel():
        await client.async_execute_cell(nb.cells[0], 0)
        kernel = result["kernel"] = int(_text(nb.cells[0]).split()[-1])
        task = asyncio.ensure_future(client.async_execute_cell(nb.cells[1], 1))
        marker = checkpoint.checkpoint_path(killed, 2)
        deadline = time.time() + 90
        while not marker.exists():
            assert not task.done(), _errors(nb.cells[1]) or "the training cell ended before the kernel was killed"
            assert time.time() < deadline, f"{marker} did not appear"
            await asyncio.sleep(0.05)
        workers = result["workers"] = processes.descendants(kernel)
        try:
            os.kill(kernel, signal.SIGKILL)  # the kernel alone, not its process group
            killed_at = time.time()
            result["left"] = processes.wait_until_ended(workers, 10)
            result["left_after"] = time.time() - killed_at
            result["stopped_at"] = checkpoint.list_checkpoints(killed)[-1][0]
            with contextlib.suppress(Exception):  # the cell fails: its kernel died
                await asyncio.wait_for(task, 30)
            if result["left"]:
                return result  # the test fails on these (a restart would kill the kernel's process group)
            await client.km.restart_kernel(now=True)
            await client.async_execute_cell(nb.cells[2], 2)
        finally:
            processes.kill(workers)
    return result


def test_a_killed_kernel_leaves_no_worker_and_a_restarted_kernel_resumes(tmp_path, data_root):
    result = asyncio.run(_kill_and_restart(tmp_path, data_root))
    assert len(result["workers"]) >= 4, result["workers"]  # 2 domains x 2 workers, else this means nothing
    assert not result["left"], f"still running {result['left_after']:.1f} s after the kill: {result['left']}"
    stopped_at = result["stopped_at"]
    assert 2 <= stopped_at < KILLED_ITERATIONS

    resumed = result["nb"].cells[2]
    assert not _errors(resumed), _errors(resumed)  # the folder is not locked by the dead kernel's workers
    assert f"took over the lock of process {result['kernel']}" in _text(resumed)
    final = result["killed"] / "checkpoints" / f"iter_{KILLED_ITERATIONS:07d}.pdparams"
    assert f"at iteration {stopped_at}" in _text(resumed) and f"final {final} {KILLED_ITERATIONS}" in _text(resumed)
    a = _weights(checkpoint.latest_checkpoint(result["straight"]))
    b = _weights(final)
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-6
