"""The conformance suites' servers: TF Serving or the stand-in, started from TF Serving's command line.

Used by ``test_serving_conformance.py`` (the cases one shared server answers) and
``test_serving_conformance_config.py`` (the cases that start their own server): which servers there are, how
to start one and wait for it, the shared server's fixture, and request helpers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from typing import Callable, List

import grpc
import pytest
import requests

import conformance_models as M
from serving import backend as B
from serving import tf_serving

SERVER_ENV = "ADCR_CONFORMANCE_SERVER"
RPC_TIMEOUT = 20.0
KINDS = ("stand-in", "tf-serving", "remote")


# ------------------------------------------------------------------------------------------ servers
@dataclasses.dataclass
class Server:
    kind: str
    grpc_address: str
    rest_url: str
    stop: Callable[[], None] = lambda: None
    log: Callable[[], str] = lambda: ""

    @property
    def prediction(self):
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(self.grpc_address))

    @property
    def models(self):
        from tensorflow_serving.apis import model_service_pb2_grpc

        return model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(self.grpc_address))


class StartFailed(Exception):
    """The server did not start; the message is what it printed (TF Serving's "Failed to start server")."""


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: List[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def skip_unless_startable(kind: str) -> None:
    if kind == "tf-serving" and tf_serving.find_model_server() is None:
        pytest.skip("tensorflow_model_server is not on PATH (set $TF_MODEL_SERVER to its binary)")
    if kind == "remote":
        if not os.environ.get(SERVER_ENV):
            pytest.skip(f"${SERVER_ENV} is not set (no TF Serving running elsewhere)")
        pytest.skip("needs a server this test starts itself; a remote server runs only the shared cases")


def start_server(kind: str, flags: List[str]) -> Server:
    """Starts ``kind`` with TF Serving's ``flags`` on free ports; raises :class:`StartFailed`."""
    skip_unless_startable(kind)
    port, rest_port = B.free_port(), B.free_port()
    flags = [f"--port={port}", f"--rest_api_port={rest_port}", *flags]
    if kind == "stand-in":
        from serving.protocol import ServingError
        from serving.standin import cli
        from serving.standin.server import ModelServerStandIn

        records = _Records()
        logging.getLogger("serving.standin").addHandler(records)
        try:
            options, config = cli.options_from_args(cli.build_parser().parse_args(flags))
            server = ModelServerStandIn(model_config=config, options=options).start()
        except cli.StartError as e:
            logging.getLogger("serving.standin").removeHandler(records)
            raise StartFailed(f"{e.details}\nFailed to start server. Error: {e.status}") from None
        except ServingError as e:
            logging.getLogger("serving.standin").removeHandler(records)
            raise StartFailed(f"Failed to start server. Error: {e.code.name}: {e.message}") from None

        def stop():
            server.stop()
            logging.getLogger("serving.standin").removeHandler(records)

        return Server(kind, server.grpc_address, server.rest_url, stop, lambda: "\n".join(records.lines))
    log_path = tempfile.mktemp(prefix="tf-serving-", suffix=".log")
    log_fh = open(log_path, "wb")
    proc = subprocess.Popen([tf_serving.find_model_server(), *flags], stdout=log_fh, stderr=subprocess.STDOUT)
    read_log = lambda: open(log_path, errors="replace").read()  # noqa: E731
    server = Server(kind, f"127.0.0.1:{port}", f"http://127.0.0.1:{rest_port}",
                    lambda: (proc.terminate(), proc.wait(20), log_fh.close()), read_log)
    deadline = time.monotonic() + 120
    while True:  # TF Serving's WaitForServerReady: a Predict to a missing model answers "Servable..."
        if proc.poll() is not None:
            log_fh.close()
            raise StartFailed(read_log())
        try:
            predict_x(server, 2.0, model="intentionally_missing_model", timeout=2)
        except grpc.RpcError as e:
            if "Servable" in (e.details() or ""):
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise StartFailed("did not become ready:\n" + read_log())
        time.sleep(0.5)


@contextlib.contextmanager
def running(kind: str, flags: List[str]):
    server = start_server(kind, flags)
    try:
        yield server
    finally:
        server.stop()


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.25)


_BUILT = {}


def _built(tmp_path_factory):
    """Models built once a session (the per-test servers copy them); the shared server's root and flags."""
    if "root" not in _BUILT:
        root = str(tmp_path_factory.mktemp("conformance"))
        _BUILT.update(root=root, flags=M.write_models(root))
    return _BUILT["root"], _BUILT["flags"]


def _kind(request):
    return request.param


def _server(kind, built):
    """The shared server of the suite's models (``conformance_models.MODELS_CONFIG``)."""
    if kind == "remote" and os.environ.get(SERVER_ENV):
        grpc_address, rest_address = os.environ[SERVER_ENV].split(",")
        yield Server(kind, grpc_address, rest_address if "://" in rest_address else f"http://{rest_address}")
        return
    if kind == "remote":
        pytest.skip(f"${SERVER_ENV} is not set (no TF Serving running elsewhere)")
    s = start_server(kind, built[1])
    yield s
    s.stop()


def fixtures():
    """A test module's fixtures: ``kind, built, server = fixtures()`` — ``kind`` runs every test once per
    server kind, ``built`` is (models root, flags), ``server`` the module's shared server."""
    return (pytest.fixture(scope="module", params=KINDS, name="kind")(_kind),
            pytest.fixture(scope="session", name="built")(_built),
            pytest.fixture(scope="module", name="server")(_server))


# ------------------------------------------------------------------------------------------ helpers
def rest(server: Server, method: str, path: str, body=None):
    """(HTTP status, decoded JSON body) of one REST call; ``body`` bytes are sent as they are."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    r = requests.request(method, server.rest_url + path, data=data, timeout=RPC_TIMEOUT)
    return r.status_code, r.json()


def predict_x(server: Server, *values, model="default", signature="serving_default", version=None,
               label=None, output_filter=("y",), shape=None, dtype=1, timeout=RPC_TIMEOUT):
    """TF Serving's ``VerifyPredictRequest``: ``x`` as DT_FLOAT ``float_val`` (or ``dtype``)."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    x = request.inputs["x"]
    x.dtype = dtype
    (x.float_val if dtype == 1 else x.double_val).extend(values)
    for d in (shape or [len(values)]):
        x.tensor_shape.dim.add().size = d
    request.output_filter.extend(output_filter)
    return server.prediction.Predict(request, timeout)


def examples_request(request_class, model: str, signature: str, xs, context=None):
    request = request_class()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    examples = request.input.example_list_with_context.examples if context else request.input.example_list.examples
    if context:
        request.input.example_list_with_context.context.features.feature["x"].float_list.value.extend(context)
    for x in xs:
        e = examples.add()
        if x is not None:
            e.features.feature["x"].float_list.value.extend([x])
    return request


def rpc_error(fn) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value


def code_of(fn) -> grpc.StatusCode:
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


# ----------------------------------------------------------------------------- servers of one test
def copy_models(built, *names, into) -> str:
    for name in names:
        src, dst = (name, name) if isinstance(name, str) else name
        shutil.copytree(os.path.join(built[0], src), os.path.join(into, dst))
    return into


def write_file(path: str, text: str) -> str:
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)  # a poller never reads half a file
    return path


def models_config(*models) -> str:
    """``model_config_list`` text: each model (name, base path[, extra text])."""
    body = "".join(f'  config {{ name: "{m[0]}" base_path: "{m[1]}" model_platform: "tensorflow" '
                   f'{m[2] if len(m) > 2 else ""} }}\n' for m in models)
    return f"model_config_list {{\n{body}}}\n"


def version_states(s: Server, model: str) -> dict:
    status, body = rest(s, "GET", f"/v1/models/{model}")
    return {int(v["version"]): (v["state"], v["status"]["error_code"], v["status"]["error_message"])
            for v in body.get("model_version_status", [])}
