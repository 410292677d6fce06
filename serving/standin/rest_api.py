"""The stand-in's REST API on TF Serving's paths (``http_rest_api_handler.cc``, ``http_rest_api_util.cc``).

==================================================================================  ====================
``POST /v1/models/{name}[/versions/{v}|/labels/{label}]:(predict|classify|regress)``  inference
``GET  /v1/models/{name}[/versions/{v}|/labels/{label}]``                            model status
``GET  /v1/models/{name}[/versions/{v}|/labels/{label}]/metadata``                   model metadata
``GET  <prometheus_config.path>`` (with ``--monitoring_config_file``)                Prometheus text
==================================================================================  ====================

As in TF Serving: paths match case-insensitively and the model name and label are percent-decoded; any
other ``/v1/`` path is ``400 {"error": "Malformed request: POST /v1/..."}``; errors are
``{"error": "<message>"}`` with the HTTP status of the gRPC code (:data:`serving.protocol.HTTP_STATUS`);
status and metadata are ``GetModelStatusResponse`` / ``GetModelMetadataResponse`` as JSON with every
default-valued field printed (``"name": ""`` in each ``dim``, ``"unknown_rank": false``,
``"defaults": {}``...); a status request with a label returns every version (TF Serving reads only the
version of its model spec).
"""

from __future__ import annotations

import http.server
import json
import logging
import re
import time
import urllib.parse
from typing import TYPE_CHECKING, Optional, Tuple

import grpc

from serving import protocol as P
from serving.json_http import JsonRequestHandler
from serving.standin import classify_regress, metrics
from serving.standin.json_tensors import parse_document
from serving.standin.predict import find_signature, run_predict
from serving.standin.rest_codec import (classification_response, examples_input, predict_inputs,
                                        predict_response, regression_response, signature_name)

if TYPE_CHECKING:
    from serving.standin.server import ModelServerStandIn

log = logging.getLogger("serving.standin")

_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_POST_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.IGNORECASE)
_GET_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
                       re.IGNORECASE)
_INT64_MAX = 2 ** 63 - 1


def _invalid(message: str) -> P.ServingError:
    return P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _json_dict(message) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(message, including_default_value_fields=True,
                                     preserving_proto_field_name=True)


def parse_path(method: str, path: str) -> Tuple[bool, str, Optional[int], Optional[str], str]:
    """``ParseModelInfo``: (matched, model name, version, label, method or subresource)."""
    m = (_POST_PATH if method == "POST" else _GET_PATH if method == "GET" else None)
    m = m.fullmatch(path) if m else None
    if not m:
        return False, "", None, None, ""
    name, version, label, verb = m.groups()
    name = urllib.parse.unquote(name or "")
    if version is not None:
        if int(version) > _INT64_MAX:
            raise _invalid(f"Failed to convert version: {version} to numeric.")
        version = int(version)
    return True, name, version, (urllib.parse.unquote(label) if label else None), verb or ""


def process_request(standin: "ModelServerStandIn", method: str, path: str, body: bytes) -> Tuple[str, str, str]:
    """(response JSON, model name, API label) of one REST call; raises ``ServingError``."""
    matched, name, version, label, verb = parse_path(method, path)
    api = verb if method == "POST" else ""
    if not matched:
        raise _invalid(f"Malformed request: {method} {path}")
    if method == "POST":
        handlers = {"predict": _predict, "classify": _classify, "regress": _regress}
        if verb not in handlers:  # the path matches case-insensitively, the verb compares exactly
            raise _invalid(f"Malformed request: {method} {path}")
        return handlers[verb](standin, name, version, label, body), name, api
    if not name:
        raise _invalid("Missing model name in request.")
    if verb == "metadata":
        return json.dumps(_metadata(standin, name, version, label)), name, api
    return json.dumps(_json_dict(P.status_to_proto(standin.model_status(name, version)))), name, api


def _metadata(standin, name, version, label) -> dict:
    from tensorflow_serving.apis import get_model_metadata_pb2

    from serving.standin.grpc_api import fill_model_spec

    with standin.servable(name, version, label) as bundle:
        spec = get_model_metadata_pb2.GetModelMetadataResponse().model_spec
        fill_model_spec(spec, name, bundle.version, None)
        return {"model_spec": _json_dict(spec), "metadata": {"signature_def": _json_dict(bundle.signature_def_map())}}


def _timeout(standin) -> Optional[int]:
    return standin.options.rest_timeout_ms or None


def _predict(standin, name, version, label, body) -> str:
    doc = parse_document(body)
    signature = signature_name(doc)
    with standin.servable(name, version, label) as bundle:
        try:
            _, sig = find_signature(bundle.signature_defs, signature)
        except P.ServingError:
            raise _invalid(f'Serving signature name: "{signature or "serving_default"}" not found in signature '
                           "def") from None
        inputs, row_format = predict_inputs(doc, sig.inputs)
        _, outputs = run_predict(standin.runtime, bundle, signature, inputs, timeout_ms=_timeout(standin))
    return predict_response(outputs, row_format)


def _examples_request(request_class, name, version, label, body):
    doc = parse_document(body)
    request = request_class()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    request.model_spec.signature_name = signature_name(doc)
    examples_input(doc, request.input)
    return request


def _classify(standin, name, version, label, body) -> str:
    from tensorflow_serving.apis import classification_pb2

    request = _examples_request(classification_pb2.ClassificationRequest, name, version, label, body)
    with standin.servable(name, version, label) as bundle:
        _, result = classify_regress.run_classify(standin.runtime, bundle, request, _timeout(standin))
    return classification_response(result)


def _regress(standin, name, version, label, body) -> str:
    from tensorflow_serving.apis import regression_pb2

    request = _examples_request(regression_pb2.RegressionRequest, name, version, label, body)
    with standin.servable(name, version, label) as bundle:
        _, result = classify_regress.run_regress(standin.runtime, bundle, request, _timeout(standin))
    return regression_response(result)


def make_http_server(standin: "ModelServerStandIn", host: str, port: int) -> http.server.ThreadingHTTPServer:
    """The REST server, bound (not serving yet)."""
    httpd = http.server.ThreadingHTTPServer((host, port), _make_handler(standin))
    httpd.daemon_threads = True
    return httpd


def _make_handler(standin: "ModelServerStandIn"):
    prometheus_path = standin.options.prometheus_path

    class Handler(JsonRequestHandler):
        server_version = "ModelServerStandIn"
        logger = log

        def _error(self, e: P.ServingError) -> None:
            self.send_body(e.http_status, json.dumps({"error": e.message}).encode("utf-8"))

        def _handle(self, method: str) -> None:
            # Always consume the body: the connection is kept alive for the next request.
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit():
                self.close_connection = True
                return self._error(_invalid("bad Content-Length"))
            body = self.rfile.read(int(length)) if int(length) else b""
            path = self.path.split("?", 1)[0]
            if method == "GET" and prometheus_path and path == prometheus_path:
                return self.send_body(200, standin.metrics_text().encode(), "text/plain; version=0.0.4")
            if not _API_PATH.fullmatch(path):
                return self._error(P.ServingError(grpc.StatusCode.NOT_FOUND, f"Not found: {method} {path}"))
            started = time.perf_counter()
            name, api = "", ""
            try:
                if method == "OPTIONS":  # a CORS preflight
                    if not re.match(r"https?://", self.headers.get("Origin", "")):
                        raise P.ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                             "Origin header is missing in CORS preflight")
                    text = ""
                else:
                    text, name, api = process_request(standin, method, path, body)
            except P.ServingError as e:
                standin.record(name or _model_of(method, path), api, metrics.REST, e.code.name, started)
                return self._error(e)
            except Exception as e:
                log.exception("REST %s %s failed", method, path)
                standin.record(name, api, metrics.REST, "INTERNAL", started)
                return self._error(P.ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"))
            standin.record(name, api, metrics.REST, "OK", started)
            self.send_body(200, text.encode("utf-8"))

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def do_PUT(self):
            self._handle("PUT")

        def do_DELETE(self):
            self._handle("DELETE")

        def do_OPTIONS(self):
            self._handle("OPTIONS")

    return Handler


def _model_of(method: str, path: str) -> str:
    """The model name of a failed request, for its metrics (as TF Serving parses it before failing)."""
    try:
        return parse_path(method, path)[1]
    except P.ServingError:
        return ""
