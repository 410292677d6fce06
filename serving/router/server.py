"""The router's JSON HTTP API.

=========================  ==================================================================
``POST /v1/rank``           rank a request (:mod:`serving.router.request`); 200 with the ranking
``GET /healthz``            the router process is up
``GET /readyz``             both models are AVAILABLE on their servers (else 503)
=========================  ==================================================================

The request is JSON (:mod:`serving.router.request`), or with ``Content-Type: application/x-protobuf`` the
binary form — a serialized TF Serving ``PredictRequest`` of named tensors (:mod:`serving.router.tensors`),
answered with a serialized ``PredictResponse``. With ``--grpc-port`` the router also answers the same
messages over gRPC, as TF Serving's ``PredictionService/Predict`` (model ``router``).

Errors are ``{"error": "<message>"}``: 400 for malformed JSON or an invalid request (the message names
the field), 411 without ``Content-Length``, 413 for a body over ``max_body_bytes``, 404 for an unknown
path, 405 for a wrong method, 503 when the ad ranker fails. Creative-ranker failures are not errors: the
response is ``degraded`` (see :mod:`serving.router.core`).

::

    python -m serving.router --ar-address localhost:8500 --port 8080
    curl -s localhost:8080/v1/rank -d @request.json
"""

from __future__ import annotations

import argparse
import http.server
import logging
import sys
import threading
import time
from typing import Optional

import orjson

from serving import runtime
from serving.json_http import JsonRequestHandler
from serving.router import traffic_split
from serving.router.core import BackendError, PeriCRRouter, RouterConfig
from serving.router import tensors as T
from serving.router.columns import timed_validate
from serving.router.request import MODES, RequestError, RequestLimits

log = logging.getLogger("serving.router")

RANK_PATH = "/v1/rank"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_DRAIN_LIMIT = 4  # drain an oversize body up to this many times the limit, so the client reads the 413


def _make_handler(router: PeriCRRouter, max_body_bytes: int):
    class Handler(JsonRequestHandler):
        server_version = "PeriCRRouter"
        logger = log

        def _send(self, status: int, payload: dict):
            self.send_body(status, orjson.dumps(payload))

        def _error(self, status: int, message: str):
            self._send(status, {"error": message})

        def _discard_body(self, length: int):
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            length = self.headers.get("Content-Length")
            if length and length.isdigit():
                self._discard_body(int(length))
            if path == HEALTH_PATH:
                return self._send(200, {"status": "ok"})
            if path == READY_PATH:
                return self._ready()
            if path == RANK_PATH:
                return self._error(405, f"use POST for {RANK_PATH}")
            return self._error(404, f"unknown path: {path}")

        def _ready(self):
            states = {}
            for model, client in router.served_models():
                try:
                    states[model] = [s.state for s in client.status(model, timeout=2.0)]
                except Exception as e:  # any failure is "not ready", with the reason
                    states[model] = [f"error: {e}"]
            ready = all("AVAILABLE" in v for v in states.values())
            self._send(200 if ready else 503, {"ready": ready, "models": states})

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            length_header = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_header is None:
                self.close_connection = True
                return self._error(411, "a Content-Length header is required")
            if not length_header.isdigit():
                self.close_connection = True
                return self._error(400, f"bad Content-Length: {length_header!r}")
            length = int(length_header)
            if path != RANK_PATH:
                self._discard_body(length) if length <= max_body_bytes else None
                self.close_connection = length > max_body_bytes
                return self._error(404, f"unknown path: {path}")
            if length > max_body_bytes:
                if length <= _DRAIN_LIMIT * max_body_bytes:
                    self._discard_body(length)
                self.close_connection = True
                return self._error(413, f"request body of {length} bytes exceeds the limit of "
                                        f"{max_body_bytes} bytes")
            t0 = time.perf_counter()
            raw = self.rfile.read(length)
            binary = self.headers.get("Content-Type", "").split(";")[0].strip() == T.PROTOBUF
            c = router.config
            timing = {}
            try:
                if binary:
                    req = timed_validate(lambda: T.columns_from_proto(T.parse_request_proto(raw), c.limits,
                                                                      c.default_slots, c.default_mode), timing)
                else:
                    req = router.decode_json(raw, timing)
                response = router.rank(req, timing)
            except RequestError as e:
                return self._error(e.status, str(e))
            except BackendError as e:
                return self._error(e.status, str(e))
            except Exception as e:  # a bug: answer 500 with a message rather than drop the connection
                log.exception("rank failed")
                return self._error(500, f"internal error: {type(e).__name__}: {e}")
            response["timing_ms"]["total"] = round((time.perf_counter() - t0) * 1e3, 3)
            if binary:
                return self.send_body(200, T.response_to_proto(response).SerializeToString(), T.PROTOBUF)
            self._send(200, response)

        def do_PUT(self):
            self._error(405, "method not allowed")

        do_DELETE = do_PATCH = do_PUT

    return Handler


class RouterServer:
    """The router's HTTP server on a background thread (``port=0`` picks a free port), and with
    ``grpc_port`` (0: a free one) its gRPC API (:mod:`serving.router.grpc_api`) beside it."""

    def __init__(self, router: PeriCRRouter, host: str = "127.0.0.1", port: int = 0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, grpc_port: Optional[int] = None):
        self.router = router
        self._httpd = http.server.ThreadingHTTPServer((host, port), _make_handler(router, max_body_bytes))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread: Optional[threading.Thread] = None
        self._grpc = None
        self.grpc_port: Optional[int] = None
        if grpc_port is not None:
            from serving.router.grpc_api import make_grpc_server  # imports TensorFlow: only when asked

            self._grpc, self.grpc_port = make_grpc_server(router, host, grpc_port, max_body_bytes)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def grpc_address(self) -> Optional[str]:
        return None if self.grpc_port is None else f"{self.host}:{self.grpc_port}"

    def start(self) -> "RouterServer":
        if self._grpc is not None:
            self._grpc.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="router-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=1.0).wait(5.0)
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The router settings as command-line flags (:func:`config_from_args` reads them back)."""
    d = RouterConfig()
    lim = RequestLimits()
    parser.add_argument("--ar-timeout-ms", type=float, default=d.ar_timeout_ms)
    parser.add_argument("--cr-timeout-ms", type=float, default=d.cr_timeout_ms)
    parser.add_argument("--slots", type=int, default=d.default_slots, help="default L")
    parser.add_argument("--mode", choices=MODES, default=d.default_mode, help="default mode")
    parser.add_argument("--max-ads", type=int, default=lim.max_ads)
    parser.add_argument("--max-creatives-per-ad", type=int, default=lim.max_creatives_per_ad)
    parser.add_argument("--max-total-creatives", type=int, default=lim.max_total_creatives)
    parser.add_argument("--max-sequence-length", type=int, default=lim.max_sequence_length)
    parser.add_argument("--tile-user-features", action="store_true",
                        help="send user rows per ad/creative (TF Serving with --enable_batching)")
    parser.add_argument("--sequence-length", type=int, default=None,
                        help="fixed padded sequence length (TF Serving with --enable_batching)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--cr-creative-vectors", action="store_true",
                        help="the CR is a two-tower CR: score it from its creative vectors, kept per model "
                             "version and creative id, instead of its raw signature")
    traffic_split.add_arguments(parser)


def config_from_args(args, ar_address: str, cr_address: Optional[str] = None) -> RouterConfig:
    return RouterConfig(
        ar_address=ar_address, cr_address=cr_address, ar_timeout_ms=args.ar_timeout_ms,
        cr_timeout_ms=args.cr_timeout_ms, default_slots=args.slots, default_mode=args.mode,
        limits=RequestLimits(max_ads=args.max_ads, max_creatives_per_ad=args.max_creatives_per_ad,
                             max_total_creatives=args.max_total_creatives,
                             max_sequence_length=args.max_sequence_length),
        tile_user_features=args.tile_user_features, sequence_length=args.sequence_length,
        seed=args.seed, traffic_split=traffic_split.from_args(args), cr_creative_vectors=args.cr_creative_vectors)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.router",
                                     description="Peri-CR router: ranks ads (AR) and creatives (CR).")
    parser.add_argument("--ar-address", required=True, help="gRPC host:port serving the AR model")
    parser.add_argument("--cr-address", default=None, help="gRPC host:port serving CR (default: AR's)")
    parser.add_argument("--genco-address", default=None,
                        help="gRPC host:port serving GenCO: enables the request mode 'genco' (serving.router.genco)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--grpc-port", type=int, default=None,
                        help="also serve PredictionService/Predict (the binary form) on this port")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--log-level", default="INFO")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    runtime.configure_logging(args.log_level)
    try:
        config = config_from_args(args, args.ar_address, args.cr_address)
    except ValueError as e:
        parser.error(str(e))
    if args.genco_address:  # the GenCO mode beside Peri-CR's (serving.router.genco)
        from serving.router.genco import GenCORouter, GenCOSettings

        router_cm = GenCORouter(config, GenCOSettings(args.genco_address))
    else:
        router_cm = PeriCRRouter(config)
    with router_cm as router:
        runtime.run_until_signalled(
            lambda: RouterServer(router, args.host, args.port, args.max_body_bytes, args.grpc_port).start(),
            lambda server: f"router ready: {server.url}{RANK_PATH}"
                           + (f", gRPC {server.grpc_address}" if server.grpc_address else "")
                           + f" (AR {config.ar_address}, CR {config.cr_address or config.ar_address})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
