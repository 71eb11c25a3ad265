"""Mixed precision (training/amp.py): the loss scale, and the overflow policy: overflowing steps are skipped and
counted, training stops only after a run of them; the iteration still reads the device once. AMP itself needs a
GPU: here the loss scale and the skips run on the CPU, in float32."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ugatit_paddle.config import ConfigError, config_from_dict
from ugatit_paddle.training.amp import AmpOverflowError, AmpStep, LossScaler, OverflowSkips
from ugatit_paddle.training.ugatit import UGATIT, NonFiniteLossError


def test_overflow_skips_stop_only_after_a_run_per_optimiser():
    skips = OverflowSkips(limit=3)
    for it in range(1, 10):  # D overflows every step but the third, G every other: never 3 in a row
        skips.record("D", it % 3 != 0, it)
        skips.record("G", it % 2 == 0, it)
    assert skips.total == 6 + 4
    skips.record("G", True, 10)
    skips.record("G", True, 11)
    with pytest.raises(AmpOverflowError, match="3 G steps in a row overflowed .*iteration 12") as error:
        skips.record("G", True, 12)
    assert isinstance(error.value, NonFiniteLossError)  # so train.py reports it and exits 1


def _gradients(scaler: LossScaler | None, x: paddle.Tensor) -> tuple[paddle.nn.Linear, paddle.Tensor | None]:
    paddle.seed(1)
    layer = paddle.nn.Linear(4, 3)
    loss = layer(x).square().sum()
    (loss if scaler is None else scaler.scale(loss)).backward()
    return layer, None if scaler is None else scaler.unscale(layer.parameters())


def test_loss_scale_gives_the_true_gradients_and_flags_overflows_on_the_device():
    x = paddle.uniform([2, 4], min=-1, max=1, seed=5)
    plain, _ = _gradients(None, x)
    scaled, overflow = _gradients(LossScaler(2.0**10), x)
    for p, q in zip(plain.parameters(), scaled.parameters()):
        np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy())  # a power of two: exact
    assert overflow.shape == [] and overflow.dtype == paddle.bool and not bool(overflow)
    _, overflow = _gradients(LossScaler(2.0**126), x * 1e6)  # float32 overflows
    assert bool(overflow)


def test_loss_scale_halves_on_a_skip_and_doubles_after_a_run_of_taken_steps():
    scaler = LossScaler(2.0**7, growth_interval=3)
    x = paddle.ones([1])
    for skipped in (True, True, False, False):
        scaler.update(skipped)
    assert scaler.value == 2.0**5 and scaler.scale(x).item() == 2.0**5  # the device copy follows
    scaler.update(False)
    assert scaler.value == 2.0**6 and scaler.taken_in_a_row == 0 and scaler.scale(x).item() == 2.0**6
    scaler.update(False)
    copy = LossScaler()
    copy.load_state_dict(scaler.state_dict())
    assert (copy.value, copy.taken_in_a_row) == (2.0**6, 1)
    # a checkpoint written with paddle.amp.GradScaler's state
    copy.load_state_dict({"scale": np.array([1024.0], np.float32), "incr_count": 5, "decr_count": 0,
                          "incr_ratio": 2.0, "decr_ratio": 0.5, "use_dynamic_loss_scaling": True})
    assert (copy.value, copy.taken_in_a_row) == (1024.0, 5)


class ScheduledOverflows(LossScaler):
    """A loss scale whose unscaling also reports an overflow at the calls listed in `overflows` (1-based)."""

    def __init__(self, overflows: set[int]) -> None:
        super().__init__()
        self.overflows, self.calls = overflows, 0

    def unscale(self, params):
        self.calls += 1
        return paddle.logical_or(super().unscale(params), paddle.full([], self.calls in self.overflows, "bool"))


def _amp_model(tmp_path, tiny_config, limit: int, overflows: dict[str, set[int]]) -> UGATIT:
    """A CPU model whose updates go through AmpStep (the constructor refuses AMP on a CPU) and, as on a GPU, read
    the device once per iteration."""
    model = UGATIT(config_from_dict(tiny_config(tmp_path, train={"amp_max_skipped": limit})), one_read=True)
    model.amp_skips = OverflowSkips(limit)
    for name in ("D", "G"):
        amp = AmpStep(name, "float16", model.amp_skips)
        amp.scaler = ScheduledOverflows(overflows[name])
        setattr(model, f"{name}_amp", amp)
    model.set_train_mode(True)
    return model


def _weights(model: UGATIT, net: str) -> np.ndarray:
    return model.nets[net].state_dict()["conv1x1.weight"].numpy().copy()


def test_overflowed_steps_are_skipped_on_the_device_and_counted_not_fatal(tmp_path, tiny_config, device_reads):
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=3)
    model = _amp_model(tmp_path, tiny_config, limit=3, overflows={"D": {1, 2}, "G": {2}})
    d0, g0 = _weights(model, "disLA"), _weights(model, "genA2B")
    model.step(x, x)  # D overflows (skipped on the device), G goes through
    assert np.array_equal(_weights(model, "disLA"), d0) and not np.array_equal(_weights(model, "genA2B"), g0)
    device_reads.clear()
    model.step(x, x)  # both overflow: nothing changes, still training
    assert device_reads == ["numpy"]
    model.step(x, x)  # both go through
    assert not np.array_equal(_weights(model, "disLA"), d0)
    assert model.iteration == 3 and model.amp_skips.total == 3 and model.amp_skips.in_a_row == {"D": 0, "G": 0}
    assert model.D_amp.scaler.value == 2.0**5 and model.G_amp.scaler.value == 2.0**6  # halved per skip
    # D's Adam state advanced once (the 3rd iteration), G's twice
    d_powers = {k: v.numpy() for k, v in model.D_optim.state_dict().items() if "beta1_pow" in k}
    g_powers = {k: v.numpy() for k, v in model.G_optim.state_dict().items() if "beta1_pow" in k}
    assert d_powers and all(np.allclose(v, 0.5**2) for v in d_powers.values())
    assert g_powers and all(np.allclose(v, 0.5**3) for v in g_powers.values())


def test_a_real_gradient_overflow_skips_the_step(tmp_path, tiny_config):
    model = _amp_model(tmp_path, tiny_config, limit=3, overflows={"D": set(), "G": set()})
    model.G_amp.scaler = LossScaler(2.0**127)  # the scaled G loss's gradients (CAM term: x1000) overflow float32
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=3)
    g0 = _weights(model, "genA2B")
    model.step(x, x)
    assert model.amp_skips.in_a_row == {"D": 0, "G": 1} and model.G_amp.scaler.value == 2.0**126
    assert np.array_equal(_weights(model, "genA2B"), g0)


def test_a_run_of_overflows_stops_training(tmp_path, tiny_config):
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=3)
    model = _amp_model(tmp_path, tiny_config, limit=2, overflows={"D": {2, 3}, "G": set()})
    model.step(x, x)
    model.step(x, x)
    with pytest.raises(AmpOverflowError, match="2 D steps in a row"):
        model.step(x, x)


def test_non_finite_loss_under_amp_skips_the_update(tmp_path, tiny_config):
    model = _amp_model(tmp_path, tiny_config, limit=2, overflows={"D": set(), "G": set()})
    w = model.nets["disLA"].conv1x1.weight
    w.set_value(paddle.full(w.shape, float("nan")))
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=3)
    d0, g0 = _weights(model, "disGA"), _weights(model, "genA2B")
    model.step(x, x)  # D and G losses are NaN (the discriminator's output): skipped, not raised
    assert model.amp_skips.in_a_row == {"D": 1, "G": 1}
    assert np.array_equal(_weights(model, "disGA"), d0) and np.array_equal(_weights(model, "genA2B"), g0)
    with pytest.raises(AmpOverflowError, match=r"2 D steps in a row overflowed .*D/A=nan"):
        model.step(x, x)


def test_amp_dtype_is_checked(tmp_path, tiny_config):
    with pytest.raises(ConfigError, match="train.amp_dtype' must be one of float16, bfloat16"):
        config_from_dict(tiny_config(tmp_path, train={"amp_dtype": "float8"}))
    assert AmpStep("G", "bfloat16", OverflowSkips(1)).scaler is None  # bfloat16 needs no loss scaling
