"""The stand-in's gRPC API: the ``tensorflow_serving.apis`` servicers on a ``grpc.server``.

``PredictionService``: ``Predict``, ``GetModelMetadata`` (``signature_def`` only);
``ModelService``: ``GetModelStatus``. Errors abort the call with the :class:`~serving.protocol.ServingError`'s
code and message; anything else is ``INTERNAL`` with the exception's text, never a bare ``UNKNOWN``.
"""

from __future__ import annotations

import logging
import time
from concurrent import futures
from typing import TYPE_CHECKING, Optional, Tuple

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

import features as F
from serving import protocol as P
from serving.standin import metrics

if TYPE_CHECKING:
    from serving.standin.server import ModelServerStandIn

log = logging.getLogger("serving.standin")

_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Two servers must never share a port (tests start several on free ports).
    ("grpc.so_reuseport", 0),
]


def make_grpc_server(standin: "ModelServerStandIn", host: str, port: int,
                     workers: int) -> Tuple[grpc.Server, int]:
    """A ``grpc.server`` with both services, bound (not started); returns it and the bound port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="standin-grpc"),
                         options=_GRPC_OPTIONS)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionServicer(standin), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(standin), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot bind gRPC port {host}:{port}")
    return server, bound


def _model_spec(name: str, version: int, signature: str):
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    spec.version.value = version
    return spec


def _requested_version(model_spec) -> Optional[int]:
    if model_spec.WhichOneof("version_choice") == "version_label":
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"version labels are not supported by the model server stand-in "
                             f"(label '{model_spec.version_label}')")
    return model_spec.version.value if model_spec.HasField("version") else None


def _call(standin: "ModelServerStandIn", api: str, model: str, context, fn):
    """Runs ``fn()``, records the request, and turns failures into the call's status."""
    started = time.perf_counter()
    try:
        result = fn()
    except P.ServingError as e:
        standin.record(model, api, metrics.GRPC, e.code.name, started)
        context.abort(e.code, e.message)
    except Exception as e:  # never leak a stack trace as UNKNOWN without a message
        log.exception("%s failed", api)
        standin.record(model, api, metrics.GRPC, "INTERNAL", started)
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    standin.record(model, api, metrics.GRPC, "OK", started)
    return result


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, standin: "ModelServerStandIn"):
        self._standin = standin

    def Predict(self, request, context):
        from tensorflow_serving.apis import predict_pb2

        def run():
            name = request.model_spec.name
            with self._standin.serving(name, _requested_version(request.model_spec)) as servable:
                try:
                    inputs = {k: P.from_tensor_proto(v) for k, v in request.inputs.items()}
                except Exception as e:
                    raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                         f"cannot decode an input tensor: {e}") from None
                sig = request.model_spec.signature_name or F.SERVING_SIGNATURE
                outputs = self._standin.predict(servable, sig, inputs, list(request.output_filter))
                response = predict_pb2.PredictResponse(model_spec=_model_spec(name, servable.version, sig))
                for k, v in outputs.items():
                    P.fill_tensor_proto(response.outputs[k], v)
                return response

        return _call(self._standin, "predict", request.model_spec.name, context, run)

    def GetModelMetadata(self, request, context):
        from tensorflow_serving.apis import get_model_metadata_pb2

        def run():
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     f"Metadata field(s) {fields} not supported; only signature_def")
            name = request.model_spec.name
            with self._standin.serving(name, _requested_version(request.model_spec)) as servable:
                response = get_model_metadata_pb2.GetModelMetadataResponse(
                    model_spec=_model_spec(name, servable.version, ""))
                response.metadata["signature_def"].Pack(servable.signature_def_map)
                return response

        return _call(self._standin, "metadata", request.model_spec.name, context, run)


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, standin: "ModelServerStandIn"):
        self._standin = standin

    def GetModelStatus(self, request, context):
        def run():
            version = _requested_version(request.model_spec)
            return P.status_to_proto(self._standin.model_status(request.model_spec.name, version))

        return _call(self._standin, "status", request.model_spec.name, context, run)
