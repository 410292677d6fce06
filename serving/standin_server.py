"""A local stand-in for TensorFlow Serving, for tests and demos where ``tensorflow_model_server`` is absent.

This is **not** TF Serving. It loads the same pushed SavedModels from the same model base layout
(``<base_path>/<integer version>/``) with ``tf.saved_model.load`` and answers the same APIs with the same
wire formats and error codes, so every client and the router run unchanged against either:

* gRPC ``tensorflow.serving.PredictionService``: ``Predict``, ``GetModelMetadata`` (``signature_def``);
  ``tensorflow.serving.ModelService``: ``GetModelStatus`` — the servicers generated in
  ``tensorflow_serving.apis``, registered on a ``grpc.server``.
* REST: ``POST /v1/models/{name}[/versions/{v}]:predict`` (columnar ``"inputs"`` → ``"outputs"``,
  row ``"instances"`` → ``"predictions"``), ``GET /v1/models/{name}[/versions/{v}]`` (status),
  ``GET .../metadata``, and Prometheus text at ``/monitoring/prometheus/metrics``.
* Errors: ``NOT_FOUND`` for an unknown model or version, ``INVALID_ARGUMENT`` for bad inputs,
  ``FAILED_PRECONDITION`` for an unknown signature; over REST 404 / 400 with ``{"error": "..."}``, with
  TF Serving's messages.

Version management follows TF Serving's file-system source with the *latest* version policy: the base
path is polled every ``poll_seconds``; when the highest version directory changes, that version is loaded
fully (``tf.saved_model.load`` and every record of ``assets.extra/tf_serving_warmup_requests``) while the
old one keeps serving; then new requests go to the new version, the old one is marked ``UNLOADING``,
requests already running on it finish, and it is released (``END``). A version directory is considered
once it holds ``saved_model.pb`` — still, write versions elsewhere and rename them into place, as TF
Serving also requires. A failed load leaves the serving version in place and is retried on later polls
(at most ``max_load_retries`` times).

Differences from TF Serving: no cross-request batching (with ``enable_batching`` the stand-in only
applies the batching session's check that every input has the same 0th dimension, so clients see the
error they would get from TF Serving), no version labels, no Classify / Regress / MultiInference, and an
empty base path leaves the serving version loaded.

Run it::

    python -m serving.standin_server --serving-root /path/to/serving --port 8500 --rest-port 8501
    python -m serving.standin_server --model-base-path ar=/models/ar --model-base-path cr=/models/cr
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from concurrent import futures
from typing import Dict, List, Mapping, Optional, Tuple

import grpc
import numpy as np
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

import features as F
from serving import protocol as P
from serving import runtime

log = logging.getLogger("serving.standin_server")

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many warm-up records
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"

_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Two servers must never share a port (tests start several on free ports).
    ("grpc.so_reuseport", 0),
]


def configure_tf_threads(intra_op: Optional[int] = None, inter_op: Optional[int] = None) -> None:
    """Sets TF's intra-/inter-op thread pools; must run before TF executes its first op."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra_op))
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter_op))
    except RuntimeError as e:  # TF already initialized in this process: keep its pools
        log.warning("could not set TF thread pools (%s); keeping intra=%d inter=%d", e,
                    tf.config.threading.get_intra_op_parallelism_threads(),
                    tf.config.threading.get_inter_op_parallelism_threads())


# ------------------------------------------------------------------------------------------ servables
class _Servable:
    """One loaded version of one model."""

    def __init__(self, name: str, version: int, path: str):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2
        from tensorflow_serving.apis import get_model_metadata_pb2

        self.name, self.version, self.path = name, version, path
        self._loaded = tf.saved_model.load(path)
        pb_path = os.path.join(path, "saved_model.pb")
        saved = saved_model_pb2.SavedModel()
        if os.path.exists(pb_path):
            with open(pb_path, "rb") as fh:
                saved.ParseFromString(fh.read())
        else:
            from google.protobuf import text_format
            with open(os.path.join(path, "saved_model.pbtxt")) as fh:
                text_format.Parse(fh.read(), saved)
        self.signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in saved.meta_graphs[0].signature_def.items():
            self.signature_def_map.signature_def[key].CopyFrom(sig)
        self.signatures = P.signatures_from_proto(self.signature_def_map.signature_def)
        self._functions = {k: self._loaded.signatures[k] for k in self.signatures}
        self.inflight = 0

    def run(self, signature: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
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


class _ModelSlot:
    """The versions of one model: which one serves, their states, and the swap on a new version."""

    def __init__(self, name: str, base_path: str, max_load_retries: int):
        self.name = name
        self.base_path = base_path
        self.max_load_retries = max_load_retries
        self.current: Optional[_Servable] = None
        self.states: Dict[int, P.VersionStatus] = {}
        self._attempts: Dict[int, int] = {}
        self._cond = threading.Condition()

    def ready_versions(self) -> List[int]:
        try:
            names = os.listdir(self.base_path)
        except OSError:
            return []
        return sorted(int(n) for n in names if n.isdigit() and any(
            os.path.exists(os.path.join(self.base_path, n, f)) for f in SAVED_MODEL_FILES))

    def _set(self, version: int, state: str, code: str = "OK", message: str = "") -> None:
        with self._cond:
            self.states[version] = P.VersionStatus(version, state, code, message)

    def poll(self, load) -> None:
        """Loads the aspired (highest) version if it is not the serving one, then retires the old one."""
        versions = self.ready_versions()
        if not versions:
            return
        aspired = versions[-1]
        if self.current is not None and self.current.version == aspired:
            return
        if self._attempts.get(aspired, 0) > self.max_load_retries:
            return
        self._attempts[aspired] = self._attempts.get(aspired, 0) + 1
        self._set(aspired, "LOADING")
        log.info("loading %s version %d from %s", self.name, aspired, self.base_path)
        try:
            new = load(self.name, aspired, os.path.join(self.base_path, str(aspired)))
        except Exception as e:  # keep serving the old version; retried on a later poll
            log.error("failed to load %s version %d: %s", self.name, aspired, e)
            self._set(aspired, "END", "UNKNOWN", f"failed to load: {e}")
            return
        with self._cond:
            old, self.current = self.current, new
            self.states[aspired] = P.VersionStatus(aspired, "AVAILABLE")
            if old is not None:
                self.states[old.version] = P.VersionStatus(old.version, "UNLOADING")
        log.info("%s version %d is AVAILABLE", self.name, aspired)
        if old is not None:
            with self._cond:  # requests already running on the old version finish first
                self._cond.wait_for(lambda: old.inflight == 0, timeout=60.0)
                self.states[old.version] = P.VersionStatus(old.version, "END")
            log.info("%s version %d unloaded", self.name, old.version)

    @contextlib.contextmanager
    def use(self, version: Optional[int]):
        with self._cond:
            servable = self.current
            if servable is None or (version is not None and servable.version != version):
                spec = f"Latest({self.name})" if version is None else f"Specific({self.name}, {version})"
                raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                     f"Servable not found for request: {spec}")
            servable.inflight += 1
        try:
            yield servable
        finally:
            with self._cond:
                servable.inflight -= 1
                if servable.inflight == 0:
                    self._cond.notify_all()

    def status(self, version: Optional[int]) -> List[P.VersionStatus]:
        with self._cond:
            states = dict(self.states)
        if not states:
            raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                 f"Could not find any versions of model {self.name}")
        if version is not None:
            if version not in states:
                raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                     f"Could not find version {version} of model {self.name}")
            return [states[version]]
        return [states[v] for v in sorted(states, reverse=True)]


# ------------------------------------------------------------------------------------------ metrics
class _Metrics:
    """Request counts and latency sums in Prometheus text format (names as TF Serving exports them)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count: Dict[Tuple[str, str, str], int] = {}
        self._latency: Dict[Tuple[str, str], Tuple[float, int]] = {}

    def record(self, model: str, api: str, status: str, seconds: float) -> None:
        with self._lock:
            key = (model, api, status)
            self._count[key] = self._count.get(key, 0) + 1
            s, n = self._latency.get((model, api), (0.0, 0))
            self._latency[(model, api)] = (s + seconds * 1e6, n + 1)

    def render(self) -> str:
        with self._lock:
            lines = ["# TYPE :tensorflow:serving:request_count counter"]
            for (m, api, st), n in sorted(self._count.items()):
                lines.append(f':tensorflow:serving:request_count{{API="{api}",model_name="{m}",'
                             f'status="{st}"}} {n}')
            lines.append("# TYPE :tensorflow:serving:request_latency summary")
            for (m, api), (s, n) in sorted(self._latency.items()):
                labels = f'API="{api}",entrypoint="GRPC",model_name="{m}"'
                lines.append(f":tensorflow:serving:request_latency_sum{{{labels}}} {s:.0f}")
                lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {n}")
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ predict
def _predict_on(servable: _Servable, signature: str, inputs: Mapping[str, np.ndarray],
                output_filter=(), enable_batching: bool = False) -> Dict[str, np.ndarray]:
    """Validates ``inputs`` against the signature (as TF Serving does) and runs it."""
    signature = signature or F.SERVING_SIGNATURE
    sig = servable.signatures.get(signature)
    if sig is None:
        raise P.ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                             f'Serving signature key "{signature}" not found.')
    sent, expected = set(inputs), set(sig.inputs)
    if sent != expected:
        extra, missing = sorted(sent - expected), sorted(expected - sent)
        raise P.ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
    for i, name in enumerate(sorted(sig.inputs)):
        info, arr = sig.inputs[name], inputs[name]
        got = "string" if arr.dtype.kind in "OSU" else arr.dtype.name
        if got != info.dtype:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"Expects arg[{i}] to be {info.dtype} but {got} is provided "
                                 f"(input '{name}')")
        if not P.shape_compatible(info.shape, arr.shape):
            raise P.ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}': shape {P.format_shape(arr.shape)} is not compatible with "
                f"the signature's {P.format_shape(info.shape)}")
    if enable_batching:
        if any(a.ndim == 0 for a in inputs.values()):
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 "Batching session Run() input tensors must have at least one "
                                 "dimension")
        if len({a.shape[0] for a in inputs.values()}) > 1:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 "Batching session Run() input tensors must have equal "
                                 "0th-dimension size")
    for name in output_filter:
        if name not in sig.outputs:
            raise P.ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {name} Outputs expected to be in "
                f"the set {{{','.join(sorted(sig.outputs))}}}.")
    outputs = servable.run(signature, inputs)
    if output_filter:
        outputs = {k: v for k, v in outputs.items() if k in set(output_filter)}
    return outputs


# ---------------------------------------------------------------------------------------- the server
class ModelServerStandIn:
    """Serves pushed SavedModels over TF Serving's gRPC and REST APIs (a local stand-in, not TF Serving).

    Args:
      model_base_paths: model name → base path holding integer version directories.
      port / rest_port: gRPC and REST ports (0 picks a free one; see :attr:`port`, :attr:`rest_port`).
      host: address to bind (loopback by default).
      poll_seconds: how often base paths are polled for new versions (TF Serving's
        ``--file_system_poll_wait_seconds``); 0 disables polling after the initial load.
      intra_op_threads / inter_op_threads: TF thread pools (set before TF runs its first op).
      enable_batching: apply TF Serving's batching-session input check (equal 0th dimensions).
      max_load_retries: how many more times a version that failed to load is tried.
    """

    def __init__(self, model_base_paths: Mapping[str, str], *, port: int = 0, rest_port: int = 0,
                 host: str = "127.0.0.1", poll_seconds: float = 1.0,
                 intra_op_threads: Optional[int] = None, inter_op_threads: Optional[int] = None,
                 enable_batching: bool = False, max_load_retries: int = 5, grpc_workers: int = 16):
        if not model_base_paths:
            raise ValueError("model_base_paths is empty: give at least one name=base_path")
        configure_tf_threads(intra_op_threads, inter_op_threads)
        self._slots = {name: _ModelSlot(name, os.path.abspath(path), max_load_retries)
                       for name, path in model_base_paths.items()}
        self._host = host
        self._requested_ports = (port, rest_port)
        self._poll_seconds = poll_seconds
        self._enable_batching = enable_batching
        self._grpc_workers = grpc_workers
        self._metrics = _Metrics()
        self._stop = threading.Event()
        self._grpc_server = None
        self._http_server = None
        self._threads: List[threading.Thread] = []
        self.port: Optional[int] = None
        self.rest_port: Optional[int] = None

    # -- lifecycle
    def start(self) -> "ModelServerStandIn":
        """Loads the latest version of every model, then starts the gRPC and REST servers and polling."""
        self.poll_once()
        self._grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._grpc_workers, thread_name_prefix="standin-grpc"),
            options=_GRPC_OPTIONS)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionServicer(self), self._grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self), self._grpc_server)
        self.port = self._grpc_server.add_insecure_port(f"{self._host}:{self._requested_ports[0]}")
        if not self.port:
            raise OSError(f"cannot bind gRPC port {self._host}:{self._requested_ports[0]}")
        self._http_server = http.server.ThreadingHTTPServer(
            (self._host, self._requested_ports[1]), _make_rest_handler(self))
        self._http_server.daemon_threads = True
        self.rest_port = self._http_server.server_address[1]
        self._grpc_server.start()
        self._threads = [threading.Thread(target=self._http_server.serve_forever, name="standin-rest",
                                          daemon=True)]
        if self._poll_seconds and self._poll_seconds > 0:
            self._threads.append(threading.Thread(target=self._poll_loop, name="standin-poll", daemon=True))
        for t in self._threads:
            t.start()
        log.info("model server stand-in: gRPC %s:%d, REST %s:%d, models %s", self._host, self.port,
                 self._host, self.rest_port, {n: s.base_path for n, s in self._slots.items()})
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stops polling and both servers; requests in flight get ``grace`` seconds to finish."""
        self._stop.set()
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait(grace + 1.0)
        for t in self._threads:
            t.join(timeout=grace + 5.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def grpc_address(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self._host}:{self.rest_port}"

    def poll_once(self) -> None:
        """One pass of the file-system source over every base path (loads and retires versions)."""
        for slot in self._slots.values():
            slot.poll(_load_servable)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll_once()
            except Exception:  # a poll must never kill the poller
                log.exception("poll failed")

    # -- the APIs (protocol-neutral)
    def _slot(self, name: str, version: Optional[int], for_status: bool = False) -> _ModelSlot:
        slot = self._slots.get(name)
        if slot is None:
            if for_status:
                raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                     f"Could not find any versions of model {name}")
            spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise P.ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec}")
        return slot

    def model_status(self, name: str, version: Optional[int] = None) -> List[P.VersionStatus]:
        return self._slot(name, version, for_status=True).status(version)

    @contextlib.contextmanager
    def serving(self, name: str, version: Optional[int]):
        """The servable for a request, held until the request is done."""
        with self._slot(name, version).use(version) as servable:
            yield servable

    def run_predict(self, servable: _Servable, signature: str, inputs: Mapping[str, np.ndarray],
                    output_filter=()) -> Dict[str, np.ndarray]:
        """Validates ``inputs`` against the signature (as TF Serving does) and runs it."""
        return _predict_on(servable, signature, inputs, output_filter, self._enable_batching)

    def record(self, model: str, api: str, status: str, started: float) -> None:
        self._metrics.record(model, api, status, time.perf_counter() - started)

    def metrics_text(self) -> str:
        return self._metrics.render()


def _warm_up(servable: _Servable) -> None:
    """Replays ``assets.extra/tf_serving_warmup_requests`` (PredictionLog TFRecords) on a new servable."""
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
        sig = request.model_spec.signature_name or F.SERVING_SIGNATURE
        # Validated as a real request is, so a warm-up file that does not match the model fails the load.
        _predict_on(servable, sig, inputs, list(request.output_filter))
        n += 1
    log.info("%s version %d: ran %d warm-up requests", servable.name, servable.version, n)


def _load_servable(name: str, version: int, path: str) -> _Servable:
    """Loads one version fully: the SavedModel, then its warm-up requests."""
    servable = _Servable(name, version, path)
    _warm_up(servable)
    return servable


# ------------------------------------------------------------------------------------------- gRPC
def _model_spec(proto_spec, version: int, signature: str):
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=proto_spec.name, signature_name=signature)
    spec.version.value = version
    return spec


def _requested_version(model_spec) -> Optional[int]:
    if model_spec.WhichOneof("version_choice") == "version_label":
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"version labels are not supported by the model server stand-in "
                             f"(label '{model_spec.version_label}')")
    return model_spec.version.value if model_spec.HasField("version") else None


def _grpc_call(server: ModelServerStandIn, api: str, model: str, context, fn):
    started = time.perf_counter()
    try:
        result = fn()
    except P.ServingError as e:
        server.record(model, api, e.code.name, started)
        context.abort(e.code, e.message)
    except Exception as e:  # never leak a stack trace as UNKNOWN without a message
        log.exception("%s failed", api)
        server.record(model, api, "INTERNAL", started)
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    server.record(model, api, "OK", started)
    return result


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: ModelServerStandIn):
        self._server = server

    def Predict(self, request, context):
        from tensorflow_serving.apis import predict_pb2

        def run():
            version = _requested_version(request.model_spec)
            with self._server.serving(request.model_spec.name, version) as servable:
                try:
                    inputs = {k: P.from_tensor_proto(v) for k, v in request.inputs.items()}
                except Exception as e:
                    raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                         f"cannot decode an input tensor: {e}") from None
                sig = request.model_spec.signature_name or F.SERVING_SIGNATURE
                outputs = self._server.run_predict(servable, sig, inputs, list(request.output_filter))
                response = predict_pb2.PredictResponse(
                    model_spec=_model_spec(request.model_spec, servable.version, sig))
                for k, v in outputs.items():
                    P.fill_tensor_proto(response.outputs[k], v)
                return response

        return _grpc_call(self._server, "predict", request.model_spec.name, context, run)

    def GetModelMetadata(self, request, context):
        from tensorflow_serving.apis import get_model_metadata_pb2

        def run():
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     f"Metadata field(s) {fields} not supported; only signature_def")
            version = _requested_version(request.model_spec)
            with self._server.serving(request.model_spec.name, version) as servable:
                response = get_model_metadata_pb2.GetModelMetadataResponse(
                    model_spec=_model_spec(request.model_spec, servable.version, ""))
                response.metadata["signature_def"].Pack(servable.signature_def_map)
                return response

        return _grpc_call(self._server, "metadata", request.model_spec.name, context, run)


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server: ModelServerStandIn):
        self._server = server

    def GetModelStatus(self, request, context):
        def run():
            version = _requested_version(request.model_spec)
            return _status_response(self._server.model_status(request.model_spec.name, version))

        return _grpc_call(self._server, "status", request.model_spec.name, context, run)


def _status_response(statuses: List[P.VersionStatus]):
    from tensorflow.core.protobuf import error_codes_pb2
    from tensorflow_serving.apis import get_model_status_pb2

    response = get_model_status_pb2.GetModelStatusResponse()
    for s in statuses:
        entry = response.model_version_status.add()
        entry.version = s.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(s.state)
        entry.status.error_code = error_codes_pb2.Code.Value(s.error_code)
        entry.status.error_message = s.error_message
    return response


# ------------------------------------------------------------------------------------------- REST
_REST_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict|:classify|:regress)?$")


def _json_inputs(body: dict, sig: P.SignatureInfo) -> Tuple[Dict[str, np.ndarray], bool]:
    """Request JSON → named arrays; returns (inputs, row_format)."""
    has_inputs, has_instances = "inputs" in body, "instances" in body
    if has_inputs == has_instances:
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             "Missing 'inputs' or 'instances' key" if not has_inputs else
                             "Not formatted correctly expecting only one of 'inputs' or 'instances' "
                             "keys exists")
    names = sorted(sig.inputs)
    try:
        if has_inputs:
            value = body["inputs"]
            if isinstance(value, dict) and not (len(names) == 1 and set(value) == {"b64"}):
                columns = value
            elif len(names) == 1:
                columns = {names[0]: value}
            else:
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     "'inputs' must be an object of named inputs when the signature "
                                     f"has more than one input ({','.join(names)})")
        else:
            rows = body["instances"]
            if not isinstance(rows, list) or not rows:
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     "'instances' must be a non-empty list")
            if all(isinstance(r, dict) and not (set(r) == {"b64"}) for r in rows):
                keys = set(rows[0])
                for i, r in enumerate(rows):
                    if set(r) != keys:
                        raise P.ServingError(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"Failed to process element: {i} of 'instances' list. Error: keys "
                            f"{sorted(r)} differ from the first element's {sorted(keys)}")
                columns = {k: [r[k] for r in rows] for k in keys}
            elif len(names) == 1:
                columns = {names[0]: rows}
            else:
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     "'instances' elements must be objects of named inputs when the "
                                     f"signature has more than one input ({','.join(names)})")
        missing = [n for n in names if n not in columns]
        if missing:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"Missing named input: {missing[0]} in "
                                 f"'{'inputs' if has_inputs else 'instances'}' object.")
        extra = [n for n in columns if n not in sig.inputs]
        if extra:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"input tensor alias not found in signature: {extra[0]}. Inputs "
                                 f"expected to be in the set {{{','.join(names)}}}.")
        inputs = {n: P.from_json_value(columns[n], sig.inputs[n].dtype, n) for n in names}
    except ValueError as e:
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
    return inputs, has_instances


def _json_outputs(outputs: Dict[str, np.ndarray], row_format: bool):
    if not row_format:
        if len(outputs) == 1:  # TF Serving omits the name of a single output
            (name, arr), = outputs.items()
            return {"outputs": P.to_json_value(arr, name)}
        return {"outputs": {k: P.to_json_value(v, k) for k, v in outputs.items()}}
    sizes = {v.shape[0] if v.ndim else 0 for v in outputs.values()}
    if len(sizes) != 1:
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             "Tensors with different 0th dimensions cannot be returned in row format; "
                             "send 'inputs' (columnar) instead of 'instances'")
    n = sizes.pop()
    columns = {k: P.to_json_value(v, k) for k, v in outputs.items()}
    if len(columns) == 1:
        (values,) = columns.values()
        return {"predictions": values}
    return {"predictions": [{k: columns[k][i] for k in columns} for i in range(n)]}


def _make_rest_handler(server: ModelServerStandIn):
    from google.protobuf import json_format

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ModelServerStandIn"

        def setup(self):
            super().setup()
            runtime.set_nodelay(self.connection)

        def log_message(self, fmt, *args):  # quiet by default; routed to logging
            log.debug("%s - %s", self.address_string(), fmt % args)

        def _send(self, status: int, payload, content_type="application/json"):
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, e: P.ServingError):
            self._send(e.http_status, {"error": e.message})

        def _route(self, method: str):
            path = self.path.split("?", 1)[0]
            if method == "GET" and path == PROMETHEUS_PATH:
                return self._send(200, server.metrics_text().encode(), "text/plain; version=0.0.4")
            m = _REST_PATH.match(path)
            verb = m and (m.group("verb") or "")
            ok = m and ((method == "GET" and verb in ("", "/metadata")) or
                        (method == "POST" and verb in (":predict", ":classify", ":regress")))
            if not ok:
                return self._error(P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                                  f"Malformed request: {method} {path}")
                                   if m else P.ServingError(grpc.StatusCode.NOT_FOUND,
                                                            f"Malformed request: {method} {path}"))
            name = m.group("name")
            version = int(m.group("version")) if m.group("version") else None
            started = time.perf_counter()
            api = {"": "status", "/metadata": "metadata"}.get(verb, verb[1:])
            try:
                if m.group("label"):
                    raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                         "version labels are not supported by the model server "
                                         f"stand-in (label '{m.group('label')}')")
                if verb == "":
                    payload = json_format.MessageToDict(
                        _status_response(server.model_status(name, version)),
                        including_default_value_fields=True, preserving_proto_field_name=True)
                elif verb == "/metadata":
                    with server.serving(name, version) as servable:
                        payload = {
                            "model_spec": {"name": name, "signature_name": "",
                                           "version": str(servable.version)},
                            "metadata": {"signature_def": json_format.MessageToDict(
                                servable.signature_def_map, preserving_proto_field_name=True)}}
                elif verb == ":predict":
                    payload = self._predict(name, version)
                else:
                    raise P.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                         f"{verb[1:]} is not supported by the model server stand-in; "
                                         "use :predict")
            except P.ServingError as e:
                server.record(name, api, e.code.name, started)
                return self._error(e)
            except Exception as e:
                log.exception("REST %s failed", path)
                server.record(name, api, "INTERNAL", started)
                return self._error(P.ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"))
            server.record(name, api, "OK", started)
            self._send(200, payload)

        def _predict(self, name: str, version: Optional[int]):
            try:
                body = json.loads(self._body)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                pos = getattr(e, "pos", 0)
                msg = getattr(e, "msg", str(e))
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     f"JSON Parse error: {msg} at offset: {pos}") from None
            if not isinstance(body, dict):
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     "JSON Value: the request body must be a JSON object")
            sig_name = body.get("signature_name", F.SERVING_SIGNATURE)
            if not isinstance(sig_name, str):
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                     "'signature_name' key must be a string")
            with server.serving(name, version) as servable:
                sig = servable.signatures.get(sig_name)
                if sig is None:
                    raise P.ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                         f'Serving signature key "{sig_name}" not found.')
                inputs, row_format = _json_inputs(body, sig)
                outputs = server.run_predict(servable, sig_name, inputs)
                return _json_outputs(outputs, row_format)

        def _read_body(self) -> bytes:
            # Always consume the body: the connection is kept alive for the next request.
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit():
                raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, "bad Content-Length")
            return self.rfile.read(int(length)) if int(length) else b""

        def do_GET(self):
            try:
                self._body = self._read_body()
            except P.ServingError as e:
                self.close_connection = True
                return self._error(e)
            self._route("GET")

        def do_POST(self):
            try:
                self._body = self._read_body()
            except P.ServingError as e:
                self.close_connection = True
                return self._error(e)
            self._route("POST")

    return Handler


# ------------------------------------------------------------------------------------------- CLI
def _parse_base_paths(items: List[str]) -> Dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise argparse.ArgumentTypeError(f"--model-base-path expects NAME=DIR, got {item!r}")
        if name in out:
            raise argparse.ArgumentTypeError(f"--model-base-path: model {name!r} given twice")
        out[name] = path
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.standin_server",
        description="Local stand-in for TF Serving (not TF Serving): serves the pushed AR/CR "
                    "SavedModels over TF Serving's gRPC and REST APIs.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--serving-root", help=f"serve <root>/{F.AR_MODEL_NAME} and <root>/{F.CR_MODEL_NAME}")
    src.add_argument("--model-base-path", action="append", metavar="NAME=DIR",
                     help="a model name and its base path (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port (0: pick a free one)")
    parser.add_argument("--file-system-poll-wait-seconds", type=float, default=1.0)
    parser.add_argument("--intra-op-threads", type=int, default=None)
    parser.add_argument("--inter-op-threads", type=int, default=None)
    parser.add_argument("--enable-batching", action="store_true",
                        help="apply TF Serving's batching input check (equal 0th dimensions)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        paths = ({F.AR_MODEL_NAME: os.path.join(args.serving_root, F.AR_MODEL_NAME),
                  F.CR_MODEL_NAME: os.path.join(args.serving_root, F.CR_MODEL_NAME)}
                 if args.serving_root else _parse_base_paths(args.model_base_path))
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = ModelServerStandIn(
        paths, port=args.port, rest_port=args.rest_port, host=args.host,
        poll_seconds=args.file_system_poll_wait_seconds, intra_op_threads=args.intra_op_threads,
        inter_op_threads=args.inter_op_threads, enable_batching=args.enable_batching)
    server.start()
    runtime.tune_gc()
    print(f"model server stand-in ready: grpc={server.grpc_address} rest={server.rest_url}",
          file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
