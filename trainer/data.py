"""Training and evaluation input: transformed examples -> ``(features, label)`` batches."""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.public import tfxio

from transform import names as N


# Rows the training shuffle draws from (tfxio's default).
SHUFFLE_BUFFER_ROWS = 10_000


def _schema_subset(schema: schema_pb2.Schema, names: Iterable[str]) -> schema_pb2.Schema:
    """``schema`` restricted to ``names``, so unused columns (candidate lists) are never parsed."""
    keep = set(names)
    missing = keep - {f.name for f in schema.feature}
    if missing:
        raise ValueError(f"the transformed data lacks the feature(s) {sorted(missing)}")
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    del out.feature[:]
    out.feature.extend(f for f in schema.feature if f.name in keep)
    return out


def make_dataset(file_pattern: Union[str, Sequence[str]], tft_output, feature_names: Sequence[str],
                 batch_size: int, data_accessor=None, num_epochs: Optional[int] = None, shuffle: bool = True,
                 seed: Optional[int] = None, input_context: Optional[tf.distribute.InputContext] = None,
                 shuffle_block_rows: int = 1) -> tf.data.Dataset:
    """Batches ``(features, label)`` of transformed examples.

    With ``shuffle_block_rows`` > 1 the shuffle moves blocks of that many consecutive rows, from a window of
    ``SHUFFLE_BUFFER_ROWS`` rows as the row shuffle does: the log writes a request's rows one after another
    (Transform keeps that order), so a batch holds most requests whole and the AR's sequence transformer
    runs once per request instead of once per row (:mod:`trainer.unique_sequences`). Each batch then mixes
    ``batch_size / shuffle_block_rows`` stretches of the log instead of ``batch_size`` rows.

    Args:
      file_pattern: transformed-example files (``fn_args.train_files`` / ``eval_files``).
      tft_output: the ``tft.TFTransformOutput`` that wrote them.
      feature_names: the transformed features to read (the model's inputs); the label is read as well.
      batch_size: rows per batch.
      data_accessor: the Trainer's ``fn_args.data_accessor``; without one the files are read as gzipped
        TFRecords of tf.Example (the Transform component's output format).
      num_epochs: passes over the data; ``None`` repeats forever.
      shuffle, seed: shuffle the input.
      shuffle_block_rows: rows that move together in the shuffle (1: a row shuffle).
      input_context: one worker's share in distributed training (``trainer.distribute.dataset_for``): its
        own files when there are at least as many files as input pipelines, else all files in its own
        shuffled order (seed offset by the pipeline id).
    """
    if not isinstance(shuffle_block_rows, int) or shuffle_block_rows < 1:
        raise ValueError(f"shuffle_block_rows must be a positive integer, got {shuffle_block_rows!r}")
    if shuffle and shuffle_block_rows > 1:
        if input_context is not None and seed is not None:  # workers reading the same files: own orders
            seed += input_context.input_pipeline_id
        blocks = make_dataset(file_pattern, tft_output, feature_names, shuffle_block_rows, data_accessor,
                              num_epochs, shuffle=False, input_context=input_context, seed=seed)
        return (blocks.shuffle(max(1, SHUFFLE_BUFFER_ROWS // shuffle_block_rows), seed=seed).rebatch(batch_size)
                .prefetch(tf.data.AUTOTUNE))  # rebatching off the training step's thread
    patterns: List[str] = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    names = list(dict.fromkeys(list(feature_names) + [N.LABEL_KEY]))
    schema = _schema_subset(tft_output.transformed_metadata.schema, names)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise ValueError(f"no files match {patterns}")
    if input_context is not None and input_context.num_input_pipelines > 1:
        shards, index = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= shards:
            files = patterns = files[index::shards]
        elif seed is not None:
            seed += index
    if data_accessor is not None:
        options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=N.LABEL_KEY,
                                                 num_epochs=num_epochs, shuffle=shuffle, shuffle_seed=seed,
                                                 shuffle_buffer_size=SHUFFLE_BUFFER_ROWS)
        return data_accessor.tf_dataset_factory(patterns, options, schema)
    spec = {n: s for n, s in tft_output.transformed_feature_spec().items() if n in names}
    return tf.data.experimental.make_batched_features_dataset(
        files, batch_size, spec, reader=lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
        label_key=N.LABEL_KEY, num_epochs=num_epochs, shuffle=shuffle, shuffle_seed=seed,
        shuffle_buffer_size=SHUFFLE_BUFFER_ROWS)


def read_column_sample(file_pattern, tft_output, name: str, max_rows: int,
                       data_accessor=None) -> Tuple[np.ndarray, np.ndarray]:
    """Up to ``max_rows`` values of transformed feature ``name`` and the labels, as NumPy arrays."""
    ds = make_dataset(file_pattern, tft_output, [name], batch_size=min(max_rows, 8192),
                      data_accessor=data_accessor, num_epochs=1, shuffle=False)
    values, labels, rows = [], [], 0
    for features, label in ds:
        values.append(tf.reshape(features[name], [-1]).numpy())
        labels.append(tf.reshape(label, [-1]).numpy())
        rows += len(values[-1])
        if rows >= max_rows:
            break
    return np.concatenate(values)[:max_rows], np.concatenate(labels)[:max_rows]
