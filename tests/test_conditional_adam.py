"""The Adam step applied or not by a flag on the device (training/conditional_adam.py): Paddle's Adam when applied,
no change at all (NaN gradients included) when not, beta powers advanced only when told."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
from paddle.utils import unique_name

from ugatit_paddle.training import optimizer_state
from ugatit_paddle.training.conditional_adam import ConditionalAdam


def _net_and_adam(dtype: str) -> tuple[paddle.nn.Layer, paddle.optimizer.Adam]:
    paddle.seed(0)
    default = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype)
    try:
        with unique_name.guard():
            net = paddle.nn.Sequential(paddle.nn.Linear(7, 5), paddle.nn.Tanh(), paddle.nn.Linear(5, 3))
    finally:
        paddle.set_default_dtype(default)
    adam = paddle.optimizer.Adam(learning_rate=1e-2, beta1=0.5, beta2=0.999, epsilon=1e-8,
                                 parameters=net.parameters())
    return net, adam


def _backward(net: paddle.nn.Layer, seed: int) -> None:
    x = paddle.uniform([4, 7], min=-1, max=1, seed=seed + 1).astype(net[0].weight.dtype)  # (seed 0: random)
    net(x).square().sum().backward()


def _arrays(net: paddle.nn.Layer, adam: paddle.optimizer.Adam) -> dict[str, np.ndarray]:
    state = {k: v.numpy() for k, v in optimizer_state.accumulators(adam).items()}
    return {**{p.name: p.numpy() for p in net.parameters()}, **state}


# float32: Paddle's kernel takes 1 - b2 from b2 rounded to float32 (0.00099998713), this update from the double
# (0.001, as torch.optim.Adam does): v differs by 1.3e-5, a step by 6.5e-6 of itself
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-15), ("float32", 2e-5)])
def test_applied_steps_are_paddles_adam_and_skipped_ones_change_nothing(dtype, rtol):
    reference, reference_adam = _net_and_adam(dtype)
    net, adam = _net_and_adam(dtype)
    conditional = ConditionalAdam(adam, net.parameters())
    for i in range(5):
        _backward(net, seed=i)
        if i == 2:  # a NaN gradient, not applied: nothing moves
            before = _arrays(net, adam)
            net[0].weight.grad.set_value(paddle.full_like(net[0].weight.grad, float("nan")))
            conditional.step_if(paddle.to_tensor(False))
            adam.clear_grad()
            after = _arrays(net, adam)
            assert before.keys() == after.keys() and len(after) == 4 + 4 * 4
            for k in before:
                np.testing.assert_array_equal(after[k], before[k], err_msg=k)
            continue
        conditional.step_if(paddle.to_tensor(True))
        conditional.advance()
        adam.clear_grad()
        _backward(reference, seed=i)
        with unique_name.guard():
            reference_adam.step()
        reference_adam.clear_grad()
        expected, mine = _arrays(reference, reference_adam), _arrays(net, adam)
        assert expected.keys() == mine.keys()
        for k in expected:  # float64: the moments to the bit, the weights to the last bit of lr_t; measured against
            # each array's largest value (a weight that an update brings near 0 keeps the update's absolute error)
            np.testing.assert_allclose(mine[k], expected[k], rtol=0, atol=rtol * np.abs(expected[k]).max(),
                                       err_msg=f"step {i}: {k}")


def test_beta_powers_are_read_again_after_a_resume():
    source, source_adam = _net_and_adam("float64")
    for i in range(3):
        _backward(source, seed=i)
        with unique_name.guard():
            source_adam.step()
        source_adam.clear_grad()
    net, adam = _net_and_adam("float64")
    conditional = ConditionalAdam(adam, net.parameters())
    _backward(net, seed=0)
    conditional.step_if(paddle.to_tensor(True))  # beta powers of step 1 read and kept on the host
    adam.clear_grad()
    state = {k: v.numpy() for k, v in optimizer_state.accumulators(source_adam).items()}
    net.set_state_dict(source.state_dict())
    optimizer_state.load(adam, net.parameters(), state)
    conditional.forget_beta_powers()
    for model, optimizer in ((source, source_adam), (net, None)):
        _backward(model, seed=3)
        if optimizer is None:
            conditional.step_if(paddle.to_tensor(True))
            conditional.advance()
        else:
            with unique_name.guard():
                optimizer.step()
    for p, q in zip(source.parameters(), net.parameters()):  # step 4 at step 4's bias correction
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-15, atol=0)
    powers = [v.numpy() for k, v in optimizer_state.accumulators(adam).items() if "beta1_pow" in k]
    assert len(powers) == 4 and all(v[0] == 0.5**5 for v in powers)
