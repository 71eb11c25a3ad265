"""Allowlist-based ("restricted") unpickling and a safe reader for ``paddle.save`` files.

``pickle.load`` on an untrusted file can run arbitrary code: a pickle may name any
importable global (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) and call it.
:class:`RestrictedUnpickler` resolves a global only if the exact ``(module, name)`` pair is
on an explicit allowlist; anything else raises :class:`UnsafePickleError` while the global
is being *looked up*, i.e. before anything could be called.

Two further precautions are taken because pickle's ``BUILD`` opcode can set attributes on
any object it is handed:

* plain Python functions on an allowlist are handed out wrapped in an immutable
  :class:`SafeCallable` (so a crafted file cannot e.g. rewrite their ``__defaults__``);
* allowlists are built fresh for every load (no module-level mutable state is shared
  between loads).

:func:`load_paddle_file` reads what ``paddle.save`` (PaddlePaddle 2.1 ... 3.3) writes for
dicts/lists of tensors, numpy arrays and Python scalars: a protocol 2-4 pickle in which

* the values of a *flat* ``state_dict`` (``layer.state_dict()``, most
  ``optimizer.state_dict()``) are plain ``numpy.ndarray`` objects, plus a
  ``"StructuredToParameterName@@"`` name table;
* any other ``paddle.Tensor`` (e.g. nested in a sub-dict) is reduced to
  ``builtins.tuple(((tensor.name, ndarray),))``, i.e. a ``(name, ndarray)`` 2-tuple;
* a raw ``DenseTensor`` is reduced to ``builtins.eval('data', {'data': ndarray})`` -- we
  never call the real ``eval``: a stand-in accepts exactly that form and returns the array.

The result mirrors ``paddle.load(path, return_numpy=True)``: tensors come back as
``numpy.ndarray``, every ``(str, ndarray)`` 2-tuple is unwrapped to its array (exactly
as paddle does it, so a genuine user tuple of that shape is unwrapped too), the name table
is dropped (unless ``keep_name_table=True``) and the ``"UnpackBigParamInfor@@"`` slices
that protocol 2/3 files use for >1 GiB tensors are re-assembled.
"""

from __future__ import annotations

import collections
import functools
import os
import pickle
import types
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np

__all__ = [
    "CheckpointFormatError",
    "RestrictedUnpickler",
    "SafeCallable",
    "UnsafePickleError",
    "builtins_allowlist",
    "load_paddle_file",
    "numpy_allowlist",
    "paddle_allowlist",
    "restricted_load",
]

Allowlist = Mapping[tuple[str, str], object]

PADDLE_NAME_TABLE_KEY = "StructuredToParameterName@@"
PADDLE_BIG_PARAM_KEY = "UnpackBigParamInfor@@"  # sic, spelled like this by paddle


class UnsafePickleError(ValueError):
    """A pickle asked for a global that the loader does not allow. Nothing was executed."""

    def __init__(self, message: str, *, module: str | None = None, name: str | None = None,
                 filename: str | None = None) -> None:
        super().__init__(message)
        self.module = module
        self.name = name
        self.filename = filename

    @classmethod
    def forbidden_global(cls, module: str, name: str, filename: str) -> UnsafePickleError:
        return cls(
            f"{filename}: refusing to load: the pickle asks for the global '{module}.{name}', "
            "which is not on this loader's allowlist (it could run arbitrary code). "
            "Nothing from the file was executed.",
            module=module, name=name, filename=filename,
        )


class CheckpointFormatError(ValueError):
    """The file is not in the expected format (not a pickle, truncated, wrong kind of file)."""


class SafeCallable:
    """An immutable wrapper around a function handed to the unpickler.

    Pickle's BUILD opcode sets attributes on whatever object is on the stack; on a bare
    function that would let a crafted file mutate module-level objects. This wrapper has no
    ``__dict__`` and refuses ``setattr``, so BUILD on it always fails.
    """

    __slots__ = ("_fn", "_qualname")

    def __init__(self, fn: Callable[..., Any], qualname: str | None = None) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_qualname", qualname or getattr(fn, "__qualname__", repr(fn)))

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{self._qualname} (allowlisted pickle global) is read-only")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{self._qualname} (allowlisted pickle global) is read-only")

    def __repr__(self) -> str:
        return f"<SafeCallable {self._qualname}>"


def _harden(obj: object, qualname: str) -> object:
    if isinstance(obj, (types.FunctionType, types.MethodType, functools.partial)):
        return SafeCallable(obj, qualname)
    return obj


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only explicitly allowlisted globals.

    ``allowlist`` maps ``(module, name)`` -- exactly as written in the pickle -- to the object
    to use instead of importing anything. Python functions in it are wrapped in
    :class:`SafeCallable`. Subclasses may override :meth:`lookup_global` for name patterns
    (it must never import anything); unknown globals raise :class:`UnsafePickleError`.
    """

    def __init__(self, file: IO[bytes], allowlist: Allowlist, *, filename: str = "<pickle>",
                 encoding: str = "ASCII",
                 persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file, encoding=encoding)
        self.filename = filename
        self._allowlist: dict[tuple[str, str], object] = {
            key: _harden(value, f"{key[0]}.{key[1]}") for key, value in allowlist.items()
        }
        if persistent_load is not None:
            self.persistent_load = persistent_load

    def lookup_global(self, module: str, name: str) -> object:
        """Return the stand-in for ``module.name``, or raise :class:`UnsafePickleError`."""
        try:
            return self._allowlist[(module, name)]
        except KeyError:
            raise UnsafePickleError.forbidden_global(module, name, self.filename) from None

    def find_class(self, module: str, name: str) -> object:  # called by pickle for GLOBAL
        return self.lookup_global(module, name)


def restricted_load(file: IO[bytes], allowlist: Allowlist, *, filename: str = "<pickle>",
                    encoding: str = "ASCII") -> Any:
    """Unpickle one object from ``file`` admitting only ``allowlist`` globals."""
    return RestrictedUnpickler(file, allowlist, filename=filename, encoding=encoding).load()


# --------------------------------------------------------------------------- allowlists


def _codecs_encode_latin1(text: Any, encoding: Any = "utf-8") -> bytes:
    # Python 3 pickles ``bytes`` at protocol <= 2 as ``_codecs.encode(str, 'latin1')``.
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in (
            "latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickleError("only _codecs.encode(<str>, 'latin1') is allowed in a pickle "
                                "(that is how bytes are pickled); nothing was executed")
    return text.encode("latin-1")


def _bytes_like(kind: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        # bytes()/bytearray() from data only: refuse bytes(10**12)-style allocation bombs
        if any(isinstance(a, int) for a in args[:1]):
            raise UnsafePickleError(f"refusing {kind.__name__}(<int>) in a pickle")
        return kind(*args)

    build.__qualname__ = kind.__name__
    return build


def builtins_allowlist() -> dict[tuple[str, str], object]:
    """Harmless data constructors (no code execution, no attribute access)."""
    constructors: dict[str, object] = {
        "tuple": tuple, "list": list, "dict": dict, "set": set, "frozenset": frozenset,
        "complex": complex, "bytes": _bytes_like(bytes), "bytearray": _bytes_like(bytearray),
    }
    allow: dict[tuple[str, str], object] = {}
    for name, obj in constructors.items():
        allow[("builtins", name)] = obj
        allow[("__builtin__", name)] = obj  # Python 2 spelling
    allow[("_codecs", "encode")] = _codecs_encode_latin1
    allow[("collections", "OrderedDict")] = collections.OrderedDict
    return allow


def numpy_allowlist() -> dict[tuple[str, str], object]:
    """What pickled ``numpy.ndarray`` / numpy scalars / dtypes need (numpy 1.x and 2.x names).

    The objects are taken from numpy's own ``__reduce__`` output, so nothing is imported by
    name.
    """
    reconstruct = np.empty(0).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct
    frombuffer = np.empty(0).__reduce_ex__(5)[0]  # numpy.(_)core.numeric._frombuffer
    scalar = np.float32(0).__reduce__()[0]  # numpy.(_)core.multiarray.scalar
    allow: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for core in ("numpy.core", "numpy._core"):
        allow[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allow[(f"{core}.multiarray", "scalar")] = scalar
        allow[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allow


def _paddle_dense_tensor_eval(filename: str) -> Callable[..., Any]:
    def dense_tensor(expression: Any, namespace: Any = None) -> np.ndarray:
        # paddle reduces a DenseTensor to eval('data', {'data': ndarray}); accept only that.
        if (expression == "data" and isinstance(namespace, dict) and list(namespace) == ["data"]
                and isinstance(namespace["data"], np.ndarray)):
            return namespace["data"]
        raise UnsafePickleError(
            f"{filename}: refusing to load: the pickle calls builtins.eval with something other "
            "than paddle's DenseTensor encoding eval('data', {'data': <ndarray>}). "
            "Nothing from the file was executed.",
            module="builtins", name="eval", filename=filename)

    return dense_tensor


def paddle_allowlist(filename: str = "<pickle>") -> dict[tuple[str, str], object]:
    """Everything a ``paddle.save`` file of tensors/arrays/scalars/containers needs."""
    allow = builtins_allowlist()
    allow.update(numpy_allowlist())
    dense_tensor = _paddle_dense_tensor_eval(filename)
    allow[("builtins", "eval")] = dense_tensor
    allow[("__builtin__", "eval")] = dense_tensor  # protocol 2 spelling
    return allow


# --------------------------------------------------------------------------- paddle files


def _describe_start(head: bytes) -> str:
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive (a PyTorch checkpoint? convert it with tools/convert_torch.py)"
    if len(head) >= 9 and head[8:9] == b"{":
        return "it looks like a safetensors file"
    return f"it starts with {head[:8]!r}"


def _is_tensor_tuple(obj: Any) -> bool:
    return (type(obj) is tuple and len(obj) == 2 and isinstance(obj[0], str)
            and isinstance(obj[1], np.ndarray))


def _unwrap_tensor_tuples(obj: Any, _active: set[int] | None = None) -> Any:
    """Replace paddle's ``(name, ndarray)`` tensor encoding by the array, recursively.

    Dicts and lists are updated in place (as paddle.load does); ``_active`` guards against
    self-referencing containers.
    """
    if _is_tensor_tuple(obj):
        return obj[1]
    kind = type(obj)
    if kind not in (dict, collections.OrderedDict, list, tuple, set, frozenset):
        return obj
    active = set() if _active is None else _active
    key = id(obj)
    if key in active:
        return obj
    active.add(key)
    try:
        if kind is list:
            obj[:] = [_unwrap_tensor_tuples(v, active) for v in obj]
        elif kind in (dict, collections.OrderedDict):
            for k in list(obj):
                obj[k] = _unwrap_tensor_tuples(obj[k], active)
        else:
            obj = kind(_unwrap_tensor_tuples(v, active) for v in obj)
    finally:
        active.discard(key)
    return obj


def _pack_big_params(obj: dict[Any, Any], filename: str) -> dict[Any, Any]:
    """Undo paddle's splitting of huge arrays for pickle protocol 2/3 ("UnpackBigParamInfor@@")."""
    info = obj.pop(PADDLE_BIG_PARAM_KEY, None)
    if info is None:
        return obj
    try:
        for key, value in info.items():
            parts = [np.asarray(obj.pop(part)).ravel() for part in value["slices"]]
            obj[key] = np.concatenate(parts).reshape(value["OriginShape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointFormatError(
            f"{filename}: malformed {PADDLE_BIG_PARAM_KEY!r} table ({exc!r})") from exc
    return obj


def load_paddle_file(path: str | os.PathLike[str], *, keep_name_table: bool = False) -> Any:
    """Safely read a file written by ``paddle.save`` (``.pdparams``, ``.pdopt``, ...).

    Returns what ``paddle.load(path, return_numpy=True)`` would: plain Python containers with
    ``numpy.ndarray`` wherever a tensor was saved (see the module docstring). Only numpy
    array/scalar/dtype reconstruction, ``collections.OrderedDict`` and harmless builtin data
    constructors are admitted; anything else raises :class:`UnsafePickleError` before it runs.
    Raises :class:`CheckpointFormatError` if the file is not a (complete) pickle.
    """
    filename = os.fspath(path)
    with open(filename, "rb") as f:
        head = f.read(16)
        if len(head) < 2 or head[0] != 0x80 or not 2 <= head[1] <= 5:
            raise CheckpointFormatError(
                f"{filename} is not a paddle.save file: expected a pickle stream (protocol 2-4, "
                f"first byte 0x80) but {_describe_start(head)}")
        f.seek(0)
        unpickler = RestrictedUnpickler(f, paddle_allowlist(filename), filename=filename,
                                        encoding="latin1")
        try:
            obj = unpickler.load()
        except (UnsafePickleError, CheckpointFormatError):
            raise
        except Exception as exc:  # EOFError, UnpicklingError, struct errors, ...
            raise CheckpointFormatError(
                f"{filename} is truncated or corrupt: could not unpickle it as a paddle.save "
                f"file ({type(exc).__name__}: {exc})") from exc

    if isinstance(obj, dict):
        obj = _pack_big_params(obj, filename)
        if PADDLE_NAME_TABLE_KEY in obj:  # flat state_dict: values already are ndarrays
            if not keep_name_table:
                del obj[PADDLE_NAME_TABLE_KEY]
            return obj
    return _unwrap_tensor_tuples(obj)
