"""The training step: schedule, fakes reuse, non-finite losses, state round trip, loss terms."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ugatit_paddle.config import config_from_dict
from ugatit_paddle.training.ugatit import UGATIT, HalfLinearDecay, NonFiniteLossError, _cycle_and_identity


def _batches() -> tuple[paddle.Tensor, paddle.Tensor]:
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=3)
    y = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=4)
    return x, y


def test_learning_rate_schedule_is_the_official_one():
    schedule = HalfLinearDecay(1e-4, iterations=10)
    lrs = []
    for _ in range(10):
        lrs.append(schedule.last_lr)
        schedule.step()
    official = [1e-4 - (1e-4 / 5) * max(0, step - 5) for step in range(1, 11)]  # UGATIT.train, per step
    np.testing.assert_allclose(lrs, official, atol=1e-12)
    assert HalfLinearDecay(1e-4, 10, decay=False).get_lr() == 1e-4


def test_reusing_fakes_gives_the_official_losses(tmp_path, tiny_config):
    x, y = _batches()
    losses = {}
    for reuse in (True, False):
        model = UGATIT(config_from_dict(tiny_config(tmp_path, train={"reuse_fakes": reuse})))
        model.set_train_mode(True)
        losses[reuse] = [model.step(x, y) for _ in range(2)]
    for a, b in zip(losses[True], losses[False]):
        for key in ("D/total", "G/total"):
            assert abs(a[key] - b[key]) <= 1e-5 * abs(b[key])


def test_step_returns_the_weighted_terms_and_advances(tmp_path, tiny_config):
    cfg = config_from_dict(tiny_config(tmp_path, loss={"cam_weight": 500.0}))
    model = UGATIT(cfg)
    model.set_train_mode(True)
    terms = model.step(*_batches())
    assert model.iteration == 1 and all(np.isfinite(v) for v in terms.values())
    assert terms["D/total"] == pytest.approx(terms["D/A"] + terms["D/B"], rel=1e-5)
    assert terms["G/total"] == pytest.approx(terms["G/A"] + terms["G/B"], rel=1e-5)
    w = cfg.loss
    for d in "AB":  # the loss weights of the config, nowhere else
        expected = (w.adv_weight * (terms[f"G/adv_{d}"] + terms[f"G/adv_cam_{d}"]) + w.cycle_weight * terms[f"G/cycle_{d}"]
                    + w.identity_weight * terms[f"G/identity_{d}"] + w.cam_weight * terms[f"G/cam_{d}"])
        assert terms[f"G/{d}"] == pytest.approx(expected, rel=1e-5)


def test_gradients_are_freed_after_each_optimiser_step(tmp_path, tiny_config, monkeypatch):
    # memory: the D step's gradients must not be alive during the G step's backward, the peak of an iteration
    from ugatit_paddle.training import losses
    model = UGATIT(config_from_dict(tiny_config(tmp_path)))
    model.set_train_mode(True)
    d_grads_in_g_step = []
    generator_loss = losses.generator_loss

    def recording(*args, **kwargs):
        d_grads_in_g_step.append(sum(p.grad is not None for p in model.D_params))
        return generator_loss(*args, **kwargs)

    monkeypatch.setattr(losses, "generator_loss", recording)
    for _ in range(2):
        model.step(*_batches())
    assert d_grads_in_g_step == [0, 0, 0, 0]  # two G losses per iteration
    assert all(p.grad is None for p in model.G_params + model.D_params)


def test_state_round_trip_continues_identically(tmp_path, tiny_config):
    cfg = config_from_dict(tiny_config(tmp_path, train={"iterations": 4}))
    x, y = _batches()
    first = UGATIT(cfg)
    first.set_train_mode(True)
    first.step(x, y)
    state = first.state()
    copy = UGATIT(cfg)
    copy.load_state(state)
    copy.set_train_mode(True)
    assert copy.iteration == 1 and copy.lr_schedule.last_lr == first.lr_schedule.last_lr
    assert first.step(x, y) == copy.step(x, y)


@pytest.mark.parametrize("one_read", [False, True])
def test_non_finite_loss_names_the_iteration_and_term(tmp_path, tiny_config, one_read):
    model = UGATIT(config_from_dict(tiny_config(tmp_path)), one_read=one_read)
    w = model.nets["disLA"].conv1x1.weight
    w.set_value(paddle.full(w.shape, float("nan")))
    before = model.nets["genA2B"].state_dict()["gamma.weight"].numpy().copy()
    with pytest.raises(NonFiniteLossError, match=r"iteration 1: D/A=nan"):
        model.step(*_batches())
    np.testing.assert_array_equal(model.nets["genA2B"].state_dict()["gamma.weight"].numpy(), before)
    assert model.iteration == 0


@pytest.mark.parametrize("one_read", [False, True])
def test_non_finite_input_stops_after_a_safe_backward_with_weights_and_adam_state_unchanged(tmp_path, tiny_config,
                                                                                          one_read):
    # A NaN batch makes every activation NaN, the max pools' too: the backwards run through them, the check
    # after them stops the step before any update, and names the D term (the generators' ReLUs turn NaN into 0).
    # With one read, D's update is skipped on the device and the check comes after the G step's backward.
    model = UGATIT(config_from_dict(tiny_config(tmp_path)), one_read=one_read)
    model.set_train_mode(True)
    x, y = _batches()
    model.step(x, y)  # creates the Adam state
    # the parameters (the spectral norms' u and v advance in every training forward, as in the official code)
    weights = {f"{n}.{k}": v.numpy().copy() for n, net in model.nets.items() for k, v in net.named_parameters()}
    adam = {f"{o}.{k}": np.array(v.numpy()) for o, opt in (("G", model.G_optim), ("D", model.D_optim))
            for k, v in opt.state_dict().items() if isinstance(v, paddle.Tensor)}
    with pytest.raises(NonFiniteLossError, match=r"iteration 2: D/A=nan;"):
        model.step(paddle.full_like(x, float("nan")), y)
    for n, net in model.nets.items():
        for k, v in net.named_parameters():
            np.testing.assert_array_equal(v.numpy(), weights[f"{n}.{k}"], err_msg=f"{n}.{k}")
    for o, opt in (("G", model.G_optim), ("D", model.D_optim)):
        for k, v in opt.state_dict().items():
            if isinstance(v, paddle.Tensor):
                np.testing.assert_array_equal(v.numpy(), adam[f"{o}.{k}"], err_msg=f"{o}.{k}")
    assert len(adam) > 0 and model.iteration == 1


@pytest.mark.parametrize("reuse", [True, False])
@pytest.mark.parametrize("one_read", [False, True])
def test_step_reads_the_device_once_per_iteration_or_once_per_optimiser_step(tmp_path, tiny_config, device_reads,
                                                                              reuse, one_read):
    # one_read (GPUs): D's update applied or not on the device, one read of all terms after the G step's backward;
    # otherwise (CPUs) one read per optimiser step, before its update; none anywhere else.
    model = UGATIT(config_from_dict(tiny_config(tmp_path, train={"reuse_fakes": reuse})), one_read=one_read)
    model.set_train_mode(True)
    x, y = _batches()
    model.step(x, y)  # the first step also creates the optimiser state
    device_reads.clear()
    terms = model.step(x, y)
    assert device_reads == (["numpy"] if one_read else ["numpy", "numpy"])
    assert len(terms) == 16 and all(isinstance(v, float) for v in terms.values())


@pytest.mark.parametrize("one_read", [False, True])
def test_non_finite_generator_loss_stops_before_the_generator_update(tmp_path, tiny_config, monkeypatch, one_read):
    from ugatit_paddle.training import losses

    original = losses.generator_loss

    def nan_cycle(*args):  # the G objective turns NaN after a finite D step
        total, terms = original(*args)
        return total * float("nan"), {**terms, "cycle": terms["cycle"] * float("nan")}

    monkeypatch.setattr(losses, "generator_loss", nan_cycle)
    model = UGATIT(config_from_dict(tiny_config(tmp_path)), one_read=one_read)
    before = model.nets["genA2B"].state_dict()["gamma.weight"].numpy().copy()
    with pytest.raises(NonFiniteLossError, match=r"iteration 1: G/cycle_A=nan, G/cycle_B=nan;"):
        model.step(*_batches())
    np.testing.assert_array_equal(model.nets["genA2B"].state_dict()["gamma.weight"].numpy(), before)


@pytest.mark.parametrize("light", [True, False])
def test_recompute_trains_exactly_like_keeping_the_activations(tmp_path, tiny_config, light):
    # float64, where no rounding flip gets amplified: 3 iterations, the same losses, weights and spectral-norm u/v
    # buffers either way (the discriminators' power iteration runs once per forward, not again in the replay)
    x, y = (paddle.uniform([1, 3, 64, 64], min=-1, max=1, seed=s) for s in (3, 4))
    runs = {}
    for recompute in (False, True):
        model_cfg = {"light": light, "img_size": 64, "global_layers": 5, "local_layers": 3}
        cfg = config_from_dict(tiny_config(tmp_path, model=model_cfg, train={"float64": True, "recompute": recompute}))
        model = UGATIT(cfg)
        model.set_train_mode(True)
        terms = [model.step(x, y) for _ in range(3)]
        weights = {f"{n}.{k}": v.numpy() for n, net in model.nets.items() for k, v in net.state_dict().items()}
        runs[recompute] = terms, weights
    (terms, weights), (terms_rc, weights_rc) = runs[False], runs[True]
    assert model.nets["genA2B"].recompute and model.nets["disLA"].recompute
    assert weights["genA2B.FC.0.weight"].dtype == np.float64
    assert "disGA.model.1.weight_u" in weights and "disLB.conv.weight_v" in weights  # spectral-norm buffers compared
    for a, b in zip(terms, terms_rc):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([b[k] for k in a], [a[k] for k in a], rtol=1e-12, atol=0)
    assert weights.keys() == weights_rc.keys()
    worst = max(float(np.abs(weights[k] - weights_rc[k]).max()) for k in weights)
    assert worst <= 1e-12  # measured: 0 (the same kernels on the same values)


@pytest.mark.parametrize("other_votes", [0, 1])
@pytest.mark.parametrize("one_read", [False, True])
def test_data_parallel_step_makes_two_all_reduces_carrying_the_stop_vote(tmp_path, tiny_config, monkeypatch,
                                                                         other_votes, one_read):
    """Besides the gradients' all-reduce, a data-parallel step makes one collective for the D loss and one for the
    G loss, which also sums the processes' stop votes (no collective of its own). Here the "other process"
    is simulated: the fake all-reduce adds its loss (equal to ours) and its vote (`other_votes`)."""
    from ugatit_paddle.training import ugatit

    reduced: list[list[float]] = []

    def all_reduce(tensor):
        mine = tensor.numpy()
        reduced.append(mine.tolist())
        tensor.set_value((mine + [mine[0], other_votes]).astype(mine.dtype))  # this and the other process

    monkeypatch.setattr(paddle.distributed, "all_reduce", all_reduce)
    monkeypatch.setattr(ugatit, "fused_allreduce_gradients", lambda params, hcg: None)
    model = UGATIT(config_from_dict(tiny_config(tmp_path)), world_size=2, one_read=one_read)
    model.set_train_mode(True)
    asked = []
    terms = model.step(*_batches(), stop_vote=lambda: asked.append(model.iteration) or False)
    assert len(reduced) == 2 and asked == [0]
    assert reduced[0] == [pytest.approx(terms["D/total"], rel=1e-6), 0.0]  # the D loss, no vote
    assert reduced[1] == [pytest.approx(terms["G/total"], rel=1e-6), 0.0]  # the G loss and this process's "no"
    assert model.stop_agreed is bool(other_votes)
    model.step(*_batches(), stop_vote=lambda: True)
    assert reduced[3][1] == 1.0 and model.stop_agreed is True


@pytest.mark.parametrize("light", [True, False])
def test_cycle_and_identity_batch_equals_two_calls(tmp_path, tiny_config, light):
    """The G step's batched pass gives each image the outputs and the weights the gradients of two separate calls
    (float64: equal to rounding)."""
    model_cfg = {"light": light, "img_size": 64, "global_layers": 5, "local_layers": 3}
    model = UGATIT(config_from_dict(tiny_config(tmp_path, model=model_cfg, train={"float64": True})))
    model.set_train_mode(True)
    generator = model.nets["genB2A"]
    fake, real = (paddle.uniform([2, 3, 64, 64], min=-1, max=1, seed=s).astype("float64") for s in (5, 6))

    def run(outputs_of):
        generator.clear_gradients()
        cycle, identity, identity_cam = outputs_of()
        (cycle.square().mean() + identity.abs().mean() + identity_cam.square().sum()).backward()
        return ([t.numpy() for t in (cycle, identity, identity_cam)],
                {p.name: p.grad.numpy() for p in generator.parameters() if p.grad is not None})

    batched = run(lambda: _cycle_and_identity(generator, fake, real))
    separate = run(lambda: (generator(fake)[0], *generator(real)[:2]))
    for a, b in zip(batched[0], separate[0]):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert batched[1].keys() == separate[1].keys() and len(batched[1]) > 10
    for name in batched[1]:
        np.testing.assert_allclose(batched[1][name], separate[1][name], rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("light", [True, False])
def test_one_read_trains_exactly_like_a_read_per_optimiser_step(tmp_path, tiny_config, light):
    """float64, 3 iterations with weight decay: the same losses, weights and Adam state whether D's update is
    applied on the device (one_read) or after a read (Paddle's Adam); the one-read run is resumed from a checkpoint
    after its 2nd iteration, in a new model (the beta powers are read again from the restored state)."""
    x, y = (paddle.uniform([1, 3, 64, 64], min=-1, max=1, seed=s) for s in (3, 4))
    model_cfg = {"light": light, "img_size": 64, "global_layers": 5, "local_layers": 3}
    cfg = config_from_dict(tiny_config(tmp_path, model=model_cfg, train={"float64": True, "weight_decay": 1e-3}))
    runs = {}
    for one_read in (False, True):
        model = UGATIT(cfg, one_read=one_read)
        model.set_train_mode(True)
        terms = [model.step(x, y) for _ in range(2)]
        if one_read:
            state = model.state()
            model = UGATIT(cfg, one_read=True)
            model.load_state(state)
            model.set_train_mode(True)
        terms.append(model.step(x, y))
        runs[one_read] = terms, model.state()
    (terms, state), (terms_1, state_1) = runs[False], runs[True]
    for a, b in zip(terms, terms_1):
        assert a.keys() == b.keys() and len(a) == 16
        np.testing.assert_allclose([b[k] for k in a], [a[k] for k in a], rtol=1e-13, atol=0)
    arrays = {f"{n}.{k}": v for n, net in state["networks"].items() for k, v in net.items()}
    arrays_1 = {f"{n}.{k}": v for n, net in state_1["networks"].items() for k, v in net.items()}
    for o in ("G", "D"):
        arrays.update({f"{o}.{k}": v for k, v in state["optimizers"][o].items() if k != "LR_Scheduler"})
        arrays_1.update({f"{o}.{k}": v for k, v in state_1["optimizers"][o].items() if k != "LR_Scheduler"})
    assert arrays.keys() == arrays_1.keys() and any(k.startswith("D.") and "beta1_pow" in k for k in arrays)
    for k in arrays:  # D's update differs from Paddle's in the last bit (lr_t's rounding): 1e-18 here, 4e-15 in G's
        # moments after 3 iterations, measured against the array's largest value
        np.testing.assert_allclose(arrays_1[k], arrays[k], rtol=0, atol=1e-12 * np.abs(arrays[k]).max(), err_msg=k)
