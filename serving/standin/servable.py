"""One loaded version of one model: the SavedModel, its SignatureDefs, Predict on it, and warm-up.

:func:`load_servable` loads a version as TF Serving does before it serves it: the SavedModel, then every
record of ``assets.extra/tf_serving_warmup_requests`` (``PredictionLog`` TFRecords, at most
:data:`MAX_WARMUP_RECORDS`), each checked and run as a real request is, so a warm-up file that does not
fit the model fails the load.

:meth:`Servable.predict` checks a request against its signature (:mod:`serving.standin.input_checks`)
and runs it through the SavedModel's concrete function for that signature (``tf.saved_model.load``);
TF Serving runs the SignatureDef's feeds and fetches in a Session instead.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, Mapping, Sequence

import grpc
import numpy as np

import features as F
from serving import protocol as P
from serving.standin import input_checks

log = logging.getLogger("serving.standin")

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many warm-up records


def read_signature_defs(path: str):
    """The ``SignatureDefMap`` of the SavedModel at ``path`` (``GetModelMetadata``'s ``signature_def``)."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    saved = saved_model_pb2.SavedModel()
    pb_path = os.path.join(path, "saved_model.pb")
    if os.path.exists(pb_path):
        with open(pb_path, "rb") as fh:
            saved.ParseFromString(fh.read())
    else:
        with open(os.path.join(path, "saved_model.pbtxt")) as fh:
            text_format.Parse(fh.read(), saved)
    signature_def_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in saved.meta_graphs[0].signature_def.items():
        signature_def_map.signature_def[key].CopyFrom(sig)
    return signature_def_map


class Servable:
    """One loaded version of one model (``inflight``: requests running on it, kept by its versions)."""

    def __init__(self, name: str, version: int, path: str):
        import tensorflow as tf

        self.name, self.version, self.path = name, version, path
        self._loaded = tf.saved_model.load(path)
        self.signature_def_map = read_signature_defs(path)
        self.signatures = P.signatures_from_proto(self.signature_def_map.signature_def)
        self._functions = {k: self._loaded.signatures[k] for k in self.signatures}
        self.inflight = 0

    def predict(self, signature: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = (),
                enable_batching: bool = False) -> Dict[str, np.ndarray]:
        """Checks ``inputs`` against the signature (as TF Serving does), runs it, filters the outputs."""
        signature = signature or F.SERVING_SIGNATURE
        sig = input_checks.signature_of(self.signatures, signature)
        input_checks.check_inputs(sig, inputs, enable_batching)
        input_checks.check_output_filter(sig, output_filter)
        outputs = self._run(signature, inputs)
        if output_filter:
            outputs = {k: v for k, v in outputs.items() if k in set(output_filter)}
        return outputs

    def _run(self, signature: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        import tensorflow as tf

        try:
            out = self._functions[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, e.message) from None
        except tf.errors.OpError as e:
            raise P.ServingError(grpc.StatusCode.INTERNAL, e.message) from None
        except (TypeError, ValueError) as e:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        return {k: v.numpy() for k, v in out.items()}


def warm_up(servable: Servable) -> None:
    """Replays ``assets.extra/tf_serving_warmup_requests`` on a new servable."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(servable.path, WARMUP_PATH)
    if not os.path.exists(path):
        return
    n = 0
    for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if entry.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"warm-up record {n}: only predict_log records are supported")
        request = entry.predict_log.request
        inputs = {k: P.from_tensor_proto(v) for k, v in request.inputs.items()}
        servable.predict(request.model_spec.signature_name, inputs, list(request.output_filter))
        n += 1
    log.info("%s version %d: ran %d warm-up requests", servable.name, servable.version, n)


def load_servable(name: str, version: int, path: str) -> Servable:
    """Loads one version fully: the SavedModel, then its warm-up requests."""
    servable = Servable(name, version, path)
    warm_up(servable)
    return servable
