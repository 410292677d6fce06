"""Stops a run before Transform and training when ExampleValidator found anomalies.

ExampleValidator records anomalies but lets the pipeline go on. For a ranking model that is pushed
automatically, bad data (a wrong type, a missing label, an empty candidate list) must stop the run, so that
nothing trained on it is evaluated or pushed and the models already served stay served. The gate fails with a
message that names every anomalous feature and split.
"""
# (No `from __future__ import annotations`: TFX parses the component's type hints at import time.)

import os
from typing import Dict, List

from tensorflow_data_validation.utils import anomalies_util
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifact_utils, standard_artifacts

ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomaliesError(RuntimeError):
    """The examples violate the curated schema."""


def describe_anomalies(anomalies: standard_artifacts.ExampleAnomalies) -> Dict[str, List[str]]:
    """Returns ``{split: ["feature: short description (long description)", ...]}`` for anomalous splits."""
    found = {}
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(standard_artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
        result = anomalies_util.load_anomalies_binary(path)
        lines = []
        for feature, info in sorted(result.anomaly_info.items()):
            lines.append(f"{feature}: {info.short_description} ({info.description})")
        if result.HasField("dataset_anomaly_info"):
            info = result.dataset_anomaly_info
            lines.append(f"<dataset>: {info.short_description} ({info.description})")
        if lines:
            found[split] = lines
    return found


@tfx.dsl.components.component
def DataGate(anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
    """Raises :class:`DataAnomaliesError` naming each anomaly if ExampleValidator found any."""
    found = describe_anomalies(anomalies)
    if found:
        report = "\n".join(f"  split {split!r}: {line}" for split, lines in found.items() for line in lines)
        raise DataAnomaliesError(
            "ExampleValidator found anomalies; the run stops before training and nothing is pushed:\n" + report)
