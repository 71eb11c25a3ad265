"""The U-GAT-IT objectives: each term against its formula, the weights of the config, the order of D calls."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ugatit_paddle.config import LossConfig
from ugatit_paddle.training import losses


def _t(values) -> paddle.Tensor:
    return paddle.to_tensor(np.asarray(values, np.float32))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_lsgan_and_bce_terms_follow_their_formulas():
    x = np.array([[0.2, -1.5], [3.0, 0.7]], np.float32)
    assert float(losses.mse_to(_t(x), 1.0)) == pytest.approx(np.mean((x - 1.0) ** 2), rel=1e-6)
    assert float(losses.mse_to(_t(x), 0.0)) == pytest.approx(np.mean(x ** 2), rel=1e-6)
    bce_1 = -np.mean(np.log(_sigmoid(x)))
    bce_0 = -np.mean(np.log(1.0 - _sigmoid(x)))
    assert float(losses.bce_to(_t(x), 1.0)) == pytest.approx(bce_1, rel=1e-5)
    assert float(losses.cam_term(_t(x), _t(x))) == pytest.approx(bce_1 + bce_0, rel=1e-5)
    y = x[::-1].copy()
    assert float(losses.l1(_t(x), _t(y))) == pytest.approx(np.mean(np.abs(x - y)), rel=1e-6)


class _FixedDiscriminator:
    """Returns preset (logits, cam_logit, heatmap) for the batches it knows; records what it saw."""

    def __init__(self, name: str, outputs: dict[str, tuple[float, float]], calls: list[str]) -> None:
        self.name, self.outputs, self.calls = name, outputs, calls

    def __call__(self, x: paddle.Tensor):
        key = "real" if float(x.mean()) > 0 else "fake"
        self.calls.append(f"{self.name}({key})")
        logit, cam = self.outputs[key]
        return _t([[[[logit]]]]), _t([[cam, cam]]), None


def test_discriminator_loss_is_the_weighted_lsgan_sum_real_before_fake():
    calls: list[str] = []
    global_d = _FixedDiscriminator("G", {"real": (0.5, 2.0), "fake": (0.25, -1.0)}, calls)
    local_d = _FixedDiscriminator("L", {"real": (1.5, 1.0), "fake": (-0.5, 0.0)}, calls)
    real, fake = paddle.ones([1, 3, 4, 4]), -paddle.ones([1, 3, 4, 4])
    loss = losses.discriminator_loss(LossConfig(adv_weight=3.0), global_d, local_d, real, fake)
    # per discriminator: (logit_real - 1)^2 + logit_fake^2 + the same for the CAM logits
    expected = ((0.5 - 1) ** 2 + 0.25 ** 2 + (2.0 - 1) ** 2 + 1.0 ** 2) + ((1.5 - 1) ** 2 + 0.5 ** 2 + 0.0 + 0.0)
    assert float(loss) == pytest.approx(3.0 * expected, rel=1e-6)
    assert calls == ["G(real)", "G(fake)", "L(real)", "L(fake)"]  # each spectral norm advances in this order


def test_generator_loss_weights_every_term_by_the_config():
    calls: list[str] = []
    global_d = _FixedDiscriminator("G", {"fake": (0.5, 0.0)}, calls)
    local_d = _FixedDiscriminator("L", {"fake": (2.0, 1.0)}, calls)
    source = paddle.zeros([1, 3, 4, 4])
    translated = -paddle.ones([1, 3, 4, 4])  # what the discriminators judge
    cycled, identity = paddle.full([1, 3, 4, 4], 0.5), paddle.full([1, 3, 4, 4], -0.25)
    cam_in, cam_own = _t([[2.0, -1.0]]), _t([[0.5, 0.5]])
    w = LossConfig(adv_weight=2.0, cycle_weight=3.0, identity_weight=5.0, cam_weight=7.0)
    total, terms = losses.generator_loss(w, global_d, local_d, source, translated, cycled, identity, cam_in, cam_own)
    adv, adv_cam = (0.5 - 1) ** 2 + (2.0 - 1) ** 2, (0.0 - 1) ** 2 + (1.0 - 1) ** 2
    cam = -np.mean(np.log(_sigmoid(np.array([2.0, -1.0])))) - np.mean(np.log(1 - _sigmoid(np.array([0.5, 0.5]))))
    expected = {"adv": adv, "adv_cam": adv_cam, "cycle": 0.5, "identity": 0.25, "cam": cam}
    assert {k: float(v) for k, v in terms.items()} == pytest.approx(expected, rel=1e-5)
    assert float(total) == pytest.approx(2.0 * (adv + adv_cam) + 3.0 * 0.5 + 5.0 * 0.25 + 7.0 * cam, rel=1e-5)
    assert calls == ["G(fake)", "L(fake)"]
