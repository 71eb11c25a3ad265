"""The U-GAT-IT objectives, term for term as the official code computes them.

Adversarial terms are least-squares (MSE to 1 for real, 0 for fake) on both the patch logits and the CAM
logits of every discriminator; the generator adds L1 cycle and identity reconstruction and a
BCE-with-logits CAM term that teaches each generator's attention to tell "needs translating" (source
domain) from "already there" (target domain).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ..config import LossConfig

DiscriminatorOutput = tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]  # (logits, cam_logit, heatmap)
Discriminator = paddle.nn.Layer  # x [N, 3, S, S] -> DiscriminatorOutput


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or infinity; the message names the iteration and the loss term."""


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
    """Mean absolute difference."""
    return F.l1_loss(x, y)


# ------------------------------------------------------------------------ the weighted objectives of one domain
def discriminator_loss(w: LossConfig, global_d: Discriminator, local_d: Discriminator, real: paddle.Tensor,
                       fake: paddle.Tensor) -> paddle.Tensor:
    """The objective of the two discriminators of one domain (global and local) on a real batch and a batch
    translated into that domain: `adv_weight` * the sum of their patch and CAM LSGAN losses.

    Each discriminator sees `real`, then `fake` (in train mode a forward advances its spectral norm)."""
    adv_g, cam_g = discriminator_terms(global_d(real), global_d(fake))
    adv_l, cam_l = discriminator_terms(local_d(real), local_d(fake))
    return w.adv_weight * (adv_g + cam_g + adv_l + cam_l)


def generator_loss(w: LossConfig, global_d: Discriminator, local_d: Discriminator, source: paddle.Tensor,
                   translated: paddle.Tensor, cycled: paddle.Tensor, identity: paddle.Tensor,
                   translated_cam: paddle.Tensor, identity_cam: paddle.Tensor
                   ) -> tuple[paddle.Tensor, dict[str, paddle.Tensor]]:
    """The generator objective towards one domain X: `translated` = G_X(other-domain batch) is to fool X's
    discriminators, `cycled` = G_X(G_other(`source`)) and `identity` = G_X(`source`) are to reproduce the
    X-domain `source`, and G_X's CAM is to tell its other-domain input (class 1) from its X input (class 0).

    Returns (total, {"adv", "adv_cam", "cycle", "identity", "cam"}: the unweighted terms)."""
    adv_g, cam_g = generator_adversarial_terms(global_d(translated))
    adv_l, cam_l = generator_adversarial_terms(local_d(translated))
    cycle, ident = l1(cycled, source), l1(identity, source)
    cam = cam_term(translated_cam, identity_cam)
    total = (w.adv_weight * (adv_g + cam_g + adv_l + cam_l) + w.cycle_weight * cycle
             + w.identity_weight * ident + w.cam_weight * cam)
    return total, {"adv": adv_g + adv_l, "adv_cam": cam_g + cam_l, "cycle": cycle, "identity": ident, "cam": cam}
