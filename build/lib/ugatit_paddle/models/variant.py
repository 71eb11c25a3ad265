"""Architecture variants: the official PyTorch networks (the default) and the official TensorFlow ones.

The paper's released selfie2anime model was trained with the official TensorFlow code (taki0112/UGATIT),
whose networks compute a slightly different function from the PyTorch code's. `Variant` lists every
difference as one named switch; the generator, discriminators and norms read these switches at the one
place each difference applies, so both families are the same building blocks. The official variant
leaves every switch at the PyTorch behaviour.

Not differences (identical for the sizes this project accepts, so not switches): TF's stride-2 3x3
down-sampling pads reflect (top/left 1, bottom/right 0), which for even sides equals the symmetric
padding (the extra row is never read); the full model's MLP flattens NHWC features (h, w, c), which the
converter absorbs by permuting the rows of the first MLP kernel; TF's MLP width ch * n_res, which the TF
graph only builds with n_res = 4, i.e. width 4 * ch as here.

Training the TF variant (e.g. fine-tuning a converted checkpoint) runs this project's recipe on these
networks. Spectral norm: the TF code runs one power iteration in every discriminator forward (it has no
eval mode); here eval-mode forwards use the stored vectors, which the converter sets to those of TF's first
forward after restoring, and each train-mode forward advances the iteration exactly as TF's next forward
would. rho is clipped to [0, 1] after each generator step, as TF's variable constraint does. Not carried
over: TF regularises kernels only (l2_regularizer 1e-4), this recipe's coupled weight decay covers biases,
norms and rho too.
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

VARIANTS = ("official", "tf")


@dataclass(frozen=True)
class Variant:
    """The switches; defaults are the official PyTorch networks."""

    name: str = "official"
    # TF ops.conv / ops.fully_connected default to use_bias=True: every generator convolution, the MLP's four
    # dense layers and the discriminators' final 1-channel convolution have a bias (PyTorch: none of them).
    biases: bool = False
    # TF encoder instance norms are tf.contrib.layers.instance_norm(center=True, scale=True): learnable
    # per-channel gamma/beta (PyTorch: InstanceNorm2d without affine parameters).
    affine_instance_norm: bool = False
    # TF has ONE CAM classifier (kernel [C, 1] + bias [1], scope CAM_logit) used for both the GAP and the
    # GMP logit, and weights the features of both halves by (kernel + bias); in the discriminator that kernel
    # is the spectrally normalised one. PyTorch: separate gap_fc/gmp_fc without bias, features weighted by
    # each one's raw weight (`weight_orig` in the discriminator).
    shared_cam: bool = False
    # ILN/AdaILN variance: PyTorch torch.var is unbiased (N - 1); TF tf.nn.moments is biased (N).
    unbiased_variance: bool = True
    # TF --smoothing (on by default): AdaILN reads rho as clip(rho - 0.1, 0, 1); the stored rho is unchanged.
    rho_smoothing: bool = False
    # TF pads the discriminators' two 4x4 stride-1 convolutions reflect (top/left 1, bottom/right 2), which
    # keeps the side; PyTorch pads 1 on each side, shrinking it by 1 (at 256 px: TF global 8x8, PyTorch 6x6).
    keep_side_stride1: bool = False
    # TF --sn (on by default): spectral norm on every discriminator layer but conv1x1. PyTorch: always on.
    spectral_norm: bool = True
    # Initial AdaILN rho: TF 1.0, PyTorch 0.9 (only matters when training from scratch).
    adailn_rho_init: float = 0.9


OFFICIAL = Variant()


def make_variant(name: str = "official", smoothing: bool = True, sn: bool = True) -> Variant:
    """The `Variant` called `name`; `smoothing` and `sn` are the TF code's flags (variant "tf" only)."""
    if name == "official":
        return OFFICIAL
    if name == "tf":
        return Variant(name="tf", biases=True, affine_instance_norm=True, shared_cam=True, unbiased_variance=False,
                       rho_smoothing=smoothing, keep_side_stride1=True, spectral_norm=sn, adailn_rho_init=1.0)
    raise ValueError(f"unknown model variant '{name}'; choose one of {', '.join(VARIANTS)}")


def stride1_padding(variant: Variant) -> tuple[int, int, int, int]:
    """Reflection padding (left, right, top, bottom) before a discriminator's 4x4 stride-1 convolution."""
    return (1, 2, 1, 2) if variant.keep_side_stride1 else (1, 1, 1, 1)


class ReflectionPadSides(nn.Layer):
    """Reflection padding with its own width per side (NCHW); `padding` = (left, right, top, bottom)."""

    def __init__(self, padding: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.padding = tuple(padding)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [N, C, H, W] -> [N, C, H + top + bottom, W + left + right]."""
        h, w = x.shape[2:]
        left, right, top, bottom = self.padding
        if max(top, bottom) >= h or max(left, right) >= w:
            raise ValueError(f"reflection padding {self.padding} needs larger sides than {h}x{w}")
        return F.pad(x, list(self.padding), mode="reflect", data_format="NCHW")


def affine_instance_norm(ch: int) -> nn.InstanceNorm2D:
    """tf.contrib.layers.instance_norm(epsilon=1e-5, center=True, scale=True): biased variance, then a learned
    per-channel `scale` (gamma, init 1) and `bias` (beta, init 0)."""
    return nn.InstanceNorm2D(ch, epsilon=1e-5)
