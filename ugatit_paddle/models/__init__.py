"""The six U-GAT-IT networks: two generators and four discriminators, built from a `ModelConfig`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import paddle.nn as nn

from .discriminator import Discriminator, heatmap_size, output_size
from .generator import Generator
from .norms import ILN, AdaILN, clip_rho
from .variant import OFFICIAL, VARIANTS, Variant, make_variant

if TYPE_CHECKING:  # config.py imports this package to validate architectures; the dependency runs that way
    from ..config import ModelConfig

GENERATORS = ("genA2B", "genB2A")
DISCRIMINATORS = ("disGA", "disGB", "disLA", "disLB")
NETWORKS = GENERATORS + DISCRIMINATORS  # the official checkpoint's keys, in its order

DIRECTIONS: dict[str, tuple[str, str]] = {"A2B": ("genA2B", "genB2A"), "B2A": ("genB2A", "genA2B")}
"""direction -> (generator that translates, generator of the opposite direction)."""


def generator_name(direction: str) -> str:
    """'A2B' -> 'genA2B', 'B2A' -> 'genB2A'; ValueError for anything else."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return DIRECTIONS[direction][0]


def variant_of(m: ModelConfig) -> Variant:
    """The network `Variant` that `m` selects (its `variant` name and the TF flags)."""
    return make_variant(m.variant, m.tf_smoothing, m.tf_sn)


def smallest_img_size(global_layers: int, local_layers: int, variant: Variant = OFFICIAL) -> int:
    """The smallest multiple of 4 that both discriminator depths can process."""
    size = 4
    while output_size(size, global_layers, variant) is None or output_size(size, local_layers, variant) is None:
        size += 4
    return size


# The smallest value of each integer `ModelConfig` field. n_res 0 is allowed, as the official generator allows
# it (`assert(n_blocks >= 0)`): no residual blocks, the AdaILN gamma/beta computed but unused.
MODEL_MINIMUMS = {"ch": 1, "n_res": 0, "global_layers": 3, "local_layers": 3, "img_size": 4}


def check_model_config(m: ModelConfig) -> None:
    """Raise ValueError with an actionable message if `m` cannot build a working model (the one validator of
    `ModelConfig`: config files, overrides, checkpoints and converters all come through here)."""
    for name, low in MODEL_MINIMUMS.items():
        value = getattr(m, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"'model.{name}' must be an integer >= {low}, got {value!r}")
    if m.variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {m.variant!r}")
    if m.variant != "tf" and not (m.tf_smoothing and m.tf_sn):
        raise ValueError("tf_smoothing and tf_sn are settings of variant 'tf' (the official networks have no rho "
                         "smoothing and always use spectral norm); leave them at true or set variant to 'tf'")
    smallest = smallest_img_size(m.global_layers, m.local_layers, variant_of(m))
    if m.img_size % 4 != 0 or m.img_size < smallest:
        raise ValueError(
            f"img_size {m.img_size} is not usable: it must be a multiple of 4 (the generator down-samples twice) "
            f"and at least {smallest} for discriminators of {m.global_layers} and {m.local_layers} layers; "
            f"the smallest valid img_size is {smallest}"
        )


def build_network(m: ModelConfig, name: str) -> nn.Layer:
    """One fresh network (`name` in `NETWORKS`), initialised like the official PyTorch code."""
    variant = variant_of(m)
    if name in GENERATORS:
        return Generator(m.ch, m.n_res, m.img_size, m.light, variant)
    if name in DISCRIMINATORS:
        return Discriminator(m.ch, m.global_layers if name.startswith("disG") else m.local_layers, variant)
    raise ValueError(f"unknown network '{name}'; choose one of {', '.join(NETWORKS)}")


def build_networks(m: ModelConfig, names: tuple[str, ...] = NETWORKS) -> dict[str, nn.Layer]:
    """Fresh networks keyed by name (all six by default), after validating `m`."""
    check_model_config(m)
    return {name: build_network(m, name) for name in names}


__all__ = [
    "AdaILN", "DIRECTIONS", "DISCRIMINATORS", "Discriminator", "GENERATORS", "Generator", "ILN", "NETWORKS",
    "OFFICIAL", "VARIANTS", "Variant", "build_network", "build_networks", "check_model_config", "clip_rho",
    "generator_name", "heatmap_size", "make_variant", "output_size", "smallest_img_size", "variant_of",
]
