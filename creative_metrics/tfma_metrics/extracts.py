"""Reading one impression's features, label, predictions and weight from TFMA's metric inputs.

Every reader raises ``ValueError`` naming the metric and the missing or malformed key.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from tensorflow_model_analysis.metrics import metric_types


def feature(element: metric_types.StandardMetricInputs, key: str, metric: str) -> np.ndarray:
    features = element.features or {}
    if key not in features:
        raise ValueError(
            f"{metric}: feature {key!r} is missing from the extracts (available: {sorted(features)}); "
            f"it must be in the evaluated examples")
    return np.asarray(features[key]).reshape(-1)


def one(values: np.ndarray, what: str, metric: str):
    if values.size != 1:
        raise ValueError(f"{metric}: expected one value of {what} per impression, got {values.size}")
    return values[0]


def prediction(element, model_name: str, key: str, metric: str) -> np.ndarray:
    predictions = element.get_predictions(model_name=model_name or None)
    if predictions is None:
        raise ValueError(f"{metric}: no predictions for model {model_name!r}")
    if isinstance(predictions, Mapping):
        if key not in predictions:
            raise ValueError(
                f"{metric}: predictions of model {model_name!r} have no output {key!r} "
                f"(outputs: {sorted(predictions)}); set the metric's prediction key")
        predictions = predictions[key]
    return np.asarray(predictions).reshape(-1)


def label(element, model_name: str, key: str, metric: str) -> float:
    labels = element.get_labels(model_name=model_name or None)
    if isinstance(labels, Mapping):
        labels = labels.get(key)
    if labels is None:  # no label_key in the ModelSpec: read the click column itself
        labels = feature(element, key, metric)
    return float(one(np.asarray(labels).reshape(-1), f"label {key!r}", metric))


def weight(element, model_name: str, example_weighted: bool, metric: str) -> float:
    if not example_weighted:
        return 1.0
    weights = element.get_example_weights(model_name=model_name or None)
    if weights is None:
        return 1.0
    if isinstance(weights, Mapping):
        raise ValueError(f"{metric}: per-output example weights are not supported")
    return float(one(np.asarray(weights).reshape(-1), "example weight", metric))


def metric_key(name, model_name, output_name, example_weighted) -> metric_types.MetricKey:
    return metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                  example_weighted=example_weighted)


def check_unsupported(metric: str, sub_key, query_key) -> None:
    if sub_key is not None:
        raise ValueError(f"{metric} does not support sub keys (binarize / top_k), got {sub_key}")
    if query_key:
        raise ValueError(f"{metric} does not support query_key, got {query_key!r}")
