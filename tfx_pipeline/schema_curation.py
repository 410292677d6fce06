"""Curates SchemaGen's inferred schema with the domain constraints the feature module declares.

SchemaGen infers types and presence from statistics, but it cannot know the contract: the label is in {0, 1},
a candidate list is never empty, a propensity is in (0, 1], CTRs are probabilities, categorical codes stay in
their declared domains. :func:`curate_schema` adds exactly the constraints the feature spec declares
(``features.SPEC``, see :mod:`feature_specs`), and environments so the label, the truth and the logging
columns are not expected at serving time.
ExampleValidator and Transform read the curated schema.
"""
# (No `from __future__ import annotations`: TFX parses the component's type hints at import time.)


import os
from typing import Optional

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import io_utils

import feature_specs
import features as F

SCHEMA_FILE = "schema.pbtxt"
TRAINING = "TRAINING"
SERVING = "SERVING"

# Smallest positive propensity accepted by the default spec: the float domain is closed, (0, 1] is
# approximated by [1e-9, 1] (its "range").
MIN_PROPENSITY = 1e-9
# Groups present in training/evaluation data only: serving requests carry neither the label, the truth nor
# the logging metadata.
_TRAINING_ONLY_GROUPS = (feature_specs.LABEL, feature_specs.TRUTH, feature_specs.LOGGING)


def curate_schema(inferred: schema_pb2.Schema, spec: Optional[feature_specs.FeatureSpec] = None) -> schema_pb2.Schema:
    """Returns a copy of ``inferred`` with the constraints the feature spec declares.

    Args:
      inferred: SchemaGen's schema.
      spec: the feature spec (default: the one this process follows, ``features.SPEC``). Each feature's
        ``domain`` / ``vocabulary`` becomes an int domain, its ``range`` a float domain, ``non_empty`` a
        minimum value count; a ``fixed`` feature gets its shape, a scalar the empty shape.

    Raises:
      ValueError: if the inferred schema lacks a declared feature or types it differently (the data does not
        follow the feature contract).
    """
    spec = spec or F.SPEC
    schema = schema_pb2.Schema()
    schema.CopyFrom(inferred)
    by_name = {f.name: f for f in schema.feature}
    missing = [f.name for f in spec.features if f.name not in by_name]
    if missing:
        raise ValueError(f"the data lacks declared feature(s) {missing} (feature spec {spec.name!r})")
    for declared in spec.features:
        name = declared.name
        feature = by_name[name]
        expected = schema_pb2.INT if declared.dtype == F.INT else schema_pb2.FLOAT
        if feature.type != expected:
            raise ValueError(f"feature {name!r}: inferred type {schema_pb2.FeatureType.Name(feature.type)}, "
                             f"the contract says {schema_pb2.FeatureType.Name(expected)}")
        # Every declared column is present on every example (lists may be present and empty).
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        # A shape makes Transform parse the column densely, exactly as features.raw_feature_spec() does.
        if declared.kind == F.SCALAR:
            feature.ClearField("shape")
            feature.shape.SetInParent()  # an empty shape is a scalar
        elif declared.kind == F.FIXED:
            feature.shape.CopyFrom(schema_pb2.FixedShape(dim=[schema_pb2.FixedShape.Dim(size=declared.length)]))
        elif declared.non_empty:
            feature.value_count.CopyFrom(schema_pb2.ValueCount(min=1))
        else:  # e.g. a behaviour sequence may be empty (a new user)
            feature.ClearField("value_count")
        if declared.domain is None and declared.value_range is None and feature.WhichOneof("domain_info"):
            # A domain SchemaGen guessed from these statistics (e.g. a single day seen) is no contract:
            # tomorrow's logs would break it. Only the spec's domains are enforced.
            feature.ClearField("domain_info")
        if declared.domain is not None:
            feature.int_domain.min = 0
            feature.int_domain.max = declared.domain - 1
        if declared.value_range is not None:
            feature.float_domain.min, feature.float_domain.max = declared.value_range
    schema.ClearField("default_environment")
    schema.default_environment.extend([TRAINING, SERVING])
    for declared in spec.features:
        if declared.group in _TRAINING_ONLY_GROUPS:
            by_name[declared.name].not_in_environment.append(SERVING)
    return schema


@tfx.dsl.components.component
def CurateSchema(
    schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    curated_schema: tfx.dsl.components.OutputArtifact[standard_artifacts.Schema],
) -> None:
    """Reads SchemaGen's schema, applies :func:`curate_schema`, writes the curated schema."""
    inferred = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
    io_utils.write_pbtxt_file(os.path.join(curated_schema.uri, SCHEMA_FILE), curate_schema(inferred))
