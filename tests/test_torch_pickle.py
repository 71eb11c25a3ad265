"""Tests for ugatit_paddle.formats.torch_pickle, torch_writer and torchscript (torch checkpoints without torch).

Tests that need real PyTorch call ``pytest.importorskip("torch")`` themselves, so the rest
(hand-built files, malicious files, round trips) also runs where torch is not installed.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ugatit_paddle.formats.safe_pickle import UnsafePickleError
from ugatit_paddle.formats.torch_pickle import TorchFormatError, load_torch
from ugatit_paddle.formats.torch_writer import save_torch
from ugatit_paddle.formats.torchscript import load_torchscript_params

MAGIC = 0x1950A86A20F9469CFC6C


# --------------------------------------------------------------------------- raw builders


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _int_tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def _tensor(storage_module: str, storage_cls: str, key: str, numel: int, offset: int,
            size: tuple[int, ...], stride: tuple[int, ...], *, location: str = "cpu",
            legacy: bool = False, view: tuple[str, int, int] | None = None) -> bytes:
    """Pickle opcodes for torch._utils._rebuild_tensor_v2 as torch.save writes them."""
    pid = b"(" + _str("storage") + _global(storage_module, storage_cls) + _str(key)
    pid += _str(location) + _int(numel)
    if legacy:
        pid += b"N" if view is None else b"(" + _str(view[0]) + _int(view[1]) + _int(view[2]) + b"t"
    pid += b"tQ"
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + _int(offset)
            + _int_tuple(size) + _int_tuple(stride) + b"\x89"
            + _global("collections", "OrderedDict") + b")R" + b"tR")


def _ordered_dict(items: list[tuple[str, bytes]], metadata: bool = True) -> bytes:
    body = _global("collections", "OrderedDict") + b")R("
    body += b"".join(_str(k) + v for k, v in items) + b"u"
    if metadata:  # torch state dicts carry OrderedDict._metadata, pickled via BUILD
        body += b"}" + _str("_metadata") + _global("collections", "OrderedDict") + b")R"
        body += b"(" + _str("") + b"}" + _str("version") + _int(1) + b"su" + b"sb"
    return body


def _legacy_file(main_pickle: bytes, storages: list[tuple[str, bytes, int]],
                 little_endian: bool = True) -> bytes:
    """A legacy (non-zip) torch.save stream; storages: (key, raw bytes, element count)."""
    sys_info = {"protocol_version": 1001, "little_endian": little_endian,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    out = pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
    out += pickle.dumps(sys_info, protocol=2) + main_pickle
    out += pickle.dumps(sorted(k for k, _, _ in storages), protocol=2)
    for _key, raw, count in sorted(storages):
        out += count.to_bytes(8, "little" if little_endian else "big", signed=True) + raw
    return out


def _zip_file(path: Path, records: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in records.items():
            zf.writestr(name, data)
    return path


def _payload(module: str, name: str, marker: Path) -> bytes:
    """A protocol-2 pickle that would create ``marker`` by calling ``module.name``."""
    if (module, name) in (("builtins", "eval"), ("builtins", "exec")):
        arg = _str(f"open({str(marker)!r}, 'w').close()") + b"\x85"
    elif name == "Popen":
        arg = b"](" + _str("touch") + _str(str(marker)) + b"e\x85"
    else:
        arg = _str(f"touch {marker}") + b"\x85"
    return _global(module, name) + arg + b"R"


EVIL = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
        ("subprocess", "Popen")]


# --------------------------------------------------------------------------- torch-free


def _sample_state() -> dict[str, object]:
    rng = np.random.default_rng(0)
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    sd = collections.OrderedDict()
    sd["conv.weight"] = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    sd["view"] = base[1:, ::2].T  # non-contiguous input
    sd["f64"] = rng.standard_normal((2, 3))
    sd["f16"] = rng.standard_normal(5).astype(np.float16)
    sd["i64"] = np.array(7)  # 0-d
    sd["i32"] = np.arange(-3, 3, dtype=np.int32)
    sd["i16"] = np.arange(4, dtype=np.int16)
    sd["i8"] = np.arange(-4, 4, dtype=np.int8)
    sd["u8"] = np.arange(250, 256, dtype=np.uint8)
    sd["bool"] = np.array([[True, False], [False, True]])
    sd["empty"] = np.zeros((2, 0, 3), np.float32)
    sd["u16"] = np.array([1, 65535], np.uint16)
    sd["c64"] = np.array([1 + 2j], np.complex64)
    return {"genA2B": sd, "plain": {"a": base, "b": [base, base]}, "step": 3, "big": 2**70,
            "neg": -123456789, "lr": 0.5, "name": "x", "raw": b"\x00\xff", "none": None,
            "flag": True, "tup": (1, "a", 2.5, (3,)), "np_scalar": np.float32(1.5),
            "int_keys": {0: np.ones(2, np.float32), 1: "y"}}


def test_save_torch_load_torch_round_trip_exact(tmp_path: Path, assert_same) -> None:
    obj = _sample_state()
    save_torch(obj, tmp_path / "ckpt.pt")
    loaded = load_torch(tmp_path / "ckpt.pt")
    assert_same(loaded, obj, torch_file=True)
    assert type(loaded["genA2B"]) is collections.OrderedDict
    assert type(loaded["plain"]) is dict


def test_save_torch_layout_alignment_and_atomicity(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    save_torch(collections.OrderedDict(w=np.ones((3, 5), np.float32), b=np.zeros(7)), target)
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]  # no temp file left behind
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
        assert names[0] == "archive/data.pkl"
        assert {"archive/byteorder", "archive/version", "archive/data/0",
                "archive/data/1"} <= set(names)
        assert zf.read("archive/byteorder") == b"little"
        raw = target.read_bytes()
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:
                                                           info.header_offset + 30])
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename

    with pytest.raises(TypeError, match=r"obj\['bad'\]"):  # failure keeps the old file intact
        save_torch({"bad": object()}, target)
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]
    assert load_torch(target)["w"].shape == (3, 5)


@pytest.mark.parametrize("bad", [np.array([object()]), {1, 2}, np.array(["a"]),
                                 np.zeros(2, np.float128) if hasattr(np, "float128") else set()])
def test_save_torch_rejects_unsupported_values(tmp_path: Path, bad: object) -> None:
    with pytest.raises(TypeError, match="save_torch"):
        save_torch({"x": bad}, tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())


def test_save_torch_rejects_cycles(tmp_path: Path) -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="contains itself"):
        save_torch({"x": cyclic}, tmp_path / "x.pt")


def test_hand_built_legacy_gpu_checkpoint(tmp_path: Path) -> None:
    """The 2019 U-GAT-IT layout: legacy format, torch.cuda storages, views, _metadata."""
    data = np.arange(12, dtype=np.float32)
    main = b"\x80\x02" + _ordered_dict([
        ("w", _tensor("torch.cuda", "FloatStorage", "k1", 12, 0, (3, 4), (4, 1),
                      location="cuda:0", legacy=True)),
        ("v", _tensor("torch.cuda", "FloatStorage", "k1", 12, 1, (2, 2), (1, 4),
                      location="cuda:0", legacy=True)),
        ("n", _tensor("torch.cuda", "LongStorage", "k0", 1, 0, (), (), location="cuda:0",
                      legacy=True)),
        ("old_view", _tensor("torch", "FloatStorage", "k1", 12, 1, (2,), (1,), legacy=True,
                             view=("k1v", 4, 4))),
    ]) + b"."
    storages = [("k1", data.tobytes(), 12), ("k0", np.array([5], "<i8").tobytes(), 1)]
    path = tmp_path / "ugatit_params_0100000.pt"
    path.write_bytes(_legacy_file(main, storages))
    out = load_torch(path)
    assert type(out) is collections.OrderedDict and not hasattr(out, "_metadata")
    assert list(out) == ["w", "v", "n", "old_view"]
    np.testing.assert_array_equal(out["w"], data.reshape(3, 4))
    np.testing.assert_array_equal(out["v"], [[1, 5], [2, 6]])
    assert out["v"].flags.c_contiguous and out["v"].base is None
    assert out["n"].dtype == np.int64 and out["n"].shape == () and out["n"] == 5
    np.testing.assert_array_equal(out["old_view"], [5, 6])  # storage view at offset 4, +1


def test_hand_built_legacy_big_endian(tmp_path: Path) -> None:
    main = b"\x80\x02" + _ordered_dict(
        [("w", _tensor("torch", "DoubleStorage", "0", 3, 0, (3,), (1,), legacy=True))],
        metadata=False) + b"."
    raw = np.array([1.5, -2.0, 3.25], ">f8").tobytes()
    path = tmp_path / "be.pt"
    path.write_bytes(_legacy_file(main, [("0", raw, 3)], little_endian=False))
    out = load_torch(path)
    assert out["w"].dtype == np.float64 and out["w"].dtype.isnative
    np.testing.assert_array_equal(out["w"], [1.5, -2.0, 3.25])


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("module,name", EVIL)
def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path: Path, legacy: bool,
                                                          module: str, name: str) -> None:
    marker = tmp_path / "pwned"
    # a legit-looking state dict whose second entry is the payload
    main = b"\x80\x02" + _ordered_dict([
        ("w", _tensor("torch", "FloatStorage", "0", 2, 0, (2,), (1,), legacy=legacy)),
        ("evil", _payload(module, name, marker)),
    ], metadata=False) + b"."
    storage = np.ones(2, np.float32).tobytes()
    if legacy:
        path = tmp_path / "evil_legacy.pt"
        path.write_bytes(_legacy_file(main, [("0", storage, 2)]))
    else:
        path = _zip_file(tmp_path / "evil.pt",
                         {"archive/data.pkl": main, "archive/data/0": storage})
    with pytest.raises(UnsafePickleError) as info:
        load_torch(path)
    message = str(info.value)
    assert f"{module}.{name}" in message and str(path) in message
    assert "Nothing from the file was executed" in message
    assert not marker.exists()


def test_malicious_pickle_as_bare_payload(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _zip_file(tmp_path / "evil.pt",
                     {"a/data.pkl": b"\x80\x02" + _payload("os", "system", marker) + b"."})
    with pytest.raises(UnsafePickleError, match="os.system"):
        load_torch(path)
    # pickle.dumps of an object whose __reduce__ is posix.system (what exploits really look like)
    evil = type("Evil", (), {"__reduce__": lambda self: (os.system, (f"touch {marker}",))})
    path = _zip_file(tmp_path / "evil2.pt", {"b/data.pkl": pickle.dumps(evil(), protocol=2)})
    with pytest.raises(UnsafePickleError, match=r"(posix|os|nt)\.system"):
        load_torch(path)
    assert not marker.exists()


def test_malicious_torchscript_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _zip_file(tmp_path / "evil_script.pt", {
        "m/data.pkl": b"\x80\x02" + _payload("os", "system", marker) + b".",
        "m/code/__torch__.py": b"class M(Module):\n  __parameters__ = []\n",
    })
    with pytest.raises(UnsafePickleError, match="os.system"):
        load_torchscript_params(path)
    assert not marker.exists()


def test_build_cannot_tamper_with_allowlisted_functions(tmp_path: Path) -> None:
    # BUILD with a state dict on an allowlisted function must fail instead of setting attributes
    evil = (b"\x80\x02" + _global("torch._utils", "_rebuild_tensor_v2") + b"}"
            + _str("__defaults__") + b"N" + b"sb.")
    path = _zip_file(tmp_path / "build.pt", {"a/data.pkl": evil})
    with pytest.raises(TorchFormatError):
        load_torch(path)
    save_torch({"w": np.arange(3.0)}, tmp_path / "ok.pt")  # later loads are unaffected
    np.testing.assert_array_equal(load_torch(tmp_path / "ok.pt")["w"], [0.0, 1.0, 2.0])


def test_out_of_bounds_views_are_rejected(tmp_path: Path) -> None:
    # size/stride reaching past the end of the storage must not read foreign memory
    main = b"\x80\x02" + _tensor("torch", "FloatStorage", "0", 4, 2, (100,), (1,)) + b"."
    path = _zip_file(tmp_path / "oob.pt", {"a/data.pkl": main,
                                          "a/data/0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(TorchFormatError, match="storage holds only 4"):
        load_torch(path)
    # storage declared bigger than the bytes in the archive
    main = b"\x80\x02" + _tensor("torch", "FloatStorage", "0", 100, 0, (100,), (1,)) + b"."
    path = _zip_file(tmp_path / "short.pt", {"a/data.pkl": main,
                                            "a/data/0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(TorchFormatError, match="truncated"):
        load_torch(path)


def test_bad_files_give_helpful_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(TorchFormatError, match=r"empty\.pt is not a PyTorch checkpoint: the "
                                               r"file is empty"):
        load_torch(empty)

    noise = tmp_path / "x.pt"
    noise.write_bytes(b"\x13\x37" + np.random.default_rng(0).bytes(200))
    with pytest.raises(TorchFormatError) as info:
        load_torch(noise)
    assert str(info.value).startswith(f"{noise} is not a PyTorch checkpoint: expected a zip "
                                      "archive (torch >= 1.6) or a legacy pickle with torch's "
                                      "magic number")

    other_pickle = tmp_path / "other.pt"
    other_pickle.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(TorchFormatError, match="does not start with torch's magic number"):
        load_torch(other_pickle)

    good = tmp_path / "good.pt"
    save_torch({"w": np.ones(1000, np.float32)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(TorchFormatError, match="truncated or corrupt"):
        load_torch(truncated)

    no_pickle = _zip_file(tmp_path / "nopkl.pt", {"archive/data/0": b"1234"})
    with pytest.raises(TorchFormatError, match=r"not a PyTorch checkpoint: expected exactly "
                                               r"one '<folder>/data\.pkl'"):
        load_torch(no_pickle)

    main = b"\x80\x02" + _tensor("torch", "FloatStorage", "0", 3, 0, (3,), (1,), legacy=True)
    legacy = _legacy_file(main + b".", [("0", np.ones(3, np.float32).tobytes(), 3)])
    cut = tmp_path / "cut_legacy.pt"
    cut.write_bytes(legacy[:-5])
    with pytest.raises(TorchFormatError, match="truncated"):
        load_torch(cut)

    missing_storage = _zip_file(tmp_path / "missing.pt", {"archive/data.pkl": main + b"."})
    with pytest.raises(TorchFormatError, match="no 'archive/data/0' record"):
        load_torch(missing_storage)

    quantized = _zip_file(tmp_path / "q.pt", {"a/data.pkl": b"\x80\x02" + _tensor(
        "torch", "QInt8Storage", "0", 3, 0, (3,), (1,)) + b"."})
    with pytest.raises(TorchFormatError, match="QInt8Storage.*not supported"):
        load_torch(quantized)


def test_wrong_loader_hints(tmp_path: Path) -> None:
    save_torch({"w": np.ones(2)}, tmp_path / "plain.pt")
    with pytest.raises(TorchFormatError, match="use load_torch"):
        load_torchscript_params(tmp_path / "plain.pt")
    script = _zip_file(tmp_path / "script.pt", {
        "m/data.pkl": b"\x80\x02" + _global("__torch__", "M") + b")\x81}b.",
        "m/code/__torch__.py": b"class M(Module):\n  __parameters__ = []\n  __buffers__ = []\n"})
    with pytest.raises(TorchFormatError, match="use load_torchscript_params"):
        load_torch(script)
    assert load_torchscript_params(script) == {}


def test_hand_built_torchscript(tmp_path: Path) -> None:
    def obj(cls: str, attrs: list[tuple[str, bytes]]) -> bytes:
        module, name = cls.rsplit(".", 1)
        return (_global(module, name) + b")\x81}(" + b"".join(_str(k) + v for k, v in attrs)
                + b"ub")

    lin = obj("__torch__.torch.nn.modules.linear.Linear", [
        ("weight", _tensor("torch", "FloatStorage", "0", 6, 0, (2, 3), (3, 1))),
        ("bias", b"N"), ("training", b"\x88")])
    top = obj("__torch__.Top", [
        ("t", _tensor("torch", "FloatStorage", "1", 2, 0, (2,), (1,))),  # plain attribute
        ("buf", _tensor("torch", "LongStorage", "2", 1, 0, (), ())),
        ("lin", lin),
        ("sizes", _global("torch.jit._pickle", "build_intlist") + b"](K\x01K\x02e\x85R")])
    path = _zip_file(tmp_path / "ts.pt", {
        "ts/data.pkl": b"\x80\x02" + top + b".",
        "ts/code/__torch__.py": (b"class Top(Module):\n  __parameters__ = []\n"
                                 b"  __buffers__ = [\"buf\", ]\n  t : Tensor\n"
                                 b"  def forward(self):\n    __parameters__ = [\"t\"]\n"),
        "ts/code/__torch__/torch/nn/modules/linear.py": (
            b"class Linear(Module):\n  __parameters__ = [\"weight\", \"bias\", ]\n"
            b"  __buffers__ = []\n"),
        "ts/data/0": np.arange(6, dtype=np.float32).tobytes(),
        "ts/data/1": np.ones(2, np.float32).tobytes(),
        "ts/data/2": np.array([4], np.int64).tobytes(),
    })
    params = load_torchscript_params(path)
    assert list(params) == ["buf", "lin.weight"]  # bias is None, t is not a param/buffer
    np.testing.assert_array_equal(params["lin.weight"], np.arange(6).reshape(2, 3))
    assert params["buf"] == 4 and params["buf"].dtype == np.int64


# --------------------------------------------------------------------------- with torch


def _torch_to_numpy(value: object) -> object:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if isinstance(value, dict):
        return type(value)((k, _torch_to_numpy(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_torch_to_numpy(v) for v in value)
    return value


def _torch_state_dict() -> collections.OrderedDict:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 3, 3)
            self.bn = torch.nn.BatchNorm2d(3)
            self.fc = torch.nn.Linear(4, 2).double()
            self.register_buffer("f16", torch.randn(2, 3).half())
            self.register_buffer("bf16", torch.randn(5).bfloat16())
            self.register_buffer("i32", torch.arange(-2, 2, dtype=torch.int32))
            self.register_buffer("i16", torch.arange(3, dtype=torch.int16))
            self.register_buffer("i8", torch.arange(-3, 3, dtype=torch.int8))
            self.register_buffer("u8", torch.arange(250, 256, dtype=torch.uint8))
            self.register_buffer("mask", torch.tensor([True, False, True]))

    sd = Net().state_dict()
    base = torch.arange(30, dtype=torch.float32).reshape(5, 6)
    sd["base"] = base
    sd["view"] = base[1:, 1::2].t()  # shares base's storage, offset 7, non-contiguous
    sd["row"] = base[3]  # offset view of the same storage
    return sd


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_real_torch_checkpoints_load_equal(tmp_path: Path, zip_format: bool, assert_same) -> None:
    torch = pytest.importorskip("torch")
    sd = _torch_state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save({"genA2B": sd, "iteration": 7, "note": "x"}, path,
               _use_new_zipfile_serialization=zip_format)
    out = load_torch(path)
    expected = _torch_to_numpy(torch.load(path, weights_only=True))
    assert_same(out, expected, torch_file=True)
    assert type(out["genA2B"]) is collections.OrderedDict
    assert not hasattr(out["genA2B"], "_metadata")
    assert out["genA2B"]["bf16"].dtype == np.float32
    np.testing.assert_array_equal(out["genA2B"]["view"], sd["view"].numpy())


def test_real_torch_parameters_and_odd_values(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.randn(2, 3))
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    frozen.tag = "with state"  # -> _rebuild_parameter_with_state
    t = torch.arange(4.0)
    t.note = "attr"  # -> torch._tensor._rebuild_from_type_v2
    obj = {"p": p, "frozen": frozen, "t": t, "size": torch.Size([2, 3]), "dtype": torch.float16,
           "device": torch.device("cpu"), "params": list(torch.nn.Linear(2, 2).parameters())}
    torch.save(obj, tmp_path / "odd.pt")
    out = load_torch(tmp_path / "odd.pt")
    np.testing.assert_array_equal(out["p"], p.detach().numpy())
    np.testing.assert_array_equal(out["frozen"], [1.0, 1.0])
    np.testing.assert_array_equal(out["t"], [0.0, 1.0, 2.0, 3.0])
    assert out["size"] == (2, 3) and out["dtype"] == np.float16 and out["device"] == "cpu"
    assert [a.shape for a in out["params"]] == [(2, 2), (2,)]


def test_save_torch_loads_in_real_torch(tmp_path: Path, assert_same) -> None:
    torch = pytest.importorskip("torch")
    obj = _sample_state()
    save_torch(obj, tmp_path / "ours.pt")
    loaded = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert type(loaded["genA2B"]) is collections.OrderedDict
    assert all(isinstance(v, torch.Tensor) for v in loaded["genA2B"].values())
    assert loaded["genA2B"]["bool"].dtype == torch.bool
    assert_same(_torch_to_numpy(loaded), obj, torch_file=True)
    mapped = torch.load(tmp_path / "ours.pt", weights_only=True, mmap=True)
    np.testing.assert_array_equal(mapped["genA2B"]["conv.weight"].numpy(),
                                  obj["genA2B"]["conv.weight"])

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    state = collections.OrderedDict((k, v.numpy() + 1) for k, v in net.state_dict().items())
    save_torch(state, tmp_path / "net.pt")
    net.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_params_match_state_dict(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    class Sub(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)
            self.register_buffer("steps", torch.ones(2, dtype=torch.int64))
            self.frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
            self.plain = torch.arange(2.0)  # a tensor attribute, not in state_dict

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) + self.steps + self.frozen + self.plain

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sub = Sub()
            self.seq = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                                           torch.nn.ReLU())
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            out = self.sub(x)
            for block in self.blocks:
                out = block(out)
            return out.sum() + self.seq(y).sum()

    inputs = (torch.randn(1, 3), torch.randn(1, 1, 5, 5))
    for kind, module in (("script", torch.jit.script(Top())),
                         ("trace", torch.jit.trace(Top().eval(), inputs))):
        path = tmp_path / f"{kind}.pt"
        torch.jit.save(module, str(path))
        expected = torch.jit.load(str(path)).state_dict()
        params = load_torchscript_params(path)
        assert list(params) == list(expected), kind
        for name, value in expected.items():
            assert params[name].dtype == value.numpy().dtype
            np.testing.assert_array_equal(params[name], value.numpy())
