"""The U-GAT-IT objectives, term for term as the official code computes them.

Adversarial terms are least-squares (MSE to 1 for real, 0 for fake) on both the patch logits and the CAM
logits of every discriminator; the generator adds L1 cycle and identity reconstruction and a
BCE-with-logits CAM term that teaches each generator's attention to tell "needs translating" (source
domain) from "already there" (target domain).
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn.functional as F

DiscriminatorOutput = tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]  # (logits, cam_logit, heatmap)


@dataclass(frozen=True)
class LossWeights:
    """Official weights: adversarial 1, cycle 10, identity 10, CAM 1000."""

    adv: float = 1.0
    cycle: float = 10.0
    identity: float = 10.0
    cam: float = 1000.0


def mse_to(x: paddle.Tensor, target: float) -> paddle.Tensor:
    """Mean squared error of `x` against a constant (LSGAN)."""
    return F.mse_loss(x, paddle.full_like(x, target))


def bce_to(logits: paddle.Tensor, target: float) -> paddle.Tensor:
    """Mean binary cross-entropy of `logits` against a constant label."""
    return F.binary_cross_entropy_with_logits(logits, paddle.full_like(logits, target))


def discriminator_terms(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> tuple[paddle.Tensor, paddle.Tensor]:
    """One discriminator's (patch, CAM) LSGAN losses on a real and a fake batch."""
    return mse_to(real[0], 1.0) + mse_to(fake[0], 0.0), mse_to(real[1], 1.0) + mse_to(fake[1], 0.0)


def generator_adversarial_terms(fake: DiscriminatorOutput) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The generator's (patch, CAM) LSGAN losses for fooling one discriminator."""
    return mse_to(fake[0], 1.0), mse_to(fake[1], 1.0)


def cam_term(translated_cam_logit: paddle.Tensor, identity_cam_logit: paddle.Tensor) -> paddle.Tensor:
    """A generator's CAM loss: its input from the other domain is class 1, from its own domain class 0."""
    return bce_to(translated_cam_logit, 1.0) + bce_to(identity_cam_logit, 0.0)


def l1(x: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
    return F.l1_loss(x, y)
