"""Side-by-side speed and memory of a training iteration: this project against the official PyTorch code.

Opt-in measurement (needs PyTorch and a clone of UGATIT-pytorch, whose networks.py it imports):

    python benchmarks/compare_official.py --torch-src ~/UGATIT-pytorch                   # speed, light ch 32 img 128
    python benchmarks/compare_official.py --torch-src ~/UGATIT-pytorch --memory --full --img-size 256 --ch 64

Speed: both implementations in one process on the same random images, iterations interleaved (official,
ours with reuse_fakes on, ours with it off, ...), medians after warm-up, and the ratios (medians over the
rounds of each round's ratio). Both use the same
number of threads (OMP_NUM_THREADS as set up by ugatit_paddle/runtime.py, or yours).
Inference (--inference): generator latency for one image (eval mode, no autograd), official PyTorch eager
against ours eager and exported (paddle.jit.save + Paddle Inference, plain CPU and oneDNN): `--rounds` rounds in
which each of the four runs alone in a fresh process (in one process, the idle worker threads one library or
executor leaves spinning slow the next one down); medians over all rounds.
Memory (--memory): each implementation in its own fresh process, peak resident set size (ru_maxrss) over
`--iters` training iterations (Adam state included; the first iteration allocates it).
The official iteration is written out here from the official training loop (UGATIT.train): the D step on
fakes that are not detached, then the G step recomputing the fakes; LSGAN, L1 and BCE-with-logits losses with
the official weights; Adam(lr 1e-4, betas (0.5, 0.999), weight_decay 1e-4); rho clipped to [0, 1].
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ugatit_paddle.runtime import configure_cpu  # noqa: E402  (before paddle is imported)

configure_cpu()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class OfficialIteration:
    """The official networks (from `torch_src`/networks.py), optimisers and one training iteration."""

    def __init__(self, torch_src: str, img_size: int, ch: int, n_res: int, light: bool, threads: int) -> None:
        import itertools

        import torch

        sys.path.insert(0, str(Path(torch_src).expanduser()))
        import networks  # the official module

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.torch = torch
        self.gen = {n: networks.ResnetGenerator(3, 3, ch, n_res, img_size, light) for n in ("A2B", "B2A")}
        self.dis = {n: networks.Discriminator(3, ch, layers) for n, layers in
                    (("GA", 7), ("GB", 7), ("LA", 5), ("LB", 5))}
        for net in [*self.gen.values(), *self.dis.values()]:
            net.train()
        adam = dict(lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)
        self.G_optim = torch.optim.Adam(itertools.chain(*(g.parameters() for g in self.gen.values())), **adam)
        self.D_optim = torch.optim.Adam(itertools.chain(*(d.parameters() for d in self.dis.values())), **adam)
        self.clip = networks.RhoClipper(0, 1)
        self.mse, self.l1, self.bce = torch.nn.MSELoss(), torch.nn.L1Loss(), torch.nn.BCEWithLogitsLoss()

    def images(self, batch: int, img_size: int, seed: int):
        generator = self.torch.Generator().manual_seed(seed)
        return self.torch.rand(batch, 3, img_size, img_size, generator=generator) * 2 - 1

    def step(self, real_A, real_B) -> None:
        torch, mse, gen, dis = self.torch, self.mse, self.gen, self.dis
        ones, zeros = torch.ones_like, torch.zeros_like

        def d_loss(d, real, fake):
            real_logit, real_cam, _ = d(real)
            fake_logit, fake_cam, _ = d(fake)
            return (mse(real_logit, ones(real_logit)) + mse(fake_logit, zeros(fake_logit))
                    + mse(real_cam, ones(real_cam)) + mse(fake_cam, zeros(fake_cam)))

        def g_adv(d, fake):
            logit, cam, _ = d(fake)
            return mse(logit, ones(logit)) + mse(cam, ones(cam))

        self.D_optim.zero_grad()
        fake_A2B, _, _ = gen["A2B"](real_A)
        fake_B2A, _, _ = gen["B2A"](real_B)
        D_loss = (d_loss(dis["GA"], real_A, fake_B2A) + d_loss(dis["LA"], real_A, fake_B2A)
                  + d_loss(dis["GB"], real_B, fake_A2B) + d_loss(dis["LB"], real_B, fake_A2B))
        D_loss.backward()
        self.D_optim.step()

        self.G_optim.zero_grad()
        fake_A2B, cam_A2B, _ = gen["A2B"](real_A)
        fake_B2A, cam_B2A, _ = gen["B2A"](real_B)
        fake_A2B2A, _, _ = gen["B2A"](fake_A2B)
        fake_B2A2B, _, _ = gen["A2B"](fake_B2A)
        fake_A2A, cam_A2A, _ = gen["B2A"](real_A)
        fake_B2B, cam_B2B, _ = gen["A2B"](real_B)
        cam_A = self.bce(cam_B2A, ones(cam_B2A)) + self.bce(cam_A2A, zeros(cam_A2A))
        cam_B = self.bce(cam_A2B, ones(cam_A2B)) + self.bce(cam_B2B, zeros(cam_B2B))
        G_loss = (g_adv(dis["GA"], fake_B2A) + g_adv(dis["LA"], fake_B2A) + g_adv(dis["GB"], fake_A2B)
                  + g_adv(dis["LB"], fake_A2B) + 10 * (self.l1(fake_A2B2A, real_A) + self.l1(fake_B2A2B, real_B))
                  + 10 * (self.l1(fake_A2A, real_A) + self.l1(fake_B2B, real_B)) + 1000 * (cam_A + cam_B))
        G_loss.backward()
        self.G_optim.step()
        for g in gen.values():
            g.apply(self.clip)


class OurIteration:
    """This project's training step (UGATIT) on synthetic images; `step(reuse_fakes)` runs one iteration."""

    def __init__(self, img_size: int, ch: int, n_res: int, light: bool, batch: int) -> None:
        from ugatit_paddle.benchmark import synthetic_images
        from ugatit_paddle.config import config_from_dict
        from ugatit_paddle.training.ugatit import UGATIT

        cfg = config_from_dict({"model": {"img_size": img_size, "ch": ch, "n_res": n_res, "light": light},
                                "train": {"batch_size": batch}})
        self.trainer = UGATIT(cfg)
        self.trainer.set_train_mode(True)
        self.real_A = synthetic_images(batch, img_size, seed=1)
        self.real_B = synthetic_images(batch, img_size, seed=2)

    def step(self, reuse_fakes: bool = True) -> None:
        self.trainer.cfg.train.reuse_fakes = reuse_fakes
        self.trainer.step(self.real_A, self.real_B)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _interleaved_times(runs: dict[str, Callable[[], object]], warmup: int, iters: int) -> dict[str, list[float]]:
    """`warmup` untimed calls of each run, then `iters` timed rounds, the order reversed every other round."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    order = list(runs)
    for i in range(iters):
        for key in order if i % 2 == 0 else order[::-1]:
            times[key].append(_seconds(runs[key]))
    return times


def compare_speed(a: argparse.Namespace, threads: int) -> dict:
    from ugatit_paddle.benchmark import paired_ratio

    official = OfficialIteration(a.torch_src, a.img_size, a.ch, a.n_res, not a.full, threads)
    ours = OurIteration(a.img_size, a.ch, a.n_res, not a.full, a.batch)
    real_A, real_B = official.images(a.batch, a.img_size, 1), official.images(a.batch, a.img_size, 2)
    runs = {"official": lambda: official.step(real_A, real_B), "ours_reuse_on": lambda: ours.step(True),
            "ours_reuse_off": lambda: ours.step(False)}
    times = _interleaved_times(runs, a.warmup, a.iters)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"threads": threads, **{f"{k}_sec_per_iter": v for k, v in med.items()},
            "ours_speed_vs_official": paired_ratio(times["official"], times["ours_reuse_on"]),
            "ours_off_speed_vs_official": paired_ratio(times["official"], times["ours_reuse_off"]),
            "reuse_fakes_speedup": paired_ratio(times["ours_reuse_off"], times["ours_reuse_on"]),
            "all_times": times}


INFERENCE_RUNS = ("official_eager", "ours_eager", "ours_exported", "ours_exported_onednn")


def inference_times(which: str, a: argparse.Namespace, threads: int) -> list[float]:
    """Seconds per generator forward (batch 1, eval mode, no autograd) of one of `INFERENCE_RUNS`, alone in this
    process: `a.warmup` untimed calls, then `a.iters` timed ones."""
    import tempfile

    import numpy as np

    image = np.random.default_rng(0).uniform(-1, 1, (1, 3, a.img_size, a.img_size)).astype(np.float32)
    with contextlib.ExitStack() as stack:
        if which == "official_eager":
            official = OfficialIteration(a.torch_src, a.img_size, a.ch, a.n_res, not a.full, threads)
            torch, generator = official.torch, official.gen["A2B"].eval()
            torch_image = torch.from_numpy(image)

            def run():
                with torch.no_grad():
                    generator(torch_image)
        else:
            import paddle

            from ugatit_paddle.inference.export import InferenceModel, export_generator
            from ugatit_paddle.models import Generator

            ours = Generator(a.ch, a.n_res, a.img_size, not a.full)
            ours.eval()
            if which == "ours_eager":
                paddle_image = paddle.to_tensor(image)

                def run():
                    with paddle.no_grad():
                        ours(paddle_image)
            else:
                folder = stack.enter_context(tempfile.TemporaryDirectory())
                export_generator(ours, a.img_size, folder, "A2B")
                model = InferenceModel(folder, mkldnn=which == "ours_exported_onednn", threads=threads)

                def run():
                    model(image)
        return _interleaved_times({which: run}, a.warmup, a.iters)[which]


def compare_inference(a: argparse.Namespace) -> dict:
    """`a.rounds` rounds, each running every one of `INFERENCE_RUNS` in a fresh process of its own (in one process,
    one library's or executor's idle worker threads slow the next one down), the order reversed every other
    round; medians over all rounds, and speed ratios to the official latency."""
    times: dict[str, list[float]] = {}
    for r in range(a.rounds):
        for which in INFERENCE_RUNS if r % 2 == 0 else INFERENCE_RUNS[::-1]:
            run = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only-inference", which],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                raise SystemExit(f"{which} inference failed (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
            times.setdefault(which, []).extend(json.loads(run.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {**{f"{k}_sec_per_image": v for k, v in med.items()},
            **{f"{k}_speed_vs_official": med["official_eager"] / v for k, v in med.items() if k != "official_eager"}}


def memory_of(which: str, a: argparse.Namespace, threads: int) -> dict:
    """Peak RSS of `a.iters` training iterations of one implementation, in this (fresh) process."""
    if which == "official":
        impl = OfficialIteration(a.torch_src, a.img_size, a.ch, a.n_res, not a.full, threads)
        real_A, real_B = impl.images(a.batch, a.img_size, 1), impl.images(a.batch, a.img_size, 2)
        step = lambda: impl.step(real_A, real_B)  # noqa: E731
    else:
        impl = OurIteration(a.img_size, a.ch, a.n_res, not a.full, a.batch)
        step = lambda: impl.step(which == "ours_reuse_on")  # noqa: E731
    seconds = [_seconds(step) for _ in range(a.iters)]
    return {"impl": which, "peak_rss_mb": peak_rss_mb(), "sec_per_iter": seconds}


def main() -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-src", required=True, help="folder with the official networks.py (UGATIT-pytorch clone)")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--ch", type=int, default=32)
    parser.add_argument("--n-res", type=int, default=4)
    parser.add_argument("--full", action="store_true", help="full model (default: light)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per implementation (memory: iterations run)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="peak RSS, each implementation in a fresh process")
    parser.add_argument("--inference", action="store_true", help="generator inference latency instead of training")
    parser.add_argument("--rounds", type=int, default=3, help="--inference: rounds of fresh processes (default 3)")
    parser.add_argument("--only", choices=["official", "ours_reuse_on", "ours_reuse_off"], help=argparse.SUPPRESS)
    parser.add_argument("--only-inference", choices=INFERENCE_RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    a = parser.parse_args()
    if not (Path(a.torch_src).expanduser() / "networks.py").is_file():
        parser.error(f"--torch-src {a.torch_src} has no networks.py (clone UGATIT-pytorch)")
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    if a.only:
        print(json.dumps(memory_of(a.only, a, threads)))
        return 0
    if a.only_inference:
        print(json.dumps(inference_times(a.only_inference, a, threads)))
        return 0
    if a.memory:
        result = {"config": vars(a)}
        for which in ("official", "ours_reuse_on", "ours_reuse_off"):
            run = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", which], capture_output=True, text=True)
            if run.returncode != 0:
                result[which] = f"failed (exit {run.returncode}): {run.stderr.strip().splitlines()[-1:]}"
                continue
            result[which] = json.loads(run.stdout.strip().splitlines()[-1])
    elif a.inference:
        result = {"config": vars(a), "threads": threads, **compare_inference(a)}
    else:
        result = {"config": vars(a), **compare_speed(a, threads)}
    if a.json:
        print(json.dumps(result))
        return 0
    print(json.dumps({k: v for k, v in result.items() if k != "all_times"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
