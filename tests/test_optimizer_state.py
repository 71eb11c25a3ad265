"""Adam's accumulators before the first step (`training/optimizer_state.py`): created as that step would create
them, a checkpoint's state copied into them, bad states refused."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
from numpy.testing import assert_array_equal

from ugatit_paddle.config import config_from_dict
from ugatit_paddle.formats import checkpoint
from ugatit_paddle.training import optimizer_state
from ugatit_paddle.training.ugatit import UGATIT


def _batches() -> tuple[paddle.Tensor, paddle.Tensor]:
    rng = np.random.default_rng(0)
    return tuple(paddle.to_tensor(rng.uniform(-1, 1, (1, 3, 128, 128)).astype("float32")) for _ in range(2))


def _initial(name: str, tensor: paddle.Tensor, cfg) -> np.ndarray:
    """What Adam's accumulator `name` holds before the first step: zero moments, beta powers = betas."""
    value = cfg.train.beta1 if "beta1_pow" in name else cfg.train.beta2 if "beta2_pow" in name else 0.0
    return np.full(tensor.shape, value, dtype=tensor.numpy().dtype)


def _described(tensors: dict[str, paddle.Tensor]) -> dict[str, tuple]:
    return {name: (tuple(t.shape), str(t.dtype), str(t.place)) for name, t in tensors.items()}


@pytest.mark.parametrize("float64", [False, True])  # multi-tensor Adam (float32) and one update per parameter
def test_materialise_creates_what_the_first_step_creates(tmp_path, tiny_config, float64):
    cfg = config_from_dict(tiny_config(tmp_path, train={"float64": float64}))
    stepped = UGATIT(cfg)
    stepped.set_train_mode(True)
    stepped.step(*_batches())
    early = UGATIT(cfg)  # another model first: the names must not depend on what was built before
    assert optimizer_state.accumulators(early.G_optim) == {}
    optimizer_state.materialise(early.G_optim, early.G_params)
    optimizer_state.materialise(early.D_optim, early.D_params)
    for before, after, beta1 in ((early.G_optim, stepped.G_optim, cfg.train.beta1),
                                 (early.D_optim, stepped.D_optim, cfg.train.beta1)):
        created = optimizer_state.accumulators(before)
        assert _described(created) == _described(optimizer_state.accumulators(after)) and len(created) > 0
        for name, tensor in created.items():  # initial values: zero moments, beta powers = betas
            assert_array_equal(tensor.numpy(), _initial(name, tensor, cfg))
    # and the first step of the materialised model is the first step of a fresh one
    early.set_train_mode(True)
    early.step(*_batches())
    assert_array_equal(early.nets["genA2B"].state_dict()["gamma.weight"].numpy(),
                                  stepped.nets["genA2B"].state_dict()["gamma.weight"].numpy())


def test_load_copies_the_state_into_the_accumulators_and_keeps_no_reference(tmp_path, tiny_config):
    cfg = config_from_dict(tiny_config(tmp_path))
    first = UGATIT(cfg)
    first.set_train_mode(True)
    first.step(*_batches())
    state = checkpoint.to_numpy(first.G_optim.state_dict())
    copy = UGATIT(cfg)
    optimizer_state.load(copy.G_optim, copy.G_params, state)
    loaded = optimizer_state.accumulators(copy.G_optim)
    assert loaded.keys() == {k for k in state if k != optimizer_state.LR_SCHEDULER_KEY}
    for name, tensor in loaded.items():
        assert isinstance(tensor, paddle.Tensor)
        expected = state[name].copy()
        state[name][...] = -1  # a copy, not a view of the checkpoint's arrays
        assert_array_equal(tensor.numpy(), expected)


def test_load_refuses_a_state_of_another_model(tmp_path, tiny_config):
    first = UGATIT(config_from_dict(tiny_config(tmp_path)))
    first.set_train_mode(True)
    first.step(*_batches())
    state = checkpoint.to_numpy(first.G_optim.state_dict())
    name = next(k for k in state if "moment1" in k)
    other = UGATIT(config_from_dict(tiny_config(tmp_path)))
    with pytest.raises(checkpoint.CheckpointError, match=r"ckpt\.pdparams: .*optimizers/G.*missing: \['"):
        optimizer_state.load(other.G_optim, other.G_params, {k: v for k, v in state.items() if k != name},
                             "ckpt.pdparams", "optimizers/G")
    state[name] = np.zeros([2, 2], dtype="float32")
    with pytest.raises(checkpoint.CheckpointError, match=r"has shape \[2, 2\]"):
        optimizer_state.load(other.G_optim, other.G_params, state, "ckpt.pdparams", "optimizers/G")


def test_a_state_saved_before_the_first_step_leaves_the_initial_values(tmp_path, tiny_config):
    cfg = config_from_dict(tiny_config(tmp_path))
    fresh = UGATIT(cfg)
    state = checkpoint.to_numpy(fresh.G_optim.state_dict())  # the schedule only
    optimizer_state.load(fresh.G_optim, fresh.G_params, state)
    created = optimizer_state.accumulators(fresh.G_optim)
    assert len(created) == 4 * len([p for p in fresh.G_params if not p.stop_gradient])
    for name, tensor in created.items():
        assert_array_equal(tensor.numpy(), _initial(name, tensor, cfg))
