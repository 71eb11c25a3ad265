"""The TensorBundle (TF V2 checkpoint) reader: round trips through a writer made from the format description,
and malformed files (truncated, corrupt, wrong sizes, absurd shapes) refused with a clear error."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from helpers.tensorbundle_writer import block, entry_proto, field, header_proto, table, write_bundle
from ugatit_paddle.formats import tensorbundle
from ugatit_paddle.formats.tensorbundle import TensorBundle, TensorBundleError, crc32c, resolve_prefix

TENSORS = {
    "a/kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 1, 4),
    "a/bias": np.array([1.5, -2.0], np.float32),
    "b/step": np.array(7, np.int64),
    "c/double": np.linspace(0, 1, 5),
    "scalar": np.array(3.25, np.float32),
}


def _index(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _data(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".data-00000-of-00001")


def _write_index(path: Path, entries: list[tuple[bytes, bytes]]) -> Path:
    path.with_name(path.name + ".index").write_bytes(table(entries))
    return path


def test_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tensorbundle._crc32c_python(b"123456789") == 0xE3069283


@pytest.mark.parametrize("snappy", [False, True])
def test_round_trip(tmp_path, snappy):
    prefix = write_bundle(tmp_path / "model.ckpt-10", TENSORS, snappy=snappy)
    bundle = TensorBundle(prefix)
    assert set(bundle.entries) == set(TENSORS) and bundle.header["num_shards"] == 1
    for name, value in TENSORS.items():
        read = bundle.read(name)
        assert read.dtype == value.dtype and read.shape == value.shape and np.array_equal(read, value)


def test_prefix_from_folder_file_or_checkpoint_listing(tmp_path):
    prefix = write_bundle(tmp_path / "run" / "UGATIT.model-1000", TENSORS)
    for given in (prefix, _index(prefix), _data(prefix), prefix.with_name(prefix.name + ".meta"), prefix.parent):
        assert resolve_prefix(given) == prefix
    write_bundle(tmp_path / "run" / "UGATIT.model-2000", TENSORS)
    with pytest.raises(TensorBundleError, match="several checkpoints"):
        resolve_prefix(prefix.parent)
    # the `checkpoint` file written by tf.train.Saver, with an absolute path of the training machine
    (prefix.parent / "checkpoint").write_text('model_checkpoint_path: "/home/someone/ckpt/UGATIT.model-1000"\n'
                                              'all_model_checkpoint_paths: "/home/someone/ckpt/UGATIT.model-1000"\n')
    assert resolve_prefix(prefix.parent) == prefix
    with pytest.raises(TensorBundleError, match="no TensorFlow checkpoint"):
        resolve_prefix(tmp_path / "nothing")


def test_truncated_index_is_refused(tmp_path):
    prefix = write_bundle(tmp_path / "m", TENSORS)
    raw = _index(prefix).read_bytes()
    for cut in (len(raw) - 1, len(raw) - 30, 40, 0):
        _index(prefix).write_bytes(raw[:cut])
        with pytest.raises(TensorBundleError, match="too short|magic number"):
            TensorBundle(prefix)


def test_corrupt_block_is_refused(tmp_path):
    prefix = write_bundle(tmp_path / "m", TENSORS)
    raw = bytearray(_index(prefix).read_bytes())
    raw[5] ^= 0xFF
    _index(prefix).write_bytes(bytes(raw))
    with pytest.raises(TensorBundleError, match="checksum mismatch"):
        TensorBundle(prefix)


def test_block_handle_outside_the_file_is_refused(tmp_path):
    prefix = write_bundle(tmp_path / "m", TENSORS)
    raw = _index(prefix).read_bytes()
    body = raw[:-48]
    footer = b"\x00\x00" + b"\x80\x80\x80\x80\x10" + b"\x05"  # metaindex (0, 0); index at offset 2^32
    footer += b"\0" * (40 - len(footer)) + struct.pack("<Q", tensorbundle.MAGIC)
    _index(prefix).write_bytes(body + footer)
    with pytest.raises(TensorBundleError, match="runs past the table"):
        TensorBundle(prefix)


def test_random_bytes_and_other_files_are_refused(tmp_path):
    prefix = tmp_path / "m"
    _index(prefix).write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(TensorBundleError, match="not a TensorFlow checkpoint index"):
        TensorBundle(prefix)


def _entries(*variables: tuple[str, bytes], header: bytes | None = None) -> list[tuple[bytes, bytes]]:
    return [(b"", header if header is not None else header_proto())] + [(n.encode(), v) for n, v in variables]


def test_size_that_does_not_match_the_shape_is_refused(tmp_path):
    prefix = _write_index(tmp_path / "m", _entries(("w", entry_proto(1, (2, 3), 0, 20, None))))
    _data(prefix).write_bytes(b"\0" * 24)
    with pytest.raises(TensorBundleError, match=r"shape \[2, 3\].*needs 24 bytes, the entry says 20"):
        TensorBundle(prefix)


def test_absurd_shapes_are_refused_without_allocating(tmp_path):
    huge = entry_proto(1, (1 << 20, 1 << 20, 1 << 20), 0, 8, None)
    prefix = _write_index(tmp_path / "m", _entries(("w", huge)))
    _data(prefix).write_bytes(b"\0" * 8)
    with pytest.raises(TensorBundleError, match="needs .* bytes, the entry says 8"):
        TensorBundle(prefix)
    rank9 = entry_proto(1, (1,) * 9, 0, 4, None)
    _write_index(prefix, _entries(("w", rank9)))
    with pytest.raises(TensorBundleError, match="more than 8 dimensions"):
        TensorBundle(prefix)
    negative = field(1, 0, 1) + field(2, 2, field(2, 2, field(1, 0, (1 << 64) - 5))) + field(5, 0, 4)
    _write_index(prefix, _entries(("w", negative)))
    with pytest.raises(TensorBundleError, match="negative"):
        TensorBundle(prefix)


def test_tensor_beyond_the_data_file_is_refused(tmp_path):
    prefix = _write_index(tmp_path / "m", _entries(("w", entry_proto(1, (4,), 8, 16, None))))
    _data(prefix).write_bytes(b"\0" * 20)
    with pytest.raises(TensorBundleError, match=r"bytes \[8, 24\).*has 20 bytes"):
        TensorBundle(prefix)
    _data(prefix).unlink()
    with pytest.raises(TensorBundleError, match="data file .* is missing"):
        TensorBundle(prefix)


def test_truncated_data_file_and_bad_tensor_checksum_are_refused(tmp_path):
    prefix = write_bundle(tmp_path / "m", TENSORS)
    raw = _data(prefix).read_bytes()
    _data(prefix).write_bytes(raw[:-3])
    with pytest.raises(TensorBundleError, match="truncated data file"):
        TensorBundle(prefix)
    _data(prefix).write_bytes(raw[:4] + bytes([raw[4] ^ 1]) + raw[5:])
    bundle = TensorBundle(prefix)
    first = min(bundle.entries.values(), key=lambda e: e.offset)
    with pytest.raises(TensorBundleError, match="checksum mismatch for variable"):
        bundle.read(first.name)


def test_unsupported_and_malformed_entries_are_refused(tmp_path):
    cases = [
        (entry_proto(7, (1,), 0, 8, None), "dtype 7"),  # DT_STRING
        (entry_proto(1, (1,), 0, 4, None) + field(7, 2, b""), "partitioned variable"),
        (entry_proto(1, (1,), 0, 4, None, shard=3), "shard 3"),
        (b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint"),
        (field(1, 0, 1) + b"\x13", "wire type 3"),
        (field(1, 0, 1) + field(2, 2, b"\x12\x7f"), "needs 127 bytes"),
    ]
    for value, message in cases:
        prefix = _write_index(tmp_path / "m", _entries(("w", value)))
        _data(prefix).write_bytes(b"\0" * 8)
        with pytest.raises(TensorBundleError, match=message):
            TensorBundle(prefix)


def test_bad_header_is_refused(tmp_path):
    prefix = tmp_path / "m"
    _data(prefix).write_bytes(b"")
    for header, message in ((field(1, 0, 0), "0 data shards"), (field(1, 0, 1) + field(2, 0, 1), "big-endian")):
        _write_index(prefix, _entries(header=header))
        with pytest.raises(TensorBundleError, match=message):
            TensorBundle(prefix)
    prefix.with_name("m.index").write_bytes(table([(b"w", entry_proto(1, (1,), 0, 4, None))]))
    with pytest.raises(TensorBundleError, match="no bundle header"):
        TensorBundle(prefix)


def test_malformed_blocks_are_refused(tmp_path):
    good = block([(b"", header_proto())])
    for contents, message in ((b"\x01", "no restart count"), (struct.pack("<I", 1000), "restart points"),
                              (b"\x05\x01\x00x" + good[-8:], "shares 5 key bytes")):
        with pytest.raises(TensorBundleError, match=message):
            tensorbundle._block_entries(contents, "block")
    unsorted = [(b"", header_proto()), (b"b", entry_proto(1, (), 0, 4, None)), (b"a", entry_proto(1, (), 0, 4, None))]
    _write_index(tmp_path / "m", unsorted)
    with pytest.raises(TensorBundleError, match="increasing order"):
        TensorBundle(tmp_path / "m")


def test_malformed_snappy_is_refused():
    for data, message in ((b"\x0a\x0d\x01", "copy from offset"), (b"\x02\x08abc", "more than its declared"),
                          (b"\x05\x04ab", "decompresses to 2 bytes"), (b"\xff\xff\xff\xff\x0f", "more than the limit")):
        with pytest.raises(TensorBundleError, match=message):
            tensorbundle.snappy_decompress(data, 1 << 20, "block")
