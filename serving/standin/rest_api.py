"""The stand-in's REST API, on TF Serving's paths.

=====================================================  =========================================
``POST /v1/models/{name}[/versions/{v}]:predict``      Predict (:mod:`serving.standin.rest_codec`)
``GET  /v1/models/{name}[/versions/{v}]``              model status (``GetModelStatusResponse``)
``GET  /v1/models/{name}[/versions/{v}]/metadata``     ``model_spec`` and ``signature_def``
``GET  /monitoring/prometheus/metrics``                Prometheus text (:mod:`serving.standin.metrics`)
=====================================================  =========================================

Errors are ``{"error": "<message>"}`` with the HTTP status TF Serving maps the gRPC code to
(:data:`serving.protocol.HTTP_STATUS`). ``/labels/{label}`` URLs, ``:classify`` and ``:regress`` are
recognised and refused (``INVALID_ARGUMENT``, ``UNIMPLEMENTED``).
"""

from __future__ import annotations

import http.server
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Optional

import grpc

from serving import protocol as P
from serving.json_http import JsonRequestHandler
from serving.standin import input_checks, metrics
from serving.standin.rest_codec import decode_predict_body, json_inputs, json_outputs

if TYPE_CHECKING:
    from serving.standin.server import ModelServerStandIn

log = logging.getLogger("serving.standin")

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict|:classify|:regress)?$")
_GET_VERBS = ("", "/metadata")
_POST_VERBS = (":predict", ":classify", ":regress")


def make_http_server(standin: "ModelServerStandIn", host: str, port: int) -> http.server.ThreadingHTTPServer:
    """The REST server, bound (not serving yet)."""
    httpd = http.server.ThreadingHTTPServer((host, port), _make_handler(standin))
    httpd.daemon_threads = True
    return httpd


def _make_handler(standin: "ModelServerStandIn"):
    from google.protobuf import json_format

    class Handler(JsonRequestHandler):
        server_version = "ModelServerStandIn"
        logger = log

        def _send(self, status: int, payload) -> None:
            self.send_body(status, json.dumps(payload).encode("utf-8"))

        def _error(self, e: P.ServingError) -> None:
            self._send(e.http_status, {"error": e.message})

        def _handle(self, method: str) -> None:
            try:
                # Always consume the body: the connection is kept alive for the next request.
                length = self.headers.get("Content-Length", "0")
                if not length.isdigit():
                    raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, "bad Content-Length")
                body = self.rfile.read(int(length)) if int(length) else b""
            except P.ServingError as e:
                self.close_connection = True
                return self._error(e)
            path = self.path.split("?", 1)[0]
            if method == "GET" and path == PROMETHEUS_PATH:
                return self.send_body(200, standin.metrics_text().encode(), "text/plain; version=0.0.4")
            m = _MODEL_PATH.match(path)
            verb = m and (m.group("verb") or "")
            if not m or verb not in (_GET_VERBS if method == "GET" else _POST_VERBS):
                code = grpc.StatusCode.INVALID_ARGUMENT if m else grpc.StatusCode.NOT_FOUND
                return self._error(P.ServingError(code, f"Malformed request: {method} {path}"))
            name = m.group("name")
            version = int(m.group("version")) if m.group("version") else None
            api = {"": "status", "/metadata": "metadata"}.get(verb, verb[1:])
            started = time.perf_counter()
            try:
                if m.group("label"):
                    raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                         "version labels are not supported by the model server "
                                         f"stand-in (label '{m.group('label')}')")
                payload = self._answer(verb, name, version, body)
            except P.ServingError as e:
                standin.record(name, api, metrics.REST, e.code.name, started)
                return self._error(e)
            except Exception as e:
                log.exception("REST %s failed", path)
                standin.record(name, api, metrics.REST, "INTERNAL", started)
                return self._error(P.ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"))
            standin.record(name, api, metrics.REST, "OK", started)
            self._send(200, payload)

        def _answer(self, verb: str, name: str, version: Optional[int], body: bytes):
            if verb == "":
                return json_format.MessageToDict(
                    P.status_to_proto(standin.model_status(name, version)),
                    including_default_value_fields=True, preserving_proto_field_name=True)
            if verb == "/metadata":
                with standin.serving(name, version) as servable:
                    return {"model_spec": {"name": name, "signature_name": "",
                                           "version": str(servable.version)},
                            "metadata": {"signature_def": json_format.MessageToDict(
                                servable.signature_def_map, preserving_proto_field_name=True)}}
            if verb == ":predict":
                request, signature = decode_predict_body(body)
                with standin.serving(name, version) as servable:
                    sig = input_checks.signature_of(servable.signatures, signature)
                    inputs, row_format = json_inputs(request, sig)
                    return json_outputs(standin.predict(servable, signature, inputs), row_format)
            raise P.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                 f"{verb[1:]} is not supported by the model server stand-in; use :predict")

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

    return Handler
