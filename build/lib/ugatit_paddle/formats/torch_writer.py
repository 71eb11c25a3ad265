"""Write PyTorch checkpoint files (the ``torch.save`` zip format) without importing PyTorch.

See :mod:`torch_pickle` for the format; arrays are written as ``_rebuild_tensor_v2`` calls on
persistent storage ids, in the same shape torch writes them.
"""

from __future__ import annotations

import collections
import os
import secrets
import struct
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from .torch_pickle import NUMPY_TO_TORCH, STORAGE_CLASSES, V3_ONLY

__all__ = ["save_torch"]


class _PickleWriter:
    """Emits a protocol-2 pickle in the shape torch.save writes (no torch, no pickle globals
    resolved): tensors become ``_rebuild_tensor_v2`` calls on persistent storage ids."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.storages: list[tuple[str, bytes]] = []
        self._array_keys: dict[int, str] = {}
        self._keep_alive: list[np.ndarray] = []
        self._active: set[int] = set()

    def dump(self, obj: Any) -> bytes:
        self._save(obj, "obj")
        self.out += b"."  # STOP
        return bytes(self.out)

    def _global(self, module: str, name: str) -> None:
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def _str(self, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def _int(self, value: int) -> None:
        if 0 <= value < 0x100:
            self.out += b"K" + bytes([value])
        elif 0 <= value < 0x10000:
            self.out += b"M" + struct.pack("<H", value)
        elif -0x80000000 <= value < 0x80000000:
            self.out += b"J" + struct.pack("<i", value)
        else:
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += (b"\x8a" + bytes([len(data)]) if len(data) < 256
                         else b"\x8b" + struct.pack("<i", len(data))) + data

    def _tuple(self, items: Iterator[Any] | tuple[Any, ...], where: str) -> None:
        items = tuple(items)
        if not items:
            self.out += b")"
            return
        if len(items) > 3:
            self.out += b"("
        for i, item in enumerate(items):
            self._save(item, f"{where}[{i}]")
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(items), b"t")

    def _ordered_dict_call(self) -> None:
        self._global("collections", "OrderedDict")
        self.out += b")R"  # OrderedDict()

    def _save(self, obj: Any, where: str) -> None:
        if isinstance(obj, (np.str_, np.bytes_)):
            obj = obj.item()
        elif isinstance(obj, np.generic):  # keeps its dtype as a 0-d tensor
            obj = np.asarray(obj)
        if obj is None:
            self.out += b"N"
        elif obj is True or obj is False:
            self.out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, int):
            self._int(int(obj))
        elif isinstance(obj, float):
            self.out += b"G" + struct.pack(">d", obj)
        elif isinstance(obj, str):
            self._str(obj)
        elif isinstance(obj, bytes):  # what torch.save (pickle protocol 2) writes for bytes
            self._global("_codecs", "encode")
            self._str(obj.decode("latin-1"))
            self._str("latin1")
            self.out += b"\x86R"
        elif isinstance(obj, np.ndarray):
            self._tensor(obj, where)
        elif isinstance(obj, (dict, list, tuple)):
            if id(obj) in self._active:
                raise ValueError(f"save_torch: {where} contains itself")
            self._active.add(id(obj))
            try:
                self._container(obj, where)
            finally:
                self._active.discard(id(obj))
        else:
            raise TypeError(f"save_torch: cannot save {type(obj).__module__}."
                            f"{type(obj).__qualname__} at {where}; supported are numpy arrays, "
                            "dict/OrderedDict/list/tuple, str, bytes, int, float, bool, None")

    def _container(self, obj: dict[Any, Any] | list[Any] | tuple[Any, ...], where: str) -> None:
        if isinstance(obj, tuple):
            self._tuple(obj, where)
        elif isinstance(obj, list):
            self.out += b"]"
            if obj:
                self.out += b"("
                for i, item in enumerate(obj):
                    self._save(item, f"{where}[{i}]")
                self.out += b"e"  # APPENDS
        else:
            if isinstance(obj, collections.OrderedDict):
                self._ordered_dict_call()
            else:
                self.out += b"}"
            if obj:
                self.out += b"("
                for key, value in obj.items():
                    self._save(key, f"{where} key {key!r}")
                    self._save(value, f"{where}[{key!r}]")
                self.out += b"u"  # SETITEMS

    def _tensor(self, array: np.ndarray, where: str) -> None:
        torch_name = NUMPY_TO_TORCH.get(array.dtype.name)
        if torch_name is None or array.dtype.hasobject:
            raise TypeError(f"save_torch: {where} has dtype {array.dtype}, which has no torch "
                            f"equivalent (supported: {', '.join(sorted(NUMPY_TO_TORCH))})")
        key = self._array_keys.get(id(array))
        if key is None:  # the same array object saved twice shares one storage, like torch
            key = str(len(self.storages))
            data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
            self.storages.append((key, data.tobytes()))
            self._array_keys[id(array)] = key
            self._keep_alive.append(array)
        v3 = torch_name in V3_ONLY
        self._global("torch._utils", "_rebuild_tensor_v3" if v3 else "_rebuild_tensor_v2")
        self.out += b"(("  # MARK args, MARK persistent id
        self._str("storage")
        if v3:
            self._global("torch.storage", "UntypedStorage")
        else:
            storage_class = next(c for c, d in STORAGE_CLASSES.items() if d == torch_name)
            self._global("torch", storage_class)
        self._str(key)
        self._str("cpu")
        self._int(array.nbytes if v3 else array.size)
        self.out += b"tQ"  # TUPLE, BINPERSID
        self._int(0)
        self._tuple((int(n) for n in array.shape), where)
        strides = [1] * array.ndim
        for i in range(array.ndim - 2, -1, -1):
            strides[i] = strides[i + 1] * max(int(array.shape[i + 1]), 1)
        self._tuple(tuple(strides), where)
        self.out += b"\x89"  # requires_grad=False
        self._ordered_dict_call()  # backward_hooks
        if v3:
            self._global("torch", torch_name)
        self.out += b"tR"  # TUPLE, REDUCE


def _write_aligned(zf: zipfile.ZipFile, f: IO[bytes], name: str, data: bytes) -> None:
    """Add a stored record whose data starts at a multiple of 64 bytes (as torch does)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    zip64_extra = 20 if len(data) * 1.05 > zipfile.ZIP64_LIMIT else 0
    start = f.tell() + 30 + len(name.encode("utf-8")) + 4 + zip64_extra
    padding = -start % 64
    info.extra = struct.pack("<HH", 0x4246, padding) + b"Z" * padding  # "FB" padding field
    zf.writestr(info, data)


def save_torch(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` (nested dict/OrderedDict/list/tuple of numpy arrays, str, bytes and
    Python scalars) as a torch zip checkpoint, loadable by ``torch.load(path,
    weights_only=True)``: arrays become ``torch.Tensor``, dict types are preserved (pass an
    ``OrderedDict`` for a state dict), numpy scalars become 0-d tensors. The file is
    written to a temporary name in the same folder and then atomically renamed.
    """
    filename = os.fspath(path)
    writer = _PickleWriter()
    data_pkl = writer.dump(obj)
    tmp = f"{filename}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                _write_aligned(zf, f, "archive/data.pkl", data_pkl)
                _write_aligned(zf, f, "archive/byteorder", b"little")
                for key, data in writer.storages:
                    _write_aligned(zf, f, f"archive/data/{key}", data)
                _write_aligned(zf, f, "archive/version", b"3\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
