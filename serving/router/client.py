"""Python clients of the router: over HTTP, JSON or the binary form (:class:`RouterClient`), and the binary
form over gRPC (:class:`RouterGrpcClient`). All return the same response dict."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import grpc
import orjson

from serving import protocol as P
from serving.json_http import JSON, KeepAliveClient
from serving.router import tensors as T
from serving.router.columns import RankRequest


class RouterError(Exception):
    """A non-200 answer of the router (``status``: the HTTP status; ``message``: its error text).

    Over gRPC, ``status`` is the HTTP status of the call's code (``INVALID_ARGUMENT`` → 400,
    ``UNAVAILABLE`` → 503, ...) and ``code`` the ``grpc.StatusCode``.
    """

    def __init__(self, status: int, message: str, code: Optional[grpc.StatusCode] = None):
        super().__init__(f"HTTP {status}: {message}" if code is None else f"{code.name}: {message}")
        self.status = status
        self.message = message
        self.code = code


class RouterClient:
    """``RouterClient("http://127.0.0.1:8080").rank({...})`` → the response dict.

    Args:
      base_url: the router's address.
      timeout: seconds per call.
    """

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = KeepAliveClient()

    def _call(self, method: str, path: str, body: Optional[bytes] = None, content_type: str = JSON):
        r = self._http.request(method, self.base_url + path, body, self.timeout, content_type)
        if r.status == 200 and content_type == T.PROTOBUF:
            from tensorflow_serving.apis import predict_pb2

            return T.response_from_proto(predict_pb2.PredictResponse.FromString(r.body))
        try:
            payload = orjson.loads(r.body)
        except orjson.JSONDecodeError:
            payload = {"error": r.text[:500]}
        if r.status != 200:
            raise RouterError(r.status, payload.get("error") if isinstance(payload, dict) else str(payload))
        return payload

    def rank(self, request: Union[Dict[str, Any], RankRequest, bytes, str, Any], binary: bool = False) -> Dict[str, Any]:
        """POST /v1/rank. ``request`` is the JSON object (NumPy arrays allowed as columns), or
        already-encoded JSON; with ``binary`` it is sent as the binary form instead (a request dict, a
        :class:`RankRequest`, or a ``PredictRequest`` from :func:`serving.router.tensors.request_to_proto`)."""
        if binary:
            proto = request if hasattr(request, "model_spec") else T.request_to_proto(request)
            return self._call("POST", "/v1/rank", proto.SerializeToString(), T.PROTOBUF)
        if isinstance(request, str):
            request = request.encode("utf-8")
        body = request if isinstance(request, bytes) else orjson.dumps(request, option=orjson.OPT_SERIALIZE_NUMPY)
        return self._call("POST", "/v1/rank", body)

    def healthz(self) -> Dict[str, Any]:
        return self._call("GET", "/healthz")

    def readyz(self) -> Dict[str, Any]:
        return self._call("GET", "/readyz")

    def close(self) -> None:
        self._http.close()


class RouterGrpcClient:
    """``RouterGrpcClient("127.0.0.1:8090").rank({...})`` → the response dict, over the router's gRPC API
    (``PredictionService/Predict``, :mod:`serving.router.tensors`).

    ``rank`` takes a request dict (either JSON form; NumPy columns allowed), a :class:`RankRequest`, or a
    ``PredictRequest`` already built with :func:`serving.router.tensors.request_to_proto`.
    """

    def __init__(self, address: str, timeout: float = 30.0):
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", -1),
                                                                ("grpc.max_receive_message_length", -1)])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def rank(self, request: Union[Mapping[str, Any], RankRequest, Any]) -> Dict[str, Any]:
        proto = request if hasattr(request, "model_spec") else T.request_to_proto(request)
        try:
            response = self._stub.Predict(proto, timeout=self.timeout)
        except grpc.RpcError as e:
            raise RouterError(P.HTTP_STATUS.get(e.code(), 500), e.details() or "", e.code()) from None
        return T.response_from_proto(response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
