"""A tiny TensorBundle (TF V2 checkpoint) writer for the tests, written from the format description (LevelDB
table of BundleEntryProto values, header under the empty key; see ugatit_paddle/formats/tensorbundle.py), and a
generator of the variable names/shapes the official TF U-GAT-IT code creates (from its UGATIT.py / ops.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ugatit_paddle.formats.tensorbundle import crc32c, mask_crc

TF_DTYPE = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("int64"): 9}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, wire: int, value: int | bytes) -> bytes:
    tag = varint(number << 3 | wire)
    if wire == 0:
        return tag + varint(value)
    if wire == 5:
        return tag + struct.pack("<I", value)
    return tag + varint(len(value)) + value


def shape_proto(shape: tuple[int, ...]) -> bytes:
    return b"".join(field(2, 2, field(1, 0, d) if d else b"") for d in shape)


def entry_proto(dtype: int, shape: tuple[int, ...], offset: int, size: int, crc: int | None, shard: int = 0) -> bytes:
    out = field(1, 0, dtype) + field(2, 2, shape_proto(shape))
    if shard:
        out += field(3, 0, shard)
    if offset:
        out += field(4, 0, offset)
    out += field(5, 0, size)
    if crc is not None:
        out += field(6, 5, crc)
    return out


def header_proto(num_shards: int = 1) -> bytes:
    return field(1, 0, num_shards) + field(3, 2, field(1, 0, 1))


def block(entries: list[tuple[bytes, bytes]], restart_interval: int = 4) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def snappy_literal(data: bytes) -> bytes:
    """Snappy 'compression' using literals only (a valid snappy stream)."""
    out = bytearray(varint(len(data)))
    for start in range(0, len(data), 60):
        chunk = data[start:start + 60]
        out.append((len(chunk) - 1) << 2)
        out += chunk
    return bytes(out)


def table(entries: list[tuple[bytes, bytes]], per_block: int = 7, snappy: bool = False) -> bytes:
    out = bytearray()

    def put(contents: bytes) -> bytes:
        kind = 0
        if snappy:
            contents, kind = snappy_literal(contents), 1
        handle = varint(len(out)) + varint(len(contents))
        out.extend(contents + bytes([kind]) + struct.pack("<I", mask_crc(crc32c(contents + bytes([kind])))))
        return handle

    index = []
    for start in range(0, len(entries), per_block):
        chunk = entries[start:start + per_block]
        index.append((chunk[-1][0], put(block(chunk))))
    meta = put(block([]))
    index_handle = put(block(index, restart_interval=1))
    footer = meta + index_handle
    footer += b"\0" * (40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out + footer)


def write_bundle(prefix: str | Path, tensors: dict[str, np.ndarray], snappy: bool = False) -> Path:
    """Write `tensors` as checkpoint `prefix` (.index + .data-00000-of-00001); returns the prefix."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    data, entries = bytearray(), [(b"", header_proto())]
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        raw = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
        entries.append((name.encode(), entry_proto(TF_DTYPE[array.dtype], array.shape, len(data), len(raw),
                                                   mask_crc(crc32c(raw)))))
        data += raw
    prefix.with_name(prefix.name + ".index").write_bytes(table(entries, snappy=snappy))
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(bytes(data))
    return prefix


# ------------------------------------------------------------------ the official TF code's variables
def tf_ugatit_variables(light: bool, img_size: int, ch: int, n_res: int, n_dis: int, sn: bool = True,
                        seed: int = 0, optimizer: bool = True) -> dict[str, np.ndarray]:
    """Random values under the names and shapes UGATIT.py (taki0112) creates in its train phase."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}

    def add(name: str, shape: tuple[int, ...], scale: float = 0.1) -> None:
        if name.endswith("/kernel") and len(shape) == 4:
            scale = (2.0 / (shape[0] * shape[1] * shape[2])) ** 0.5  # He scale: every layer carries signal
        out[name] = rng.normal(1.0 if name.endswith("/gamma") else 0.0, scale, shape).astype(np.float32)

    def conv(scope: str, k: int, cin: int, cout: int, with_sn: bool = False) -> None:
        if with_sn:
            add(f"{scope}/kernel", (k, k, cin, cout))
            add(f"{scope}/bias", (cout,))
            add(f"{scope}/u", (1, cout), 1.0)
        else:
            add(f"{scope}/conv2d/kernel", (k, k, cin, cout))
            add(f"{scope}/conv2d/bias", (cout,))

    for g in ("generator_A", "generator_B"):
        c = ch
        conv(f"{g}/conv", 7, 3, c)
        add(f"{g}/ins_norm/gamma", (c,)), add(f"{g}/ins_norm/beta", (c,))
        for i in range(2):
            conv(f"{g}/conv_{i}", 3, c, 2 * c)
            add(f"{g}/ins_norm_{i}/gamma", (2 * c,)), add(f"{g}/ins_norm_{i}/beta", (2 * c,))
            c *= 2
        for i in range(n_res):
            for r in ("res1", "res2"):
                conv(f"{g}/resblock_{i}/{r}/conv_0", 3, c, c)
                add(f"{g}/resblock_{i}/{r}/instance_norm/gamma", (c,))
                add(f"{g}/resblock_{i}/{r}/instance_norm/beta", (c,))
        add(f"{g}/CAM_logit/kernel", (c, 1)), add(f"{g}/CAM_logit/bias", (1,))
        conv(f"{g}/conv_1x1", 1, 2 * c, c)
        width = ch * 4  # ch * n_res in the TF code, which only builds when that is 4 * ch
        mlp_in = c if light else (img_size // 4) ** 2 * c
        for name, fan_in in (("linear_0", mlp_in), ("linear_1", width), ("gamma", width), ("beta", width)):
            add(f"{g}/MLP/{name}/dense/kernel", (fan_in, width)), add(f"{g}/MLP/{name}/dense/bias", (width,))
        for i in range(n_res):
            for r in ("res1", "res2"):
                conv(f"{g}/adaptive_resblock{i}/{r}/conv_0", 3, c, c)
                out[f"{g}/adaptive_resblock{i}/{r}/instance_layer_norm/rho"] = rng.uniform(0, 1, c).astype(np.float32)
        for i in range(2):
            conv(f"{g}/up_conv_{i}", 3, c, c // 2)
            c //= 2
            out[f"{g}/layer_ins_norm_{i}/rho"] = rng.uniform(0, 1, c).astype(np.float32)
            add(f"{g}/layer_ins_norm_{i}/gamma", (c,)), add(f"{g}/layer_ins_norm_{i}/beta", (c,))
        conv(f"{g}/G_logit", 7, ch, 3)

    for d in ("discriminator_A", "discriminator_B"):
        for part, n_stride2 in (("global", n_dis - 1), ("local", max(n_dis - 3, 1))):
            s, c = f"{d}/{part}", ch
            conv(f"{s}/conv_0", 4, 3, c, sn)
            for i in range(1, n_stride2):
                conv(f"{s}/conv_{i}", 4, c, 2 * c, sn)
                c *= 2
            conv(f"{s}/conv_last", 4, c, 2 * c, sn)
            c *= 2
            add(f"{s}/CAM_logit/kernel", (c, 1)), add(f"{s}/CAM_logit/bias", (1,))
            if sn:
                add(f"{s}/CAM_logit/u", (1, 1), 1.0)
            conv(f"{s}/conv_1x1", 1, 2 * c, c)
            conv(f"{s}/D_logit", 4, c, 1, sn)
    if optimizer:
        for name in [n for n in out if not n.endswith("/u")][:20]:
            out[f"{name}/Adam"] = np.zeros_like(out[name])
            out[f"{name}/Adam_1"] = np.zeros_like(out[name])
        for name in ("beta1_power", "beta2_power", "beta1_power_1", "beta2_power_1"):
            out[name] = np.array(0.5, np.float32)
    return out
