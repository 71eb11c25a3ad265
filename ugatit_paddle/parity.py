"""Numerical agreement with the official PyTorch code.

Bundle mode checks a *parity bundle* recorded from the unmodified official code (format described in
`shared/fixtures/official/README.md`): eval outputs of the six networks from the converted initial weights,
and optionally K training iterations (per-iteration losses, weights and eval outputs after the steps).
Live mode runs the official `networks.py` from a user's clone side by side with this project (needs torch).

The tolerances (`Tolerances`) are the ones calibrated on the official code itself.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from .config import ModelConfig as ModelArgs  # renamed (issue 14): ModelArgs is now config.ModelConfig
from .config import config_from_dict
from .formats.official import from_official
from .formats.torch_pickle import load_torch
from .models import build_networks
from .training.ugatit import UGATIT

OUTPUTS = ("out", "cam_logit", "heatmap")


@dataclass(frozen=True)
class Tolerances:
    """Limits from the fixtures README (measured by running the official code with 1 and 2 threads)."""

    eval_rel: float = 1e-4  # eval outputs: max|diff| / max|ref|
    loss_rel: float = 1e-4  # every iteration's total D and G loss: relative difference
    weight_abs_per_step_lr: float = 4.0  # weights after K steps: max|diff| <= 4 * lr * K
    weight_off_fraction: float = 0.05  # ... and at most 5% of values off by more than 1e-5
    weight_off_threshold: float = 1e-5
    eval_after_rel: float = 2e-2  # eval outputs after the steps: max|diff| / max|ref|


@dataclass(frozen=True)
class Row:
    """One line of the parity table."""

    check: str
    network: str
    output: str
    max_abs: float
    value: float  # the compared quantity (relative error, or a fraction)
    limit: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.value)) and self.value <= self.limit


def compare(check: str, net: str, output: str, ours: np.ndarray, ref: np.ndarray, limit: float) -> Row:
    diff = np.abs(np.asarray(ours, np.float64) - np.asarray(ref, np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref).max()) if np.size(ref) else 0.0
    return Row(check, net, output, max_abs, max_abs / scale if scale > 0 else max_abs, limit)


def eval_outputs(nets: dict[str, paddle.nn.Layer], x: np.ndarray) -> dict[str, np.ndarray]:
    """`{"<net>.<output>": array}` of every network in eval mode on `x` [N, 3, S, S] (spectral-norm vectors unchanged)."""
    results = {}
    with paddle.no_grad():
        for name, net in nets.items():
            was_training = net.training
            net.eval()
            for output, value in zip(OUTPUTS, net(paddle.to_tensor(x))):
                results[f"{name}.{output}"] = value.numpy()
            if was_training:
                net.train()
    return results


def compare_eval(check: str, nets: dict[str, paddle.nn.Layer], x: np.ndarray, reference: Any, limit: float) -> list[Row]:
    ours = eval_outputs(nets, x)
    return [compare(check, *key.split("."), ours[key], reference[key], limit) for key in ours]


def _load_official(path: Path, img_size: int) -> tuple[ModelArgs, dict[str, dict[str, np.ndarray]]]:
    args, states, _ = from_official(load_torch(path), img_size=img_size)
    return args, states


def bundle_parity(bundle: str | Path, steps: int = 0, tol: Tolerances = Tolerances()) -> list[Row]:
    """Check a parity bundle; `steps` > 0 also runs that many training iterations of `UGATIT`."""
    bundle = Path(bundle)
    ref = json.loads((bundle / "reference.json").read_text())
    if steps > ref["steps"]:
        raise ValueError(f"{bundle} records {ref['steps']} training iterations; --steps must be <= {ref['steps']}")
    args, states = _load_official(bundle / "init_params.pt", ref["img_size"])
    if (args.ch, args.n_res, args.light) != (ref["ch"], ref["n_res"], ref["light"]):
        raise ValueError(f"{bundle}: weights say {args}, reference.json says {ref}")
    batch = np.load(bundle / "batch.npz")
    real_A, real_B = batch["real_A"], batch["real_B"]

    cfg = config_from_dict({
        "model": {"img_size": args.img_size, "ch": args.ch, "n_res": args.n_res, "light": args.light,
                  "global_layers": args.global_layers, "local_layers": args.local_layers},
        "train": {"lr": ref["lr"], "beta1": ref["beta1"], "beta2": ref["beta2"], "weight_decay": ref["weight_decay"],
                  "batch_size": ref["batch"], "iterations": max(2 * ref["steps"], 2)},  # lr decay plays no part
        "loss": {"adv_weight": ref["adv_weight"], "cycle_weight": ref["cycle_weight"],
                 "identity_weight": ref["identity_weight"], "cam_weight": ref["cam_weight"]},
    })
    trainer = UGATIT(cfg)
    for name, net in trainer.nets.items():
        net.set_state_dict(states[name])
    rows = compare_eval("eval@init", trainer.nets, real_A, np.load(bundle / "eval_outputs_init.npz"), tol.eval_rel)
    if steps == 0:
        return rows

    trainer.set_train_mode(True)
    A, B = paddle.to_tensor(real_A), paddle.to_tensor(real_B)
    for i in range(steps):
        losses = trainer.step(A, B)
        for kind in ("D", "G"):
            ours, theirs = losses[f"{kind}/total"], ref["losses"][i][kind]
            rows.append(Row(f"loss@{i + 1}", kind, "total", abs(ours - theirs), abs(ours - theirs) / abs(theirs),
                            tol.loss_rel))
    if steps < ref["steps"]:
        return rows

    _, after = _load_official(bundle / "after_steps_params.pt", ref["img_size"])
    diffs = [np.abs(net.state_dict()[k].numpy() - v).ravel()
             for name, net in trainer.nets.items() for k, v in after[name].items()]
    diff = np.concatenate(diffs)
    rows.append(Row(f"weights@{steps}", "all", "max|diff|", float(diff.max()), float(diff.max()),
                    tol.weight_abs_per_step_lr * ref["lr"] * steps))
    rows.append(Row(f"weights@{steps}", "all", f"frac>{tol.weight_off_threshold:g}", float(diff.max()),
                    float((diff > tol.weight_off_threshold).mean()), tol.weight_off_fraction))
    rows += compare_eval(f"eval@{steps}", trainer.nets, real_A, np.load(bundle / "eval_outputs_after_steps.npz"),
                         tol.eval_after_rel)
    return rows


def format_table(rows: list[Row]) -> str:
    """A fixed-width table: check, network, output, max abs diff, compared value, limit, verdict."""
    width = max([8, *(len(r.network) for r in rows)])
    lines = [f"{'check':<11} {'network':<{width}} {'output':<10} {'max|diff|':>10} {'value':>10} {'limit':>9}  verdict"]
    for r in rows:
        lines.append(f"{r.check:<11} {r.network:<{width}} {r.output:<10} {r.max_abs:>10.3e} {r.value:>10.3e} "
                     f"{r.limit:>9.1e}  {'ok' if r.ok else 'FAIL'}")
    failed = sum(not r.ok for r in rows)
    lines.append(f"{len(rows) - failed} passed, {failed} failed")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- live mode
class TorchUnavailable(RuntimeError):
    """Live parity needs PyTorch and the official networks.py."""


def _import_official(torch_src: str | Path) -> Any:
    import importlib.util

    path = Path(torch_src) / "networks.py"
    if not path.is_file():
        raise TorchUnavailable(f"{path} not found: --torch-src must be a clone of UGATIT-pytorch")
    spec = importlib.util.spec_from_file_location("ugatit_official_networks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _live_inputs(images: str | None, img_size: int, count: int = 2, seed: int = 0) -> np.ndarray:
    if images is None:
        return np.random.default_rng(seed).uniform(-1, 1, (count, 3, img_size, img_size)).astype(np.float32)
    from .data import eval_transform, find_images, load_rgb

    paths = find_images(images)
    return np.stack([eval_transform(load_rgb(p), img_size) for p in paths[:8]])


def live_parity(torch_ckpt: str | Path, torch_src: str | Path, images: str | None = None,
                img_size: int | None = None, train_forwards: int = 3, tol: Tolerances = Tolerances()) -> list[Row]:
    """Run the official networks (torch) and ours on the same weights and inputs, in eval and in train mode."""
    try:
        import torch
    except ImportError as e:
        raise TorchUnavailable("live parity needs PyTorch (pip install torch); bundle mode "
                               "(--bundle) works without it") from e
    official = _import_official(torch_src)
    checkpoint = load_torch(torch_ckpt)
    args, states, _ = from_official(checkpoint, img_size=img_size)
    ours = build_networks(args, tuple(states))
    theirs = {}
    for name, state in states.items():
        ours[name].set_state_dict(state)
        if name.startswith("gen"):
            net = official.ResnetGenerator(3, 3, args.ch, args.n_res, args.img_size, args.light)
        else:
            net = official.Discriminator(3, args.ch, args.global_layers if name.startswith("disG") else args.local_layers)
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in checkpoint[name].items()})
        theirs[name] = net
    x = _live_inputs(images, args.img_size)

    rows = []
    with torch.no_grad():
        reference = {}
        for name, net in theirs.items():
            net.eval()
            for output, value in zip(OUTPUTS, net(torch.from_numpy(x))):
                reference[f"{name}.{output}"] = value.numpy()
    rows += compare_eval("eval", ours, x, reference, tol.eval_rel)

    for name in theirs:  # train mode: each forward advances the spectral-norm power iteration on both sides
        theirs[name].train()
        ours[name].train()
        for i in range(train_forwards):
            with torch.no_grad():
                ref_out = [t.numpy() for t in theirs[name](torch.from_numpy(x))]
            with paddle.no_grad():
                our_out = [t.numpy() for t in ours[name](paddle.to_tensor(x))]
            rows += [compare(f"train#{i + 1}", name, o, a, b, tol.eval_rel) for o, a, b in zip(OUTPUTS, our_out, ref_out)]
    return rows


def official_rerun(bundle: str | Path, torch_src: str | Path, threads: int | None = None,
                   tol: Tolerances = Tolerances()) -> list[Row]:
    """Rerun the official networks (torch, from `torch_src`) through the bundle's training iterations and
    judge *them* against the bundle with the same limits: how reproducible the recording itself is.

    The iteration is the official one (D step, G step, rho clipping; Adam over concatenated parameters).
    """
    try:
        import torch
    except ImportError as e:
        raise TorchUnavailable("--official-rerun needs PyTorch (pip install torch)") from e
    if threads:
        torch.set_num_threads(threads)
    official = _import_official(torch_src)
    bundle = Path(bundle)
    ref = json.loads((bundle / "reference.json").read_text())
    init = load_torch(bundle / "init_params.pt")
    nets = {name: official.ResnetGenerator(3, 3, ref["ch"], ref["n_res"], ref["img_size"], ref["light"])
            for name in ("genA2B", "genB2A")}
    nets.update({name: official.Discriminator(3, ref["ch"], 7 if name.startswith("disG") else 5)
                 for name in ("disGA", "disGB", "disLA", "disLB")})
    for name, net in nets.items():
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in init[name].items()})
        net.train()

    def adam(names: tuple[str, ...]) -> Any:
        params = [p for n in names for p in nets[n].parameters()]
        return torch.optim.Adam(params, lr=ref["lr"], betas=(ref["beta1"], ref["beta2"]), weight_decay=ref["weight_decay"])

    g_opt, d_opt = adam(("genA2B", "genB2A")), adam(("disGA", "disGB", "disLA", "disLB"))
    mse, l1, bce = torch.nn.MSELoss(), torch.nn.L1Loss(), torch.nn.BCEWithLogitsLoss()
    w_adv, w_cyc, w_id, w_cam = (ref[k] for k in ("adv_weight", "cycle_weight", "identity_weight", "cam_weight"))
    batch = np.load(bundle / "batch.npz")
    real = {"A": torch.from_numpy(batch["real_A"]), "B": torch.from_numpy(batch["real_B"])}
    to = {"A": "B", "B": "A"}

    def lsgan(out: Any, target: float) -> Any:
        return mse(out, torch.full_like(out, target))

    rows = []
    for i in range(ref["steps"]):
        d_opt.zero_grad()
        fake = {d: nets[f"gen{d}2{to[d]}"](real[d])[0] for d in "AB"}  # fake[A] is A translated to B
        d_loss = 0
        for d in "AB":  # discriminators of domain d see real d and the translation into d
            for scale in "GL":
                r, f = nets[f"dis{scale}{d}"](real[d]), nets[f"dis{scale}{d}"](fake[to[d]])
                d_loss = d_loss + w_adv * (lsgan(r[0], 1) + lsgan(f[0], 0) + lsgan(r[1], 1) + lsgan(f[1], 0))
        d_loss.backward()
        d_opt.step()

        g_opt.zero_grad()
        g_loss = 0
        for d in "AB":
            src_gen, back_gen = nets[f"gen{d}2{to[d]}"], nets[f"gen{to[d]}2{d}"]
            fake_d, fake_cam, _ = src_gen(real[d])
            cycle = back_gen(fake_d)[0]
            identity, identity_cam, _ = back_gen(real[d])
            g_loss = g_loss + w_cyc * l1(cycle, real[d]) + w_id * l1(identity, real[d])
            g_loss = g_loss + w_cam * (bce(fake_cam, torch.ones_like(fake_cam)) + bce(identity_cam, torch.zeros_like(identity_cam)))
            for scale in "GL":
                out = nets[f"dis{scale}{to[d]}"](fake_d)
                g_loss = g_loss + w_adv * (lsgan(out[0], 1) + lsgan(out[1], 1))
        g_loss.backward()
        g_opt.step()
        with torch.no_grad():
            for name in ("genA2B", "genB2A"):
                for module in nets[name].modules():
                    if hasattr(module, "rho"):
                        module.rho.clamp_(0, 1)
        for kind, value in (("D", d_loss.item()), ("G", g_loss.item())):
            theirs = ref["losses"][i][kind]
            rows.append(Row(f"loss@{i + 1}", kind, "total", abs(value - theirs), abs(value - theirs) / abs(theirs), tol.loss_rel))

    after = load_torch(bundle / "after_steps_params.pt")
    diff = np.concatenate([np.abs(v.detach().numpy() - np.asarray(after[n][k])).ravel()
                           for n, net in nets.items() for k, v in net.state_dict().items()])
    steps = ref["steps"]
    rows.append(Row(f"weights@{steps}", "all", "max|diff|", float(diff.max()), float(diff.max()),
                    tol.weight_abs_per_step_lr * ref["lr"] * steps))
    rows.append(Row(f"weights@{steps}", "all", f"frac>{tol.weight_off_threshold:g}", float(diff.max()),
                    float((diff > tol.weight_off_threshold).mean()), tol.weight_off_fraction))
    reference = np.load(bundle / "eval_outputs_after_steps.npz")
    x = torch.from_numpy(batch["real_A"])
    with torch.no_grad():
        for name, net in nets.items():
            net.eval()
            for output, value in zip(OUTPUTS, net(x)):
                rows.append(compare(f"eval@{steps}", name, output, value.numpy(), reference[f"{name}.{output}"],
                                    tol.eval_after_rel))
    return rows


# ---------------------------------------------------------------------------- float32 precision
def precision_check(args: ModelArgs, seed: int = 0, torch_src: str | Path | None = None) -> list[Row]:
    """How far float32 generators are from a float64 evaluation of the same weights and input.

    Builds a random generator for `args`, runs it in float32 and in float64 (Paddle), exports it and runs the
    exported model with Paddle Inference (plain and oneDNN), and, when `torch_src` (a clone of UGATIT-pytorch)
    is given and torch is installed, also the official float32 generator.
    The rows' `value` is max|diff| / max|float64 output|; the limit is the eval tolerance.
    """
    from .formats.official import paddle_to_torch
    from .inference.export import InferenceModel, export_generator
    from .models import Generator

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
    rows = [compare("f32 vs f64", "paddle", o, a, r, Tolerances().eval_rel) for o, a, r in zip(OUTPUTS, ours, ref)]
    with tempfile.TemporaryDirectory() as folder:
        export_generator(net32, args.img_size, folder, "A2B")
        for label, onednn in (("exported", False), ("exported+onednn", True)):
            outputs = InferenceModel(folder, mkldnn=onednn)(x.astype(np.float32))
            rows += [compare("f32 vs f64", label, o, a, r, Tolerances().eval_rel)
                     for o, a, r in zip(OUTPUTS, outputs, ref)]
    if torch_src is not None:
        try:
            import torch
        except ImportError as e:
            raise TorchUnavailable("the official float32 comparison needs PyTorch (pip install torch)") from e
        official = _import_official(torch_src).ResnetGenerator(3, 3, args.ch, args.n_res, args.img_size, args.light)
        official.load_state_dict({k: torch.from_numpy(v) for k, v in paddle_to_torch(state, "genA2B").items()})
        with torch.no_grad():
            theirs = [t.numpy() for t in official.eval()(torch.from_numpy(x.astype(np.float32)))]
        rows += [compare("f32 vs f64", "official", o, a, r, Tolerances().eval_rel) for o, a, r in zip(OUTPUTS, theirs, ref)]
    return rows
