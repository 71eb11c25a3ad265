"""The six U-GAT-IT networks: two generators and four discriminators."""

from __future__ import annotations

from dataclasses import dataclass

import paddle.nn as nn

from .discriminator import Discriminator, heatmap_size, output_size
from .generator import Generator
from .inference_generator import InferenceGenerator
from .norms import ILN, AdaILN, clip_rho
from .variant import OFFICIAL, VARIANTS, Variant, make_variant

GENERATORS = ("genA2B", "genB2A")
DISCRIMINATORS = ("disGA", "disGB", "disLA", "disLB")
NETWORKS = GENERATORS + DISCRIMINATORS  # the official checkpoint's keys, in its order


@dataclass(frozen=True)
class ModelArgs:
    """Everything that fixes the shapes of the six networks (official defaults)."""

    img_size: int = 256
    ch: int = 64
    n_res: int = 4
    light: bool = False
    global_layers: int = 7
    local_layers: int = 5
    variant: str = "official"  # "official" (PyTorch networks) or "tf" (the official TensorFlow ones, variant.py)
    tf_smoothing: bool = True  # variant "tf": AdaILN reads clip(rho - 0.1, 0, 1) (TF --smoothing, its default)
    tf_sn: bool = True  # variant "tf": spectral norm in the discriminators (TF --sn, its default)

    def network_variant(self) -> Variant:
        return make_variant(self.variant, self.tf_smoothing, self.tf_sn)


def smallest_img_size(global_layers: int, local_layers: int, variant: Variant = OFFICIAL) -> int:
    """The smallest multiple of 4 that both discriminator depths can process."""
    size = 4
    while output_size(size, global_layers, variant) is None or output_size(size, local_layers, variant) is None:
        size += 4
    return size


def check_model_args(
    img_size: int, ch: int, n_res: int, light: bool, global_layers: int = 7, local_layers: int = 5,
    variant: str = "official", tf_smoothing: bool = True, tf_sn: bool = True,
) -> None:
    """Raise ValueError with an actionable message if these arguments cannot build a working model."""
    for name, value, low in (("ch", ch, 1), ("n_res", n_res, 0), ("global_layers", global_layers, 3),
                             ("local_layers", local_layers, 3), ("img_size", img_size, 4)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if variant != "tf" and not (tf_smoothing and tf_sn):
        raise ValueError("tf_smoothing and tf_sn are settings of variant 'tf' (the official networks have no rho "
                         "smoothing and always use spectral norm); leave them at true or set variant to 'tf'")
    smallest = smallest_img_size(global_layers, local_layers, make_variant(variant, tf_smoothing, tf_sn))
    if img_size % 4 != 0 or img_size < smallest:
        raise ValueError(
            f"img_size {img_size} is not usable: it must be a multiple of 4 (the generator down-samples twice) "
            f"and at least {smallest} for discriminators of {global_layers} and {local_layers} layers; "
            f"the smallest valid img_size is {smallest}"
        )


def build_network(args: ModelArgs, name: str) -> nn.Layer:
    """One fresh network (`name` in `NETWORKS`), initialised like the official PyTorch code."""
    variant = args.network_variant()
    if name in GENERATORS:
        return Generator(args.ch, args.n_res, args.img_size, args.light, variant)
    if name in DISCRIMINATORS:
        return Discriminator(args.ch, args.global_layers if name.startswith("disG") else args.local_layers, variant)
    raise ValueError(f"unknown network '{name}'; choose one of {', '.join(NETWORKS)}")


def build_networks(args: ModelArgs, names: tuple[str, ...] = NETWORKS) -> dict[str, nn.Layer]:
    """Fresh networks keyed by name (all six by default), after validating `args`."""
    check_model_args(args.img_size, args.ch, args.n_res, args.light, args.global_layers, args.local_layers,
                     args.variant, args.tf_smoothing, args.tf_sn)
    return {name: build_network(args, name) for name in names}


__all__ = [
    "AdaILN", "ILN", "DISCRIMINATORS", "Discriminator", "GENERATORS", "Generator", "InferenceGenerator", "ModelArgs",
    "NETWORKS", "OFFICIAL", "VARIANTS", "Variant",
    "build_network", "build_networks", "check_model_args", "clip_rho", "heatmap_size", "make_variant", "output_size",
    "smallest_img_size",
]
