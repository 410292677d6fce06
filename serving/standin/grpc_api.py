"""The stand-in's gRPC API: the ``tensorflow_serving.apis`` servicers on a ``grpc.server``.

``PredictionService``: ``Predict``, ``Classify``, ``Regress``, ``GetModelMetadata`` (``signature_def``);
``ModelService``: ``GetModelStatus``, ``HandleReloadConfigRequest``. Each resolves its ``model_spec`` as
TF Serving does (latest, ``version`` or ``version_label``), answers with the ``model_spec`` of the version
that ran it, and fails with TF Serving's code and message (anything unexpected is ``INTERNAL`` with the
exception's text, never a bare ``UNKNOWN``). A call's deadline bounds its Session run, as TF Serving's
``enforce_session_run_timeout``. Predict outputs are written as TF Serving writes them
(:func:`~serving.standin.predict.fill_as_proto_field`).
"""

from __future__ import annotations

import logging
import time
from concurrent import futures
from typing import TYPE_CHECKING, Optional, Tuple

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving import protocol as P
from serving.standin import classify_regress, metrics
from serving.standin.predict import DEFAULT_SIGNATURE, fill_as_proto_field, run_predict

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


def spec_version(model_spec) -> Tuple[Optional[int], Optional[str]]:
    """(version, label) a ``ModelSpec`` asks for (both None: the latest)."""
    choice = model_spec.WhichOneof("version_choice")
    if choice == "version_label":
        return None, model_spec.version_label
    return (model_spec.version.value if choice == "version" else None), None


def fill_model_spec(spec, name: str, version: int, signature: Optional[str]) -> None:
    """``MakeModelSpec``: the name, the version that ran, the signature (empty: ``serving_default``)."""
    spec.name = name
    spec.version.value = version
    if signature is not None:
        spec.signature_name = signature or DEFAULT_SIGNATURE


def _timeout_ms(context) -> Optional[int]:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e8 else max(1, int(remaining * 1e3))


def _call(standin: "ModelServerStandIn", api: Optional[str], model: str, context, fn):
    """Runs ``fn()``; counts the request (``api`` None: not counted, as TF Serving) and turns failures
    into the call's status."""
    started = time.perf_counter()
    try:
        result = fn()
    except P.ServingError as e:
        if api:
            standin.record(model, api, metrics.GRPC, e.code.name, started)
        context.abort(e.code, e.message)
    except Exception as e:  # never leak a stack trace as UNKNOWN without a message
        log.exception("%s failed", api)
        if api:
            standin.record(model, api, metrics.GRPC, "INTERNAL", started)
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    if api:
        standin.record(model, api, metrics.GRPC, "OK", started)
    return result


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, standin: "ModelServerStandIn"):
        self._standin = standin

    def Predict(self, request, context):
        from tensorflow_serving.apis import predict_pb2

        def run():
            spec = request.model_spec
            with self._standin.servable(spec.name, *spec_version(spec)) as bundle:
                key, outputs = run_predict(self._standin.runtime, bundle, spec.signature_name, request.inputs,
                                           list(request.output_filter), decode=P.from_tensor_proto,
                                           timeout_ms=_timeout_ms(context))
                response = predict_pb2.PredictResponse()
                fill_model_spec(response.model_spec, spec.name, bundle.version, key)
            for alias, value in outputs.items():
                fill_as_proto_field(response.outputs[alias], value)
            return response

        return _call(self._standin, "Predict", request.model_spec.name, context, run)

    def _classify_or_regress(self, request, context, api: str, run_fn, response_class):
        def run():
            spec = request.model_spec
            with self._standin.servable(spec.name, *spec_version(spec)) as bundle:
                _, result = run_fn(self._standin.runtime, bundle, request, _timeout_ms(context))
                response = response_class()
                fill_model_spec(response.model_spec, spec.name, bundle.version, spec.signature_name)
            response.result.CopyFrom(result)
            return response

        return _call(self._standin, api, request.model_spec.name, context, run)

    def Classify(self, request, context):
        from tensorflow_serving.apis import classification_pb2

        return self._classify_or_regress(request, context, "Classify", classify_regress.run_classify,
                                         classification_pb2.ClassificationResponse)

    def Regress(self, request, context):
        from tensorflow_serving.apis import regression_pb2

        return self._classify_or_regress(request, context, "Regress", classify_regress.run_regress,
                                         regression_pb2.RegressionResponse)

    def GetModelMetadata(self, request, context):
        def run():
            return model_metadata(self._standin, request)

        return _call(self._standin, None, request.model_spec.name, context, run)


def model_metadata(standin: "ModelServerStandIn", request):
    """``GetModelMetadata`` (``get_model_metadata_impl.cc``): only the ``signature_def`` field exists."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    fields = list(request.metadata_field)
    if not fields:
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             "GetModelMetadataRequest must specify at least one metadata_field")
    for field in fields:
        if field != "signature_def":
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field} is not supported")
    spec = request.model_spec
    with standin.servable(spec.name, *spec_version(spec)) as bundle:
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        fill_model_spec(response.model_spec, spec.name, bundle.version, None)
        response.metadata["signature_def"].Pack(bundle.signature_def_map())
    return response


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, standin: "ModelServerStandIn"):
        self._standin = standin

    def GetModelStatus(self, request, context):
        def run():
            spec = request.model_spec
            # TF Serving reads only model_spec.version: a label asks for every version.
            version = spec.version.value if spec.HasField("version") else None
            return P.status_to_proto(self._standin.model_status(spec.name, version))

        return _call(self._standin, None, request.model_spec.name, context, run)

    def HandleReloadConfigRequest(self, request, context):
        from tensorflow.core.protobuf import error_codes_pb2
        from tensorflow_serving.apis import model_management_pb2

        response = model_management_pb2.ReloadConfigResponse()
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                                     "ModelConfigList is currently supported")
            self._standin.reload_config(request.config)
        except P.ServingError as e:
            log.error("ReloadConfig failed: %s", e.message)
            response.status.error_code = error_codes_pb2.Code.Value(e.code.name)
            response.status.error_message = e.message
            context.set_code(e.code)
            context.set_details(e.message)
        return response
