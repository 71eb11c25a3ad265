"""Mixed precision's overflow policy (training/amp.py): overflowing steps are skipped and counted, training stops
only after a run of them. Runs on the CPU with a fake loss scaler (AMP itself needs a GPU)."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ugatit_paddle.config import ConfigError, config_from_dict
from ugatit_paddle.training.amp import AmpOverflowError, AmpStep, OverflowSkips, scaler_found_inf
from ugatit_paddle.training.ugatit import UGATIT, NonFiniteLossError


class FakeScaler:
    """Stands in for `paddle.amp.GradScaler`: reports an overflow for the steps listed in `overflows` (1-based)."""

    def __init__(self, overflows: set[int]) -> None:
        self.overflows, self.steps, self.scale_calls = overflows, 0, 0
        self._cache_found_inf = None

    def scale(self, loss: paddle.Tensor) -> paddle.Tensor:
        self.scale_calls += 1
        return loss * 8.0

    def unscale_(self, optimizer: paddle.optimizer.Optimizer) -> None:
        for p in optimizer._parameter_list:  # as the real one does
            if p.grad is not None:
                p.grad.set_value(p.grad / 8.0)
        self.unscaled = True

    def step(self, optimizer: paddle.optimizer.Optimizer) -> None:
        if not getattr(self, "unscaled", False):
            self.unscale_(optimizer)
        self.unscaled = False
        self.steps += 1
        self._cache_found_inf = self.steps in self.overflows
        if not self._cache_found_inf:
            optimizer.step()

    def update(self) -> None:
        pass


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


def test_found_inf_is_read_under_either_spelling():
    class Old:  # Paddle 2.6 spells it `_cache_founf_inf`
        _cache_founf_inf = True
    assert scaler_found_inf(Old()) and not scaler_found_inf(FakeScaler(set()))


def _amp_model(tmp_path, tiny_config, limit: int, overflows: dict[str, set[int]]) -> UGATIT:
    """A CPU model whose updates go through AmpStep with fake scalers (the constructor refuses AMP on a CPU)."""
    model = UGATIT(config_from_dict(tiny_config(tmp_path, train={"amp_max_skipped": limit})))
    model.amp_skips = OverflowSkips(limit)
    for name in ("D", "G"):
        amp = AmpStep(name, "float16", model.amp_skips)
        amp.scaler = FakeScaler(overflows[name])
        setattr(model, f"{name}_amp", amp)
    model.set_train_mode(True)
    return model


def _weights(model: UGATIT, net: str) -> np.ndarray:
    return model.nets[net].state_dict()["conv1x1.weight"].numpy().copy()


def test_overflowed_steps_are_skipped_and_counted_not_fatal(tmp_path, tiny_config):
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=3)
    model = _amp_model(tmp_path, tiny_config, limit=3, overflows={"D": {1, 2}, "G": {2}})
    d0, g0 = _weights(model, "disLA"), _weights(model, "genA2B")
    model.step(x, x)  # D overflows (skipped), G goes through
    assert np.array_equal(_weights(model, "disLA"), d0) and not np.array_equal(_weights(model, "genA2B"), g0)
    model.step(x, x)  # both overflow: nothing changes, still training
    model.step(x, x)  # both go through
    assert not np.array_equal(_weights(model, "disLA"), d0)
    assert model.iteration == 3 and model.amp_skips.total == 3 and model.amp_skips.in_a_row == {"D": 0, "G": 0}
    assert model.D_amp.scaler.scale_calls == 3


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
    assert model.D_amp.scaler.steps == 0 and model.G_amp.scaler.steps == 0  # the scaler never stepped
    assert model.amp_skips.in_a_row == {"D": 1, "G": 1}
    assert np.array_equal(_weights(model, "disGA"), d0) and np.array_equal(_weights(model, "genA2B"), g0)
    with pytest.raises(AmpOverflowError, match=r"2 D steps in a row overflowed .*D/A=nan"):
        model.step(x, x)


def test_amp_dtype_is_checked(tmp_path, tiny_config):
    with pytest.raises(ConfigError, match="train.amp_dtype' must be one of float16, bfloat16"):
        config_from_dict(tiny_config(tmp_path, train={"amp_dtype": "float8"}))
    assert AmpStep("G", "bfloat16", OverflowSkips(1)).scaler is None  # bfloat16 needs no loss scaling
