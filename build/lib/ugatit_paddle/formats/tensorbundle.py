"""A bounded, validating reader of TensorFlow checkpoints (the TensorBundle format of `tf.train.Saver` V2),
without TensorFlow.

A checkpoint `PREFIX` is `PREFIX.index` plus `PREFIX.data-SSSSS-of-NNNNN` shards (the `.meta` graph is
not needed). The index is a LevelDB-style sorted table ("SSTable"):

    [data block]* [metaindex block] [index block] [footer: 48 bytes]
    footer     = metaindex BlockHandle, index BlockHandle (each two varints: offset, size), zero padding
                 to 40 bytes, then the magic number 0xdb4775248b80fb57 (little-endian uint64)
    block      = entries, restart offsets (uint32 each), number of restarts (uint32);
                 followed in the file by a 5-byte trailer: compression type (0 none, 1 snappy) and the masked
                 CRC32C of block + type byte
    entry      = varint shared key bytes, varint unshared key bytes, varint value length, key suffix, value
    index block: key -> BlockHandle of a data block; data blocks: key -> value

In a bundle, the entry with the empty key holds a `BundleHeaderProto` (num_shards = 1, endianness = 2) and
every other key is a variable name whose value is a `BundleEntryProto` (dtype = 1, shape = 2,
shard_id = 3, offset = 4, size = 5, crc32c = 6 (masked), slices = 7), which locates the tensor's raw
little-endian bytes in shard `shard_id`.

Every length, offset, count and shape is checked against the file before it is used, so a truncated or
crafted file raises `TensorBundleError` (naming the file and what is wrong) instead of reading out of
bounds or allocating absurd amounts of memory.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
MAX_INDEX_BYTES = 64 << 20  # a real index is a few hundred bytes per variable; U-GAT-IT's is about 100 KB
MAX_ENTRIES = 1_000_000
MAX_KEY_BYTES = 1 << 16
MAX_RANK = 8
MAX_SHARDS = 10_000
NO_COMPRESSION, SNAPPY = 0, 1

# TensorFlow DataType enum value -> numpy dtype (little-endian), for the types a weight checkpoint holds.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    19: np.dtype("<f2"),  # DT_HALF
}


class TensorBundleError(ValueError):
    """A TensorFlow checkpoint that is missing, truncated or malformed; nothing beyond it was read."""


@dataclass(frozen=True)
class BundleEntry:
    """Where one variable's bytes are: shard `shard_id`, bytes [offset, offset + size)."""

    name: str
    dtype: int  # TensorFlow DataType enum value (see DTYPES)
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked CRC32C of the bytes, as stored


# ----------------------------------------------------------------------------------------------- checksums
def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def _crc32c_python(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the `crc32c` package (optional) is ~1000x faster; without it large tensors are not verified
    from crc32c import crc32c as _crc32c_fast
except ImportError:  # pragma: no cover - depends on the environment
    _crc32c_fast = None

PURE_PYTHON_CRC_LIMIT = 1 << 20  # bytes: tensors larger than this are checksummed only with `crc32c` installed


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`."""
    return _crc32c_fast(data) if _crc32c_fast is not None else _crc32c_python(data)


def mask_crc(crc: int) -> int:
    """LevelDB/TensorFlow's masked CRC (stored so that CRCs of CRCs do not look like CRCs)."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def can_verify(size: int) -> bool:
    return _crc32c_fast is not None or size <= PURE_PYTHON_CRC_LIMIT


# ----------------------------------------------------------------------------------------------- decoding
class _Reader:
    """Bounded cursor over bytes; every read checks the remaining length."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def fail(self, message: str) -> TensorBundleError:
        return TensorBundleError(f"{self.what}: {message} (at byte {self.pos} of {len(self.data)})")

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def varint(self, bits: int = 64) -> int:
        value, shift = 0, 0
        while True:
            if self.pos >= len(self.data):
                raise self.fail("truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift >= bits + 7 - bits % 7 or shift > 63:
                raise self.fail(f"varint longer than {bits} bits")
        if value >> bits:
            raise self.fail(f"varint {value} does not fit in {bits} bits")
        return value

    def take(self, n: int) -> bytes:
        if n < 0 or n > len(self.data) - self.pos:
            raise self.fail(f"needs {n} bytes, only {len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def _proto_fields(data: bytes, what: str) -> list[tuple[int, int, int | bytes]]:
    """Decode protobuf wire format into (field number, wire type, value) triples (varint / fixed / bytes)."""
    r = _Reader(data, what)
    fields = []
    while not r.done():
        tag = r.varint(32)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise r.fail("protobuf field number 0")
        if wire == 0:
            value: int | bytes = r.varint()
        elif wire == 1:
            value = struct.unpack("<Q", r.take(8))[0]
        elif wire == 2:
            value = r.take(r.varint(32))
        elif wire == 5:
            value = struct.unpack("<I", r.take(4))[0]
        else:
            raise r.fail(f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _expect(value: int | bytes, wire: int, expected: int, field: str, what: str) -> int | bytes:
    if wire != expected:
        raise TensorBundleError(f"{what}: field '{field}' has wire type {wire}, expected {expected}")
    return value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def parse_shape(data: bytes, what: str) -> tuple[int, ...]:
    """TensorShapeProto: dim = 2 (repeated Dim: size = 1), unknown_rank = 3."""
    dims = []
    for number, wire, value in _proto_fields(data, what):
        if number == 2:
            size = 0
            for n, w, v in _proto_fields(_expect(value, wire, 2, "dim", what), what):
                if n == 1:
                    size = _signed64(_expect(v, w, 0, "dim.size", what))
            if size < 0:
                raise TensorBundleError(f"{what}: dimension {size} is negative (an unknown size has no place in a "
                                        f"checkpoint)")
            dims.append(size)
            if len(dims) > MAX_RANK:
                raise TensorBundleError(f"{what}: more than {MAX_RANK} dimensions")
        elif number == 3 and value:
            raise TensorBundleError(f"{what}: shape of unknown rank")
    return tuple(dims)


def parse_entry(name: str, data: bytes, what: str) -> BundleEntry:
    """BundleEntryProto -> BundleEntry (validated only against itself; see `TensorBundle` for the files)."""
    dtype, shape, shard, offset, size, crc = 0, (), 0, 0, 0, None
    for number, wire, value in _proto_fields(data, what):
        if number == 1:
            dtype = _expect(value, wire, 0, "dtype", what)
        elif number == 2:
            shape = parse_shape(_expect(value, wire, 2, "shape", what), what)
        elif number == 3:
            shard = _signed64(_expect(value, wire, 0, "shard_id", what))
        elif number == 4:
            offset = _signed64(_expect(value, wire, 0, "offset", what))
        elif number == 5:
            size = _signed64(_expect(value, wire, 0, "size", what))
        elif number == 6:
            crc = _expect(value, wire, 5, "crc32c", what)
        elif number == 7:
            raise TensorBundleError(f"{what}: variable '{name}' is stored in slices (a partitioned variable); "
                                    f"this reader supports whole tensors only")
    if dtype not in DTYPES:
        raise TensorBundleError(f"{what}: variable '{name}' has TensorFlow dtype {dtype}, which this reader does "
                                f"not support (supported: {sorted(DTYPES)})")
    if shard < 0 or offset < 0 or size < 0:
        raise TensorBundleError(f"{what}: variable '{name}' has a negative shard ({shard}), offset ({offset}) or "
                                f"size ({size})")
    expected = math.prod(shape) * DTYPES[dtype].itemsize
    if expected != size:
        raise TensorBundleError(f"{what}: variable '{name}' of shape {list(shape)} and dtype "
                                f"{DTYPES[dtype].name} needs {expected} bytes, the entry says {size}")
    return BundleEntry(name, dtype, shape, shard, offset, size, crc)


def snappy_decompress(data: bytes, limit: int, what: str) -> bytes:
    """Raw snappy block decompression (TensorFlow may snappy-compress table blocks), bounded by `limit`."""
    r = _Reader(data, what)
    length = r.varint(32)
    if length > limit:
        raise r.fail(f"snappy block claims {length} bytes, more than the limit {limit}")
    out = bytearray()
    while not r.done():
        tag = r.take(1)[0]
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                n = int.from_bytes(r.take(n - 59), "little")
            out += r.take(n + 1)
        else:
            if kind == 1:
                n, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | r.take(1)[0]
            elif kind == 2:
                n, offset = (tag >> 2) + 1, int.from_bytes(r.take(2), "little")
            else:
                n, offset = (tag >> 2) + 1, int.from_bytes(r.take(4), "little")
            if offset == 0 or offset > len(out):
                raise r.fail(f"snappy copy from offset {offset} with {len(out)} bytes written")
            for _ in range(n):
                out.append(out[-offset])
        if len(out) > length:
            raise r.fail(f"snappy block decompresses to more than its declared {length} bytes")
    if len(out) != length:
        raise r.fail(f"snappy block decompresses to {len(out)} bytes, declared {length}")
    return bytes(out)


def _block_handle(r: _Reader) -> tuple[int, int]:
    return r.varint(), r.varint()


def _read_block(index: bytes, handle: tuple[int, int], what: str) -> bytes:
    """The contents of the block at `handle` (offset, size), trailer and checksum verified."""
    offset, size = handle
    end = offset + size + BLOCK_TRAILER_SIZE
    if end > len(index) - FOOTER_SIZE:
        raise TensorBundleError(f"{what}: block [{offset}, {offset + size}) runs past the table "
                                f"({len(index) - FOOTER_SIZE} bytes before the footer)")
    block = index[offset:offset + size]
    kind = index[offset + size]
    stored = struct.unpack("<I", index[offset + size + 1:end])[0]
    if mask_crc(crc32c(block + bytes([kind]))) != stored:
        raise TensorBundleError(f"{what}: checksum mismatch in the block at byte {offset} (the file is corrupt)")
    if kind == SNAPPY:
        return snappy_decompress(block, MAX_INDEX_BYTES, what)
    if kind != NO_COMPRESSION:
        raise TensorBundleError(f"{what}: block at byte {offset} uses compression type {kind} (known: 0, 1)")
    return block


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block."""
    if len(block) < 4:
        raise TensorBundleError(f"{what}: block of {len(block)} bytes has no restart count")
    restarts = struct.unpack("<I", block[-4:])[0]
    if restarts == 0 or 4 * (restarts + 1) > len(block):
        raise TensorBundleError(f"{what}: block of {len(block)} bytes claims {restarts} restart points")
    r = _Reader(block[:len(block) - 4 * (restarts + 1)], what)
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    while not r.done():
        shared, unshared, value_len = r.varint(32), r.varint(32), r.varint(32)
        if shared > len(key):
            raise r.fail(f"entry shares {shared} key bytes with a previous key of {len(key)}")
        if shared + unshared > MAX_KEY_BYTES:
            raise r.fail(f"key of {shared + unshared} bytes (limit {MAX_KEY_BYTES})")
        key = key[:shared] + r.take(unshared)
        entries.append((key, r.take(value_len)))
    return entries


def read_index(path: str | Path) -> tuple[dict[str, int], dict[str, BundleEntry]]:
    """Parse `PREFIX.index`: (header {num_shards, endianness, producer}, {variable name: entry})."""
    path = Path(path)
    what = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_INDEX_BYTES:
            raise TensorBundleError(f"{what}: {size} bytes is too large for a checkpoint index "
                                    f"(limit {MAX_INDEX_BYTES})")
        index = path.read_bytes()
    except OSError as e:
        raise TensorBundleError(f"cannot read {what}: {e.strerror or e}") from e
    if len(index) < FOOTER_SIZE:
        raise TensorBundleError(f"{what}: {len(index)} bytes is too short for a TensorFlow checkpoint index "
                                f"(truncated?)")
    footer = index[-FOOTER_SIZE:]
    if struct.unpack("<Q", footer[-8:])[0] != MAGIC:
        raise TensorBundleError(f"{what} is not a TensorFlow checkpoint index (no table magic number at the end; "
                                f"truncated or another kind of file)")
    r = _Reader(footer[:-8], f"{what} footer")
    _block_handle(r)  # metaindex: filters only, not needed
    index_handle = _block_handle(r)

    entries: dict[str, BundleEntry] = {}
    header: dict[str, int] | None = None
    previous: bytes | None = None
    for _, handle_bytes in _block_entries(_read_block(index, index_handle, what), what):
        hr = _Reader(handle_bytes, f"{what} index entry")
        for key, value in _block_entries(_read_block(index, _block_handle(hr), what), what):
            if previous is not None and key <= previous:
                raise TensorBundleError(f"{what}: keys are not in increasing order at {key[:80]!r}")
            previous = key
            if key == b"":
                header = _parse_header(value, what)
                continue
            if len(entries) >= MAX_ENTRIES:
                raise TensorBundleError(f"{what}: more than {MAX_ENTRIES} entries")
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise TensorBundleError(f"{what}: variable name {key[:80]!r} is not UTF-8") from None
            entries[name] = parse_entry(name, value, f"{what} entry '{name}'")
    if header is None:
        raise TensorBundleError(f"{what}: no bundle header (the entry with the empty key); not a TensorBundle index")
    for entry in entries.values():
        if entry.shard_id >= header["num_shards"]:
            raise TensorBundleError(f"{what}: variable '{entry.name}' is in shard {entry.shard_id}, the header "
                                    f"declares {header['num_shards']} shards")
    return header, entries


def _parse_header(data: bytes, what: str) -> dict[str, int]:
    header = {"num_shards": 0, "endianness": 0, "producer": 0}
    for number, wire, value in _proto_fields(data, f"{what} header"):
        if number == 1:
            header["num_shards"] = _signed64(_expect(value, wire, 0, "num_shards", what))
        elif number == 2:
            header["endianness"] = _expect(value, wire, 0, "endianness", what)
        elif number == 3:
            for n, w, v in _proto_fields(_expect(value, wire, 2, "version", what), f"{what} header version"):
                if n == 1 and w == 0:
                    header["producer"] = v
    if not 1 <= header["num_shards"] <= MAX_SHARDS:
        raise TensorBundleError(f"{what}: the header declares {header['num_shards']} data shards "
                                f"(expected 1 to {MAX_SHARDS})")
    if header["endianness"] != 0:
        raise TensorBundleError(f"{what}: the checkpoint was written big-endian; only little-endian is supported")
    return header


# ----------------------------------------------------------------------------------------------- the bundle
INDEX_SUFFIX = ".index"
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_CHECKPOINT_LINE = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.M)


def data_path(prefix: Path, shard: int, num_shards: int) -> Path:
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")


def resolve_prefix(path: str | Path) -> Path:
    """A checkpoint prefix from what a user passes: the prefix itself, one of its files (`.index`, `.data-*`,
    `.meta`), or its folder (via the folder's `checkpoint` file, else its only `*.index`)."""
    path = Path(path)
    if path.is_dir():
        listed = path / "checkpoint"
        if listed.is_file():
            match = _CHECKPOINT_LINE.search(listed.read_text(encoding="utf-8", errors="replace"))
            if match:
                named = Path(match.group(1))
                # the file may hold an absolute path of the machine that trained; the folder is what counts
                for candidate in (path / named, path / named.name):
                    if candidate.with_name(candidate.name + INDEX_SUFFIX).is_file():
                        return candidate
        indexes = sorted(path.glob(f"*{INDEX_SUFFIX}"))
        if len(indexes) == 1:
            return indexes[0].with_name(indexes[0].name[:-len(INDEX_SUFFIX)])
        if not indexes:
            raise TensorBundleError(f"{path} holds no TensorFlow checkpoint (no *.index file)")
        raise TensorBundleError(f"{path} holds several checkpoints ({', '.join(p.name for p in indexes)}); "
                                f"pass the prefix of one, e.g. {indexes[-1].with_suffix('')}")
    name = path.name
    for suffix in (INDEX_SUFFIX, ".meta"):
        if name.endswith(suffix):
            return path.with_name(name[:-len(suffix)])
    match = _DATA_SUFFIX.search(name)
    if match:
        return path.with_name(name[:match.start()])
    if not path.with_name(name + INDEX_SUFFIX).is_file():
        raise TensorBundleError(f"no TensorFlow checkpoint at {path} (expected {path}{INDEX_SUFFIX} or a folder "
                                f"holding one)")
    return path


class TensorBundle:
    """A TensorFlow V2 checkpoint opened for reading.

        bundle = TensorBundle("checkpoint/UGATIT_selfie2anime_.../UGATIT.model-1000000")
        bundle.entries["generator_B/conv/conv2d/kernel"].shape   # (7, 7, 3, 64)
        kernel = bundle.read("generator_B/conv/conv2d/kernel")     # float32 numpy array, HWIO
    """

    def __init__(self, path: str | Path, verify_checksums: bool = True) -> None:
        self.prefix = resolve_prefix(path)
        index = self.prefix.with_name(self.prefix.name + INDEX_SUFFIX)
        if not index.is_file():
            raise TensorBundleError(f"no checkpoint index {index}")
        self.header, self.entries = read_index(index)
        self.verify_checksums = verify_checksums
        self.unverified: list[str] = []  # tensors too large to checksum without the `crc32c` package
        shards = self.header["num_shards"]
        self.shard_sizes: dict[int, int] = {}
        for shard in sorted({e.shard_id for e in self.entries.values()}):
            file = data_path(self.prefix, shard, shards)
            if not file.is_file():
                raise TensorBundleError(f"data file {file} is missing (the index {index.name} refers to it)")
            self.shard_sizes[shard] = file.stat().st_size
        for e in self.entries.values():
            if e.offset + e.size > self.shard_sizes[e.shard_id]:
                raise TensorBundleError(
                    f"variable '{e.name}' lies at bytes [{e.offset}, {e.offset + e.size}) of "
                    f"{data_path(self.prefix, e.shard_id, shards).name}, which has {self.shard_sizes[e.shard_id]} bytes "
                    f"(truncated data file?)")

    def read(self, name: str) -> np.ndarray:
        """The variable `name` as a numpy array of its stored dtype and shape (checksum verified)."""
        if name not in self.entries:
            raise KeyError(f"{self.prefix}: no variable '{name}'")
        e = self.entries[name]
        file = data_path(self.prefix, e.shard_id, self.header["num_shards"])
        with open(file, "rb") as f:
            f.seek(e.offset)
            raw = f.read(e.size)
        if len(raw) != e.size:
            raise TensorBundleError(f"{file}: variable '{name}' is truncated ({len(raw)} of {e.size} bytes)")
        if self.verify_checksums and e.crc32c is not None:
            if can_verify(e.size):
                if mask_crc(crc32c(raw)) != e.crc32c:
                    raise TensorBundleError(f"{file}: checksum mismatch for variable '{name}' (the file is corrupt)")
            else:
                self.unverified.append(name)
        return np.frombuffer(raw, dtype=DTYPES[e.dtype]).reshape(e.shape).copy()
