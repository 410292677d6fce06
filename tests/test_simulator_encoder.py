"""The vectorised tf.Example / TFRecord encoder against hand-computed bytes, tfx_bsl and TensorFlow."""

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tfx_bsl.coders import example_coder

import features as F
from simulator.tfrecord import ShardedWriter, encode_tfrecords, read_records, serialize_examples, varint_size

SCALAR_INT = F.Feature("a", F.INT, F.SCALAR, "g")
LIST_INT = F.Feature("ids", F.INT, F.VARLEN, "g")
LIST_FLOAT = F.Feature("x", F.FLOAT, F.VARLEN, "g")
SCALAR_FLOAT = F.Feature("p", F.FLOAT, F.SCALAR, "g")


def test_varint_size_hand_computed():
    values = np.array([0, 127, 128, 16383, 16384, 2 ** 63 - 1], np.uint64)
    np.testing.assert_array_equal(varint_size(values), [1, 1, 2, 2, 3, 9])
    assert varint_size(np.array([-1], np.int64).view(np.uint64))[0] == 10


def test_single_feature_bytes_hand_computed():
    (record,) = serialize_examples({"a": (np.array([1]), None)}, [SCALAR_INT])
    # Example{features{feature{key:"a" value{int64_list{value:1}}}}}
    assert record == bytes([0x0A, 0x0C, 0x0A, 0x0A, 0x0A, 0x01, ord("a"), 0x12, 0x05,
                            0x1A, 0x03, 0x0A, 0x01, 0x01])
    expected = tf.train.Example(features=tf.train.Features(feature={
        "a": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}))
    assert record == expected.SerializeToString()


def _random_columns(rng, n):
    ids_len = rng.integers(0, 6, n)
    ids_len[0] = 0  # an empty list
    ids = rng.integers(-3, 2 ** 40, ids_len.sum())
    ids[:3] = [-1, 2 ** 62, 300]  # negative and multi-byte varints
    x_len = rng.integers(0, 40, n)  # some lists > 127 bytes: two-byte length prefixes
    return {
        "a": (rng.integers(0, 200, n), None),
        "ids": (ids, ids_len),
        "x": (rng.normal(size=x_len.sum()).astype(np.float32), x_len),
        "p": (rng.random(n).astype(np.float32), None),
    }


def _record_batch(columns, features):
    arrays = []
    for f in features:
        values, lengths = columns[f.name]
        if lengths is None:
            lengths = np.ones(len(values), np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)))
    return pa.RecordBatch.from_arrays(arrays, [f.name for f in features])


def test_matches_tfx_bsl_encoder():
    features = [SCALAR_INT, LIST_INT, LIST_FLOAT, SCALAR_FLOAT]
    columns = _random_columns(np.random.default_rng(0), 300)
    ours = serialize_examples(columns, features)
    theirs = example_coder.RecordBatchToExamplesEncoder().encode(_record_batch(columns, features))
    assert len(ours) == len(theirs) == 300
    for a, b in zip(ours, theirs):
        assert tf.train.Example.FromString(a) == tf.train.Example.FromString(b)


def test_parses_with_the_feature_spec():
    rng = np.random.default_rng(1)
    columns = _random_columns(rng, 50)
    features = [SCALAR_INT, LIST_INT, LIST_FLOAT, SCALAR_FLOAT]
    parsed = tf.io.parse_example(serialize_examples(columns, features), {
        "a": tf.io.FixedLenFeature([], tf.int64), "ids": tf.io.VarLenFeature(tf.int64),
        "x": tf.io.RaggedFeature(tf.float32), "p": tf.io.FixedLenFeature([], tf.float32)})
    np.testing.assert_array_equal(parsed["a"].numpy(), columns["a"][0])
    np.testing.assert_array_equal(parsed["ids"].values.numpy(), columns["ids"][0])
    np.testing.assert_array_equal(parsed["x"].row_lengths().numpy(), columns["x"][1])
    np.testing.assert_array_equal(parsed["x"].flat_values.numpy(), columns["x"][0])
    np.testing.assert_array_equal(parsed["p"].numpy(), columns["p"][0])


def test_same_columns_same_bytes():
    columns = _random_columns(np.random.default_rng(2), 100)
    features = [SCALAR_INT, LIST_INT, LIST_FLOAT, SCALAR_FLOAT]
    a, _ = encode_tfrecords(columns, features)
    b, _ = encode_tfrecords(columns, features)
    assert a.tobytes() == b.tobytes()


def test_length_mismatch_names_the_feature():
    with pytest.raises(ValueError, match="ids"):
        encode_tfrecords({"ids": (np.arange(5), np.array([1, 1]))}, [LIST_INT])
    with pytest.raises(ValueError, match="missing columns"):
        encode_tfrecords({"a": (np.arange(5), None)}, [SCALAR_INT, LIST_INT])


def test_sharded_files_read_by_tensorflow_with_crc_checks(tmp_path):
    features = [SCALAR_INT, LIST_INT, LIST_FLOAT, SCALAR_FLOAT]
    rng = np.random.default_rng(3)
    chunks = [_random_columns(rng, 10), _random_columns(rng, 7)]
    expected = []
    with ShardedWriter(str(tmp_path), 3) as writer:
        for columns in chunks:
            writer.write(*encode_tfrecords(columns, features))
            expected.append(serialize_examples(columns, features))
    assert writer.records == 17
    # Each chunk is split into contiguous parts: 10 -> 3/4/3 and 7 -> 2/3/2 records.
    per_shard = [read_records(p) for p in writer.paths]
    assert [len(r) for r in per_shard] == [5, 7, 5]
    assert per_shard[0] == expected[0][:3] + expected[1][:2]
    assert per_shard[1] == expected[0][3:7] + expected[1][2:5]
    for path, records in zip(writer.paths, per_shard):
        assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == records


def test_corruption_is_detected(tmp_path):
    features = [SCALAR_INT, LIST_INT]
    columns = _random_columns(np.random.default_rng(4), 5)
    buffer, bounds = encode_tfrecords(columns, features)
    good = buffer.tobytes()
    buffer = buffer.copy()
    buffer[bounds[2] + 20] ^= 0xFF  # a data byte of record 2
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(buffer.tobytes())
    with pytest.raises(ValueError, match="corrupt data crc"):
        read_records(str(path))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path)))
    path.write_bytes(good[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_records(str(path))
