"""Read and write PyTorch checkpoint files without importing PyTorch -- and without trusting them.

Every pickle is read with :class:`~ugatit_paddle.safe_pickle.RestrictedUnpickler`: only the
tensor/parameter rebuild functions, storage-type and dtype markers, ``collections.OrderedDict``
and harmless builtin data constructors are resolved, each to a local stand-in (nothing is
imported). Any other global (``os.system``, ``builtins.eval`` ...) raises
:class:`~ugatit_paddle.safe_pickle.UnsafePickleError` before it could run.

Formats
-------
*Zip format* (``torch.save`` since torch 1.6): a zip archive (entries stored, usually
64-byte aligned) whose records share one top-level folder of any name::

    <folder>/data.pkl      protocol-2 pickle of the saved object
    <folder>/data/<key>    raw bytes of storage <key>
    <folder>/byteorder     "little" or "big" (optional, default little)
    <folder>/version, .format_version, .storage_alignment, .data/serialization_id ...

In ``data.pkl`` a tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, hooks[, metadata])`` (``_rebuild_tensor_v3(..., dtype)`` for dtypes
without a legacy storage class, e.g. uint16) where ``storage`` is a *persistent id*
``('storage', torch.FloatStorage, '<key>', 'cpu', numel)``. ``offset``/``stride`` are in
elements, so several tensors can be views of one storage.

*Legacy format* (torch < 1.6, or ``_use_new_zipfile_serialization=False``; e.g. the 2019
official U-GAT-IT checkpoints): a plain concatenation of ::

    pickle(0x1950a86a20f9469cfc6c)   magic number
    pickle(1001)                     protocol version
    pickle({'little_endian': ..., 'type_sizes': ...})
    pickle(obj)                      persistent ids ('storage', type, key, location, numel, view)
    pickle(sorted storage keys)
    for each key: int64 element count, then the raw bytes

*TorchScript* (``torch.jit.save``): the zip format, but ``data.pkl`` holds the module tree as
``__torch__.*`` objects and ``code/`` holds their class definitions (TorchScript source, which
we only scan as text for the ``__parameters__`` / ``__buffers__`` lists -- never executed).

Tensors are returned as C-contiguous ``numpy.ndarray`` copies (native byte order); bfloat16
becomes float32. ``torch.nn.Parameter`` becomes a plain array, ``OrderedDict`` stays an
``OrderedDict`` (torch's ``_metadata`` attribute is dropped), ``torch.Size`` becomes a tuple,
``torch.device`` a string and a ``torch.<dtype>`` object a ``numpy.dtype``.
"""

from __future__ import annotations

import ast
import collections
import os
import re
import secrets
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, NamedTuple

import numpy as np

from .safe_pickle import (
    Allowlist,
    CheckpointFormatError,
    RestrictedUnpickler,
    SafeCallable,
    UnsafePickleError,
    builtins_allowlist,
    numpy_allowlist,
)

__all__ = [
    "TorchFormatError",
    "UnsafePickleError",
    "load_torch",
    "load_torchscript_params",
    "save_torch",
    "torch_allowlist",
]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_EXPECTED = ("expected a zip archive (torch >= 1.6) or a legacy pickle with torch's magic "
             "number (torch.save(..., _use_new_zipfile_serialization=False))")


class TorchFormatError(CheckpointFormatError):
    """The file is not a (complete, supported) PyTorch checkpoint. A ValueError."""


# --------------------------------------------------------------------------- dtypes


class _DType(NamedTuple):
    """A torch dtype: ``stored`` is the numpy type of its bytes (None: unsupported here)."""

    name: str
    stored: str | None

    @property
    def itemsize(self) -> int:
        return np.dtype(self.stored or "u1").itemsize

    def numpy_dtype(self) -> np.dtype:
        if self.stored is None:
            raise TorchFormatError(f"torch.{self.name} tensors are not supported")
        return np.dtype({"bfloat16": "float32", "bool": "bool"}.get(self.name, self.stored))


_DTYPES: dict[str, _DType] = {d.name: d for d in (
    _DType("float64", "f8"), _DType("float32", "f4"), _DType("float16", "f2"),
    _DType("bfloat16", "u2"),  # stored as the upper 16 bits of a float32
    _DType("int64", "i8"), _DType("int32", "i4"), _DType("int16", "i2"), _DType("int8", "i1"),
    _DType("uint8", "u1"), _DType("bool", "u1"), _DType("uint16", "u2"), _DType("uint32", "u4"),
    _DType("uint64", "u8"), _DType("complex64", "c8"), _DType("complex128", "c16"),
    # known to torch but not representable here -> TorchFormatError when a tensor uses them
    *(_DType(n, None) for n in (
        "complex32", "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "float8_e5m2",
        "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu",
        "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2")),
)}

# legacy storage classes (torch.FloatStorage, torch.cuda.FloatStorage, ...) -> element dtype
_STORAGE_CLASSES: dict[str, str] = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "QInt8Storage": "qint8", "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32", "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}

_NUMPY_TO_TORCH: dict[str, str] = {
    "float64": "float64", "float32": "float32", "float16": "float16", "int64": "int64",
    "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "complex64": "complex64",
    "complex128": "complex128",
}
_V3_ONLY = {"uint16", "uint32", "uint64"}  # no legacy storage class -> UntypedStorage + dtype


# --------------------------------------------------------------------------- stand-ins


class _StorageType(NamedTuple):
    """Marker for a pickled storage class such as ``torch.FloatStorage``."""

    qualname: str
    dtype: _DType  # uint8 for UntypedStorage


class _TensorType(NamedTuple):
    """Marker for ``torch.Tensor`` / ``torch.nn.Parameter`` (used by _rebuild_from_type_v2)."""

    qualname: str


class _Storage(NamedTuple):
    """A storage referenced by a persistent id; its bytes are read after unpickling."""

    key: str
    dtype: _DType
    numel: int
    base: int = 0  # element offset into the root storage (legacy storage views)


class _Tensor(NamedTuple):
    """A tensor whose data is not read yet (legacy files store it after the pickle)."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: _DType
    neg: bool = False
    conj: bool = False


class _ScriptObject:
    """Harmless stand-in for a TorchScript ``__torch__.*`` object: just its pickled attributes.

    A subclass is created per load and per qualified name (no code from the archive runs).
    """

    __slots__ = ("attributes",)
    qualified_name = "__torch__"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise TorchFormatError(f"TorchScript object {self.qualified_name} has a custom "
                                   "(non-dict) pickled state, which is not supported")
        self.attributes = dict(state)


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(
            type(v) is int and v >= 0 for v in value):
        raise TorchFormatError(f"tensor {what} must be a tuple of non-negative ints, got {value!r}")
    return tuple(value)


def _make_tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: _DType | None = None,
                 metadata: Any = None) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise TorchFormatError(f"a tensor refers to {storage!r} instead of a storage")
    if type(offset) is not int or offset < 0:
        raise TorchFormatError(f"bad tensor storage offset {offset!r}")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise TorchFormatError(f"tensor size {size} and stride {stride} differ in length")
    if dtype is None:
        dtype = storage.dtype
    elif not isinstance(dtype, _DType):
        raise TorchFormatError(f"bad tensor dtype {dtype!r}")
    meta = metadata if isinstance(metadata, dict) else {}
    return _Tensor(storage, offset, size, stride, dtype, bool(meta.get("neg")),
                   bool(meta.get("conj")))


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> _Tensor:
    return _make_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       metadata: Any = None) -> _Tensor:
    return _make_tensor(storage, storage_offset, size, stride, None, metadata)


def _rebuild_tensor_v3(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any, backward_hooks: Any, dtype: Any,
                       metadata: Any = None) -> _Tensor:
    return _make_tensor(storage, storage_offset, size, stride, dtype, metadata)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> _Tensor:
    if not isinstance(data, _Tensor):
        raise TorchFormatError(f"a Parameter wraps {type(data).__name__} instead of a tensor")
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> _Tensor:
    # tensors with Python attributes / Parameter subclasses: func is one of our rebuilders
    if not isinstance(func, SafeCallable) or not isinstance(new_type, _TensorType) or not \
            isinstance(args, tuple):
        raise TorchFormatError("unsupported torch._tensor._rebuild_from_type_v2 call")
    result = func(*args)
    if not isinstance(result, _Tensor):
        raise TorchFormatError("torch._tensor._rebuild_from_type_v2 did not build a tensor")
    return result


def _torch_device(*args: Any) -> str:
    if not args or not isinstance(args[0], str):
        raise TorchFormatError(f"bad torch.device{args!r}")
    return args[0] if len(args) == 1 or args[1] is None else f"{args[0]}:{args[1]}"


def _torch_size(dims: Any = ()) -> tuple[int, ...]:
    return _ints(dims, "torch.Size")


def torch_allowlist(*, allow_numpy: bool = False) -> dict[tuple[str, str], object]:
    """The globals a ``torch.save`` checkpoint of tensors, containers and scalars needs."""
    allow: dict[tuple[str, str], object] = builtins_allowlist()
    if allow_numpy:
        allow.update(numpy_allowlist())
    for name, func in (("_rebuild_tensor", _rebuild_tensor),
                       ("_rebuild_tensor_v2", _rebuild_tensor_v2),
                       ("_rebuild_tensor_v3", _rebuild_tensor_v3),
                       ("_rebuild_parameter", _rebuild_parameter),
                       ("_rebuild_parameter_with_state", _rebuild_parameter)):
        allow[("torch._utils", name)] = func
    allow[("torch._tensor", "_rebuild_from_type_v2")] = _rebuild_from_type_v2
    for module, name in (("torch", "Tensor"), ("torch._tensor", "Tensor"),
                         ("torch.nn.parameter", "Parameter")):
        allow[(module, name)] = _TensorType(f"{module}.{name}")
    for cls, dtype in _STORAGE_CLASSES.items():
        for module in ("torch", "torch.cuda"):  # GPU checkpoints name torch.cuda.FloatStorage
            allow[(module, cls)] = _StorageType(f"{module}.{cls}", _DTYPES[dtype])
    for module in ("torch", "torch.storage"):
        allow[(module, "UntypedStorage")] = _StorageType(f"{module}.UntypedStorage",
                                                         _DTYPES["uint8"])
    for name, dtype in _DTYPES.items():
        allow[("torch", name)] = dtype
    allow[("torch", "Size")] = _torch_size
    allow[("torch", "device")] = _torch_device
    return allow


def _torchscript_allowlist() -> dict[tuple[str, str], object]:
    allow = torch_allowlist()

    def same(value: Any, *_: Any) -> Any:  # build_intlist & co. only tag a container's type
        return value

    for name in ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
                 "restore_type_tag"):
        allow[("torch.jit._pickle", name)] = same
    return allow


class _TorchUnpickler(RestrictedUnpickler):
    """Restricted unpickler resolving torch's persistent storage ids to :class:`_Storage`."""

    def __init__(self, file: IO[bytes], allowlist: Allowlist, filename: str) -> None:
        super().__init__(file, allowlist, filename=filename, encoding="utf-8",
                         persistent_load=self._persistent_load)
        self.storages: dict[str, _Storage] = {}  # root storages by key

    def _persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or len(pid) < 5 or _text(pid[0]) != "storage":
            raise TorchFormatError(f"{self.filename}: unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(storage_type, _StorageType):
            raise TorchFormatError(f"{self.filename}: unknown storage type {storage_type!r}")
        if storage_type.dtype.stored is None:
            raise TorchFormatError(f"{self.filename}: storage type {storage_type.qualname} "
                                   "(quantized) is not supported")
        key = _text(key)
        if type(numel) is not int or numel < 0:
            raise TorchFormatError(f"{self.filename}: bad storage size {numel!r}")
        root = _Storage(key, storage_type.dtype, numel)
        known = self.storages.setdefault(key, root)
        if known.dtype != root.dtype or known.numel != root.numel:
            raise TorchFormatError(f"{self.filename}: storage {key!r} is declared twice "
                                   "with different types/sizes")
        if view is None:
            return root
        # legacy storage view: (view_key, element offset, element count) into the root
        if not (isinstance(view, tuple) and len(view) == 3 and type(view[1]) is int
                and type(view[2]) is int and 0 <= view[1] and view[1] + view[2] <= numel):
            raise TorchFormatError(f"{self.filename}: bad storage view {view!r}")
        return _Storage(key, root.dtype, view[2], view[1])


class _ScriptUnpickler(_TorchUnpickler):
    """Also maps every ``__torch__.*`` class to a fresh :class:`_ScriptObject` subclass."""

    def __init__(self, file: IO[bytes], filename: str) -> None:
        super().__init__(file, _torchscript_allowlist(), filename)
        self._classes: dict[str, type[_ScriptObject]] = {}

    def lookup_global(self, module: str, name: str) -> object:
        if (module == "__torch__" or module.startswith("__torch__.")) and name.isidentifier():
            qualname = f"{module}.{name}"
            if qualname not in self._classes:
                self._classes[qualname] = type(name, (_ScriptObject,), {
                    "__slots__": (), "qualified_name": qualname, "__module__": __name__})
            return self._classes[qualname]
        return super().lookup_global(module, name)


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # Python 2 checkpoints
        return value.decode("ascii", "replace")
    return value if isinstance(value, str) else repr(value)


# --------------------------------------------------------------------------- materialising


def _tensor_to_array(t: _Tensor, raw: bytes | memoryview, little_endian: bool,
                     filename: str) -> np.ndarray:
    """Copy tensor ``t`` out of its storage's bytes ``raw`` into a fresh C-contiguous array."""
    where = f"{filename}: tensor on storage {t.storage.key!r}"
    if t.dtype.stored is None:
        raise TorchFormatError(f"{where}: torch.{t.dtype.name} tensors are not supported")
    stored = np.dtype(t.dtype.stored).newbyteorder("<" if little_endian else ">")
    start = t.storage.base * t.storage.dtype.itemsize
    nbytes = t.storage.numel * t.storage.dtype.itemsize
    if start + nbytes > len(raw):
        raise TorchFormatError(f"{where}: storage has {len(raw)} bytes, the checkpoint "
                               f"declares {start + nbytes} (truncated file?)")
    count = nbytes // stored.itemsize
    if 0 in t.size:
        arr = np.empty(t.size, dtype=stored)
    else:
        last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True))
        if last >= count:
            raise TorchFormatError(
                f"{where}: size {t.size}, stride {t.stride}, offset {t.offset} reach element "
                f"{last} but the storage holds only {count} {t.dtype.name} elements")
        elements = np.frombuffer(raw, dtype=stored, count=count, offset=start)
        view = np.lib.stride_tricks.as_strided(
            elements[t.offset:], shape=t.size,
            strides=tuple(s * stored.itemsize for s in t.stride), writeable=False)
        arr = np.array(view, order="C", copy=True)
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if t.dtype.name == "bfloat16":
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    elif t.dtype.name == "bool":
        arr = arr != 0
    if t.neg:
        arr = np.negative(arr)
    if t.conj:
        arr = np.conj(arr)
    return arr


class _Materializer:
    """Walks an unpickled object, replacing stand-ins by plain Python / numpy values."""

    def __init__(self, storage_bytes: Callable[[str], bytes | memoryview], little_endian: bool,
                 filename: str) -> None:
        self._storage_bytes = storage_bytes
        self._little = little_endian
        self._filename = filename
        self._memo: dict[int, Any] = {}
        self._building: set[int] = set()

    def array(self, t: _Tensor) -> np.ndarray:
        key = id(t)
        if key not in self._memo:  # a tensor pickled once and referenced twice stays shared
            self._memo[key] = _tensor_to_array(t, self._storage_bytes(t.storage.key),
                                               self._little, self._filename)
        return self._memo[key]

    def __call__(self, obj: Any) -> Any:
        try:
            return self._convert(obj)
        except RecursionError:
            raise TorchFormatError(f"{self._filename}: the saved object is nested too deeply "
                                   "to convert") from None
        except TypeError as exc:  # e.g. a tensor used as a dict key
            raise TorchFormatError(f"{self._filename}: cannot convert the saved object: "
                                   f"{exc}") from exc

    def _convert(self, obj: Any) -> Any:
        if isinstance(obj, _Tensor):
            return self.array(obj)
        if isinstance(obj, _Storage):  # a bare storage was saved: return it as a 1-D array
            if id(obj) not in self._memo:
                self._memo[id(obj)] = _tensor_to_array(
                    _Tensor(obj, 0, (obj.numel,), (1,), obj.dtype),
                    self._storage_bytes(obj.key), self._little, self._filename)
            return self._memo[id(obj)]
        if isinstance(obj, _DType):
            return obj.numpy_dtype() if obj.stored else f"torch.{obj.name}"
        if isinstance(obj, (_StorageType, _TensorType)):
            return obj.qualname
        if isinstance(obj, SafeCallable):
            return repr(obj)
        if isinstance(obj, _ScriptObject):
            raise TorchFormatError(f"{self._filename}: unexpected TorchScript object "
                                   f"{obj.qualified_name}")
        kind = type(obj)
        if kind not in (dict, collections.OrderedDict, list, tuple, set, frozenset):
            return obj
        key = id(obj)
        if key in self._memo:
            return self._memo[key]
        if kind is list:
            out_list: list[Any] = []
            self._memo[key] = out_list
            out_list.extend(self._convert(v) for v in obj)
            return out_list
        if kind in (dict, collections.OrderedDict):  # a fresh OrderedDict drops _metadata
            out_dict = kind()
            self._memo[key] = out_dict
            for k, v in obj.items():
                out_dict[self._convert(k)] = self._convert(v)
            return out_dict
        if key in self._building:
            raise TorchFormatError(f"{self._filename}: self-referencing {kind.__name__}")
        self._building.add(key)
        try:
            self._memo[key] = kind(self._convert(v) for v in obj)
        finally:
            self._building.discard(key)
        return self._memo[key]


# --------------------------------------------------------------------------- reading


def _member_reader(zf: zipfile.ZipFile, filename: str) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        try:
            return zf.read(name)
        except KeyError:
            raise TorchFormatError(f"{filename}: the archive has no '{name}' record "
                                   "(incomplete checkpoint?)") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise TorchFormatError(f"{filename}: cannot read '{name}' from the zip archive "
                                   f"(truncated or corrupt file?): {exc}") from exc

    return read


def _zip_storage_reader(zf: zipfile.ZipFile, prefix: str, filename: str,
                        storages: dict[str, _Storage]) -> Callable[[str], bytes]:
    """Read (and cache) ``<prefix>data/<key>``, never more bytes than the pickle declared."""
    cache: dict[str, bytes] = {}

    def storage_bytes(key: str) -> bytes:
        if key in cache:
            return cache[key]
        name = f"{prefix}data/{key}"
        root = storages[key]
        expected = root.numel * root.dtype.itemsize
        try:
            info = zf.getinfo(name)
        except KeyError:
            raise TorchFormatError(f"{filename}: the archive has no '{name}' record "
                                   "(incomplete checkpoint?)") from None
        if info.file_size < expected:
            raise TorchFormatError(f"{filename}: record '{name}' holds {info.file_size} bytes "
                                   f"but the checkpoint declares {expected} (truncated file?)")
        try:
            with zf.open(info) as member:
                cache[key] = member.read(expected)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise TorchFormatError(f"{filename}: cannot read '{name}' from the zip archive "
                                   f"(truncated or corrupt file?): {exc}") from exc
        return cache[key]

    return storage_bytes


def _open_zip(filename: str) -> tuple[zipfile.ZipFile, str]:
    """Open a torch zip checkpoint; return it and its record prefix ``'<folder>/'``."""
    try:
        zf = zipfile.ZipFile(filename)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise TorchFormatError(
            f"{filename} starts like a zip archive (torch >= 1.6 checkpoint) but cannot be "
            f"opened: truncated or corrupt file? ({exc})") from exc
    pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        names = zf.namelist()
        zf.close()
        found = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "") or "nothing"
        raise TorchFormatError(
            f"{filename} is a zip archive but not a PyTorch checkpoint: expected exactly one "
            f"'<folder>/data.pkl' record, found {len(pickles)} (records: {found})")
    return zf, pickles[0][: -len("data.pkl")]


def _unpickle(unpickler: RestrictedUnpickler, what: str) -> Any:
    try:
        return unpickler.load()
    except UnsafePickleError:
        raise
    except CheckpointFormatError as exc:  # raised by a stand-in, maybe without the file name
        if isinstance(exc, TorchFormatError) and str(exc).startswith(unpickler.filename):
            raise
        raise TorchFormatError(f"{unpickler.filename}: {exc}") from exc
    except Exception as exc:  # EOFError, UnpicklingError, TypeError from bad opcodes, ...
        raise TorchFormatError(f"{unpickler.filename}: cannot unpickle {what} (truncated or "
                               f"corrupt file?): {type(exc).__name__}: {exc}") from exc


def _zip_little_endian(read: Callable[[str], bytes], zf: zipfile.ZipFile, prefix: str,
                       filename: str) -> bool:
    if f"{prefix}byteorder" not in zf.NameToInfo:
        return True
    order = read(f"{prefix}byteorder").strip()
    if order not in (b"little", b"big"):
        raise TorchFormatError(f"{filename}: unknown byteorder record {order!r}")
    return order == b"little"


def _load_zip(filename: str, allow_numpy: bool) -> Any:
    zf, prefix = _open_zip(filename)
    with zf:
        if any(n.startswith(f"{prefix}code/") for n in zf.namelist()):
            raise TorchFormatError(f"{filename} is a TorchScript archive (torch.jit.save), not a "
                                   "torch.save checkpoint: use load_torchscript_params()")
        read = _member_reader(zf, filename)
        little = _zip_little_endian(read, zf, prefix, filename)
        with zf.open(f"{prefix}data.pkl") as member:
            unpickler = _TorchUnpickler(member, torch_allowlist(allow_numpy=allow_numpy),
                                        filename)
            obj = _unpickle(unpickler, "data.pkl")
        storage_bytes = _zip_storage_reader(zf, prefix, filename, unpickler.storages)
        return _Materializer(storage_bytes, little, filename)(obj)


def _is_legacy_start(head: bytes) -> bool:
    """Does ``head`` start a pickle (protocol >= 2) whose first value is a LONG1 (the magic)?"""
    if len(head) < 3 or head[0] != 0x80 or not 2 <= head[1] <= 5:
        return False
    pos = 11 if head[2] == 0x95 else 2  # skip a protocol-4 FRAME header
    return len(head) > pos and head[pos] == 0x8A


def _load_legacy(filename: str, allow_numpy: bool) -> Any:
    with open(filename, "rb") as f:
        size = os.fstat(f.fileno()).st_size

        def plain(what: str) -> Any:  # small header pickles: no globals at all
            return _unpickle(RestrictedUnpickler(f, {}, filename=filename, encoding="utf-8"), what)

        if plain("the magic number") != LEGACY_MAGIC_NUMBER:
            raise TorchFormatError(f"{filename} is not a PyTorch checkpoint: {_EXPECTED}; it is a "
                                   "pickle starting with a different number")
        version = plain("the protocol version")
        if version != LEGACY_PROTOCOL_VERSION:
            raise TorchFormatError(f"{filename}: unsupported legacy torch protocol version "
                                   f"{version!r} (expected {LEGACY_PROTOCOL_VERSION})")
        sys_info = plain("the sys_info header")
        little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
        unpickler = _TorchUnpickler(f, torch_allowlist(allow_numpy=allow_numpy), filename)
        obj = _unpickle(unpickler, "the checkpoint object")
        keys = plain("the storage key list")
        if not isinstance(keys, list):
            raise TorchFormatError(f"{filename}: expected the list of storage keys after the "
                                   f"checkpoint object, found {type(keys).__name__}")
        raw: dict[str, bytes] = {}
        for key in map(_text, keys):
            storage = unpickler.storages.get(key)
            if storage is None:
                raise TorchFormatError(f"{filename}: storage {key!r} is listed but never used")
            count_bytes = f.read(8)
            if len(count_bytes) < 8:
                raise TorchFormatError(f"{filename} is truncated: storage {key!r} is missing")
            count = int.from_bytes(count_bytes, "little" if little else "big", signed=True)
            if count < 0:
                raise TorchFormatError(f"{filename}: negative size for storage {key!r}")
            nbytes = count * storage.dtype.itemsize
            if nbytes > size - f.tell():
                raise TorchFormatError(f"{filename} is truncated: storage {key!r} needs {nbytes} "
                                       f"bytes, only {size - f.tell()} left")
            data = f.read(nbytes)
            if len(data) < nbytes:
                raise TorchFormatError(f"{filename} is truncated: storage {key!r} needs {nbytes} "
                                       f"bytes, only {len(data)} left")
            raw[key] = data

    def storage_bytes(key: str) -> bytes:
        if key not in raw:
            raise TorchFormatError(f"{filename}: the data of storage {key!r} is missing")
        return raw[key]

    return _Materializer(storage_bytes, little, filename)(obj)


def _check_file(filename: str) -> bytes:
    try:
        with open(filename, "rb") as f:
            head = f.read(512)
    except IsADirectoryError:
        raise TorchFormatError(f"{filename} is a directory, not a PyTorch checkpoint") from None
    if not head:
        raise TorchFormatError(f"{filename} is not a PyTorch checkpoint: the file is empty "
                               f"({_EXPECTED})")
    return head


def load_torch(path: str | os.PathLike[str], *, allow_numpy: bool = False) -> Any:
    """Read a ``torch.save`` file (zip or legacy format) without torch; tensors -> ndarrays.

    Raises :class:`TorchFormatError` (a ValueError) for anything that is not a complete,
    supported checkpoint and :class:`UnsafePickleError` if the pickle asks for anything but
    tensor reconstruction and plain data. ``allow_numpy=True`` additionally admits numpy
    arrays/scalars pickled inside the checkpoint (e.g. ``'best_fid': np.float64(...)``).
    """
    filename = os.fspath(path)
    head = _check_file(filename)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _load_zip(filename, allow_numpy)
    if _is_legacy_start(head):
        return _load_legacy(filename, allow_numpy)
    if head[257:262] == b"ustar":
        raise TorchFormatError(f"{filename} is a tar archive: the tar checkpoint format of "
                               "torch < 0.4 is not supported")
    detail = ("it is a pickle but does not start with torch's magic number"
              if head[:1] == b"\x80" else f"it starts with {head[:8]!r}")
    raise TorchFormatError(f"{filename} is not a PyTorch checkpoint: {_EXPECTED}; {detail}")


# --------------------------------------------------------------------------- TorchScript


class _ScriptClass(NamedTuple):
    parameters: frozenset[str]
    buffers: frozenset[str]
    is_module: bool


_CLASS_RE = re.compile(r"^class\s+(\w+)\s*(?:\((.*)\))?\s*:")
_SLOTS_RE = re.compile(r"^(__parameters__|__buffers__)\s*=\s*(\[.*\])\s*$")


def _parse_script_classes(source: str) -> dict[str, _ScriptClass]:
    """Scan TorchScript source (as text) for each class's parameter/buffer name lists.

    Only statements directly in a top-level class body count (not e.g. in method bodies).
    """
    found: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    body_indent: int | None = None
    for line in source.splitlines():
        if not line.strip():
            continue
        match = _CLASS_RE.match(line)
        if match:
            current = found.setdefault(match.group(1), {
                "__parameters__": [], "__buffers__": [],
                "is_module": "Module" in (match.group(2) or "")})
            body_indent = None
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            current = None
        if current is None:
            continue
        if body_indent is None:
            body_indent = indent
        slots = _SLOTS_RE.match(line.strip()) if indent == body_indent else None
        if slots:
            try:
                names = ast.literal_eval(slots.group(2))
            except (ValueError, SyntaxError):
                names = None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TorchFormatError(f"cannot parse TorchScript line {line.strip()!r}")
            current[slots.group(1)] = names
    return {name: _ScriptClass(frozenset(info["__parameters__"]), frozenset(info["__buffers__"]),
                               info["is_module"]) for name, info in found.items()}


def load_torchscript_params(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Parameters and buffers of a ``torch.jit.save`` archive, keyed like ``state_dict()``.

    Nothing in the archive is executed: ``__torch__.*`` objects become inert attribute holders
    and the class sources in ``code/`` are only scanned for ``__parameters__``/``__buffers__``.
    """
    filename = os.fspath(path)
    head = _check_file(filename)
    if not head.startswith(b"PK\x03\x04"):
        raise TorchFormatError(f"{filename} is not a TorchScript archive: expected a zip "
                               "archive written by torch.jit.save")
    zf, prefix = _open_zip(filename)
    with zf:
        names = set(zf.namelist())
        if not any(n.startswith(f"{prefix}code/") for n in names):
            raise TorchFormatError(f"{filename} is a torch.save checkpoint, not a TorchScript "
                                   "archive (no code/ folder): use load_torch()")
        read = _member_reader(zf, filename)
        little = _zip_little_endian(read, zf, prefix, filename)
        with zf.open(f"{prefix}data.pkl") as member:
            unpickler = _ScriptUnpickler(member, filename)
            root = _unpickle(unpickler, "data.pkl")
        if not isinstance(root, _ScriptObject):
            raise TorchFormatError(f"{filename}: data.pkl does not hold a TorchScript module")

        sources: dict[str, dict[str, _ScriptClass]] = {}

        def script_class(obj: _ScriptObject) -> _ScriptClass:
            module, _, cls = obj.qualified_name.rpartition(".")
            if module not in sources:
                record = f"{prefix}code/{module.replace('.', '/')}.py"
                if record not in names:
                    raise TorchFormatError(f"{filename}: no source record {record!r} for "
                                           f"{obj.qualified_name}")
                sources[module] = _parse_script_classes(read(record).decode("utf-8", "replace"))
            if cls not in sources[module]:
                raise TorchFormatError(f"{filename}: class {obj.qualified_name} is not defined "
                                       "in the archive's code/")
            return sources[module][cls]

        storage_bytes = _zip_storage_reader(zf, prefix, filename, unpickler.storages)
        materialize = _Materializer(storage_bytes, little, filename)
        params: dict[str, np.ndarray] = {}

        def visit(module: _ScriptObject, prefix_: str, depth: int) -> None:
            if depth > 200:
                raise TorchFormatError(f"{filename}: module tree too deep (cycle?)")
            info = script_class(module)
            attributes = getattr(module, "attributes", {})
            # torch lists a module's parameters, then its buffers (each in attribute order),
            # then recurses into its submodules.
            for wanted in (info.parameters, info.buffers):
                for name, value in attributes.items():
                    if name in wanted and value is not None:
                        if not isinstance(value, _Tensor):
                            raise TorchFormatError(f"{filename}: {prefix_}{name} is not a tensor")
                        params[prefix_ + name] = materialize.array(value)
            for name, value in attributes.items():
                if isinstance(value, _ScriptObject) and script_class(value).is_module:
                    visit(value, f"{prefix_}{name}.", depth + 1)

        visit(root, "", 0)
        return params


# --------------------------------------------------------------------------- writing


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
        torch_name = _NUMPY_TO_TORCH.get(array.dtype.name)
        if torch_name is None or array.dtype.hasobject:
            raise TypeError(f"save_torch: {where} has dtype {array.dtype}, which has no torch "
                            f"equivalent (supported: {', '.join(sorted(_NUMPY_TO_TORCH))})")
        key = self._array_keys.get(id(array))
        if key is None:  # the same array object saved twice shares one storage, like torch
            key = str(len(self.storages))
            data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
            self.storages.append((key, data.tobytes()))
            self._array_keys[id(array)] = key
            self._keep_alive.append(array)
        v3 = torch_name in _V3_ONLY
        self._global("torch._utils", "_rebuild_tensor_v3" if v3 else "_rebuild_tensor_v2")
        self.out += b"(("  # MARK args, MARK persistent id
        self._str("storage")
        if v3:
            self._global("torch.storage", "UntypedStorage")
        else:
            storage_class = next(c for c, d in _STORAGE_CLASSES.items() if d == torch_name)
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
