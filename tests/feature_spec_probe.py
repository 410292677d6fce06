"""Run in a fresh Python with ``ADCR_FEATURE_SPEC`` set (tests/test_feature_specs.py): Transform on a few rows of
the selected spec's log; prints the transformed groups and rows as JSON on the last line."""

import json
import os
import sys
import tempfile

import numpy as np
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

import features as F
from transform import names as N
from transform.preprocessing import preprocessing_fn


def _empty_row():
    row = {}
    for f in F.FEATURES:
        zero = 0.0 if f.dtype == F.FLOAT else 0
        row[f.name] = zero if f.kind == F.SCALAR else [zero] * f.length if f.kind == F.FIXED else []
    return row


def main(rows_json: str) -> None:
    rows = [dict(_empty_row(), **r) for r in json.loads(rows_json)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(F.raw_feature_spec()))
    tmp = tempfile.mkdtemp()
    with tft_beam.Context(temp_dir=os.path.join(tmp, "tmp"), force_tf_compat_v1=False):
        (out, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
    as_json = [{k: np.asarray(v).tolist() for k, v in r.items()} for r in out]
    groups = {name: list(getattr(N, name)) for name in (
        "AR_CATEGORICAL", "AR_NUMERIC", "AR_SEQUENCE", "CR_CATEGORICAL", "CR_DENSE", "CR_INPUTS")}
    print(json.dumps({"groups": groups, "sources": sorted(N.SOURCES), "rows": as_json,
                      "candidate_inputs": N.CANDIDATE_INPUTS}))


if __name__ == "__main__":
    main(sys.argv[1])
