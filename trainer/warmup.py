"""TF Serving warm-up records: ``assets.extra/tf_serving_warmup_requests`` of a SavedModel."""

from __future__ import annotations

import os
from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

import features as F

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def write_warmup_requests(export_dir: str, model_name: str, requests: Iterable[Mapping[str, np.ndarray]],
                          signature_name: str = F.RAW_SIGNATURE) -> str:
    """Writes one ``PredictionLog`` (a ``PredictRequest`` to ``signature_name``) per request; returns the path.

    TF Serving replays these at load time so the first real request does not pay for graph warm-up.
    """
    path = os.path.join(export_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir: str):
    """The ``PredictRequest`` s of a SavedModel's warm-up file."""
    out = []
    for record in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        out.append(log.predict_log.request)
    return out
