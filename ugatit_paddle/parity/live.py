"""Live parity on a user's own official checkpoint (needs torch and a clone of UGATIT-pytorch), and the
float32 precision check of a random generator.

`live_parity` runs the official networks (`official_torch.OfficialTraining`) beside this project's on the
same weights and inputs: eval outputs, then either a few train-mode forwards (each advances the
spectral-norm power iteration on both sides) or, with `steps`, that many training iterations of both side
by side, judged by the same limits as a bundle of that dtype (`checks.LIMITS`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import paddle

from ..config import ModelConfig
from ..data import eval_transform, find_images, load_rgb
from ..formats.official import from_official, paddle_to_torch, to_official
from ..formats.torch_pickle import load_torch
from ..inference.export import InferenceModel, export_generator
from ..models import Generator
from .bundles import network_states, project_model, run_project
from .checks import (
    LIMITS, OUTPUTS, Report, Row, compare, compare_eval, eval_outputs, limits_for, trajectory_note, trajectory_rows,
)
from .official_torch import OfficialTraining, Recipe, TorchUnavailable, import_official_networks, import_torch


def live_batch(images: str | None, img_size: int, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two batches [batch, 3, S, S] in [-1, 1] (real_A, real_B): the first 2 x batch images of the folder
    `images` (official test transform; repeated if there are fewer), or uniform random ones."""
    if images is None:
        rng = np.random.default_rng(seed)
        return tuple(rng.uniform(-1, 1, (batch, 3, img_size, img_size)).astype(np.float32) for _ in range(2))
    paths = find_images(images)
    if not paths:
        raise ValueError(f"no images found in {images}")
    stack = np.stack([eval_transform(load_rgb(paths[i % len(paths)]), img_size) for i in range(2 * batch)])
    return stack[:batch], stack[batch:]


def live_parity(torch_ckpt: str | Path, torch_src: str | Path, images: str | None = None,
                img_size: int | None = None, train_forwards: int = 3, steps: int = 0, float64: bool = False,
                batch: int = 1, threads: int | None = None) -> Report:
    """The official code and this project on the same official checkpoint and inputs, in float32 or float64.

    Without `steps`: eval outputs and `train_forwards` train-mode forwards per network. With `steps`: eval
    outputs, then `steps` training iterations of both on one fixed batch (losses of each iteration, every
    weight and the eval outputs after them).
    """
    import_torch("live parity")
    import_official_networks(torch_src)  # a clear error before the slow part
    dtype = "float64" if float64 else "float32"
    limits = limits_for(dtype)
    official_states = load_torch(torch_ckpt)
    args, states, _ = from_official(official_states, img_size=img_size)
    real_A, real_B = live_batch(images, args.img_size, batch)
    recipe = Recipe()
    theirs = OfficialTraining(torch_src, args.img_size, args.ch, args.n_res, args.light, args.global_layers,
                              args.local_layers, dtype=dtype, states=official_states, recipe=recipe, threads=threads)
    ours = project_model(args, states, recipe, batch, max(steps, 1), dtype, str(torch_ckpt))
    rows = compare_eval("eval", ours.nets, real_A, theirs.eval_outputs(real_A), limits.eval.value)
    report = Report(rows, bundle="", dtype=dtype, steps=steps, source="official",
                    notes=trajectory_note(limits, args.light, steps))
    if steps == 0:
        x = paddle.to_tensor(real_A).astype(ours.dtype)
        for name, net in ours.nets.items():  # each forward advances the power iteration on both sides
            net.train()
            for i in range(train_forwards):
                ref_out = theirs.train_forward(name, real_A)
                with paddle.no_grad():
                    our_out = [t.numpy() for t in net(x)]
                rows += [compare(f"train#{i + 1}", name, o, a, b, limits.eval.value)
                         for o, a, b in zip(OUTPUTS, our_out, ref_out)]
        return report
    ref_losses = [theirs.step(real_A, real_B) for _ in range(steps)]
    losses = run_project(ours, real_A, real_B, steps)
    rows += trajectory_rows(limits, args.light, recipe.lr, steps, losses, ref_losses,
                            to_official(network_states(ours.nets)), theirs.state_dicts(),
                            eval_outputs(ours.nets, real_A), theirs.eval_outputs(real_A))
    return report


def precision_check(args: ModelConfig, seed: int = 0, torch_src: str | Path | None = None) -> Report:
    """How far float32 generators are from a float64 evaluation of the same weights and input.

    Builds a random generator for `args`, runs it in float32 and in float64 (Paddle), exports it and runs the
    exported model with Paddle Inference (plain and oneDNN), and, when `torch_src` (a clone of UGATIT-pytorch)
    is given and torch is installed, also the official float32 generator.
    The rows' `value` is max|diff| / max|float64 output|; the limit is the float32 eval tolerance.
    """
    limit = LIMITS["float32"].eval.value
    paddle.seed(seed)
    net32 = Generator(args.ch, args.n_res, args.img_size, args.light)
    state = {k: v.numpy() for k, v in net32.state_dict().items()}
    previous = paddle.get_default_dtype()
    paddle.set_default_dtype("float64")
    try:
        net64 = Generator(args.ch, args.n_res, args.img_size, args.light)
    finally:
        paddle.set_default_dtype(previous)
    net64.set_state_dict({k: v.astype(np.float64) for k, v in state.items()})
    x = np.random.default_rng(seed).uniform(-1, 1, (1, 3, args.img_size, args.img_size))
    net64.eval()  # (Layer.eval() returns None in Paddle 2.6)
    net32.eval()
    with paddle.no_grad():
        ref = [t.numpy() for t in net64(paddle.to_tensor(x))]
        ours = [t.numpy() for t in net32(paddle.to_tensor(x.astype(np.float32)))]
    rows: list[Row] = [compare("f32 vs f64", "paddle", o, a, r, limit) for o, a, r in zip(OUTPUTS, ours, ref)]
    with tempfile.TemporaryDirectory() as folder:
        export_generator(net32, args.img_size, folder, "A2B")
        for label, onednn in (("exported", False), ("exported+onednn", True)):
            outputs = InferenceModel(folder, mkldnn=onednn)(x.astype(np.float32))
            rows += [compare("f32 vs f64", label, o, a, r, limit) for o, a, r in zip(OUTPUTS, outputs, ref)]
    if torch_src is not None:
        torch = import_torch("the official float32 comparison")
        official = import_official_networks(torch_src).ResnetGenerator(3, 3, args.ch, args.n_res, args.img_size,
                                                                       args.light)
        official.load_state_dict({k: torch.from_numpy(v) for k, v in paddle_to_torch(state, "genA2B").items()})
        with torch.no_grad():
            theirs = [t.numpy() for t in official.eval()(torch.from_numpy(x.astype(np.float32)))]
        rows += [compare("f32 vs f64", "official", o, a, r, limit) for o, a, r in zip(OUTPUTS, theirs, ref)]
    return Report(rows, dtype="float32", notes=["value: max|float32 - float64| / max|float64| of the generator's outputs"])


__all__ = ["TorchUnavailable", "live_batch", "live_parity", "precision_check"]
