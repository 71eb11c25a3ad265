"""Parity with the other implementations whose trained weights users hold: bundles recorded by running the
official TensorFlow code (`shared/fixtures/tf/README.md`) and PaddleGAN's code (`shared/fixtures/paddlegan/`).

Each check converts the bundle's checkpoint with this project's converter, runs the networks in eval mode on
the recorded batch and compares every recorded output with the limit of the bundle's README
(`checks.FOREIGN_LIMITS`). `check_bundle` recognises any bundle, official ones included.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle

from ..formats.paddlegan import PaddleGANError, affine_deviations, from_paddlegan, load_file
from ..formats.tf import from_tf_checkpoint
from ..models import DISCRIMINATORS, GENERATORS, build_networks
from .bundles import Bundle, bundle_parity
from .checks import FOREIGN_LIMITS, OUTPUTS, Report, Row, compare

TF_LIMIT = FOREIGN_LIMITS["tf"].value
PADDLEGAN_LIMIT = FOREIGN_LIMITS["paddlegan"].value
# TF output prefixes: generator scope A2B/B2A, discriminators "D_<domain>_on_real_<domain>_<part>"
TF_GENERATORS = {"genA2B": ("A2B", "real_A", "fake_B"), "genB2A": ("B2A", "real_B", "fake_A")}
TF_DISCRIMINATORS = {"disGA": ("D_A_on_real_A_global", "real_A"), "disLA": ("D_A_on_real_A_local", "real_A"),
                     "disGB": ("D_B_on_real_B_global", "real_B"), "disLB": ("D_B_on_real_B_local", "real_B")}


def bundle_source(path: str | Path) -> str:
    """"official", "tf" or "paddlegan": which code recorded the bundle, from the files present."""
    path = Path(path)
    if any(path.glob("*.index")) and (path / "outputs.npz").is_file():
        return "tf"
    if (path / "outputs_gen_in_affine_identity.npz").is_file() or any(path.glob("epoch_*_weight.pdparams")):
        return "paddlegan"
    if (path / "init_params.pt").is_file():
        return "official"
    raise ValueError(f"{path} is not a parity bundle: expected init_params.pt (official), a TF checkpoint "
                     f"(*.index) with outputs.npz, or PaddleGAN's epoch_*_weight.pdparams")


def _nhwc(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 3, 1)


def _like(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Our [N, 1, h, w] heatmap as the TF code returns it: tf.squeeze'd, [N, h, w], or [h, w] for N = 1."""
    if ours.size != ref.size:
        raise ValueError(f"output of shape {list(ours.shape)} cannot be compared with the recorded {list(ref.shape)}")
    return ours.reshape(ref.shape)


def _run_generator(net: paddle.nn.Layer, x: np.ndarray) -> dict[str, np.ndarray]:
    """Eval outputs of a generator, and the MLP's gamma/beta [N, C] (captured by hooks)."""
    captured: dict[str, np.ndarray] = {}
    hooks = [getattr(net, name).register_forward_post_hook(
        lambda layer, inputs, output, name=name: captured.__setitem__(name, output.numpy())) for name in ("gamma", "beta")]
    try:
        with paddle.no_grad():
            out, cam, heatmap = (t.numpy() for t in net(paddle.to_tensor(x)))
    finally:
        for hook in hooks:
            hook.remove()
    return {"fake": out, "cam_logit": cam, "heatmap": heatmap, "mlp_gamma": captured["gamma"],
            "mlp_beta": captured["beta"]}


def tf_bundle_parity(path: str | Path, limit: float = TF_LIMIT) -> list[Row]:
    """Convert a TF bundle's checkpoint and compare every array of its outputs.npz (eval mode)."""
    path = Path(path)
    config = json.loads((path / "reference.json").read_text())["config"]
    args, states, _ = from_tf_checkpoint(path, img_size=config["img_size"], smoothing=config["smoothing"])
    expected = (config["ch"], config["n_res"], config["light"], config["n_dis"] + 1, config["sn"])
    if (args.ch, args.n_res, args.light, args.global_layers, args.tf_sn) != expected:
        raise ValueError(f"{path}: the converter read {args}, reference.json says {config}")
    nets = build_networks(args, tuple(states))
    for name, net in nets.items():
        net.set_state_dict(states[name])
        net.eval()
    batch = np.load(path / "batch.npz")
    ref = np.load(path / "outputs.npz")
    inputs = {k: np.ascontiguousarray(batch[k].transpose(0, 3, 1, 2)) for k in ("real_A", "real_B")}
    rows = []
    for name, (prefix, source, fake) in TF_GENERATORS.items():
        if name not in nets:
            continue
        ours = _run_generator(nets[name], inputs[source])
        for output, key in (("fake", fake), ("cam_logit", "cam_logit"), ("heatmap", "heatmap"),
                            ("mlp_gamma", "mlp_gamma"), ("mlp_beta", "mlp_beta")):
            theirs = ref[f"{prefix}_{key}"]
            value = _nhwc(ours[output]) if output == "fake" else _like(ours[output], theirs)
            rows.append(compare("tf eval", name, output, value, theirs, limit))
    for name, (prefix, source) in TF_DISCRIMINATORS.items():
        if name not in nets:
            continue
        with paddle.no_grad():
            logit, cam, heatmap = (t.numpy() for t in nets[name](paddle.to_tensor(inputs[source])))
        rows.append(compare("tf eval", name, "logit", _nhwc(logit), ref[f"{prefix}_logit"], limit))
        rows.append(compare("tf eval", name, "cam_logit", cam, ref[f"{prefix}_cam_logit"], limit))
        rows.append(compare("tf eval", name, "heatmap", _like(heatmap, ref[f"{prefix}_heatmap"]),
                            ref[f"{prefix}_heatmap"], limit))
    return rows


def paddlegan_bundle_parity(path: str | Path, limit: float = PADDLEGAN_LIMIT) -> list[Row]:
    """Convert a PaddleGAN bundle's weight file and compare the six networks' eval outputs.

    The bundle's InstanceNorm scale/bias are perturbed on purpose (its README): the converter refuses the file
    without `force`, which is checked as its own row ("paddlegan refusal"); with `force` the generators are compared
    with `outputs_gen_in_affine_identity.npz` (scale 1, bias 0) and the discriminators with `outputs.npz`.
    """
    path = Path(path)
    config = json.loads((path / "reference.json").read_text())["config"]
    img_size = config["generator"]["img_size"]
    weights = sorted(path.glob("epoch_*_weight.pdparams")) or sorted(path.glob("*.pdparams"))
    payload = load_file(weights[0])
    rows = []
    perturbed = any(affine_deviations(payload[n]) for n in GENERATORS if n in payload)
    if perturbed:
        try:
            from_paddlegan(payload, str(weights[0]), img_size)
            refused = 0.0
        except PaddleGANError:
            refused = 1.0
        rows.append(Row("paddlegan refusal", "genA2B+genB2A", "refuse IN!=1/0", 0.0, 1.0 - refused, 0.0))
    args, states, _ = from_paddlegan(load_file(weights[0]), str(weights[0]), img_size, force=True)
    g, d = config["generator"], config.get("discriminator_g", {})
    expected = (g["ngf"], g["n_blocks"], g["light"], d.get("n_layers", args.global_layers))
    if (args.ch, args.n_res, args.light, args.global_layers) != expected:
        raise ValueError(f"{path}: the converter read {args}, reference.json says {config}")
    nets = build_networks(args, tuple(states))
    x = np.load(path / "batch.npz")["x"]
    others_ref = np.load(path / "outputs.npz")
    identity = path / "outputs_gen_in_affine_identity.npz"  # generators with the InstanceNorm affine at 1/0
    generators_ref = np.load(identity) if identity.is_file() else others_ref
    with paddle.no_grad():
        for name in GENERATORS + DISCRIMINATORS:
            if name not in nets:
                continue
            net = nets[name]
            net.set_state_dict(states[name])
            net.eval()
            ref = generators_ref if name in GENERATORS else others_ref
            for i, (output, ours) in enumerate(zip(OUTPUTS, net(paddle.to_tensor(x)))):
                rows.append(compare("paddlegan eval", name, output, ours.numpy(), ref[f"{name}.{i}"], limit))
    return rows


def check_bundle(path: str | Path, steps: int | None = 0) -> Report:
    """Any parity bundle, recognised by its files: official ones through `bundle_parity` (with `steps` training
    iterations; None = all it records), TF and PaddleGAN ones (eval outputs only) through the checks above."""
    source = bundle_source(path)
    if source == "official":
        return bundle_parity(path, steps=Bundle.open(path).steps if steps is None else steps)
    if steps:
        raise ValueError(f"{path} is a {source} bundle: it records eval outputs only, so --steps does not apply")
    rows = tf_bundle_parity(path) if source == "tf" else paddlegan_bundle_parity(path)
    return Report(rows, bundle=str(path), source=source)
