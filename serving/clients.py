"""Typed clients for TF Serving's Predict, model-metadata and model-status APIs, over gRPC or REST.

Both clients have one interface (:class:`ServingClient`)::

    client = GrpcServingClient("localhost:8500")          # or RestServingClient("http://localhost:8501")
    out = client.predict("ar", {"ad_id": np.array([1, 2]), ...}, signature="predict_raw")
    out["pctr_ad"]                                          # np.ndarray, float32, shape [2]
    client.metadata("ar").signatures["predict_raw"].inputs  # name -> TensorInfo(dtype, shape)
    client.status("ar")                                     # [VersionStatus(version=3, state="AVAILABLE")]

gRPC uses the ``tensorflow_serving.apis`` stubs (``PredictionService.Predict`` / ``GetModelMetadata``,
``ModelService.GetModelStatus``) with ``TensorProto`` tensors (``tf.make_tensor_proto`` /
``tf.make_ndarray``). REST uses ``POST /v1/models/{name}[/versions/N]:predict`` with the columnar
``{"signature_name": ..., "inputs": {name: [...]}}`` body and ``GET /v1/models/{name}[/versions/N]
[/metadata]``. Wherever a ``version`` is taken, a string is a version *label* (``"stable"``,
``"canary"``): ``model_spec.version_label`` over gRPC, ``/labels/{label}`` over REST. Every failure raises
:class:`serving.protocol.ServingError` with the gRPC status code (REST statuses mapped back: 404 →
``NOT_FOUND``, 400 → ``INVALID_ARGUMENT``, connection refused → ``UNAVAILABLE``, timeout →
``DEADLINE_EXCEEDED``).

:meth:`ServingClient.start_predict` sends a request without waiting and returns a :class:`PredictCall`;
its result also says how long encoding, the round trip and decoding took (the router's per-stage timing).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import threading
import time
from concurrent import futures
from typing import Dict, Iterable, List, Mapping, Optional

import grpc
import numpy as np

import features as F
from serving import protocol as P
from serving.json_http import KeepAliveClient
from serving.protocol import ServingError

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


@dataclasses.dataclass
class PredictResult:
    """Outputs of one Predict and where its time went (milliseconds).

    ``version`` is the version that answered (gRPC reports it; over REST it is the requested version
    number, or ``None``). ``encode_ms``: arrays → wire format; ``rpc_ms``: send → response received (network
    and the server's own work); ``decode_ms``: wire format → arrays.
    """

    outputs: Dict[str, np.ndarray]
    model: str
    version: Optional[int]
    signature: str
    encode_ms: float
    rpc_ms: float
    decode_ms: float


class PredictCall(abc.ABC):
    """A Predict in flight: a future (gRPC's or a thread pool's) and how to read its result."""

    def __init__(self, future):
        self._future = future

    @abc.abstractmethod
    def result(self, timeout: Optional[float] = None) -> PredictResult:
        """Waits for the response; raises :class:`ServingError` on failure."""

    def cancel(self) -> None:
        self._future.cancel()

    def done(self) -> bool:
        return self._future.done()


class ServingClient(abc.ABC):
    """The interface both protocols implement."""

    def predict(self, model: str, inputs: Mapping[str, np.ndarray],
                signature: str = F.SERVING_SIGNATURE, version: Optional[int] = None,
                timeout: Optional[float] = None) -> Dict[str, np.ndarray]:
        """Runs ``signature`` of ``model`` on named ``inputs``; returns the named outputs.

        Args:
          model: model name (e.g. ``features.AR_MODEL_NAME``).
          inputs: input name → array (any shape the signature accepts).
          signature: signature name (TF Serving's default is ``serving_default``).
          version: a specific version, a version label (a string), or ``None`` for the latest.
          timeout: seconds (the gRPC deadline; the REST read timeout).
        """
        return self.start_predict(model, inputs, signature, version, timeout).result().outputs

    @abc.abstractmethod
    def start_predict(self, model: str, inputs: Mapping[str, np.ndarray],
                      signature: str = F.SERVING_SIGNATURE, version: Optional[int] = None,
                      timeout: Optional[float] = None) -> PredictCall:
        """Sends a Predict and returns at once."""

    @abc.abstractmethod
    def metadata(self, model: str, version: Optional[int] = None,
                 timeout: Optional[float] = 10.0) -> P.ModelMetadata:
        """The served version's signatures (``GetModelMetadata`` with ``signature_def``)."""

    @abc.abstractmethod
    def status(self, model: str, version: Optional[int] = None,
               timeout: Optional[float] = 10.0) -> List[P.VersionStatus]:
        """``GetModelStatus``: the state of each version the server knows of."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_until_available(self, models: Iterable[str], timeout: float = 60.0,
                             interval: float = 0.2) -> Dict[str, int]:
        """Polls ``status`` until every model has an ``AVAILABLE`` version; returns model → version.

        Raises ``TimeoutError`` (with the last status or error of each model) after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        pending = list(models)
        found: Dict[str, int] = {}
        last: Dict[str, str] = {}
        while True:
            for model in list(pending):
                try:
                    states = self.status(model, timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                except ServingError as e:
                    last[model] = str(e)
                    continue
                available = [s.version for s in states if s.state == "AVAILABLE"]
                if available:
                    found[model] = max(available)
                    pending.remove(model)
                else:
                    last[model] = ", ".join(f"v{s.version} {s.state} {s.error_message}".strip()
                                            for s in states)
            if not pending:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"models not AVAILABLE after {timeout:.0f} s: "
                                   + "; ".join(f"{m}: {last.get(m, '?')}" for m in pending))
            time.sleep(interval)


# ------------------------------------------------------------------------------------------- gRPC
@contextlib.contextmanager
def _grpc_errors():
    """gRPC failures as :class:`ServingError` (the server's status code and message)."""
    try:
        yield
    except grpc.RpcError as e:
        raise ServingError(e.code(), e.details() or "") from None


class _GrpcPredictCall(PredictCall):
    def __init__(self, future, model: str, signature: str, encode_ms: float, sent: float):
        super().__init__(future)
        self._model, self._signature = model, signature
        self._encode_ms = encode_ms
        self._sent = sent
        self._received: Optional[float] = None
        # Stamped on the gRPC thread when the response lands, so waiting on another call first does not
        # inflate this one's round trip.
        future.add_done_callback(self._on_done)

    def _on_done(self, _):
        self._received = time.perf_counter()

    def result(self, timeout: Optional[float] = None) -> PredictResult:
        try:
            response = self._future.result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "no response yet") from None
        except grpc.FutureCancelledError:
            raise ServingError(grpc.StatusCode.CANCELLED, "cancelled") from None
        except grpc.RpcError as e:
            raise ServingError(e.code(), e.details() or "") from None
        received = self._received or time.perf_counter()
        t0 = time.perf_counter()
        outputs = {k: P.from_tensor_proto(v) for k, v in response.outputs.items()}
        decode_ms = (time.perf_counter() - t0) * 1e3
        version = response.model_spec.version.value if response.model_spec.HasField("version") else None
        return PredictResult(outputs, self._model, version, self._signature, self._encode_ms,
                             (received - self._sent) * 1e3, decode_ms)


class GrpcServingClient(ServingClient):
    """TF Serving over gRPC (``PredictionService`` and ``ModelService``).

    Args:
      address: ``host:port`` of the gRPC endpoint.
    """

    def __init__(self, address: str):
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.address = address
        self._channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    @staticmethod
    def _spec(spec, model: str, version, signature: Optional[str] = None):
        spec.name = model
        if isinstance(version, str):
            spec.version_label = version
        elif version is not None:
            spec.version.value = int(version)
        if signature is not None:
            spec.signature_name = signature

    def make_request(self, model: str, inputs: Mapping[str, np.ndarray],
                     signature: str = F.SERVING_SIGNATURE, version: Optional[int] = None):
        """The ``PredictRequest`` for named arrays."""
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, signature)
        for name, value in inputs.items():
            P.fill_tensor_proto(request.inputs[name], value)
        return request

    def start_predict(self, model, inputs, signature=F.SERVING_SIGNATURE, version=None,
                      timeout=None) -> PredictCall:
        t0 = time.perf_counter()
        request = self.make_request(model, inputs, signature, version)
        sent = time.perf_counter()
        future = self._prediction.Predict.future(request, timeout=timeout)
        return _GrpcPredictCall(future, model, signature, (sent - t0) * 1e3, sent)

    def metadata(self, model, version=None, timeout=10.0) -> P.ModelMetadata:
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version)
        with _grpc_errors():
            response = self._prediction.GetModelMetadata(request, timeout=timeout)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sigs)
        return P.ModelMetadata(response.model_spec.name or model, int(response.model_spec.version.value),
                               P.signatures_from_proto(sigs.signature_def))

    def status(self, model, version=None, timeout=10.0) -> List[P.VersionStatus]:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version)
        with _grpc_errors():
            return P.status_from_proto(self._models.GetModelStatus(request, timeout=timeout))

    def close(self) -> None:
        self._channel.close()


# ------------------------------------------------------------------------------------------- REST
class _FuturePredictCall(PredictCall):
    def result(self, timeout: Optional[float] = None) -> PredictResult:
        try:
            return self._future.result(timeout=timeout)
        except futures.TimeoutError:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "no response yet") from None
        except futures.CancelledError:
            raise ServingError(grpc.StatusCode.CANCELLED, "cancelled") from None


class RestServingClient(ServingClient):
    """TF Serving over its REST API (JSON; tensors in the columnar ``inputs`` / ``outputs`` format).

    Output dtypes and the name of a single unnamed output come from the model's metadata, fetched once
    per (model, version, signature) and cached.

    Args:
      base_url: e.g. ``http://localhost:8501``.
      max_workers: threads for :meth:`start_predict`.
    """

    def __init__(self, base_url: str, max_workers: int = 8):
        self.base_url = base_url.rstrip("/")
        self._http = KeepAliveClient()
        self._pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rest-client")
        self._signatures: Dict[tuple, P.SignatureInfo] = {}
        self._lock = threading.Lock()

    def _url(self, model: str, version, suffix: str = "") -> str:
        url = f"{self.base_url}/v1/models/{model}"
        if isinstance(version, str):
            url += f"/labels/{version}"
        elif version is not None:
            url += f"/versions/{int(version)}"
        return url + suffix

    def _call(self, method: str, url: str, timeout: Optional[float], body: Optional[bytes] = None):
        try:
            r = self._http.request(method, url, body, timeout)
        except TimeoutError as e:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, str(e)) from None
        except ConnectionError as e:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, str(e)) from None
        try:
            payload = json.loads(r.body)  # not orjson: TF Serving writes NaN and Infinity literally
        except ValueError:
            payload = None
        if r.status != 200:
            message = payload.get("error") if isinstance(payload, dict) else None
            raise ServingError.from_http(r.status, message or r.text[:500])
        if payload is None:
            raise ServingError(grpc.StatusCode.INTERNAL, f"{url}: response is not JSON")
        return payload

    def signature(self, model: str, signature: str, version: Optional[int] = None,
                  refresh: bool = False) -> P.SignatureInfo:
        """A signature's inputs and outputs (cached)."""
        key = (model, version, signature)
        with self._lock:
            info = None if refresh else self._signatures.get(key)
        if info is None:
            sigs = self.metadata(model, version).signatures
            if signature not in sigs:
                raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                   f'Serving signature key "{signature}" not found.')
            info = sigs[signature]
            with self._lock:
                self._signatures[key] = info
        return info

    def _predict(self, model, inputs, signature, version, timeout) -> PredictResult:
        t0 = time.perf_counter()
        body = json.dumps({"signature_name": signature,
                           "inputs": {k: P.to_json_value(np.asarray(v), k) for k, v in inputs.items()}})
        sent = time.perf_counter()
        payload = self._call("POST", self._url(model, version, ":predict"), timeout, body.encode())
        received = time.perf_counter()
        if "outputs" not in payload:
            raise ServingError(grpc.StatusCode.INTERNAL, f"response has no 'outputs': {str(payload)[:200]}")
        outputs = payload["outputs"]
        info = self.signature(model, signature, version)
        named = isinstance(outputs, dict) and set(outputs) != {"b64"}
        if named and not set(outputs) <= set(info.outputs):  # a new version changed the signature
            info = self.signature(model, signature, version, refresh=True)
        if not named:
            if len(info.outputs) != 1:
                raise ServingError(grpc.StatusCode.INTERNAL,
                                   f"unnamed 'outputs' but the signature has {len(info.outputs)}")
            outputs = {next(iter(info.outputs)): outputs}
        t1 = time.perf_counter()
        try:
            arrays = {k: P.from_json_value(v, info.outputs[k].dtype, k) for k, v in outputs.items()}
        except (KeyError, ValueError) as e:
            raise ServingError(grpc.StatusCode.INTERNAL, f"cannot decode outputs: {e}") from None
        decode_ms = (time.perf_counter() - t1) * 1e3
        return PredictResult(arrays, model, None if isinstance(version, str) else version, signature,
                             (sent - t0) * 1e3, (received - sent) * 1e3, decode_ms)

    def start_predict(self, model, inputs, signature=F.SERVING_SIGNATURE, version=None,
                      timeout=None) -> PredictCall:
        return _FuturePredictCall(self._pool.submit(self._predict, model, inputs, signature, version,
                                                    timeout))

    def predict(self, model, inputs, signature=F.SERVING_SIGNATURE, version=None, timeout=None):
        return self._predict(model, inputs, signature, version, timeout).outputs

    def metadata(self, model, version=None, timeout=10.0) -> P.ModelMetadata:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        payload = self._call("GET", self._url(model, version, "/metadata"), timeout)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        try:
            json_format.ParseDict(payload["metadata"]["signature_def"], sigs, ignore_unknown_fields=True)
            spec = payload["model_spec"]
        except (KeyError, TypeError, json_format.ParseError) as e:
            raise ServingError(grpc.StatusCode.INTERNAL, f"unexpected metadata response: {e}") from None
        return P.ModelMetadata(spec.get("name", model), int(spec.get("version", 0)),
                               P.signatures_from_proto(sigs.signature_def))

    def status(self, model, version=None, timeout=10.0) -> List[P.VersionStatus]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        payload = self._call("GET", self._url(model, version), timeout)
        response = get_model_status_pb2.GetModelStatusResponse()
        try:
            json_format.ParseDict(payload, response, ignore_unknown_fields=True)
        except json_format.ParseError as e:
            raise ServingError(grpc.StatusCode.INTERNAL, f"unexpected status response: {e}") from None
        return P.status_from_proto(response)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()


def make_client(protocol: str, address: str) -> ServingClient:
    """``make_client("grpc", "host:8500")`` or ``make_client("rest", "http://host:8501")``."""
    if protocol == "grpc":
        return GrpcServingClient(address)
    if protocol == "rest":
        return RestServingClient(address if "://" in address else f"http://{address}")
    raise ValueError(f"protocol must be 'grpc' or 'rest', got {protocol!r}")
