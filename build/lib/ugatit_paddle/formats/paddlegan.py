"""PaddleGAN U-GAT-IT weights (`ugatit_light.pdparams`, `epoch_N_weight.pdparams`, `epoch_N_checkpoint.pdparams`)
-> this project's state dicts (official variant).

PaddleGAN's networks are the official PyTorch ones written in Paddle: the official key names and
arithmetic, Linear weights in Paddle's [in, out] layout (which is also this project's, so they are copied;
only the official `.pt` layout is transposed). The one difference: PaddleGAN's encoder InstanceNorms carry
`scale`/`bias` parameters (`DownBlock.2.scale`, `DownBlock.12.conv_block.6.bias`, ...) that it creates
frozen at 1 and 0, so real files hold exactly 1 and 0 there. They are checked and dropped; a file where
they differ computes something the official architecture cannot, and is refused (unless `force`, which
drops them anyway and says what changes).

The file is a pickle of `{"genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB": {key: ndarray}}`, plus
`"StructuredToParameterName@@"` (files since 2023) or `"epoch"`, `"optimG"`, `"optimD"` (checkpoints; the
optimiser state is not carried over). It is read with the restricted unpickler of `safe_pickle`, which
admits numpy arrays and plain containers only, whatever the pickle protocol (2 or 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..config import ModelConfig
from ..models import GENERATORS, NETWORKS
from . import checkpoint
from .official import ConversionError, from_official, to_official
from .safe_pickle import CheckpointFormatError, load_paddle_file

StateDict = dict[str, np.ndarray]
CHECKPOINT_EXTRAS = ("epoch", "optimG", "optimD")  # in epoch_N_checkpoint.pdparams; not network weights


class PaddleGANError(ValueError):
    """A PaddleGAN file that is not U-GAT-IT weights, or whose frozen InstanceNorm affine values are not 1/0."""


def instance_norm_keys(state: Mapping[str, np.ndarray]) -> list[str]:
    """The frozen InstanceNorm keys of a PaddleGAN generator: every `<layer>.scale` and its sibling `<layer>.bias`
    (`DownBlock.2.bias` looks like a conv bias; the `.scale` beside it tells it apart)."""
    layers = [k[:-len(".scale")] for k in state if k.endswith(".scale")]
    return [f"{layer}.{p}" for layer in layers for p in ("scale", "bias") if f"{layer}.{p}" in state]


def affine_deviations(state: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """{key: (min, max)} of the InstanceNorm scale/bias entries that are not exactly 1 (scale) / 0 (bias)."""
    bad = {}
    for key in instance_norm_keys(state):
        value = np.asarray(state[key])
        identity = 1.0 if key.endswith(".scale") else 0.0
        if value.size and not np.all(value == identity):
            bad[key] = (float(value.min()), float(value.max()))
    return bad


def split_networks(payload: object, path: str) -> tuple[dict[str, StateDict], list[str]]:
    """The six network dicts of a PaddleGAN weight or checkpoint file, and notes on what else it held."""
    if not isinstance(payload, Mapping):
        raise PaddleGANError(f"{path} holds a {type(payload).__name__}, not PaddleGAN's dict of networks")
    nets = {k: v for k, v in payload.items() if k in NETWORKS}
    if not nets:
        raise PaddleGANError(f"{path} holds none of the networks {', '.join(NETWORKS)} (keys: "
                             f"{sorted(map(str, payload))[:8]}); is it a U-GAT-IT file from PaddleGAN?")
    unexpected = [k for k in payload if k not in NETWORKS and k not in CHECKPOINT_EXTRAS]
    if unexpected:
        raise PaddleGANError(f"{path} has unexpected entries {unexpected[:8]} beside the networks")
    notes = []
    if any(k in payload for k in ("optimG", "optimD")):
        notes.append(f"{path} is a training checkpoint (epoch {payload.get('epoch')}); its optimiser state is not "
                     f"carried over (fine-tuning starts a new optimiser)")
    for name, state in nets.items():
        if not isinstance(state, Mapping) or not all(isinstance(v, np.ndarray) for v in state.values()):
            raise PaddleGANError(f"{path}: {name} is not a dict of arrays")
    return {k: dict(v) for k, v in nets.items()}, notes


def from_paddlegan(payload: object, path: str = "file", img_size: int | None = None, force: bool = False
                   ) -> tuple[ModelConfig, dict[str, StateDict], list[str]]:
    """PaddleGAN's dict of networks -> (model args, {network: our state dict}, notes)."""
    nets, notes = split_networks(payload, path)
    for name in GENERATORS:
        if name not in nets:
            continue
        deviations = affine_deviations(nets[name])
        if deviations and not force:
            shown = "; ".join(f"{k} in [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in list(deviations.items())[:6])
            raise PaddleGANError(
                f"{path}: {name}'s InstanceNorm scale/bias are not PaddleGAN's frozen 1/0 ({len(deviations)} entries: "
                f"{shown}); the official architecture has no such parameters, so these weights would compute "
                f"something else. --force drops them anyway (the generator then computes as if they were 1/0)")
        if deviations:
            notes.append(f"{name}: dropped {len(deviations)} InstanceNorm scale/bias entries that were not 1/0 "
                         f"(--force): its outputs differ from PaddleGAN's for these weights")
        for key in instance_norm_keys(nets[name]):
            del nets[name][key]
    try:  # official layout first, so that the one converter infers, checks and transposes back
        args, states, more = from_official(to_official(nets), img_size=img_size)
    except ConversionError as e:
        raise PaddleGANError(f"{path}: {e}") from e
    return args, states, notes + more


def load_file(path: str | Path) -> object:
    """Read a PaddleGAN `.pdparams` with the restricted unpickler (no code from the file runs)."""
    try:
        return load_paddle_file(path)
    except CheckpointFormatError as e:
        raise PaddleGANError(str(e)) from e


def convert_file(src: str | Path, dst: str | Path, img_size: int | None = None, force: bool = False
                 ) -> tuple[ModelConfig, list[str]]:
    """PaddleGAN `.pdparams` -> project `.pdparams`. Returns the architecture and notes."""
    args, states, notes = from_paddlegan(load_file(src), str(src), img_size, force)
    checkpoint.save_model(dst, args, states)
    return args, notes
