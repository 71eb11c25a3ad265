"""Official TensorFlow U-GAT-IT checkpoints (taki0112/UGATIT) -> this project's TF-variant state dicts.

The TF code's variables live under four scopes: `generator_B` translates A to B (our `genA2B`),
`generator_A` B to A (`genB2A`), `discriminator_A/{global,local}` judge domain A (`disGA`, `disLA`) and
`discriminator_B/...` domain B. `variable_table` lists, for one network and architecture, every TF
variable with our key and the layout transform; it is the single source of truth of the mapping:

- conv kernels HWIO [kh, kw, in, out] -> OIHW [out, in, kh, kw]; dense kernels [in, out] stay (Paddle's
  Linear layout is TF's); biases, instance-norm gamma/beta (-> `scale`/`bias`) are copied; rho/gamma/beta
  of ILN/AdaILN [C] -> [1, C, 1, 1], stored as they are (the smoothing is a model setting, not a value
  change; see `models/variant.py`);
- the full model's first MLP kernel has rows in NHWC-flatten order (h, w, c); ours flattens NCHW (c, h, w),
  so its rows are permuted;
- spectral norm: TF stores the raw kernel and u [1, out], and every forward runs one power iteration from
  u. We store `weight_orig`, and as `weight_u`/`weight_v` the vectors of that one iteration (computed here
  in float64), so that an eval-mode forward uses exactly the sigma of TF's first forward after restoring
  the checkpoint; a train-mode forward then advances the iteration as TF's next forward would.

Adam slots (`.../Adam`, `.../Adam_1`) and `beta1_power`/`beta2_power` are skipped. The architecture (light,
ch, n_res, discriminator depths, sn, img_size of a full model) is read from the shapes; `smoothing` is not
stored in a checkpoint: it is read from the official folder name (`..._sn_smoothing`) or assumed on (the
official default), and said so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from ..config import ModelConfig
from ..models import DISCRIMINATORS, GENERATORS, check_model_config
from . import checkpoint
from .official import DEFAULT_LIGHT_IMG_SIZE, check_state_dict, expected_shapes
from .tensorbundle import TensorBundle

StateDict = dict[str, np.ndarray]
Shapes = Mapping[str, tuple[int, ...]]

SCOPES = {
    "genA2B": "generator_B", "genB2A": "generator_A",
    "disGA": "discriminator_A/global", "disGB": "discriminator_B/global",
    "disLA": "discriminator_A/local", "disLB": "discriminator_B/local",
}
DEFAULT_N_DIS = 6  # TF --n_dis default (global 7 layers, local 5) when a checkpoint holds no discriminator
OPTIMIZER_STATE = re.compile(r"(/Adam(_\d+)?$)|(^beta[12]_power(_\d+)?$)|(^global_step$)")
# official checkpoint folder: <model>_<dataset>_<gan>_<n>resblock_<n>dis_<critic>_<w>_<w>_<w>_<w>[_sn][_smoothing]
OFFICIAL_FOLDER = re.compile(r"^UGATIT(_light)?_.+_\d+resblock_\d+dis_\d+_[^_]+_[^_]+_[^_]+_[^_]+(_sn)?(_smoothing)?$")


class TFConversionError(ValueError):
    """A TensorFlow checkpoint that does not hold an official U-GAT-IT model."""


# Transforms, named in the table
def _conv(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW


def _copy(value: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(value)


def _per_channel(value: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(value.reshape(1, -1, 1, 1))  # [C] -> [1, C, 1, 1]


def _nhwc_rows(side: int, channels: int) -> Callable[[np.ndarray], np.ndarray]:
    def permute(kernel: np.ndarray) -> np.ndarray:  # rows (h, w, c) -> (c, h, w)
        out = kernel.shape[1]
        return np.ascontiguousarray(kernel.reshape(side, side, channels, out).transpose(2, 0, 1, 3).reshape(-1, out))

    return permute


TRANSFORMS = {"conv": _conv, "copy": _copy, "per_channel": _per_channel}


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / math.sqrt(max(float(np.sum(x * x)), 1e-12))  # tf.nn.l2_normalize


def power_iteration(kernel: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TF ops.spectral_norm's one iteration from the stored `u` [1, out]: (u_hat [out], v_hat [rows in TF order])."""
    w = kernel.astype(np.float64).reshape(-1, kernel.shape[-1])  # [kh * kw * in, out]
    v_hat = _l2_normalize(u.astype(np.float64).reshape(1, -1) @ w.T)
    u_hat = _l2_normalize(v_hat @ w)
    return u_hat.reshape(-1), v_hat.reshape(-1)


def _sn_vectors(kernel: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our `weight_u`, `weight_v` for a TF spectral-norm kernel (conv HWIO or dense [in, 1]) and its stored u."""
    u_hat, v_hat = power_iteration(kernel, u)
    if kernel.ndim == 4:  # v in TF row order (kh, kw, in) -> ours (in, kh, kw)
        kh, kw, cin, _ = kernel.shape
        v_hat = v_hat.reshape(kh, kw, cin).transpose(2, 0, 1).reshape(-1)
    return u_hat.astype(np.float32), v_hat.astype(np.float32)


# ------------------------------------------------------------------------------------------------ the table
Entry = tuple[str, str, Callable[[np.ndarray], np.ndarray]]  # (TF name below the scope, our key, transform)


def _conv_layer(tf: str, ours: str, sn: bool = False) -> list[Entry]:
    if sn:  # kernel, bias and u; u is turned into weight_u/weight_v by `convert_network`
        return [(f"{tf}/kernel", f"{ours}.weight_orig", _conv), (f"{tf}/bias", f"{ours}.bias", _copy),
                (f"{tf}/u", f"{ours}.weight_u", _copy)]
    return [(f"{tf}/conv2d/kernel", f"{ours}.weight", _conv), (f"{tf}/conv2d/bias", f"{ours}.bias", _copy)]


def _instance_norm(tf: str, ours: str) -> list[Entry]:
    return [(f"{tf}/gamma", f"{ours}.scale", _copy), (f"{tf}/beta", f"{ours}.bias", _copy)]


def generator_table(args: ModelConfig) -> list[Entry]:
    """Every variable of a TF generator scope with our key and transform."""
    dim = 4 * args.ch
    table = _conv_layer("conv", "DownBlock.1") + _instance_norm("ins_norm", "DownBlock.2")
    for i in range(2):
        table += _conv_layer(f"conv_{i}", f"DownBlock.{5 + 4 * i}") + _instance_norm(f"ins_norm_{i}", f"DownBlock.{6 + 4 * i}")
    for i in range(args.n_res):
        block = f"DownBlock.{12 + i}.conv_block"
        for j, (conv, norm) in enumerate(((1, 2), (5, 6)), start=1):
            table += _conv_layer(f"resblock_{i}/res{j}/conv_0", f"{block}.{conv}")
            table += _instance_norm(f"resblock_{i}/res{j}/instance_norm", f"{block}.{norm}")
    table += [("CAM_logit/kernel", "cam_fc.weight", _copy), ("CAM_logit/bias", "cam_fc.bias", _copy)]
    table += _conv_layer("conv_1x1", "conv1x1")
    first = _copy if args.light else _nhwc_rows(args.img_size // 4, dim)
    for tf, ours, transform in (("linear_0", "FC.0", first), ("linear_1", "FC.2", _copy), ("gamma", "gamma", _copy),
                                ("beta", "beta", _copy)):
        table += [(f"MLP/{tf}/dense/kernel", f"{ours}.weight", transform), (f"MLP/{tf}/dense/bias", f"{ours}.bias", _copy)]
    for i in range(args.n_res):
        for j in (1, 2):
            table += _conv_layer(f"adaptive_resblock{i}/res{j}/conv_0", f"UpBlock1_{i + 1}.conv{j}")
            table.append((f"adaptive_resblock{i}/res{j}/instance_layer_norm/rho", f"UpBlock1_{i + 1}.norm{j}.rho",
                          _per_channel))
    for i, (conv, norm) in enumerate(((2, 3), (7, 8))):
        table += _conv_layer(f"up_conv_{i}", f"UpBlock2.{conv}")
        table += [(f"layer_ins_norm_{i}/{p}", f"UpBlock2.{norm}.{p}", _per_channel) for p in ("rho", "gamma", "beta")]
    return table + _conv_layer("G_logit", "UpBlock2.11")


def discriminator_table(n_layers: int, sn: bool) -> list[Entry]:
    """Every variable of a TF discriminator part (`global` / `local`) with our key and transform."""
    table: list[Entry] = []
    for i in range(n_layers - 2):
        table += _conv_layer(f"conv_{i}", f"model.{1 + 3 * i}", sn)
    table += _conv_layer("conv_last", f"model.{1 + 3 * (n_layers - 2)}", sn)
    if sn:
        table += [("CAM_logit/kernel", "cam_fc.weight_orig", _copy), ("CAM_logit/bias", "cam_fc.bias", _copy),
                  ("CAM_logit/u", "cam_fc.weight_u", _copy)]
    else:
        table += [("CAM_logit/kernel", "cam_fc.weight", _copy), ("CAM_logit/bias", "cam_fc.bias", _copy)]
    return table + _conv_layer("conv_1x1", "conv1x1") + _conv_layer("D_logit", "conv", sn)


def variable_table(args: ModelConfig, net: str) -> list[Entry]:
    if net in GENERATORS:
        return generator_table(args)
    return discriminator_table(args.global_layers if net.startswith("disG") else args.local_layers, args.tf_sn)


# ------------------------------------------------------------------------------------------------ inference
def _need(shapes: Shapes, name: str) -> tuple[int, ...]:
    if name not in shapes:
        raise TFConversionError(f"the checkpoint has no variable '{name}': not an official TF U-GAT-IT checkpoint")
    return shapes[name]


def _scope_names(shapes: Shapes, scope: str) -> list[str]:
    return [n for n in shapes if n.startswith(scope + "/")]


def _count(names: list[str], pattern: str) -> int:
    return len({m.group(1) for n in names if (m := re.match(pattern, n))})


def smoothing_from_folder(folder: Path) -> bool | None:
    """The TF --smoothing flag from an official checkpoint folder name, or None if the name is not one."""
    name = folder.name
    if not OFFICIAL_FOLDER.match(name):
        return None
    return name.endswith("_smoothing")


def infer_args(shapes: Shapes, folder: Path | None = None, img_size: int | None = None,
               smoothing: bool | None = None) -> tuple[ModelConfig, list[str]]:
    """The architecture of a TF checkpoint from its variable shapes (and folder name), plus notes on what was
    assumed. Raises TFConversionError for anything that is not an official U-GAT-IT checkpoint."""
    notes: list[str] = []
    gen = next((SCOPES[n] for n in GENERATORS if _scope_names(shapes, SCOPES[n])), None)
    if gen is None:
        raise TFConversionError("the checkpoint has no generator_A or generator_B variables: not an official TF "
                                "U-GAT-IT checkpoint")
    names = _scope_names(shapes, gen)
    ch = _need(shapes, f"{gen}/conv/conv2d/kernel")[3]
    dim = 4 * ch
    n_res = _count(names, rf"{gen}/resblock_(\d+)/")
    n_ada = _count(names, rf"{gen}/adaptive_resblock(\d+)/")
    if n_res != n_ada:
        raise TFConversionError(f"{gen} has {n_res} encoder and {n_ada} decoder residual blocks; U-GAT-IT has as "
                                f"many of each")
    mlp_in, width = _need(shapes, f"{gen}/MLP/linear_0/dense/kernel")
    if width != dim:
        raise TFConversionError(f"{gen}/MLP has width {width}, expected 4 * ch = {dim} (the TF code's ch * n_res "
                                f"only builds with n_res = 4)")
    light = mlp_in == dim
    if light:
        if img_size is None:
            img_size = DEFAULT_LIGHT_IMG_SIZE
            notes.append(f"img_size is not stored in a light model; assuming {img_size} (set it with --img-size)")
    else:
        side = math.isqrt(mlp_in // dim)
        if side * side * dim != mlp_in:
            raise TFConversionError(f"{gen}/MLP/linear_0 has {mlp_in} inputs, not (img_size/4)^2 * {dim}")
        if img_size is not None and img_size != 4 * side:
            raise TFConversionError(f"the full model was trained at img_size {4 * side}, not {img_size}: its first "
                                    f"MLP layer fixes the size")
        img_size = 4 * side

    layers, sn_found = {}, set()
    for part in ("global", "local"):
        for domain in "AB":
            scope = f"discriminator_{domain}/{part}"
            dnames = _scope_names(shapes, scope)
            if dnames:
                layers.setdefault(part, _count(dnames, rf"{scope}/conv_(\d+)/") + 2)
                sn_found.add(f"{scope}/conv_0/u" in shapes)
    if len(sn_found) > 1:
        raise TFConversionError("some discriminators use spectral norm and some do not")
    sn = sn_found.pop() if sn_found else True
    if not layers:
        notes.append(f"the checkpoint holds no discriminators (a test-phase checkpoint?); converting the generators "
                     f"only, with the TF default discriminator depth n_dis {DEFAULT_N_DIS}")
    global_layers = layers.get("global", DEFAULT_N_DIS + 1)
    local_layers = layers.get("local", DEFAULT_N_DIS - 1)

    if smoothing is None:
        smoothing = smoothing_from_folder(folder) if folder is not None else None
        if smoothing is None:
            smoothing = True
            notes.append("smoothing is not stored in the checkpoint and the folder name is not an official one "
                         "(..._sn_smoothing); assuming the official default, on (override with --no-smoothing)")
        else:
            notes.append(f"smoothing {'on' if smoothing else 'off'}, from the folder name {folder.name}")
    args = ModelConfig(img_size=img_size, ch=ch, n_res=n_res, light=light, global_layers=global_layers,
                       local_layers=local_layers, variant="tf", tf_smoothing=smoothing, tf_sn=sn)
    try:
        check_model_config(args)
    except ValueError as e:
        raise TFConversionError(str(e)) from e
    return args, notes


# ------------------------------------------------------------------------------------------------ conversion
def convert_network(read: Callable[[str], np.ndarray], shapes: Shapes, args: ModelConfig, net: str) -> StateDict:
    """One network's TF variables (read by name) -> our state dict, every variable of its scope accounted for."""
    scope = SCOPES[net]
    table = variable_table(args, net)
    present = {n for n in _scope_names(shapes, scope) if not OPTIMIZER_STATE.search(n)}
    expected = {f"{scope}/{tf}" for tf, _, _ in table}
    missing, extra = sorted(expected - present), sorted(present - expected)
    if missing or extra:
        raise TFConversionError(f"{scope} does not match the official TF U-GAT-IT architecture inferred as "
                                f"{args}: missing {missing[:5]}, unexpected {extra[:5]}")
    state: StateDict = {}
    for tf, ours, transform in table:
        value = read(f"{scope}/{tf}")
        if ours.endswith(".weight_u"):  # TF u [1, out] -> one power iteration with the kernel
            layer = ours[:-len(".weight_u")]
            kernel = read(f"{scope}/{tf[:-len('/u')]}/kernel")
            state[f"{layer}.weight_u"], state[f"{layer}.weight_v"] = _sn_vectors(kernel, value)
        else:
            state[ours] = transform(value).astype(np.float32, copy=False)
    return state


def skipped_variables(shapes: Shapes) -> tuple[int, list[str]]:
    """(number of optimiser variables, other names outside the six networks' scopes)."""
    scopes = tuple(s + "/" for s in SCOPES.values())
    optimizer = [n for n in shapes if OPTIMIZER_STATE.search(n)]
    other = [n for n in shapes if not OPTIMIZER_STATE.search(n) and not n.startswith(scopes)]
    return len(optimizer), other


def from_tf_checkpoint(path: str | Path, img_size: int | None = None, smoothing: bool | None = None
                       ) -> tuple[ModelConfig, dict[str, StateDict], list[str]]:
    """Read a TF checkpoint (prefix, one of its files, or its folder) -> (model args, {network: state}, notes)."""
    bundle = TensorBundle(path)
    shapes = {name: entry.shape for name, entry in bundle.entries.items()}
    args, notes = infer_args(shapes, bundle.prefix.parent, img_size, smoothing)
    states = {}
    for net in GENERATORS + DISCRIMINATORS:
        if _scope_names(shapes, SCOPES[net]):
            states[net] = convert_network(bundle.read, shapes, args, net)
            try:
                check_state_dict(states[net], expected_shapes(args, net), net)
            except ValueError as e:
                raise TFConversionError(str(e)) from e
    missing = [n for n in GENERATORS + DISCRIMINATORS if n not in states]
    if missing and len(missing) < 4:
        notes.append(f"the checkpoint has no {', '.join(missing)}")
    n_opt, other = skipped_variables(shapes)
    if n_opt:
        notes.append(f"skipped {n_opt} optimiser variables (Adam slots, beta powers)")
    if other:
        notes.append(f"skipped {len(other)} variables outside the networks: {', '.join(other[:5])}")
    if bundle.unverified:
        notes.append(f"{len(bundle.unverified)} large tensors were not checksummed (pip install crc32c to verify them)")
    return args, states, notes


def describe(args: ModelConfig) -> str:
    """The TF flags this architecture corresponds to."""
    return (f"{'light' if args.light else 'full'} model, img_size {args.img_size}, ch {args.ch}, n_res {args.n_res}, "
            f"n_dis {args.global_layers - 1} (global {args.global_layers} / local {args.local_layers} layers), "
            f"sn {'on' if args.tf_sn else 'off'}, smoothing {'on' if args.tf_smoothing else 'off'}")


def convert_file(src: str | Path, dst: str | Path, img_size: int | None = None, smoothing: bool | None = None
                 ) -> tuple[ModelConfig, list[str]]:
    """TF checkpoint -> project `.pdparams` (variant "tf"). Returns the architecture and notes."""
    args, states, notes = from_tf_checkpoint(src, img_size, smoothing)
    checkpoint.save_model(dst, args, states)
    return args, notes
