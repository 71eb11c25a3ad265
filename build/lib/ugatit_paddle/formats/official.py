"""Official PyTorch U-GAT-IT weights <-> this project's networks.

The Paddle networks use the official state-dict key names, so the whole conversion is the table of
`official_keys`: Linear weights are transposed, everything else (convolutions, biases, rho/gamma/beta,
spectral-norm `weight_u`/`weight_v`) is copied unchanged. Arrays are numpy throughout: no torch, no paddle
tensors, so conversion needs neither PyTorch nor memory for a live model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import paddle

from ..config import ModelConfig
from ..models import DISCRIMINATORS, GENERATORS, NETWORKS, build_network, check_model_config
from . import checkpoint
from .official_keys import (
    DISCRIMINATOR_CONV, GENERATOR_FIRST_CONV, GENERATOR_MLP_IN, GENERATOR_UP_RESBLOCK, LINEAR_WEIGHTS,
)
from .torch_pickle import load_torch
from .torch_writer import save_torch

StateDict = dict[str, np.ndarray]

DEFAULT_LIGHT_IMG_SIZE = ModelConfig.img_size  # assumed for light models: their weights do not depend on img_size


class ConversionError(ValueError):
    """An official checkpoint that does not fit the U-GAT-IT architecture."""


def _kind(net: str) -> str:
    return "generator" if net in GENERATORS else "discriminator"


def _convert(state: Mapping[str, np.ndarray], net: str) -> StateDict:
    linear = LINEAR_WEIGHTS[_kind(net)]
    return {k: np.ascontiguousarray(v.T) if k in linear else np.asarray(v) for k, v in state.items()}


def torch_to_paddle(state: Mapping[str, np.ndarray], net: str) -> StateDict:
    """One network's official state dict -> the Paddle layout of the same keys."""
    return _convert(state, net)


def paddle_to_torch(state: Mapping[str, np.ndarray], net: str) -> StateDict:
    """One network's Paddle state dict -> the official PyTorch layout (the transform is its own inverse)."""
    return _convert(state, net)


def _need(state: Mapping[str, np.ndarray], key: str, net: str) -> np.ndarray:
    if key not in state:
        raise ConversionError(f"{net} has no key '{key}': this is not a U-GAT-IT {_kind(net)} state dict")
    return np.asarray(state[key])


def infer_generator_args(state: Mapping[str, np.ndarray], img_size: int | None = None) -> tuple[ModelConfig, list[str]]:
    """(ch, n_res, light, img_size) of an official generator state dict, plus notes on what was assumed."""
    notes: list[str] = []
    ch = int(_need(state, GENERATOR_FIRST_CONV, "generator").shape[0])
    n_res = len({m.group(1) for k in state if (m := GENERATOR_UP_RESBLOCK.match(k))})
    fc_in = int(_need(state, GENERATOR_MLP_IN, "generator").shape[1])  # torch layout [out, in]
    light = fc_in == 4 * ch
    if light:
        if img_size is None:
            img_size = DEFAULT_LIGHT_IMG_SIZE
            notes.append(f"img_size is not stored in a light model; assuming {img_size} (set it with --img-size)")
    else:
        side = math.isqrt(fc_in // (4 * ch))
        if side * side * 4 * ch != fc_in:
            raise ConversionError(
                f"{GENERATOR_MLP_IN} has {fc_in} inputs, which is not (img_size/4)^2 * 4*ch for ch={ch}"
            )
        inferred = side * 4
        if img_size is not None and img_size != inferred:
            raise ConversionError(f"the full model was trained at img_size {inferred}, not {img_size}")
        img_size = inferred
    return ModelConfig(img_size=img_size, ch=ch, n_res=n_res, light=light), notes


def _discriminator_layers(state: Mapping[str, np.ndarray]) -> int:
    convs = {k for k in state if DISCRIMINATOR_CONV.match(k)}
    return len(convs) + 1


def infer_model_args(states: Mapping[str, Mapping[str, np.ndarray]], img_size: int | None = None) -> tuple[ModelConfig, list[str]]:
    """The architecture of an official checkpoint (any subset of the six networks), from tensor shapes."""
    gen = next((states[n] for n in GENERATORS if n in states), None)
    if gen is None:
        raise ConversionError("the checkpoint holds no generator (genA2B or genB2A); cannot infer the architecture")
    args, notes = infer_generator_args(gen, img_size)
    layers = {n: _discriminator_layers(states[n]) for n in DISCRIMINATORS if n in states}
    global_layers = layers.get("disGA", layers.get("disGB", ModelConfig.global_layers))
    local_layers = layers.get("disLA", layers.get("disLB", ModelConfig.local_layers))
    args = ModelConfig(args.img_size, args.ch, args.n_res, args.light, global_layers, local_layers)
    try:
        check_model_config(args)
    except ValueError as e:
        raise ConversionError(str(e)) from e
    return args, notes


def expected_shapes(args: ModelConfig, net: str) -> dict[str, tuple[int, ...]]:
    """Paddle state-dict shapes of one network for `args`, computed without allocating its weights."""
    with paddle.LazyGuard():
        layer = build_network(args, net)
    return {k: tuple(v.shape) for k, v in layer.state_dict().items()}


def check_state_dict(state: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]], net: str) -> None:
    """Raise ConversionError listing the first missing, unexpected or mis-shaped keys."""
    problems = checkpoint.mismatches(state, expected)
    if problems:
        raise ConversionError(f"{net} does not match the U-GAT-IT architecture: {problems}")


def from_official(
    checkpoint: Mapping[str, object], img_size: int | None = None, net: str | None = None
) -> tuple[ModelConfig, dict[str, StateDict], list[str]]:
    """Convert an official checkpoint (the dict of six state dicts that `UGATIT.save()` writes, or one
    network's state dict when `net` names it) to Paddle state dicts.

    Returns `(model args, {network: paddle state dict}, notes)`; raises ConversionError on anything that is
    not U-GAT-IT, naming the key and both shapes.
    """
    if net is not None:
        if net not in NETWORKS:
            raise ConversionError(f"unknown network '{net}'; choose one of {', '.join(NETWORKS)}")
        states = {net: checkpoint}
    else:
        unknown = [k for k in checkpoint if k not in NETWORKS]
        states = {k: v for k, v in checkpoint.items() if k in NETWORKS}
        if not states:
            raise ConversionError(
                f"expected a dict with the networks {', '.join(NETWORKS)} (as the official UGATIT.save() writes), "
                f"found keys {sorted(map(str, checkpoint))[:8]}; for a single network's state dict pass --net NAME"
            )
        if unknown:
            raise ConversionError(f"unexpected entries {unknown} beside the networks {', '.join(NETWORKS)}")
    for name, state in states.items():
        if not isinstance(state, Mapping):
            raise ConversionError(f"{name} is a {type(state).__name__}, expected a state dict")
    args, notes = infer_model_args(states, img_size)
    missing = [n for n in NETWORKS if n not in states]
    if missing and net is None:
        notes.append(f"the checkpoint has no {', '.join(missing)}")
    converted = {}
    for name, state in states.items():
        converted[name] = torch_to_paddle(state, name)
        check_state_dict(converted[name], expected_shapes(args, name), name)
    return args, converted, notes


def to_official(states: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, StateDict]:
    """Paddle state dicts of any of the six networks -> the official checkpoint layout."""
    return {name: paddle_to_torch(state, name) for name, state in states.items()}


FLOAT_DTYPES = ("float16", "float32", "float64")  # what --dtype may store (bfloat16 is read as float32)


def cast_states(states: Mapping[str, Mapping[str, np.ndarray]], dtype: str) -> dict[str, StateDict]:
    """Every floating array of `states` cast to `dtype` (one of FLOAT_DTYPES); other arrays unchanged."""
    if dtype not in FLOAT_DTYPES:
        raise ConversionError(f"dtype must be one of {', '.join(FLOAT_DTYPES)}, got {dtype!r}")
    return {name: {k: v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v for k, v in state.items()}
            for name, state in states.items()}


def stored_dtypes(states: Mapping[str, Mapping[str, np.ndarray]]) -> list[str]:
    """The distinct dtypes of the floating arrays of `states`, sorted."""
    return sorted({str(v.dtype) for state in states.values() for v in state.values()
                   if np.issubdtype(np.asarray(v).dtype, np.floating)})


def convert_file(src: str, dst: str, net: str | None = None, img_size: int | None = None,
                 dtype: str | None = None) -> tuple[ModelConfig, list[str]]:
    """Official `.pt` -> project `.pdparams` (no torch needed). Returns the inferred architecture and notes.

    The weights keep the dtype they are stored in (bfloat16 becomes float32: numpy has no bfloat16) unless
    `dtype` is given; loading casts them to the model's dtype in any case (`checkpoint.load_networks`)."""
    args, states, notes = from_official(load_torch(src), img_size=img_size, net=net)
    if dtype is not None:
        states = cast_states(states, dtype)
    kept = stored_dtypes(states)
    if kept != ["float32"]:
        notes.append(f"weights stored as {', '.join(kept)}: loading casts them to the model's dtype "
                     f"(--dtype float32 stores float32)")
    checkpoint.save_model(dst, args, states)
    return args, notes


def export_official_file(src: str, dst: str) -> ModelConfig:
    """Project checkpoint -> official `.pt` (a dict of state dicts that the official `UGATIT.load()` reads)."""
    payload = checkpoint.load(src)
    save_torch(to_official(payload["networks"]), dst)
    return checkpoint.model_config_of(payload)
