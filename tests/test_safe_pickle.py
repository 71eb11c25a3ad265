"""Tests for ugatit_paddle.safe_pickle (restricted unpickling, safe paddle.save reader)."""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from ugatit_paddle.formats.safe_pickle import (
    CheckpointFormatError,
    RestrictedUnpickler,
    SafeCallable,
    UnsafePickleError,
    load_paddle_file,
    restricted_load,
)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


# --------------------------------------------------------------------------- paddle.save files


def test_layer_state_dict_round_trip(tmp_path: Path, assert_same) -> None:
    paddle = pytest.importorskip("paddle")
    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Conv2D(2, 3, 3), paddle.nn.BatchNorm2D(3),
                               paddle.nn.Linear(4, 5))
    path = tmp_path / "net.pdparams"
    paddle.save(net.state_dict(), str(path))
    loaded = load_paddle_file(path)
    assert_same(loaded, paddle.load(str(path), return_numpy=True))
    assert list(loaded) == list(net.state_dict())
    for name, value in net.state_dict().items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], value.numpy())
    with_table = load_paddle_file(path, keep_name_table=True)
    assert set(with_table["StructuredToParameterName@@"]) == set(net.state_dict())


def test_optimizer_state_dict_round_trip(tmp_path: Path, assert_same) -> None:
    paddle = pytest.importorskip("paddle")
    paddle.seed(0)
    net = paddle.nn.Linear(3, 4)
    scheduler = paddle.optimizer.lr.StepDecay(0.1, step_size=2)
    opt = paddle.optimizer.Adam(learning_rate=scheduler, parameters=net.parameters())
    net(paddle.randn([2, 3])).sum().backward()
    opt.step()
    scheduler.step()
    state = opt.state_dict()
    path = tmp_path / "net.pdopt"
    paddle.save(state, str(path))
    loaded = load_paddle_file(path)
    assert_same(loaded, paddle.load(str(path), return_numpy=True))
    assert loaded["LR_Scheduler"] == state["LR_Scheduler"]
    for name, value in state.items():
        if name != "LR_Scheduler":
            np.testing.assert_array_equal(loaded[name], value.numpy())

    # multi-precision optimizers add a nested {"master_weights": {name: fp32 tensor}}; a nested
    # tensor makes paddle.save fall back to its (name, ndarray) tensor encoding
    state["master_weights"] = {p.name: p.astype("float32") for p in net.parameters()}
    paddle.save(state, str(path))
    loaded = load_paddle_file(path)
    assert_same(loaded, paddle.load(str(path), return_numpy=True))
    for p in net.parameters():
        np.testing.assert_array_equal(loaded["master_weights"][p.name], p.numpy())
    assert loaded["LR_Scheduler"] == state["LR_Scheduler"]


def test_mixed_object_round_trip(tmp_path: Path, assert_same) -> None:
    paddle = pytest.importorskip("paddle")
    rng = np.random.default_rng(0).integers(0, 10, size=5)
    obj = {"a": {"b": paddle.to_tensor([1.0, 2.0])}, "step": 3, "rng": rng, "name": "x",
           "f": 0.5, "lst": [1, 2]}
    path = tmp_path / "mixed.pd"
    paddle.save(obj, str(path))
    loaded = load_paddle_file(path)
    assert_same(loaded, paddle.load(str(path), return_numpy=True))
    assert_same(loaded, {"a": {"b": np.array([1.0, 2.0], np.float32)}, "step": 3, "rng": rng,
                          "name": "x", "f": 0.5, "lst": [1, 2]})


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_other_paddle_encodings(tmp_path: Path, protocol: int, assert_same) -> None:
    paddle = pytest.importorskip("paddle")
    t = paddle.to_tensor([[1, 2], [3, 4]], dtype="int64")
    cases = {
        "tensor": (t, t.numpy()),
        "dense_tensor": (t.value().get_tensor(), t.numpy()),  # builtins.eval('data', ...)
        "np_scalar": (np.float32(2.5), np.float32(2.5)),
        "list": ([t, {"x": t}, np.arange(3)], [t.numpy(), {"x": t.numpy()}, np.arange(3)]),
        "ordered": (collections.OrderedDict(w=t, n=1), collections.OrderedDict(w=t.numpy(), n=1)),
    }
    for name, (obj, expected) in cases.items():
        path = tmp_path / f"{name}.pd"
        paddle.save(obj, str(path), protocol=protocol)
        loaded = load_paddle_file(path)
        assert_same(loaded, expected, path=name)
        assert_same(loaded, paddle.load(str(path), return_numpy=True), path=name)


def test_big_param_slices_are_reassembled(tmp_path: Path) -> None:
    # what paddle.save(protocol=2/3) writes for a >1 GiB tensor, in miniature
    w = np.arange(10, dtype=np.float32)
    saved = {"w@@.0": w[:6], "w@@.1": w[6:], "b": np.ones(2, np.float32),
             "UnpackBigParamInfor@@": {"w": {"OriginShape": (2, 5), "slices": ["w@@.0", "w@@.1"]}},
             "StructuredToParameterName@@": {"w": "linear_0.w_0", "b": "linear_0.b_0"}}
    path = tmp_path / "big.pdparams"
    path.write_bytes(pickle.dumps(saved, protocol=2))
    loaded = load_paddle_file(path)
    assert sorted(loaded) == ["b", "w"]
    np.testing.assert_array_equal(loaded["w"], w.reshape(2, 5))


# --------------------------------------------------------------------------- malicious files


def _payload(module: str, name: str, marker: Path) -> bytes:
    if (module, name) in (("builtins", "eval"), ("builtins", "exec")):
        arg = _str(f"open({str(marker)!r}, 'w').close()")
    else:
        arg = _str(f"touch {marker}")
    return _global(module, name) + arg + b"\x85R"


@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"),
                                         ("builtins", "exec"), ("builtins", "getattr"),
                                         ("subprocess", "call")])
def test_malicious_pickle_is_refused(tmp_path: Path, module: str, name: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    # a normal-looking state dict whose last value is the payload
    path.write_bytes(b"\x80\x02}(" + _str("w") + pickle.dumps(np.ones(2), protocol=2)[2:-1]
                     + _str("evil") + _payload(module, name, marker) + b"u.")
    with pytest.raises(UnsafePickleError) as info:
        load_paddle_file(path)
    message = str(info.value)
    assert f"'{module}.{name}'" in message and str(path) in message
    assert "Nothing from the file was executed" in message
    assert info.value.module == module and info.value.name == name
    assert not marker.exists()


def test_real_exploit_object_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = type("Evil", (), {"__reduce__": lambda self: (os.system, (f"touch {marker}",))})
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"w": np.ones(2), "x": evil()}, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"(posix|os|nt)\.system"):
        load_paddle_file(path)
    assert not marker.exists()


def test_eval_is_only_paddles_dense_tensor_encoding(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pd"
    path.write_bytes(b"\x80\x02" + _payload("builtins", "eval", marker) + b".")
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        load_paddle_file(path)
    # even the 'data' expression with a non-array namespace value is refused
    path.write_bytes(b"\x80\x02" + _global("builtins", "eval") + _str("data") + b"}"
                     + _str("data") + _str("x") + b"s\x86R.")
    with pytest.raises(UnsafePickleError):
        load_paddle_file(path)
    assert not marker.exists()


def test_build_cannot_mutate_allowlisted_objects() -> None:
    def helper(x: object) -> object:
        return x

    allow = {("m", "helper"): helper, ("collections", "OrderedDict"): collections.OrderedDict}
    for target in (b"cm\nhelper\n", b"ccollections\nOrderedDict\n"):
        for state in (b"}" + _str("__defaults__") + b"K\x01s",  # dict state
                      b"N}" + _str("__defaults__") + b"K\x01s\x86"):  # (None, slotstate)
            with pytest.raises((AttributeError, TypeError)):
                restricted_load(io.BytesIO(b"\x80\x02" + target + state + b"b."), allow)
    assert helper.__defaults__ is None and "__defaults__" not in helper.__dict__
    wrapped = RestrictedUnpickler(io.BytesIO(b"\x80\x02cm\nhelper\n."), allow).load()
    assert isinstance(wrapped, SafeCallable) and wrapped(3) == 3
    with pytest.raises(AttributeError):
        wrapped.anything = 1


def test_restricted_load_plain_data_needs_no_globals() -> None:
    data = {"a": [1, 2.5, "x", None, True], "b": (1, (2,)), 3: {"n": -7}, "big": 2**80}
    for protocol in (2, 3, 4, 5):
        assert restricted_load(io.BytesIO(pickle.dumps(data, protocol=protocol)), {}) == data
    data["c"] = b"\x00\x01"  # protocol 3+ has a bytes opcode (2 needs _codecs.encode)
    assert restricted_load(io.BytesIO(pickle.dumps(data, protocol=3)), {}) == data
    with pytest.raises(UnsafePickleError, match="numpy"):
        restricted_load(io.BytesIO(pickle.dumps(np.ones(2))), {}, filename="f.pkl")


# --------------------------------------------------------------------------- bad files


def test_bad_files_raise_format_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdparams"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointFormatError, match=r"empty\.pdparams is not a paddle\.save "
                                                    r"file: expected a pickle stream.*empty"):
        load_paddle_file(empty)

    noise = tmp_path / "noise.pdparams"
    noise.write_bytes(b"\x13\x37" + np.random.default_rng(0).bytes(100))
    with pytest.raises(ValueError, match="noise.pdparams is not a paddle.save file"):
        load_paddle_file(noise)

    zipped = tmp_path / "model.pt"
    zipped.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(CheckpointFormatError, match="zip archive"):
        load_paddle_file(zipped)

    good = pickle.dumps({"w": np.arange(100, dtype=np.float32)}, protocol=4)
    truncated = tmp_path / "truncated.pdparams"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointFormatError, match=r"truncated\.pdparams is truncated or "
                                                    r"corrupt"):
        load_paddle_file(truncated)
