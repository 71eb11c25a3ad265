"""CPU convolutions and padding by oneDNN, the library PyTorch's CPU convolutions use, called through its C API.

Paddle's dynamic mode runs its own CPU convolution (im2col and one MKL matrix product) and never its oneDNN
kernels, yet every Paddle CPU wheel ships oneDNN 3.x (`paddle/libs/libdnnl.so.3`) for Paddle Inference. This
module binds that library with `ctypes` and runs float32 convolutions and transposed convolutions (forward, input
gradient, weight and bias gradients) as oneDNN primitives in a `PyLayer`: 1.3-3.9x faster than Paddle's at the
generator's shapes (2 threads, Intel Xeon; `cpu_kernels` says where Paddle stays faster), the same values to
float32 rounding (about 1e-6 relative). Reflection and edge padding run as strided oneDNN copies (`PadPlan`),
multi-threaded where Paddle's `gather` is not.

- Tensors stay Paddle tensors in NCHW / OIHW. Each primitive picks its own blocked layout; plain tensors are
  reordered into it and back. The blocked copies live in three buffers shared by every convolution, grown to the
  largest size needed: memory grows by about three activations and oneDNN's own scratchpad.
- A `ConvPlan` (primitives and reorders for one input shape, weight shape, stride, padding and kind) is built at
  the first call with those and kept (at most `MAX_PLANS`, least recently used dropped).
- oneDNN's CPU primitives are deterministic for a given thread count: runs and resumes repeat exactly.
- `available()` is False (and `cpu_kernels` keeps Paddle's convolution) when the library is missing, is not
  oneDNN 3.x or fails to start, and when `UGATIT_ONEDNN=0` is set: the switch for comparisons and the way out
  should a oneDNN release compute something wrong.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import glob
import math
import os
import threading
from typing import Any

import numpy as np
import paddle

ENV_SWITCH = "UGATIT_ONEDNN"  # "0" turns this module off (Paddle's own convolutions and padding run instead)
MAX_PLANS = 128

# The parts of oneDNN 3.x's C API used here (include/oneapi/dnnl/dnnl_types.h, dnnl_common_types.h).
_F32, _FORMAT_ANY = 3, 1
_CPU_ENGINE, _IN_ORDER_STREAM = 1, 1
_FORWARD_TRAINING, _CONVOLUTION_DIRECT, _DECONVOLUTION_DIRECT = 64, 0x1, 0xA
_QUERY_SRC, _QUERY_DIFF_SRC, _QUERY_WEIGHTS, _QUERY_DIFF_WEIGHTS, _QUERY_DST, _QUERY_DIFF_DST = 129, 130, 131, 132, 133, 134
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS, _ARG_BIAS = 1, 17, 33, 41
_ARG_DIFF_SRC, _ARG_DIFF_DST, _ARG_DIFF_WEIGHTS, _ARG_DIFF_BIAS = 129, 145, 161, 169
_SAME_TYPE = 0  # dnnl_data_type_undef: a sum post-op in the destination's type
_ALIGNMENT = 64  # bytes

_P = ctypes.c_void_p
_PP = ctypes.POINTER(_P)
_Dims = ctypes.c_int64 * 12  # dnnl_dims_t
_I, _U, _SIZE = ctypes.c_int, ctypes.c_uint, ctypes.c_size_t


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _P)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int)]


_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "dnnl_version": ([], ctypes.POINTER(_Version)),
    "dnnl_engine_create": ([_PP, _I, _SIZE], _I),
    "dnnl_stream_create": ([_PP, _P, _U], _I),
    "dnnl_memory_desc_create_with_tag": ([_PP, _I, _Dims, _I, _I], _I),
    "dnnl_memory_desc_create_with_strides": ([_PP, _I, _Dims, _I, _Dims], _I),
    "dnnl_memory_desc_destroy": ([_P], _I),
    "dnnl_memory_desc_equal": ([_P, _P], _I),
    "dnnl_memory_desc_get_size": ([_P], _SIZE),
    "dnnl_memory_create": ([_PP, _P, _P, _P], _I),
    "dnnl_memory_set_data_handle": ([_P, _P], _I),
    "dnnl_memory_destroy": ([_P], _I),
    "dnnl_primitive_desc_query_md": ([_P, _I, _I], _P),
    "dnnl_primitive_desc_destroy": ([_P], _I),
    "dnnl_primitive_create": ([_PP, _P], _I),
    "dnnl_primitive_execute": ([_P, _P, _I, _P], _I),
    "dnnl_primitive_destroy": ([_P], _I),
    "dnnl_reorder_primitive_desc_create": ([_PP, _P, _P, _P, _P, _P], _I),
    "dnnl_primitive_attr_create": ([_PP], _I),
    "dnnl_primitive_attr_destroy": ([_P], _I),
    "dnnl_primitive_attr_set_post_ops": ([_P, _P], _I),
    "dnnl_post_ops_create": ([_PP], _I),
    "dnnl_post_ops_destroy": ([_P], _I),
    "dnnl_post_ops_append_sum": ([_P, ctypes.c_float, ctypes.c_int32, _I], _I),
    **{f"dnnl_{kind}_{step}_primitive_desc_create": signature for kind in ("convolution", "deconvolution")
       for step, signature in (
           ("forward", ([_PP, _P, _I, _I, _P, _P, _P, _P, _Dims, _Dims, _Dims, _Dims, _P], _I)),
           ("backward_data", ([_PP, _P, _I, _P, _P, _P, _Dims, _Dims, _Dims, _Dims, _P, _P], _I)),
           ("backward_weights", ([_PP, _P, _I, _P, _P, _P, _P, _Dims, _Dims, _Dims, _Dims, _P, _P], _I)))},
}


class OneDNNError(RuntimeError):
    pass


class _Library:
    """libdnnl with typed functions, one CPU engine and one in-order stream."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        for name, (argtypes, restype) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.argtypes, function.restype = argtypes, restype
        self.lib = lib
        version = lib.dnnl_version().contents
        self.version = (version.major, version.minor, version.patch)
        if version.major != 3:
            raise OneDNNError(f"oneDNN {version.major}.{version.minor} found, 3.x needed")
        self.engine, self.stream = _P(), _P()
        self.check(lib.dnnl_engine_create(ctypes.byref(self.engine), _CPU_ENGINE, 0), "engine")
        self.check(lib.dnnl_stream_create(ctypes.byref(self.stream), self.engine, _IN_ORDER_STREAM), "stream")

    @staticmethod
    def check(status: int, what: str) -> None:
        if status != 0:
            raise OneDNNError(f"oneDNN: creating or running the {what} failed (status {status}); "
                              f"export {ENV_SWITCH}=0 to compute with Paddle's own kernels instead")

    def memory_desc(self, shape: list[int], strides: list[int] | None = None) -> _P:
        """A float32 descriptor of logical `shape`: laid out by `strides` (in elements), or left to the primitive."""
        desc = _P()
        if strides is None:
            status = self.lib.dnnl_memory_desc_create_with_tag(ctypes.byref(desc), len(shape), _Dims(*shape), _F32,
                                                               _FORMAT_ANY)
        else:
            status = self.lib.dnnl_memory_desc_create_with_strides(ctypes.byref(desc), len(shape), _Dims(*shape), _F32,
                                                                   _Dims(*strides))
        self.check(status, "memory descriptor")
        return desc

    def memory(self, desc: _P) -> _P:
        """A memory object without a buffer (`set_data_handle` binds one before each use)."""
        memory = _P()
        self.check(self.lib.dnnl_memory_create(ctypes.byref(memory), desc, self.engine, None), "memory")
        return memory

    def primitive(self, desc: _P, what: str) -> _P:
        primitive = _P()
        self.check(self.lib.dnnl_primitive_create(ctypes.byref(primitive), desc), what)
        return primitive

    def reorder(self, source: _P, destination: _P, attr: _P | None = None) -> _P:
        """A reorder primitive from memory descriptor `source` to `destination` (with `attr`'s post-ops)."""
        descriptor = _P()
        self.check(self.lib.dnnl_reorder_primitive_desc_create(
            ctypes.byref(descriptor), source, self.engine, destination, self.engine, attr), "reorder")
        try:
            return self.primitive(descriptor, "reorder")
        finally:
            self.lib.dnnl_primitive_desc_destroy(descriptor)

    def bind(self, memory: _P, address: int) -> _P:
        """Point `memory` at the buffer at `address`; returns `memory`."""
        self.check(self.lib.dnnl_memory_set_data_handle(memory, address), "memory binding")
        return memory

    def execute(self, primitive: _P, args: list[tuple[int, _P]], what: str) -> None:
        array = (_ExecArg * len(args))(*(_ExecArg(arg, memory) for arg, memory in args))
        self.check(self.lib.dnnl_primitive_execute(primitive, self.stream, len(args), ctypes.cast(array, _P)), what)


def library_path() -> str | None:
    """Path of the oneDNN library shipped with Paddle, or None."""
    found = sorted(glob.glob(os.path.join(os.path.dirname(paddle.__file__), "libs", "libdnnl.so*")))
    return found[0] if found else None


@functools.lru_cache(maxsize=1)
def _library() -> _Library | None:
    path = library_path()
    if path is None:
        return None
    try:
        return _Library(path)
    except (OSError, AttributeError, OneDNNError):  # unloadable, missing functions, wrong version
        return None


def available() -> bool:
    """Whether convolutions can run through oneDNN here (see the module docstring)."""
    return os.environ.get(ENV_SWITCH, "1") != "0" and _library() is not None


def version() -> tuple[int, int, int] | None:
    """oneDNN's (major, minor, patch), or None when it cannot be used."""
    library = _library()
    return library.version if library is not None else None


class _Scratch:
    """Three 64-byte aligned buffers, grown on demand, shared by every plan: a convolution reorders at
    most one source-like, one weight-like and one destination-like tensor at a time."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray | None] = [None, None, None]

    def pointer(self, slot: int, nbytes: int) -> int:
        array = self.arrays[slot]
        if array is None or array.nbytes < nbytes + _ALIGNMENT:
            array = self.arrays[slot] = np.empty(nbytes + _ALIGNMENT, dtype=np.uint8)
        address = array.ctypes.data
        return address + (-address) % _ALIGNMENT


_SOURCE, _WEIGHT, _DESTINATION = 0, 1, 2
_scratch = _Scratch()
# Plans and scratch buffers are shared: one computation at a time (threads of a served demo, for instance).
_lock = threading.RLock()


class _Port:
    """A plain tensor (NCHW / OIHW) as one argument of a primitive: the primitive's own layout when it differs,
    reached by a reorder into (`into=True`, inputs) or out of (`into=False`, outputs) a scratch buffer."""

    def __init__(self, library: _Library, plain: _P, chosen: _P, into: bool, slot: int) -> None:
        lib = library.lib
        self.library, self.slot, self.into = library, slot, into
        self.plain = library.memory(plain)
        self.reorder = None
        if lib.dnnl_memory_desc_equal(plain, chosen):
            self.inner = self.plain
            return
        self.inner = library.memory(chosen)
        self.inner_bytes = lib.dnnl_memory_desc_get_size(chosen)
        self.reorder = library.reorder(plain, chosen) if into else library.reorder(chosen, plain)

    def bind(self, tensor: paddle.Tensor, reorder: bool = True) -> _P:
        """Point at `tensor`'s data; returns the memory the primitive should use (for an input, reordered into its
        scratch buffer unless `reorder` is False: the buffer already holds it)."""
        self.library.bind(self.plain, tensor.data_ptr())
        if self.reorder is None:
            return self.plain
        self.library.bind(self.inner, _scratch.pointer(self.slot, self.inner_bytes))
        if self.into and reorder:
            self.library.execute(self.reorder, [(_ARG_SRC, self.plain), (_ARG_DST, self.inner)], "reorder")
        return self.inner

    def write_back(self) -> None:
        """For an output: reorder the primitive's result into the plain tensor."""
        if self.reorder is not None and not self.into:
            self.library.execute(self.reorder, [(_ARG_SRC, self.inner), (_ARG_DST, self.plain)], "reorder")

    def destroy(self) -> None:
        lib = self.library.lib
        if self.reorder is not None:
            lib.dnnl_primitive_destroy(self.reorder)
            lib.dnnl_memory_destroy(self.inner)
        lib.dnnl_memory_destroy(self.plain)


def dense_strides(shape: list[int]) -> list[int]:
    """Strides (in elements) of a contiguous row-major tensor of `shape`."""
    return [math.prod(shape[i + 1:]) for i in range(len(shape))]


class ConvPlan:
    """Forward, input-gradient and weight-gradient primitives of a convolution x [N, C_in, H, W] -> y
    [N, C_out, H', W'] with bias [C_out] or None, the same stride and zero padding on both axes:
    - `transposed=False`: conv2d, weight [C_out, C_in, k, k], H' = (H + 2 padding - k) // stride + 1;
    - `transposed=True`: conv2d_transpose, weight [C_in, C_out, k, k] (Paddle's layout),
      H' = (H - 1) * stride - 2 padding + k."""

    def __init__(self, library: _Library, x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: int,
                 padding: int, transposed: bool, bias: bool) -> None:
        n, _, h, w = x_shape
        if transposed:
            c_in, c_out, k, _ = weight_shape
            out_h, out_w = [(size - 1) * stride - 2 * padding + k for size in (h, w)]
            # oneDNN's deconvolution weight is logically [C_out, C_in, k, k]; Paddle stores it [C_in, C_out, k, k]
            weight_dims, weight_strides = [c_out, c_in, k, k], [k * k, c_out * k * k, k, 1]
        else:
            c_out, c_in, k, _ = weight_shape
            out_h, out_w = [(size + 2 * padding - k) // stride + 1 for size in (h, w)]
            weight_dims, weight_strides = list(weight_shape), dense_strides(list(weight_shape))
        self.library = library
        self.x_shape, self.weight_shape, self.out_shape = list(x_shape), list(weight_shape), [n, c_out, out_h, out_w]
        lib = library.lib
        plain = {"x": library.memory_desc(self.x_shape, dense_strides(self.x_shape)),
                 "w": library.memory_desc(weight_dims, weight_strides),
                 "y": library.memory_desc(self.out_shape, dense_strides(self.out_shape)),
                 "b": library.memory_desc([c_out], [1])}
        free = {"x": library.memory_desc(self.x_shape), "w": library.memory_desc(weight_dims),
                "y": library.memory_desc(self.out_shape)}
        bias_desc = plain["b"] if bias else None
        geometry = (_Dims(stride, stride), _Dims(0, 0), _Dims(padding, padding), _Dims(padding, padding))
        kind, algorithm = ("deconvolution", _DECONVOLUTION_DIRECT) if transposed else ("convolution", _CONVOLUTION_DIRECT)
        self.ports: list[_Port] = []
        self.primitives: list[_P] = []
        descriptors: list[_P] = []
        try:
            forward = _P()
            library.check(getattr(lib, f"dnnl_{kind}_forward_primitive_desc_create")(
                ctypes.byref(forward), library.engine, _FORWARD_TRAINING, algorithm,
                free["x"], free["w"], bias_desc, free["y"], *geometry, None), kind)
            descriptors.append(forward)
            backward_data = _P()
            library.check(getattr(lib, f"dnnl_{kind}_backward_data_primitive_desc_create")(
                ctypes.byref(backward_data), library.engine, algorithm,
                free["x"], free["w"], free["y"], *geometry, forward, None), f"{kind} input gradient")
            descriptors.append(backward_data)
            backward_weights = _P()
            library.check(getattr(lib, f"dnnl_{kind}_backward_weights_primitive_desc_create")(
                ctypes.byref(backward_weights), library.engine, algorithm,
                free["x"], free["w"], bias_desc, free["y"], *geometry, forward, None), f"{kind} weight gradient")
            descriptors.append(backward_weights)

            def port(descriptor: _P, name: str, query: int, into: bool, slot: int) -> _Port:
                chosen = lib.dnnl_primitive_desc_query_md(descriptor, query, 0)
                self.ports.append(_Port(library, plain[name], chosen, into, slot))
                return self.ports[-1]

            self.forward_ports = (port(forward, "x", _QUERY_SRC, True, _SOURCE),
                                  port(forward, "w", _QUERY_WEIGHTS, True, _WEIGHT),
                                  port(forward, "y", _QUERY_DST, False, _DESTINATION))
            self.data_ports = (port(backward_data, "y", _QUERY_DIFF_DST, True, _DESTINATION),
                               port(backward_data, "w", _QUERY_WEIGHTS, True, _WEIGHT),
                               port(backward_data, "x", _QUERY_DIFF_SRC, False, _SOURCE))
            self.weight_ports = (port(backward_weights, "y", _QUERY_DIFF_DST, True, _DESTINATION),
                                 port(backward_weights, "x", _QUERY_SRC, True, _SOURCE),
                                 port(backward_weights, "w", _QUERY_DIFF_WEIGHTS, False, _WEIGHT))
            self.same_diff_dst = bool(lib.dnnl_memory_desc_equal(
                lib.dnnl_primitive_desc_query_md(backward_data, _QUERY_DIFF_DST, 0),
                lib.dnnl_primitive_desc_query_md(backward_weights, _QUERY_DIFF_DST, 0)))
            self.bias_memory = library.memory(plain["b"]) if bias else None
            for descriptor, what in zip(descriptors, ("", " input gradient", " weight gradient")):
                self.primitives.append(library.primitive(descriptor, kind + what))
        except Exception:
            self.destroy()
            raise
        finally:
            for descriptor in descriptors:
                lib.dnnl_primitive_desc_destroy(descriptor)
            for desc in (*plain.values(), *free.values()):
                lib.dnnl_memory_desc_destroy(desc)

    def forward(self, x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None) -> paddle.Tensor:
        y = paddle.empty(self.out_shape, dtype="float32")
        src, wei, dst = self.forward_ports
        args = [(_ARG_SRC, src.bind(x)), (_ARG_WEIGHTS, wei.bind(weight)), (_ARG_DST, dst.bind(y))]
        if bias is not None:
            args.append((_ARG_BIAS, self.library.bind(self.bias_memory, bias.data_ptr())))
        self.library.execute(self.primitives[0], args, "convolution")
        dst.write_back()
        return y

    def backward(self, grad_y: paddle.Tensor, x: paddle.Tensor, weight: paddle.Tensor, input_gradient: bool,
                 weight_gradient: bool, bias: bool) -> tuple[paddle.Tensor | None, ...]:
        """(grad_x or None, grad_weight or None, grad_bias or None) for the upstream gradient `grad_y`."""
        grad_x = grad_w = grad_b = None
        if input_gradient:
            grad_x = paddle.empty(self.x_shape, dtype="float32")
            diff_dst, wei, diff_src = self.data_ports
            args = [(_ARG_DIFF_DST, diff_dst.bind(grad_y)), (_ARG_WEIGHTS, wei.bind(weight)),
                    (_ARG_DIFF_SRC, diff_src.bind(grad_x))]
            self.library.execute(self.primitives[1], args, "convolution input gradient")
            diff_src.write_back()
        if weight_gradient:
            grad_w = paddle.empty(self.weight_shape, dtype="float32")
            grad_b = paddle.empty([self.out_shape[1]], dtype="float32") if bias else None
            diff_dst, src, diff_wei = self.weight_ports
            # the input-gradient step has just reordered grad_y into the same layout and buffer: reuse it
            reordered = input_gradient and self.same_diff_dst
            args = [(_ARG_DIFF_DST, diff_dst.bind(grad_y, reorder=not reordered)), (_ARG_SRC, src.bind(x)),
                    (_ARG_DIFF_WEIGHTS, diff_wei.bind(grad_w))]
            if grad_b is not None:
                args.append((_ARG_DIFF_BIAS, self.library.bind(self.bias_memory, grad_b.data_ptr())))
            self.library.execute(self.primitives[2], args, "convolution weight gradient")
            diff_wei.write_back()
        return grad_x, grad_w, grad_b

    def __del__(self) -> None:
        self.destroy()

    def destroy(self) -> None:
        """Free the oneDNN objects (once; also after a failed construction)."""
        lib = self.library.lib
        for primitive in getattr(self, "primitives", []):
            lib.dnnl_primitive_destroy(primitive)
        for port in getattr(self, "ports", []):
            port.destroy()
        if getattr(self, "bias_memory", None) is not None:
            lib.dnnl_memory_destroy(self.bias_memory)
        self.primitives, self.ports, self.bias_memory = [], [], None


class _Copy:
    """A copy between two strided [N, C, rows, cols] windows of [N, C, H, W] float32 buffers (a reorder), or with
    `add` an accumulation into the destination window (a reorder with a sum post-op)."""

    def __init__(self, library: _Library, dims: list[int], source: tuple[list[int], int, int],
                 destination: tuple[list[int], int, int], add: bool = False) -> None:
        """`source`, `destination`: (the buffer's shape [N, C, H, W], first row, first column) of the windows."""
        lib = library.lib
        self.library = library
        self.offsets, self.memories, descs = [], [], []
        attr, post_ops = _P(), _P()
        try:
            for shape, row, col in (source, destination):
                strides = dense_strides(shape)
                descs.append(library.memory_desc(dims, strides))
                self.memories.append(library.memory(descs[-1]))
                self.offsets.append(4 * (row * strides[2] + col))
            if add:
                library.check(lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "attributes")
                library.check(lib.dnnl_post_ops_create(ctypes.byref(post_ops)), "post-ops")
                library.check(lib.dnnl_post_ops_append_sum(post_ops, 1.0, 0, _SAME_TYPE), "sum post-op")
                library.check(lib.dnnl_primitive_attr_set_post_ops(attr, post_ops), "attributes")
            self.primitive = library.reorder(descs[0], descs[1], attr)
        finally:
            for desc in descs:
                lib.dnnl_memory_desc_destroy(desc)
            if post_ops:
                lib.dnnl_post_ops_destroy(post_ops)
            if attr:
                lib.dnnl_primitive_attr_destroy(attr)

    def __call__(self, source: int, destination: int) -> None:
        """Run it on the buffers at these addresses."""
        for memory, base, offset in zip(self.memories, (source, destination), self.offsets):
            self.library.bind(memory, base + offset)
        self.library.execute(self.primitive, [(_ARG_SRC, self.memories[0]), (_ARG_DST, self.memories[1])], "reorder")

    def destroy(self) -> None:
        lib = self.library.lib
        lib.dnnl_primitive_destroy(self.primitive)
        for memory in self.memories:
            lib.dnnl_memory_destroy(memory)


class PadPlan:
    """Reflection (`F.pad(mode="reflect")`) or edge (`mode="replicate"`) padding of x [N, C, H, W] by p on all four
    sides -> [N, C, H + 2p, W + 2p] as 4p + 1 strided copies, and its gradient as 4p + 2 copies and accumulations;
    multi-threaded, where Paddle's `gather` is not. Forward: the centre; each padding row from its source row
    (interior columns); then each padding column from its source column over the whole padded height (corners
    included). Backward runs the reverse on a copy of the padded gradient, accumulating, then takes its centre.
    Padding row p - i copies row p + i (reflect) or row p (edge), i = 1..p; likewise at the far side and for columns."""

    def __init__(self, library: _Library, shape: tuple[int, ...], p: int, mode: str) -> None:
        n, c, h, w = shape
        big = [n, c, h + 2 * p, w + 2 * p]
        self.x_shape, self.padded_shape = list(shape), big
        self.forward_steps: list[tuple[_Copy, str, str]] = []  # (copy, source buffer, destination buffer)
        self.backward_steps: list[tuple[_Copy, str, str]] = []

        def sources(size: int) -> list[tuple[int, int]]:
            """(source, padding) index pairs along an axis of `size` interior elements, in padded coordinates."""
            near = [(p + (i if mode == "reflect" else 0), p - i) for i in range(1, p + 1)]
            far = [(p + size - 1 - (i if mode == "reflect" else 0), p + size - 1 + i) for i in range(1, p + 1)]
            return near + far

        try:
            self.forward_steps.append((_Copy(library, list(shape), (list(shape), 0, 0), (big, p, p)), "x", "out"))
            self.backward_steps.append((_Copy(library, big, (big, 0, 0), (big, 0, 0)), "grad", "work"))
            row, column = [n, c, 1, w], [n, c, h + 2 * p, 1]
            for inside, outside in sources(h):
                self.forward_steps.append((_Copy(library, row, (big, inside, p), (big, outside, p)), "out", "out"))
            for inside, outside in sources(w):
                self.forward_steps.append((_Copy(library, column, (big, 0, inside), (big, 0, outside)), "out", "out"))
            for inside, outside in sources(w):
                self.backward_steps.append(
                    (_Copy(library, column, (big, 0, outside), (big, 0, inside), add=True), "work", "work"))
            for inside, outside in sources(h):
                self.backward_steps.append(
                    (_Copy(library, row, (big, outside, p), (big, inside, p), add=True), "work", "work"))
            self.backward_steps.append((_Copy(library, list(shape), (big, p, p), (list(shape), 0, 0)), "work", "x"))
        except Exception:
            self.destroy()
            raise

    @staticmethod
    def _run(steps: list[tuple[_Copy, str, str]], addresses: dict[str, int]) -> None:
        for copy, source, destination in steps:
            copy(addresses[source], addresses[destination])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = paddle.empty(self.padded_shape, dtype="float32")
        self._run(self.forward_steps, {"x": x.data_ptr(), "out": out.data_ptr()})
        return out

    def backward(self, grad: paddle.Tensor) -> paddle.Tensor:
        grad_x = paddle.empty(self.x_shape, dtype="float32")
        work = _scratch.pointer(_SOURCE, 4 * math.prod(self.padded_shape))
        self._run(self.backward_steps, {"grad": grad.data_ptr(), "work": work, "x": grad_x.data_ptr()})
        return grad_x

    def __del__(self) -> None:
        self.destroy()

    def destroy(self) -> None:
        """Free the oneDNN objects (once; also after a failed construction)."""
        for copy, _, _ in getattr(self, "forward_steps", []) + getattr(self, "backward_steps", []):
            copy.destroy()
        self.forward_steps, self.backward_steps = [], []


_plans: collections.OrderedDict[tuple, Any] = collections.OrderedDict()  # ConvPlan, PadPlan


def cached_plan(key: tuple, build: Any) -> Any:
    """The plan cached under `key`, or `build(library)` cached now (the least recently used beyond `MAX_PLANS`
    dropped)."""
    found = _plans.get(key)
    if found is not None:
        _plans.move_to_end(key)
        return found
    library = _library()
    if library is None:
        raise OneDNNError("oneDNN is not available (onednn.available() is False)")
    _plans[key] = made = build(library)
    while len(_plans) > MAX_PLANS:
        _plans.popitem(last=False)  # its primitives go with the last reference (a pending backward may hold one)
    return made


def plan(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: int, padding: int, transposed: bool,
         bias: bool) -> ConvPlan:
    """The cached `ConvPlan` for these shapes and settings."""
    return cached_plan((x_shape, weight_shape, stride, padding, transposed, bias),
                       lambda library: ConvPlan(library, x_shape, weight_shape, stride, padding, transposed, bias))


def _contiguous(x: paddle.Tensor) -> paddle.Tensor:
    return x if x.is_contiguous() else x.contiguous()


class _Convolution(paddle.autograd.PyLayer):
    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int,
                padding: int, transposed: bool) -> paddle.Tensor:
        x, weight = _contiguous(x), _contiguous(weight)
        # which gradients backward must return (the stop_gradient flags may change before backward runs)
        ctx.needs = (not x.stop_gradient, not weight.stop_gradient, bias is not None and not bias.stop_gradient)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)
        with _lock:
            ctx.plan = plan(tuple(x.shape), tuple(weight.shape), stride, padding, transposed, bias is not None)
            return ctx.plan.forward(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_y: paddle.Tensor) -> tuple[paddle.Tensor | None, ...]:
        x, weight = ctx.saved_tensor()
        grad_y = _contiguous(grad_y)
        need_x, need_w, need_b = ctx.needs
        with _lock:
            grad_x, grad_w, grad_b = ctx.plan.backward(grad_y, x, weight, need_x, need_w or need_b, ctx.has_bias)
        grads = (grad_x, grad_w if need_w else None)
        return (*grads, grad_b if need_b else None) if ctx.has_bias else grads


def conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int) -> paddle.Tensor:
    """conv2d(x [N, C_in, H, W], weight [C_out, C_in, k, k], bias [C_out] or None, stride, no padding) ->
    [N, C_out, (H - k) // stride + 1, (W - k) // stride + 1] by oneDNN; float32 CPU tensors, `available()`."""
    return _Convolution.apply(x, weight, bias, stride, 0, False)


def conv2d_transpose(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int,
                     padding: int) -> paddle.Tensor:
    """`F.conv2d_transpose(x [N, C_in, H, W], weight [C_in, C_out, k, k], bias, stride, padding)` ->
    [N, C_out, (H - 1) * stride - 2 padding + k, same for W] by oneDNN; float32 CPU tensors, `available()`."""
    return _Convolution.apply(x, weight, bias, stride, padding, True)


def pad(x: paddle.Tensor, p: int, mode: str) -> paddle.Tensor:
    """Pad x [N, C, H, W] (float32, CPU) by `p` on all four sides, `mode` "reflect" (0 < p < H, W) or "edge" ->
    [N, C, H + 2p, W + 2p], by oneDNN copies (`PadPlan`)."""
    if mode not in ("reflect", "edge") or p < 1 or (mode == "reflect" and p >= min(x.shape[2:])):
        raise ValueError(f"cannot {mode}-pad a plane of {x.shape[2:]} by {p}")
    return _Pad.apply(x, p, mode)


class _Pad(paddle.autograd.PyLayer):
    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor, p: int, mode: str) -> paddle.Tensor:
        shape = tuple(x.shape)
        with _lock:
            ctx.plan = cached_plan(("pad", shape, p, mode), lambda library: PadPlan(library, shape, p, mode))
            return ctx.plan.forward(_contiguous(x))

    @staticmethod
    def backward(ctx: Any, grad: paddle.Tensor) -> paddle.Tensor:
        with _lock:
            return ctx.plan.backward(_contiguous(grad))
