"""Loading a version as TF Serving does before it serves it: the SavedModel, then its warm-up requests.

``assets.extra/tf_serving_warmup_requests`` holds ``PredictionLog`` TFRecords (``saved_model_warmup.cc``):
each ``predict_log``, ``classify_log`` or ``regress_log`` request is run on the new version, checked and
executed exactly as a real request, ``--num_request_iterations_for_warmup`` times. Any failure fails the
load (so the version never serves), as do more than 1,000 records, an unparseable record, or a log type
TF Serving cannot replay. ``--enable_model_warmup=false`` skips the file.
"""

from __future__ import annotations

import logging
import os

import grpc

from serving import protocol as P
from serving.standin import classify_regress
from serving.standin.predict import Runtime, run_predict
from serving.standin.servable import SavedModelBundle

log = logging.getLogger("serving.standin")

WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # WarmupConsts::kMaxNumRecords


def warm_up(runtime: Runtime, bundle: SavedModelBundle, iterations: int = 1) -> int:
    """Replays the warm-up file of ``bundle`` (if any); returns the number of records."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(bundle.path, WARMUP_PATH)
    if not os.path.exists(path):
        log.info("No warmup data file found at %s", path)
        return 0
    n = 0
    try:
        records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    except tf.errors.DataLossError as e:
        raise P.ServingError(grpc.StatusCode.DATA_LOSS,
                             f"{e.message}. Please verify your warmup data is in TFRecord format.") from None
    for record in records:
        try:
            entry = prediction_log_pb2.PredictionLog.FromString(record)
        except DecodeError:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"Failed to parse warmup record: {record!r} from {path}") from None
        for _ in range(max(1, iterations)):
            _replay(runtime, bundle, entry)
        n += 1
        if n > MAX_WARMUP_RECORDS:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")
    log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d.", path, n)
    return n


def _replay(runtime: Runtime, bundle: SavedModelBundle, entry) -> None:
    kind = entry.WhichOneof("log_type")
    if kind == "predict_log":
        request = entry.predict_log.request
        run_predict(runtime, bundle, request.model_spec.signature_name, request.inputs,
                    list(request.output_filter), decode=P.from_tensor_proto)
    elif kind == "classify_log":
        classify_regress.run_classify(runtime, bundle, entry.classify_log.request)
    elif kind == "regress_log":
        classify_regress.run_regress(runtime, bundle, entry.regress_log.request)
    else:
        raise P.ServingError(grpc.StatusCode.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")


def load_servable(name: str, version: int, path: str, runtime: Runtime, session_config=None,
                  tags=("serve",), warmup: bool = True, warmup_iterations: int = 1) -> SavedModelBundle:
    """Loads one version fully: the SavedModel, then (``warmup``) its warm-up requests."""
    bundle = SavedModelBundle(name, version, path, session_config, tags)
    try:
        if warmup:
            warm_up(runtime, bundle, warmup_iterations)
    except BaseException:
        bundle.close()
        raise
    return bundle
