"""Curates SchemaGen's inferred schema with the domain constraints the feature module declares.

SchemaGen infers types and presence from statistics, but it cannot know the contract: the label is in {0, 1},
a candidate list is never empty, a propensity is in (0, 1], CTRs are probabilities, categorical codes stay in
their declared domains. :func:`curate_schema` adds exactly those constraints (from ``features.py``, the single
source of truth), and environments so the label and the truth columns are not expected at serving time.
ExampleValidator and Transform read the curated schema.
"""
# (No `from __future__ import annotations`: TFX parses the component's type hints at import time.)


import os

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import io_utils

import features as F

SCHEMA_FILE = "schema.pbtxt"
TRAINING = "TRAINING"
SERVING = "SERVING"

# Smallest positive propensity accepted: the float domain is closed, (0, 1] is approximated by [1e-9, 1].
MIN_PROPENSITY = 1e-9
_PROBABILITIES = (F.AD_HIST_CTR, F.TRUTH_CTR, F.TRUTH_CAND_CTRS)
# Lists that must hold at least one value on every example.
_NON_EMPTY_LISTS = (F.CAND_CREATIVE_IDS, F.CAND_STYLES, F.CAND_COLOR_TONES, F.CAND_PRICE_TAGS,
                    F.CAND_TEXT_LENGTHS, F.CAND_EMBEDDINGS, F.TRUTH_CAND_CTRS)
# Present in training/evaluation data only: serving requests carry neither the label nor the truth.
_TRAINING_ONLY = (F.LABEL,) + F.TRUTH_FEATURES + F.LOGGING_FEATURES


def curate_schema(inferred: schema_pb2.Schema) -> schema_pb2.Schema:
    """Returns a copy of ``inferred`` with the feature module's constraints.

    Raises:
      ValueError: if the inferred schema lacks a declared feature or types it differently (the data does not
        follow the feature contract).
    """
    schema = schema_pb2.Schema()
    schema.CopyFrom(inferred)
    by_name = {f.name: f for f in schema.feature}
    missing = [name for name in F.BY_NAME if name not in by_name]
    if missing:
        raise ValueError(f"the data lacks declared feature(s) {missing}")
    for name, spec in F.BY_NAME.items():
        feature = by_name[name]
        expected = schema_pb2.INT if spec.dtype == F.INT else schema_pb2.FLOAT
        if feature.type != expected:
            raise ValueError(f"feature {name!r}: inferred type {schema_pb2.FeatureType.Name(feature.type)}, "
                             f"the contract says {schema_pb2.FeatureType.Name(expected)}")
        # Every declared column is present on every example (lists may be present and empty).
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        # A shape makes Transform parse the column densely, exactly as features.raw_feature_spec() does.
        if spec.kind == F.SCALAR:
            feature.ClearField("shape")
            feature.shape.SetInParent()  # an empty shape is a scalar
        elif spec.kind == F.FIXED:
            feature.shape.CopyFrom(schema_pb2.FixedShape(dim=[schema_pb2.FixedShape.Dim(size=spec.length)]))
        elif name in _NON_EMPTY_LISTS:
            feature.value_count.CopyFrom(schema_pb2.ValueCount(min=1))
        else:  # a behaviour sequence may be empty (a new user)
            feature.ClearField("value_count")
        if spec.domain is not None:
            feature.int_domain.min = 0
            feature.int_domain.max = spec.domain - 1
        if name in _PROBABILITIES:
            feature.float_domain.min = 0.0
            feature.float_domain.max = 1.0
        if name == F.PROPENSITY:
            feature.float_domain.min = MIN_PROPENSITY
            feature.float_domain.max = 1.0
    schema.ClearField("default_environment")
    schema.default_environment.extend([TRAINING, SERVING])
    for name in _TRAINING_ONLY:
        by_name[name].not_in_environment.append(SERVING)
    return schema


@tfx.dsl.components.component
def CurateSchema(
    schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    curated_schema: tfx.dsl.components.OutputArtifact[standard_artifacts.Schema],
) -> None:
    """Reads SchemaGen's schema, applies :func:`curate_schema`, writes the curated schema."""
    inferred = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
    io_utils.write_pbtxt_file(os.path.join(curated_schema.uri, SCHEMA_FILE), curate_schema(inferred))
