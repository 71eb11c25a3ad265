"""Read the parameters of a TorchScript archive (``torch.jit.save``) without importing PyTorch or running it.

The archive is the zip format of :mod:`torch_pickle`, but ``data.pkl`` holds the module tree as
``__torch__.*`` objects and ``code/`` holds their class definitions (TorchScript source, which we only
scan as text for the ``__parameters__`` / ``__buffers__`` lists -- never executed).
"""

from __future__ import annotations

import ast
import os
import re
from typing import IO, Any, NamedTuple

import numpy as np

from .torch_pickle import (
    Materializer,
    ScriptObject,
    TensorRecord,
    TorchFormatError,
    TorchUnpickler,
    check_file,
    member_reader,
    open_zip,
    torch_allowlist,
    unpickle,
    zip_little_endian,
    zip_storage_reader,
)

__all__ = ["load_torchscript_params"]


def _torchscript_allowlist() -> dict[tuple[str, str], object]:
    allow = torch_allowlist()

    def same(value: Any, *_: Any) -> Any:  # build_intlist & co. only tag a container's type
        return value

    for name in ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
                 "restore_type_tag"):
        allow[("torch.jit._pickle", name)] = same
    return allow


class _ScriptUnpickler(TorchUnpickler):
    """Also maps every ``__torch__.*`` class to a fresh :class:`ScriptObject` subclass."""

    def __init__(self, file: IO[bytes], filename: str) -> None:
        super().__init__(file, _torchscript_allowlist(), filename)
        self._classes: dict[str, type[ScriptObject]] = {}

    def lookup_global(self, module: str, name: str) -> object:
        if (module == "__torch__" or module.startswith("__torch__.")) and name.isidentifier():
            qualname = f"{module}.{name}"
            if qualname not in self._classes:
                self._classes[qualname] = type(name, (ScriptObject,), {
                    "__slots__": (), "qualified_name": qualname, "__module__": __name__})
            return self._classes[qualname]
        return super().lookup_global(module, name)


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
    head = check_file(filename)
    if not head.startswith(b"PK\x03\x04"):
        raise TorchFormatError(f"{filename} is not a TorchScript archive: expected a zip "
                               "archive written by torch.jit.save")
    zf, prefix = open_zip(filename)
    with zf:
        names = set(zf.namelist())
        if not any(n.startswith(f"{prefix}code/") for n in names):
            raise TorchFormatError(f"{filename} is a torch.save checkpoint, not a TorchScript "
                                   "archive (no code/ folder): use load_torch()")
        read = member_reader(zf, filename)
        little = zip_little_endian(read, zf, prefix, filename)
        with zf.open(f"{prefix}data.pkl") as member:
            unpickler = _ScriptUnpickler(member, filename)
            root = unpickle(unpickler, "data.pkl")
        if not isinstance(root, ScriptObject):
            raise TorchFormatError(f"{filename}: data.pkl does not hold a TorchScript module")

        sources: dict[str, dict[str, _ScriptClass]] = {}

        def script_class(obj: ScriptObject) -> _ScriptClass:
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

        storage_bytes = zip_storage_reader(zf, prefix, filename, unpickler.storages)
        materialize = Materializer(storage_bytes, little, filename)
        params: dict[str, np.ndarray] = {}

        def visit(module: ScriptObject, prefix_: str, depth: int) -> None:
            if depth > 200:
                raise TorchFormatError(f"{filename}: module tree too deep (cycle?)")
            info = script_class(module)
            attributes = getattr(module, "attributes", {})
            # torch lists a module's parameters, then its buffers (each in attribute order),
            # then recurses into its submodules.
            for wanted in (info.parameters, info.buffers):
                for name, value in attributes.items():
                    if name in wanted and value is not None:
                        if not isinstance(value, TensorRecord):
                            raise TorchFormatError(f"{filename}: {prefix_}{name} is not a tensor")
                        params[prefix_ + name] = materialize.array(value)
            for name, value in attributes.items():
                if isinstance(value, ScriptObject) and script_class(value).is_module:
                    visit(value, f"{prefix_}{name}.", depth + 1)

        visit(root, "", 0)
        return params

