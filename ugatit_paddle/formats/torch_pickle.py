"""Read PyTorch checkpoint files (``torch.save``) without importing PyTorch -- and without trusting them.

Every pickle is read with :class:`~ugatit_paddle.formats.safe_pickle.RestrictedUnpickler`: only the
tensor/parameter rebuild functions, storage-type and dtype markers, ``collections.OrderedDict``
and harmless builtin data constructors are resolved, each to a local stand-in (nothing is
imported). Any other global (``os.system``, ``builtins.eval`` ...) raises
:class:`~ugatit_paddle.formats.safe_pickle.UnsafePickleError` before it could run.

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

*TorchScript* (``torch.jit.save``): the zip format with a module tree; read by :mod:`torchscript`.
Writing the zip format: :mod:`torch_writer`.

Tensors are returned as C-contiguous ``numpy.ndarray`` copies (native byte order); bfloat16
becomes float32. ``torch.nn.Parameter`` becomes a plain array, ``OrderedDict`` stays an
``OrderedDict`` (torch's ``_metadata`` attribute is dropped), ``torch.Size`` becomes a tuple,
``torch.device`` a string and a ``torch.<dtype>`` object a ``numpy.dtype``.
"""

from __future__ import annotations

import collections
import os
import zipfile
import zlib
from collections.abc import Callable
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
STORAGE_CLASSES: dict[str, str] = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "QInt8Storage": "qint8", "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32", "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}

NUMPY_TO_TORCH: dict[str, str] = {
    "float64": "float64", "float32": "float32", "float16": "float16", "int64": "int64",
    "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "complex64": "complex64",
    "complex128": "complex128",
}
V3_ONLY = {"uint16", "uint32", "uint64"}  # no legacy storage class -> UntypedStorage + dtype


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


class TensorRecord(NamedTuple):
    """A tensor whose data is not read yet (legacy files store it after the pickle)."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: _DType
    neg: bool = False
    conj: bool = False


class ScriptObject:
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
                 metadata: Any = None) -> TensorRecord:
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
    return TensorRecord(storage, offset, size, stride, dtype, bool(meta.get("neg")),
                   bool(meta.get("conj")))


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> TensorRecord:
    return _make_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       metadata: Any = None) -> TensorRecord:
    return _make_tensor(storage, storage_offset, size, stride, None, metadata)


def _rebuild_tensor_v3(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any, backward_hooks: Any, dtype: Any,
                       metadata: Any = None) -> TensorRecord:
    return _make_tensor(storage, storage_offset, size, stride, dtype, metadata)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> TensorRecord:
    if not isinstance(data, TensorRecord):
        raise TorchFormatError(f"a Parameter wraps {type(data).__name__} instead of a tensor")
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> TensorRecord:
    # tensors with Python attributes / Parameter subclasses: func is one of our rebuilders
    if not isinstance(func, SafeCallable) or not isinstance(new_type, _TensorType) or not \
            isinstance(args, tuple):
        raise TorchFormatError("unsupported torch._tensor._rebuild_from_type_v2 call")
    result = func(*args)
    if not isinstance(result, TensorRecord):
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
    for cls, dtype in STORAGE_CLASSES.items():
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


class TorchUnpickler(RestrictedUnpickler):
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


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # Python 2 checkpoints
        return value.decode("ascii", "replace")
    return value if isinstance(value, str) else repr(value)


# --------------------------------------------------------------------------- materialising


def _tensor_to_array(t: TensorRecord, raw: bytes | memoryview, little_endian: bool,
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


class Materializer:
    """Walks an unpickled object, replacing stand-ins by plain Python / numpy values."""

    def __init__(self, storage_bytes: Callable[[str], bytes | memoryview], little_endian: bool,
                 filename: str) -> None:
        self._storage_bytes = storage_bytes
        self._little = little_endian
        self._filename = filename
        self._memo: dict[int, Any] = {}
        self._building: set[int] = set()

    def array(self, t: TensorRecord) -> np.ndarray:
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
        if isinstance(obj, TensorRecord):
            return self.array(obj)
        if isinstance(obj, _Storage):  # a bare storage was saved: return it as a 1-D array
            if id(obj) not in self._memo:
                self._memo[id(obj)] = _tensor_to_array(
                    TensorRecord(obj, 0, (obj.numel,), (1,), obj.dtype),
                    self._storage_bytes(obj.key), self._little, self._filename)
            return self._memo[id(obj)]
        if isinstance(obj, _DType):
            return obj.numpy_dtype() if obj.stored else f"torch.{obj.name}"
        if isinstance(obj, (_StorageType, _TensorType)):
            return obj.qualname
        if isinstance(obj, SafeCallable):
            return repr(obj)
        if isinstance(obj, ScriptObject):
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


def member_reader(zf: zipfile.ZipFile, filename: str) -> Callable[[str], bytes]:
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


def zip_storage_reader(zf: zipfile.ZipFile, prefix: str, filename: str,
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


def open_zip(filename: str) -> tuple[zipfile.ZipFile, str]:
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


def unpickle(unpickler: RestrictedUnpickler, what: str) -> Any:
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


def zip_little_endian(read: Callable[[str], bytes], zf: zipfile.ZipFile, prefix: str,
                       filename: str) -> bool:
    if f"{prefix}byteorder" not in zf.NameToInfo:
        return True
    order = read(f"{prefix}byteorder").strip()
    if order not in (b"little", b"big"):
        raise TorchFormatError(f"{filename}: unknown byteorder record {order!r}")
    return order == b"little"


def _load_zip(filename: str, allow_numpy: bool) -> Any:
    zf, prefix = open_zip(filename)
    with zf:
        if any(n.startswith(f"{prefix}code/") for n in zf.namelist()):
            raise TorchFormatError(f"{filename} is a TorchScript archive (torch.jit.save), not a "
                                   "torch.save checkpoint: use load_torchscript_params()")
        read = member_reader(zf, filename)
        little = zip_little_endian(read, zf, prefix, filename)
        with zf.open(f"{prefix}data.pkl") as member:
            unpickler = TorchUnpickler(member, torch_allowlist(allow_numpy=allow_numpy),
                                        filename)
            obj = unpickle(unpickler, "data.pkl")
        storage_bytes = zip_storage_reader(zf, prefix, filename, unpickler.storages)
        return Materializer(storage_bytes, little, filename)(obj)


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
            return unpickle(RestrictedUnpickler(f, {}, filename=filename, encoding="utf-8"), what)

        if plain("the magic number") != LEGACY_MAGIC_NUMBER:
            raise TorchFormatError(f"{filename} is not a PyTorch checkpoint: {_EXPECTED}; it is a "
                                   "pickle starting with a different number")
        version = plain("the protocol version")
        if version != LEGACY_PROTOCOL_VERSION:
            raise TorchFormatError(f"{filename}: unsupported legacy torch protocol version "
                                   f"{version!r} (expected {LEGACY_PROTOCOL_VERSION})")
        sys_info = plain("the sys_info header")
        little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
        unpickler = TorchUnpickler(f, torch_allowlist(allow_numpy=allow_numpy), filename)
        obj = unpickle(unpickler, "the checkpoint object")
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

    return Materializer(storage_bytes, little, filename)(obj)


def check_file(filename: str) -> bytes:
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
    head = check_file(filename)
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
