r"""Vectorised ``tf.train.Example`` encoder and TFRecord writer.

The simulator writes millions of impressions, so it serialises whole chunks at once with NumPy instead
of building protos one by one. The bytes are the standard wire format::

    Example  = 0x0A len(Features) Features
    Features = ( 0x0A len(entry) entry )*            # map<string, Feature>, one entry per column
    entry    = 0x0A len(key) key 0x12 len(Feature) Feature
    Feature  = (0x12 | 0x1A) len(List) List          # float_list = 2 | int64_list = 3
    List     = [0x0A len(packed) packed]             # packed little-endian float32s or varints

and each record is framed as TFRecord: ``uint64 length, uint32 masked_crc32c(length), data,
uint32 masked_crc32c(data)``.

Why not ``tfx_bsl``'s ``RecordBatchToExamplesEncoder``: it is fast (C++), but it fills the proto's map
in hash order, which differs between processes, so the same data would not give the same bytes. Here
entries follow the order of ``features.FEATURES``: same columns -> identical bytes, which the simulator
needs for reproducibility (and it is faster still). Any ``tf.train.Example`` parser reads the output.
"""

from __future__ import annotations

import io
import os
from typing import Dict, List, Optional, Sequence, Tuple

import google_crc32c
import numpy as np

import features as F

Column = Tuple[np.ndarray, Optional[np.ndarray]]

_KIND_TAG = {F.FLOAT: 0x12, F.INT: 0x1A}
_HEADER = 12  # uint64 length + uint32 crc
_FOOTER = 4


def varint_size(values: np.ndarray) -> np.ndarray:
    """Bytes of the base-128 varint encoding of each (uint64) value."""
    size = np.ones(values.shape, np.int64)
    rest = values >> np.uint64(7)
    while rest.any():
        size += rest > 0
        rest >>= np.uint64(7)
    return size


def _write_varints(out: np.ndarray, pos: np.ndarray, values: np.ndarray) -> None:
    values = values.astype(np.uint64, copy=False)
    while len(values):
        more = values >= 0x80
        out[pos] = ((values & np.uint64(0x7F)) | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
        values, pos = values[more] >> np.uint64(7), pos[more] + 1


def _write_const(out: np.ndarray, pos: np.ndarray, const: bytes) -> None:
    # One strided write per byte beats a 2-D fancy index (no [n, len] index array).
    for j, byte in enumerate(const):
        out[pos + j if j else pos] = byte


def _scatter_ragged(out: np.ndarray, starts: np.ndarray, data: np.ndarray, lengths: np.ndarray) -> None:
    """Copies row ``i`` of the ragged byte array (data, lengths) to ``out[starts[i]:]``."""
    if len(data) == 0:
        return
    width = int(lengths[0]) if len(lengths) else 0
    if width <= 64 and (lengths == width).all():
        rows = data.reshape(len(lengths), width)
        for j in range(width):
            out[starts + j] = rows[:, j]
        return
    src_starts = np.cumsum(lengths) - lengths
    index = np.repeat(starts - src_starts, lengths)
    index += _arange(len(data))
    out[index] = data


_ARANGE = np.arange(0)


def _arange(n: int) -> np.ndarray:
    """``np.arange(n)`` from a cached buffer (the encoder needs large ones for every chunk)."""
    global _ARANGE
    if len(_ARANGE) < n:
        _ARANGE = np.arange(max(n, 2 * len(_ARANGE)))
    return _ARANGE[:n]


class _Payload:
    """Packed bytes of one column: per-row byte counts and a writer.

    ``raw``: the payload is a ready byte array (float32s, or ints that are all one-byte varints);
    otherwise each value is written as a varint at its offset inside its row.
    """

    def __init__(self, feature: F.Feature, values: np.ndarray, lengths: Optional[np.ndarray], n: int):
        if lengths is None:
            lengths = np.ones(n, np.int64)
        lengths = np.asarray(lengths, np.int64)
        if len(lengths) != n or int(lengths.sum()) != len(values):
            raise ValueError(f"{feature.name}: {len(values)} values do not match row lengths summing to "
                             f"{int(lengths.sum())} over {len(lengths)} rows (expected {n} rows)")
        self.lengths = lengths
        if feature.dtype == F.FLOAT:
            self.bytes_ = np.ascontiguousarray(values, dtype="<f4").view(np.uint8)
            self.byte_lengths = 4 * lengths
            self.raw = True
        else:
            self.values = np.asarray(values, np.int64).view(np.uint64)  # negatives: 10-byte two's complement
            # Codes below 128 are one-byte varints: the payload is the values as bytes.
            self.raw = len(self.values) == 0 or int(self.values.max()) < 0x80
            if self.raw:
                self.bytes_ = self.values.astype(np.uint8)
                self.byte_lengths = lengths
            else:
                sizes = varint_size(self.values)
                csum = np.zeros(len(sizes) + 1, np.int64)
                np.cumsum(sizes, out=csum[1:])
                offsets = np.zeros(n + 1, np.int64)
                np.cumsum(lengths, out=offsets[1:])
                self.value_offsets_in_row = csum[:-1] - np.repeat(csum[offsets[:-1]], lengths)
                self.byte_lengths = csum[offsets[1:]] - csum[offsets[:-1]]

    def write(self, out: np.ndarray, starts: np.ndarray) -> None:
        if self.raw:
            _scatter_ragged(out, starts, self.bytes_, self.byte_lengths)
        else:
            _write_varints(out, np.repeat(starts, self.lengths) + self.value_offsets_in_row, self.values)


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        more = value >= 0x80
        out.append((value & 0x7F) | (0x80 if more else 0))
        value >>= 7
        if not more:
            return bytes(out)


def _entry_header(key: bytes, dtype: str, payload_size: int) -> bytes:
    """Every byte of a map entry before its packed payload, for a given payload size."""
    lst = (b"\x0a" + _varint_bytes(payload_size)) if payload_size else b""
    list_size = len(lst) + payload_size
    feature = bytes([_KIND_TAG[dtype]]) + _varint_bytes(list_size) + lst
    feature_size = len(feature) + payload_size
    body = bytes([0x0A, len(key)]) + key + b"\x12" + _varint_bytes(feature_size) + feature
    return b"\x0a" + _varint_bytes(len(body) + payload_size) + body


def _masked_crc(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint64)
    return ((((crc >> np.uint64(15)) | (crc << np.uint64(17))) & np.uint64(0xFFFFFFFF))
            + np.uint64(0xA282EAD8)) & np.uint64(0xFFFFFFFF)


def _write_le(out: np.ndarray, pos: np.ndarray, values: np.ndarray, width: int) -> None:
    values = values.astype(np.uint64)
    for k in range(width):
        out[pos + k] = ((values >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.uint8)


def encode_tfrecords(columns: Dict[str, Column], features: Sequence[F.Feature] = F.FEATURES,
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Serialises rows of ``columns`` as framed TFRecords of ``tf.train.Example``.

    Args:
      columns: ``name -> (flat values, per-row lengths or None)`` for every feature in ``features``;
        ``None`` lengths mean one value per row.
      features: the columns to write, in this order.

    Returns:
      ``(buffer, bounds)``: a uint8 buffer holding the framed records back to back and the ``[n + 1]``
      record boundaries in it. Record ``i``'s Example bytes are ``buffer[bounds[i] + 12 : bounds[i+1] - 4]``.
    """
    names = [f.name for f in features]
    missing = [name for name in names if name not in columns]
    if missing:
        raise ValueError(f"missing columns: {missing}")
    first_values, first_lengths = columns[names[0]]
    n = len(first_lengths) if first_lengths is not None else len(first_values)

    payloads, entry_sizes, inner = [], [], []
    for feature in features:
        values, lengths = columns[feature.name]
        p = _Payload(feature, values, lengths, n)
        list_size = np.where(p.byte_lengths > 0, 1 + varint_size(p.byte_lengths.astype(np.uint64))
                             + p.byte_lengths, 0)
        feature_size = 1 + varint_size(list_size.astype(np.uint64)) + list_size
        key = feature.name.encode()
        if len(key) >= 0x80:
            raise ValueError(f"{feature.name}: feature names longer than 127 bytes are not supported")
        body_size = 2 + len(key) + 1 + varint_size(feature_size.astype(np.uint64)) + feature_size
        entry_size = 1 + varint_size(body_size.astype(np.uint64)) + body_size
        payloads.append(p)
        inner.append((key, list_size, feature_size, body_size))
        entry_sizes.append(entry_size)

    features_size = np.sum(entry_sizes, axis=0)
    example_size = 1 + varint_size(features_size.astype(np.uint64)) + features_size
    framed = _HEADER + example_size + _FOOTER
    bounds = np.zeros(n + 1, np.int64)
    np.cumsum(framed, out=bounds[1:])
    out = np.empty(int(bounds[-1]), np.uint8)
    starts = bounds[:-1]

    _write_le(out, starts, example_size, 8)
    cursor = starts + _HEADER
    _write_const(out, cursor, b"\x0a")
    _write_varints(out, cursor + 1, features_size)
    cursor = cursor + 1 + varint_size(features_size.astype(np.uint64))
    for feature, p, (key, list_size, feature_size, body_size), entry_size in zip(
            features, payloads, inner, entry_sizes):
        if (body_size == body_size[0]).all() and (p.byte_lengths == p.byte_lengths[0]).all():
            # Same sizes on every row (scalars with small codes, fixed-length floats): one constant header.
            header = _entry_header(key, feature.dtype, int(p.byte_lengths[0]))
            _write_const(out, cursor, header)
            p.write(out, cursor + len(header))
        else:
            pos = cursor
            _write_const(out, pos, b"\x0a")
            _write_varints(out, pos + 1, body_size)
            pos = pos + 1 + varint_size(body_size.astype(np.uint64))
            _write_const(out, pos, bytes([0x0A, len(key)]) + key + b"\x12")
            pos = pos + 3 + len(key)
            _write_varints(out, pos, feature_size)
            pos = pos + varint_size(feature_size.astype(np.uint64))
            _write_const(out, pos, bytes([_KIND_TAG[feature.dtype]]))
            _write_varints(out, pos + 1, list_size)
            pos = pos + 1 + varint_size(list_size.astype(np.uint64))
            nonempty = p.byte_lengths > 0
            pos_ne = pos[nonempty]
            _write_const(out, pos_ne, b"\x0a")
            _write_varints(out, pos_ne + 1, p.byte_lengths[nonempty])
            pos[nonempty] = pos_ne + 1 + varint_size(p.byte_lengths[nonempty].astype(np.uint64))
            p.write(out, pos)
        cursor = cursor + entry_size

    # CRCs: of the 8 length bytes (few distinct lengths) and of each record's data.
    lengths_u, inverse = np.unique(example_size, return_inverse=True)
    len_crc = np.array([google_crc32c.value(int(v).to_bytes(8, "little")) for v in lengths_u], np.uint64)
    _write_le(out, starts + 8, _masked_crc(len_crc)[inverse], 4)
    raw = out.tobytes()
    data_start = (starts + _HEADER).tolist()
    data_end = (bounds[1:] - _FOOTER).tolist()
    value = google_crc32c.value
    data_crc = np.fromiter((value(raw[a:b]) for a, b in zip(data_start, data_end)), np.uint64, count=n)
    _write_le(out, bounds[1:] - _FOOTER, _masked_crc(data_crc), 4)
    return out, bounds


def serialize_examples(columns: Dict[str, Column], features: Sequence[F.Feature] = F.FEATURES) -> List[bytes]:
    """Serialised ``tf.train.Example`` bytes, one per row (convenient for tests and serving requests)."""
    out, bounds = encode_tfrecords(columns, features)
    raw = out.tobytes()
    return [raw[a + _HEADER:b - _FOOTER] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]


def read_records(path: str) -> List[bytes]:
    """Reads the records of an uncompressed TFRecord file, checking both CRCs (no TensorFlow needed)."""
    records = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        if pos + _HEADER > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        length = int.from_bytes(data[pos:pos + 8], "little")
        if int(_masked_crc(np.array([google_crc32c.value(data[pos:pos + 8])]))[0]) != \
                int.from_bytes(data[pos + 8:pos + 12], "little"):
            raise ValueError(f"{path}: corrupt length crc at byte {pos}")
        end = pos + _HEADER + length
        if end + _FOOTER > len(data):
            raise ValueError(f"{path}: truncated record at byte {pos}")
        record = data[pos + _HEADER:end]
        if int(_masked_crc(np.array([google_crc32c.value(record)]))[0]) != \
                int.from_bytes(data[end:end + 4], "little"):
            raise ValueError(f"{path}: corrupt data crc at byte {pos}")
        records.append(record)
        pos = end + _FOOTER
    return records


class ShardedWriter:
    """Appends framed records to ``num_shards`` files; each chunk is split into contiguous, even parts."""

    def __init__(self, directory: str, num_shards: int, prefix: str = "data"):
        os.makedirs(directory, exist_ok=True)
        self.paths = [os.path.join(directory, f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord")
                      for i in range(num_shards)]
        self._files: List[io.BufferedWriter] = [open(p, "wb") for p in self.paths]
        self.records = 0

    def write(self, buffer: np.ndarray, bounds: np.ndarray) -> None:
        n = len(bounds) - 1
        cuts = np.linspace(0, n, len(self._files) + 1).round().astype(np.int64)
        view = memoryview(buffer)
        for f, a, b in zip(self._files, cuts[:-1], cuts[1:]):
            if b > a:
                f.write(view[bounds[a]:bounds[b]])
        self.records += n

    def close(self) -> None:
        for f in self._files:
            if not f.closed:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
