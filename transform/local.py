"""Runs the Transform analysis and transformation on local TFRecord files, without a TFX pipeline.

Writes the same artifacts the TFX Transform component does, so ``trainer.run.run_fn`` can train on them::

    output_dir/transform_graph/        transform_fn/, transformed_metadata/, metadata/ (tft.TFTransformOutput)
    output_dir/transformed/train/      transformed_examples-*.gz
    output_dir/transformed/eval/       transformed_examples-*.gz

Useful for tests, benchmarks and notebooks; pipelines use ``tfx.components.Transform`` with
``transform.preprocessing.preprocessing_fn``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Dict, Optional

import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
from tfx_bsl.coders import example_coder
from tfx_bsl.public import tfxio

import features as F
from transform.preprocessing import preprocessing_fn

TRANSFORM_GRAPH = "transform_graph"
TRANSFORMED = "transformed"
TRANSFORMED_PREFIX = "transformed_examples"


def _encode(batch_and_passthrough, schema):
    batch, _ = batch_and_passthrough
    return example_coder.RecordBatchToExamplesEncoder(schema).encode(batch)


def raw_schema() -> schema_pb2.Schema:
    """The raw schema of ``features.FEATURES`` (the layout ``features.raw_feature_spec`` parses)."""
    return schema_utils.schema_from_feature_spec(F.raw_feature_spec())


def analyze_and_transform(train_pattern: str, eval_pattern: str, output_dir: str,
                          schema: Optional[schema_pb2.Schema] = None) -> Dict[str, str]:
    """Analyzes ``train_pattern``, transforms both splits, writes the artifacts under ``output_dir``.

    Args:
      train_pattern, eval_pattern: glob patterns of uncompressed TFRecord files of raw tf.Examples.
      output_dir: where to write (see the module docstring).
      schema: raw schema; defaults to :func:`raw_schema`.

    Returns:
      ``{"transform_graph": dir, features.TRAIN_SPLIT: file pattern, features.EVAL_SPLIT: file pattern}``.
    """
    schema = schema or raw_schema()
    graph_dir = os.path.join(output_dir, TRANSFORM_GRAPH)
    patterns = {}
    # The raw schema beside the transform graph, as the TFX Transform component writes it.
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(graph_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    with tempfile.TemporaryDirectory() as tmp, beam.Pipeline() as pipeline, \
            tft_beam.Context(temp_dir=tmp, force_tf_compat_v1=False):
        sources = {}
        for split, pattern in ((F.TRAIN_SPLIT, train_pattern), (F.EVAL_SPLIT, eval_pattern)):
            io = tfxio.TFExampleRecord(file_pattern=pattern, schema=schema, telemetry_descriptors=["adcr"])
            sources[split] = (pipeline | f"Read{split}" >> io.BeamSource(), io.TensorAdapterConfig())
        (train_data, metadata), transform_fn = sources[F.TRAIN_SPLIT] | "AnalyzeAndTransform" >> (
            tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=True))
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(graph_dir)
        eval_data, _ = (sources[F.EVAL_SPLIT], transform_fn) | "TransformEval" >> (
            tft_beam.TransformDataset(output_record_batches=True))

        for split, data in ((F.TRAIN_SPLIT, train_data), (F.EVAL_SPLIT, eval_data)):
            prefix = os.path.join(output_dir, TRANSFORMED, split, TRANSFORMED_PREFIX)
            _ = (data
                 | f"Encode{split}" >> beam.FlatMap(_encode, metadata.schema)
                 | f"Write{split}" >> beam.io.WriteToTFRecord(prefix, file_name_suffix=".gz"))
            patterns[split] = prefix + "*.gz"
    return {TRANSFORM_GRAPH: graph_dir, **patterns}
