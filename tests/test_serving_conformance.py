"""TF Serving conformance: one test code for the model server stand-in and for ``tensorflow_model_server``.

Cases and expected values come from TF Serving's own model-server tests
(``tensorflow_serving/model_servers/tensorflow_model_server_test.py``: predict row and columnar,
classify and regress over gRPC and REST, model status, metadata against their JSON, config files and
their reload) and from its REST documentation (``g3doc/api_rest.md``), on the models of
``tests/conformance_models.py``. Error codes and messages are those of TF Serving 2.16's sources.

The servers:

* ``stand-in``: always, in this process, started from TF Serving's command line
  (:func:`serving.standin.cli.options_from_args`);
* ``tf-serving``: ``tensorflow_model_server`` with the same flags, when it is on PATH (or
  ``$TF_MODEL_SERVER``); skipped otherwise;
* ``remote``: a server already running at ``$ADCR_CONFORMANCE_SERVER`` (``GRPC_HOST:PORT,REST_HOST:PORT``)
  with the models and flags ``python tests/conformance_models.py DIR`` writes and prints; tests that
  start their own server skip there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import Callable, List, Optional

import grpc
import numpy as np
import pytest
import requests

import conformance_models as M
import features as F
from serving import backend as B
from serving import testing as T
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


def _skip_unless_startable(kind: str) -> None:
    if kind == "tf-serving" and tf_serving.find_model_server() is None:
        pytest.skip("tensorflow_model_server is not on PATH (set $TF_MODEL_SERVER to its binary)")
    if kind == "remote":
        if not os.environ.get(SERVER_ENV):
            pytest.skip(f"${SERVER_ENV} is not set (no TF Serving running elsewhere)")
        pytest.skip("needs a server this test starts itself; a remote server runs only the shared cases")


def start_server(kind: str, flags: List[str], ready_model: Optional[str] = None) -> Server:
    """Starts ``kind`` with TF Serving's ``flags`` on free ports; raises :class:`StartFailed`."""
    _skip_unless_startable(kind)
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
            _predict_x(server, 2.0, model="intentionally_missing_model", timeout=2)
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


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Models built once (the per-test servers copy them); the shared server's root and flags."""
    root = str(tmp_path_factory.mktemp("conformance"))
    return root, M.write_models(root)


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def server(kind, built):
    """The shared server of the module's models (``conformance_models.MODELS_CONFIG``)."""
    if kind == "remote" and os.environ.get(SERVER_ENV):
        grpc_address, rest = os.environ[SERVER_ENV].split(",")
        yield Server(kind, grpc_address, rest if "://" in rest else f"http://{rest}")
        return
    if kind == "remote":
        pytest.skip(f"${SERVER_ENV} is not set (no TF Serving running elsewhere)")
    s = start_server(kind, built[1])
    yield s
    s.stop()


# ------------------------------------------------------------------------------------------ helpers
def rest(server: Server, method: str, path: str, body=None):
    """(HTTP status, decoded JSON body) of one REST call; ``body`` bytes are sent as they are."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    r = requests.request(method, server.rest_url + path, data=data, timeout=RPC_TIMEOUT)
    return r.status_code, r.json()


def _predict_x(server: Server, *values, model="default", signature="serving_default", version=None,
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


def _examples_request(request_class, model: str, signature: str, xs, context=None):
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


def _rpc_error(fn) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value


def _code_of(fn) -> grpc.StatusCode:
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


# ------------------------------------------------------------------------------------------ predict
def test_predict_rest_row_and_columnar(server):
    """testPredictREST / testPredictColumnarREST: ``x`` is [-1, 1], a [3] tensor feeds it all the same."""
    assert rest(server, "POST", "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}) == \
        (200, {"predictions": [3.0, 3.5, 4.0]})
    assert rest(server, "POST", "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}) == \
        (200, {"outputs": [3.0, 3.5, 4.0]})
    assert rest(server, "POST", "/v1/models/default:predict", {"instances": [[2.0], [3.0]]}) == \
        (200, {"predictions": [[3.0], [3.5]]})
    assert rest(server, "POST", "/v1/models/half_plus_two_tf2:predict", {"inputs": {"x": [2.0]}}) == \
        (200, {"outputs": [3.0]})


@pytest.mark.parametrize("model", ["default", "half_plus_two_tf2"])
@pytest.mark.parametrize("output_filter", [("y",), ()])
def test_predict_grpc_returns_typed_values_and_the_version(server, model, output_filter):
    """VerifyPredictRequest: one DT_FLOAT ``float_val`` 3.0, and the model spec of the version that ran."""
    result = _predict_x(server, 2.0, model=model, output_filter=output_filter)
    assert set(result.outputs) == {"y"}
    y = result.outputs["y"]
    assert y.dtype == 1 and list(y.float_val) == [3.0] and not y.tensor_content
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == \
        (model, "serving_default", M.VERSION)


def test_predict_grpc_does_not_check_shapes_against_the_signature(server):
    result = _predict_x(server, 2.0, 3.0, 4.0, shape=[3])  # x is [-1, 1] in the signature
    assert [d.size for d in result.outputs["y"].tensor_shape.dim] == [3]
    assert list(result.outputs["y"].float_val) == [3.0, 3.5, 4.0]
    batched = _predict_x(server, 2.0, shape=[1, 1])
    assert [d.size for d in batched.outputs["y"].tensor_shape.dim] == [1, 1]


@pytest.mark.parametrize("model", ["default", "half_plus_two_tf2"])
def test_classify_and_regress_grpc(server, model):
    """testClassify / testRegress (TF1 and TF2)."""
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    classified = server.prediction.Classify(_examples_request(
        classification_pb2.ClassificationRequest, model, "classify_x_to_y", [2.0]), RPC_TIMEOUT)
    assert len(classified.result.classifications) == 1
    assert [(c.label, c.score) for c in classified.result.classifications[0].classes] == [("", 3.0)]
    assert (classified.model_spec.name, classified.model_spec.signature_name,
            classified.model_spec.version.value) == (model, "classify_x_to_y", M.VERSION)
    regressed = server.prediction.Regress(_examples_request(
        regression_pb2.RegressionRequest, model, "regress_x_to_y", [2.0, 4.0]), RPC_TIMEOUT)
    assert [r.value for r in regressed.result.regressions] == [3.0, 4.0]
    # The context is merged into every example.
    with_context = server.prediction.Regress(_examples_request(
        regression_pb2.RegressionRequest, model, "regress_x_to_y", [None, None], context=[6.0]), RPC_TIMEOUT)
    assert [r.value for r in with_context.result.regressions] == [5.0, 5.0]


@pytest.mark.parametrize("model", ["default", "half_plus_two_tf2"])
def test_classify_and_regress_rest(server, model):
    """testClassifyREST / testRegressREST, and api_rest.md's ``context``."""
    url = f"/v1/models/{model}"
    assert rest(server, "POST", url + ":classify", {"signature_name": "classify_x_to_y",
                                                    "examples": [{"x": 2.0}]}) == (200, {"results": [[["", 3.0]]]})
    assert rest(server, "POST", url + ":regress", {"signature_name": "regress_x_to_y",
                                                   "examples": [{"x": 2.0}]}) == (200, {"results": [3.0]})
    assert rest(server, "POST", url + ":regress", {"signature_name": "regress_x_to_y", "context": {"x": 6.0},
                                                   "examples": [{}, {}]}) == (200, {"results": [5.0, 5.0]})


# -------------------------------------------------------------------------------- status, metadata
def test_model_status_rest_and_grpc(server):
    """testGetStatusREST / testGetModelStatus."""
    from tensorflow_serving.apis import get_model_status_pb2

    assert rest(server, "GET", "/v1/models/default") == (200, {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    result = server.models.GetModelStatus(request, RPC_TIMEOUT)
    assert [(s.version, s.state, s.status.error_code) for s in result.model_version_status] == \
        [(123, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]
    status, body = rest(server, "GET", "/v1/models/labelled")
    assert sorted((s["version"], s["state"]) for s in body["model_version_status"]) == \
        [("123", "AVAILABLE"), ("124", "AVAILABLE")]


def _tensor(name, dtype, dims):
    """A TensorInfo as TF Serving's JSON prints it (``dims`` None: unknown rank)."""
    return {"dtype": dtype, "name": name, "tensor_shape": {
        "dim": [{"size": str(d), "name": ""} for d in dims or []], "unknown_rank": dims is None}}


def _sig(inputs, outputs, method, defaults=True):
    out = {"inputs": inputs, "outputs": outputs, "method_name": f"tensorflow/serving/{method}" if method else ""}
    return {**out, "defaults": {}} if defaults else out


_EXAMPLES = _tensor("tf_example:0", "DT_STRING", None)
# half_plus_two_model_metadata.json (TF Serving's testdata), field for field.
TF1_METADATA = {"model_spec": {"name": "default", "signature_name": "", "version": "123"}, "metadata": {
    "signature_def": {"signature_def": {
        "regress_x2_to_y3": _sig({"inputs": _tensor("x2:0", "DT_FLOAT", [-1, 1])},
                                 {"outputs": _tensor("y3:0", "DT_FLOAT", [-1, 1])}, "regress"),
        "serving_default": _sig({"x": _tensor("x:0", "DT_FLOAT", [-1, 1])},
                                {"y": _tensor("y:0", "DT_FLOAT", [-1, 1])}, "predict"),
        "classify_x_to_y": _sig({"inputs": _EXAMPLES}, {"scores": _tensor("y:0", "DT_FLOAT", [-1, 1])}, "classify"),
        "regress_x_to_y2": _sig({"inputs": _EXAMPLES}, {"outputs": _tensor("y2:0", "DT_FLOAT", [-1, 1])}, "regress"),
        "regress_x_to_y": _sig({"inputs": _EXAMPLES}, {"outputs": _tensor("y:0", "DT_FLOAT", [-1, 1])}, "regress"),
    }}}}
# saved_model_half_plus_two_tf2_2_versions_metadata.json, field for field (its init op has no "defaults").
_CALL = "StatefulPartitionedCall"
TF2_METADATA = {"model_spec": {"name": "half_plus_two_tf2", "signature_name": "", "version": "123"}, "metadata": {
    "signature_def": {"signature_def": {
        "regress_x_to_y": _sig({"inputs": _tensor("regress_x_to_y_inputs:0", "DT_STRING", [-1])},
                               {"outputs": _tensor(f"{_CALL}_3:0", "DT_FLOAT", [-1, 1])}, "predict"),
        "regress_x_to_y2": _sig({"inputs": _tensor("regress_x_to_y2_inputs:0", "DT_STRING", [-1])},
                                {"outputs": _tensor(f"{_CALL}_4:0", "DT_FLOAT", [-1, 1])}, "predict"),
        "classify_x_to_y": _sig({"inputs": _tensor("classify_x_to_y_inputs:0", "DT_STRING", [-1])},
                                {"scores": _tensor(f"{_CALL}_1:0", "DT_FLOAT", [-1, 1])}, "predict"),
        "serving_default": _sig({"x": _tensor("serving_default_x:0", "DT_FLOAT", [1])},
                                {"y": _tensor(f"{_CALL}_5:0", "DT_FLOAT", [1])}, "predict"),
        "regress_x2_to_y3": _sig({"inputs": _tensor("regress_x2_to_y3_inputs:0", "DT_FLOAT", [1])},
                                 {"outputs": _tensor(f"{_CALL}_2:0", "DT_FLOAT", [1])}, "predict"),
        "classify_x2_to_y3": _sig({"inputs": _tensor("classify_x2_to_y3_inputs:0", "DT_FLOAT", [1])},
                                  {"scores": _tensor(f"{_CALL}:0", "DT_FLOAT", [1])}, "predict"),
        "__saved_model_init_op": _sig({}, {"__saved_model_init_op": _tensor("NoOp", "DT_INVALID", None)}, "",
                                      defaults=False),
    }}}}


def test_model_metadata_rest_prints_every_field_as_tf_serving(server):
    """testGetModelMetadataREST: equal to TF Serving's JSON, default-valued fields included."""
    status, body = rest(server, "GET", "/v1/models/default/metadata")
    assert status == 200 and body == TF1_METADATA
    status, body = rest(server, "GET", "/v1/models/half_plus_two_tf2/metadata")
    body["metadata"]["signature_def"]["signature_def"]["__saved_model_init_op"].pop("defaults", None)
    assert status == 200 and body == TF2_METADATA


def test_model_metadata_grpc(server):
    """testGetModelMetadata: the version, and only ``signature_def``."""
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    result = server.prediction.GetModelMetadata(request, RPC_TIMEOUT)
    assert (result.model_spec.name, result.model_spec.version.value) == ("default", M.VERSION)
    assert list(result.metadata) == ["signature_def"]
    sigs = get_model_metadata_pb2.SignatureDefMap()
    result.metadata["signature_def"].Unpack(sigs)
    assert json_format.MessageToDict(sigs, including_default_value_fields=True, preserving_proto_field_name=True) \
        == TF1_METADATA["metadata"]["signature_def"]


# ----------------------------------------------------------------------------- versions and labels
def test_version_and_label_urls(server):
    """``/versions/{v}`` and ``/labels/{label}`` (api_rest.md), and gRPC's ``version`` / ``version_label``."""
    url = "/v1/models/labelled"
    assert rest(server, "POST", url + ":predict", {"inputs": [2.0]}) == (200, {"outputs": [4.0]})  # latest: 124
    assert rest(server, "POST", url + "/versions/123:predict", {"inputs": [2.0]}) == (200, {"outputs": [3.0]})
    assert rest(server, "POST", url + "/labels/stable:predict", {"inputs": [2.0]}) == (200, {"outputs": [3.0]})
    assert rest(server, "POST", url + "/labels/canary:predict", {"inputs": [2.0]}) == (200, {"outputs": [4.0]})
    assert rest(server, "GET", url + "/labels/stable/metadata")[1]["model_spec"]["version"] == "123"
    assert rest(server, "GET", url + "/versions/124/metadata")[1]["model_spec"]["version"] == "124"
    status, body = rest(server, "GET", url + "/labels/stable")  # TF Serving: every version
    assert status == 200 and len(body["model_version_status"]) == 2
    assert rest(server, "GET", url + "/versions/123")[1]["model_version_status"][0]["version"] == "123"
    by_label = _predict_x(server, 2.0, model="labelled", label="canary")
    assert (by_label.model_spec.version.value, list(by_label.outputs["y"].float_val)) == (124, [4.0])
    by_version = _predict_x(server, 2.0, model="labelled", version=123)
    assert (by_version.model_spec.version.value, list(by_version.outputs["y"].float_val)) == (123, [3.0])


# ------------------------------------------------------------------------------------------ errors
REST_ERRORS = [
    # (case, method, path, body, HTTP status, error message, exact?)
    ("unknown model", "POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Latest(nope)", True),
    ("unknown version", "POST", "/v1/models/default/versions/7:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Specific(default, 7)", True),
    ("unknown label", "POST", "/v1/models/labelled/labels/beta:predict", {"instances": [1.0]}, 400,
     "Unrecognized servable version label: beta", True),
    ("unknown signature", "POST", "/v1/models/default:predict", {"signature_name": "nope", "instances": [1.0]},
     400, 'Serving signature name: "nope" not found in signature def', True),
    ("unknown input (row)", "POST", "/v1/models/default:predict", {"instances": [{"z": 1.0}]}, 400,
     "Failed to process element: 0 key: z of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does "
     "not have named input: z", True),
    ("unknown input (columnar)", "POST", "/v1/models/default:predict", {"inputs": {"z": [1.0]}}, 400,
     "Missing named input: x in 'inputs' object.", True),
    ("string for float (row)", "POST", "/v1/models/default:predict", {"instances": ["a"]}, 400,
     "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: \"a\" Type: "
     "String is not of expected type: float", True),
    ("string for float (columnar)", "POST", "/v1/models/default:predict", {"inputs": ["a"]}, 400,
     'JSON Value: "a" Type: String is not of expected type: float', True),
    ("ragged list", "POST", "/v1/models/default:predict", {"inputs": [[1.0], [2.0, 3.0]]}, 400,
     "Encountered list at unexpected size: 2 at level: 1 expected size: 1", True),
    ("both formats", "POST", "/v1/models/default:predict", {"inputs": [1.0], "instances": [1.0]}, 400,
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist", False),
    ("no tensors", "POST", "/v1/models/default:predict", {}, 400, "Missing 'inputs' or 'instances' key", True),
    ("malformed JSON", "POST", "/v1/models/default:predict", b'{"instances": [1.0,', 400, "JSON Parse error: ",
     False),
    ("empty body", "POST", "/v1/models/default:predict", b"", 400, "JSON Parse error: The document is empty", True),
    ("not an object", "POST", "/v1/models/default:predict", b"[1]", 400, "JSON Value: [\n    1\n] Is not object",
     True),
    ("classify without examples", "POST", "/v1/models/default:classify", {"signature_name": "classify_x_to_y"},
     400, "When method is classify, key 'examples' is expected and was not found", False),
    ("unknown signature (classify)", "POST", "/v1/models/default:classify",
     {"signature_name": "nope", "examples": [{"x": 1.0}]}, 400, "No signature was found with the name: nope", True),
    ("status of an unknown model", "GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope",
     True),
    ("status of an unknown version", "GET", "/v1/models/default/versions/7", None, 404,
     "Could not find version 7 of model default", True),
    ("metadata of an unknown model", "GET", "/v1/models/nope/metadata", None, 404,
     "Servable not found for request: Latest(nope)", True),
    ("unknown verb", "POST", "/v1/models/default:frobnicate", {}, 400,
     "Malformed request: POST /v1/models/default:frobnicate", True),
    ("GET a prediction", "GET", "/v1/models/default:predict", None, 400,
     "Malformed request: GET /v1/models/default:predict", True),
]


@pytest.mark.parametrize("case, method, path, body, http_status, message, exact", REST_ERRORS,
                         ids=[c[0] for c in REST_ERRORS])
def test_rest_errors_carry_tf_serving_codes_and_messages(server, case, method, path, body, http_status, message,
                                                         exact):
    status, payload = rest(server, method, path, body)
    assert status == http_status and set(payload) == {"error"}
    assert payload["error"] == message if exact else message in payload["error"], payload["error"]


def _grpc_errors():
    from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, predict_pb2

    def metadata(field):
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = "default"
        request.metadata_field.append(field)
        return lambda s: s.prediction.GetModelMetadata(request, RPC_TIMEOUT)

    def predict_inputs(names):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "default"
        for n in names:
            request.inputs[n].dtype = 1
            request.inputs[n].float_val.append(1.0)
            request.inputs[n].tensor_shape.dim.add().size = 1
        return lambda s: s.prediction.Predict(request, RPC_TIMEOUT)

    classify_empty = classification_pb2.ClassificationRequest()
    classify_empty.model_spec.name, classify_empty.model_spec.signature_name = "default", "classify_x_to_y"
    return [
        ("unknown model", lambda s: _predict_x(s, 1.0, model="nope"), "NOT_FOUND",
         "Servable not found for request: Latest(nope)"),
        ("unknown version", lambda s: _predict_x(s, 1.0, version=7), "NOT_FOUND",
         "Servable not found for request: Specific(default, 7)"),
        ("unknown label", lambda s: _predict_x(s, 1.0, model="labelled", label="beta"), "INVALID_ARGUMENT",
         "Unrecognized servable version label: beta"),
        ("no model name", lambda s: _predict_x(s, 1.0, model=""), "INVALID_ARGUMENT",
         "ModelSpec has no name specified."),
        ("unknown signature", lambda s: _predict_x(s, 1.0, signature="nope"), "FAILED_PRECONDITION",
         'Serving signature key "nope" not found.'),
        ("extra input", predict_inputs(["x", "z"]), "INVALID_ARGUMENT",
         "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but "
         "required: {}."),
        ("unknown input", predict_inputs(["z"]), "INVALID_ARGUMENT",
         re.compile(r"^Signature input alias: x ?\(x:0\) not found in request")),
        ("double for float", lambda s: _predict_x(s, 2.0, dtype=2), "INVALID_ARGUMENT",
         "Expects arg[0] to be float but double is provided"),
        ("unknown output", lambda s: _predict_x(s, 1.0, output_filter=("z",)), "INVALID_ARGUMENT",
         "output tensor alias not found in signature: z Outputs expected to be in the set {y}."),
        ("duplicate output", lambda s: _predict_x(s, 1.0, output_filter=("y", "y")), "INVALID_ARGUMENT",
         "duplicate output tensor alias: y"),
        ("unknown metadata field", metadata("foo"), "INVALID_ARGUMENT", "Metadata field foo is not supported"),
        ("classify no examples", lambda s: s.prediction.Classify(classify_empty, RPC_TIMEOUT), "INVALID_ARGUMENT",
         "Input is empty."),
    ]


GRPC_ERRORS = _grpc_errors()


@pytest.mark.parametrize("case, call, code, message", GRPC_ERRORS, ids=[c[0] for c in GRPC_ERRORS])
def test_grpc_errors_carry_tf_serving_codes_and_messages(server, case, call, code, message):
    e = _rpc_error(lambda: call(server))
    assert e.code().name == code, e.details()
    if isinstance(message, str):
        assert e.details() == message
    else:
        assert message.search(e.details()), e.details()


# ------------------------------------------------------------------------------------------ metrics
def test_prometheus_metrics_have_tf_serving_names_and_labels(server):
    """testPrometheusEndpoint, and the request metrics' names and labels (servables/tensorflow/util.cc)."""
    rest(server, "POST", "/v1/models/default:predict", {"instances": [1.0]})
    _predict_x(server, 1.0)
    r = requests.get(server.rest_url + "/monitoring/prometheus/metrics", timeout=RPC_TIMEOUT)
    assert r.status_code == 200 and "# TYPE" in r.text
    lines = r.text.splitlines()
    assert "# TYPE :tensorflow:serving:request_count counter" in lines
    assert "# TYPE :tensorflow:serving:request_latency histogram" in lines
    count = [l for l in lines if l.startswith(':tensorflow:serving:request_count{model_name="default",status="OK"} ')]
    assert count and int(count[0].split()[-1]) >= 2
    for api, entrypoint in (("predict", "REST"), ("Predict", "GRPC")):
        prefix = (':tensorflow:serving:request_latency_bucket{model_name="default",'
                  f'API="{api}",entrypoint="{entrypoint}",')
        buckets = [l for l in lines if l.startswith(prefix)]
        assert buckets and buckets[-1].startswith(prefix + 'le="+Inf"} '), (api, entrypoint)
        assert int(buckets[-1].split()[-1]) >= 1


# ------------------------------------------------------------------------------------------ our models
def test_ar_and_cr_serve_their_contract_over_both_protocols(server):
    from serving.clients import GrpcServingClient, RestServingClient

    for client in (GrpcServingClient(server.grpc_address), RestServingClient(server.rest_url)):
        with client:
            ar = T.sample_inputs(F.AR_MODEL_NAME, batch=5, seed=3)
            np.testing.assert_allclose(client.predict(F.AR_MODEL_NAME, ar, F.RAW_SIGNATURE)[F.PCTR_AD],
                                       T.reference_pctr_ad(ar), rtol=2e-6)
            cr = T.sample_inputs(F.CR_MODEL_NAME, batch=5, seed=4)
            np.testing.assert_allclose(client.predict(F.CR_MODEL_NAME, cr, F.RAW_SIGNATURE)[F.PCTR_C],
                                       T.reference_pctr_c(cr), rtol=2e-6)
            examples = {"examples": np.array(T.examples_from_inputs(cr), dtype=object)}
            np.testing.assert_allclose(client.predict(F.CR_MODEL_NAME, examples)[F.PCTR_C], T.reference_pctr_c(cr),
                                       rtol=2e-6)


# ------------------------------------------------------------------------------ servers of one test
def _copy(built, *names, into) -> str:
    for name in names:
        src, dst = (name, name) if isinstance(name, str) else name
        shutil.copytree(os.path.join(built[0], src), os.path.join(into, dst))
    return into


def _write(path: str, text: str) -> str:
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)  # a poller never reads half a file
    return path


def _config(*models) -> str:
    """``model_config_list`` text: each model (name, base path[, extra text])."""
    body = "".join(f'  config {{ name: "{m[0]}" base_path: "{m[1]}" model_platform: "tensorflow" '
                   f'{m[2] if len(m) > 2 else ""} }}\n' for m in models)
    return f"model_config_list {{\n{body}}}\n"


def test_bad_model_config_fails_at_start_with_the_line_and_problem(kind, tmp_path):
    """testBadModelConfig: TF Serving's message, with the parser's line and column."""
    bad = _write(str(tmp_path / "bad_model_config.txt"), "improperly formatted file")
    with pytest.raises(StartFailed) as e:
        start_server(kind, [f"--model_config_file={bad}"])
    out = str(e.value)
    assert re.search(r"Error parsing text-format tensorflow\.serving\.ModelServerConfig: 1:\d+: ", out), out
    assert f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'" in out


def test_bad_config_checks_fail_at_start(kind, built, tmp_path):
    hpt = os.path.join(built[0], "half_plus_two")
    cases = [
        (_config(("a", hpt), ("a", hpt)), "INVALID_ARGUMENT: Illegal to list model a multiple times in config list"),
        (_config(("a", "relative/path")),
         "INVALID_ARGUMENT: Expected model a to have an absolute path or URI; got base_path()=relative/path"),
        (_config(("a", hpt, 'version_labels { key: "stable" value: 123 }')),
         "FAILED_PRECONDITION: Request to assign label to version 123 of model a, which is not currently "
         "available for inference"),
    ]
    for i, (text, message) in enumerate(cases):
        config = _write(str(tmp_path / f"models-{i}.config"), text)
        with pytest.raises(StartFailed) as e:
            start_server(kind, [f"--model_config_file={config}"])
        assert f"Failed to start server. Error: {message}" in str(e.value), str(e.value)


def test_model_config_is_re_read_and_a_bad_edit_keeps_the_running_config(kind, built, tmp_path):
    """testModelConfigReload, then edits that do not parse or do not pass the checks."""
    root = _copy(built, "half_plus_two", "half_plus_three", into=str(tmp_path))
    two, three = os.path.join(root, "half_plus_two"), os.path.join(root, "half_plus_three")
    config = _write(str(tmp_path / "models.config"), _config(("half_plus_two", two)))
    with running(kind, [f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1"]) as s:
        assert list(_predict_x(s, 2.0, model="half_plus_two").outputs["y"].float_val) == [3.0]
        _write(config, _config(("half_plus_three", three)))

        def serves_three():
            try:
                return list(_predict_x(s, 2.0, model="half_plus_three").outputs["y"].float_val) == [4.0]
            except grpc.RpcError:
                return False

        eventually(serves_three, what="half_plus_three served after the config edit")
        eventually(lambda: _code_of(lambda: _predict_x(s, 2.0, model="half_plus_two")) == grpc.StatusCode.NOT_FOUND,
                   what="half_plus_two unloaded")
        _write(config, "model_config_list { config { name: ")  # does not parse
        time.sleep(2.5)
        assert list(_predict_x(s, 2.0, model="half_plus_three").outputs["y"].float_val) == [4.0]
        _write(config, _config(("half_plus_three", three, 'version_labels { key: "stable" value: 999 }')))
        time.sleep(2.5)
        assert list(_predict_x(s, 2.0, model="half_plus_three").outputs["y"].float_val) == [4.0]
        assert _rpc_error(lambda: _predict_x(s, 2.0, model="half_plus_three", label="stable")).details() == \
            "Unrecognized servable version label: stable"
        if kind == "stand-in":  # (TF Serving logs these lines too; its format differs)
            assert "Failed to read ModelServerConfig file: Invalid protobuf file" in s.log()
            assert ("failed to ReloadConfig: Request to assign label to version 999 of model half_plus_three"
                    in s.log())


def test_model_config_is_read_once_with_zero_poll_period(kind, built, tmp_path):
    """testModelConfigReloadWithZeroPollPeriod."""
    root = _copy(built, "half_plus_two", "half_plus_three", into=str(tmp_path))
    config = _write(str(tmp_path / "models.config"), _config(("half_plus_two", os.path.join(root, "half_plus_two"))))
    with running(kind, [f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=0"]) as s:
        _write(config, _config(("half_plus_three", os.path.join(root, "half_plus_three"))))
        time.sleep(2)
        assert list(_predict_x(s, 2.0, model="half_plus_two").outputs["y"].float_val) == [3.0]
        assert _rpc_error(lambda: _predict_x(s, 2.0, model="half_plus_three")).code() == grpc.StatusCode.NOT_FOUND


def _versions(s: Server, model: str) -> dict:
    status, body = rest(s, "GET", f"/v1/models/{model}")
    return {int(v["version"]): (v["state"], v["status"]["error_code"], v["status"]["error_message"])
            for v in body.get("model_version_status", [])}


def test_version_policies_and_a_version_that_fails_to_load(kind, built, tmp_path):
    """``latest``, ``all`` and ``specific``; a broken version ends with its error while the rest serve."""
    base = _copy(built, ("labelled", "versions"), into=str(tmp_path))  # 00000123 (+2) and 00000124 (+3)
    base = os.path.join(base, "versions")
    config = _write(str(tmp_path / "models.config"), _config(
        ("latest", base), ("latest2", base, "model_version_policy { latest { num_versions: 2 } }"),
        ("all", base, "model_version_policy { all {} }"),
        ("specific", base, "model_version_policy { specific { versions: 123 } }")))
    with running(kind, [f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
                        "--max_num_load_retries=0"]) as s:
        ok = ("AVAILABLE", "OK", "")
        assert _versions(s, "latest") == {124: ok}
        assert _versions(s, "latest2") == {124: ok, 123: ok}
        assert _versions(s, "all") == {124: ok, 123: ok}
        assert _versions(s, "specific") == {123: ok}
        assert rest(s, "POST", "/v1/models/specific:predict", {"inputs": [2.0]}) == (200, {"outputs": [3.0]})
        os.makedirs(os.path.join(base, "00000125"))  # a version directory without a SavedModel
        for model in ("latest", "latest2", "all"):
            eventually(lambda: _versions(s, model).get(125, ("",))[0] == "END", what=f"{model}: version 125 ends")
        state, code, message = _versions(s, "all")[125]
        assert code == "NOT_FOUND" and "Could not find SavedModel .pb or .pbtxt at supplied export directory " \
                                       f"path: {base}/00000125" in message, message
        assert _versions(s, "latest")[124][0] == "AVAILABLE"  # its only aspired version failed: 124 serves on
        for model, want in (("all", 4.0), ("latest", 4.0), ("latest2", 4.0), ("specific", 3.0)):
            assert rest(s, "POST", f"/v1/models/{model}:predict", {"inputs": [2.0]}) == (200, {"outputs": [want]})


def test_a_newest_version_that_fails_at_start_fails_the_start(kind, built, tmp_path):
    base = _copy(built, ("half_plus_two", "m"), into=str(tmp_path))
    os.makedirs(os.path.join(base, "m", "00000200"))
    with pytest.raises(StartFailed) as e:
        start_server(kind, ["--model_name=m", f"--model_base_path={base}/m", "--max_num_load_retries=0"])
    # ("{" + "{" + ServableId::DebugString() "{name: m version: 200}" ...: load_servables_fast.cc.)
    assert "Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available: {{{name: m version: " \
           "200} due to error: NOT_FOUND: Could not find SavedModel .pb or .pbtxt" in str(e.value), str(e.value)


def test_labels_move_through_handle_reload_config_request(kind, built, tmp_path):
    """serving_config.md: a label may only move to a loaded version; a refused config changes nothing."""
    from tensorflow_serving.apis import model_management_pb2

    from serving.standin.model_config import parse_model_server_config

    base = os.path.join(_copy(built, "labelled", into=str(tmp_path)), "labelled")
    policy = "model_version_policy { specific { versions: 123 versions: 124 } }"
    text = lambda labels: _config(("labelled", base, policy + "".join(  # noqa: E731
        f' version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())))
    config = _write(str(tmp_path / "models.config"), text({}))
    with running(kind, [f"--model_config_file={config}"]) as s:
        def reload(labels):
            request = model_management_pb2.ReloadConfigRequest()
            request.config.CopyFrom(parse_model_server_config(text(labels)))
            return s.models.HandleReloadConfigRequest(request, RPC_TIMEOUT)

        assert reload({"stable": 123, "canary": 124}).status.error_code == 0
        assert list(_predict_x(s, 2.0, model="labelled", label="canary").outputs["y"].float_val) == [4.0]
        reload({"stable": 124, "canary": 124})  # promote
        assert _predict_x(s, 2.0, model="labelled", label="stable").model_spec.version.value == 124
        e = _rpc_error(lambda: reload({"stable": 123, "canary": 999}))
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert e.details() == "Request to assign label to version 999 of model labelled, which is not currently " \
                              "available for inference"
        assert _predict_x(s, 2.0, model="labelled", label="stable").model_spec.version.value == 124  # unchanged


def test_exported_models_serve_as_they_load_with_and_without_batching(kind, tmp_path):
    """trainer/export.py's SavedModels: the server's answers are the SavedModel's own, and their warm-up
    records pass TF Serving's batching session (which refuses unequal 0th dimensions)."""
    import tensorflow as tf

    from serving.clients import GrpcServingClient
    from trainer import testing as trainer_testing
    from trainer.serving_inputs import example_request

    _skip_unless_startable(kind)
    exported = trainer_testing.exported_models("jac")
    for model in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):
        shutil.copytree(exported[model], str(tmp_path / model / "1"))
    config = _write(str(tmp_path / "models.config"), _config(*((m, str(tmp_path / m)) for m in ("ar", "cr"))))
    for flags in ([], ["--enable_batching=true", f"--batching_parameters_file={tf_serving.BATCHING_CONFIG}"]):
        with running(kind, [f"--model_config_file={config}", *flags]) as s, GrpcServingClient(s.grpc_address) as c:
            for model, output in ((F.AR_MODEL_NAME, F.PCTR_AD), (F.CR_MODEL_NAME, F.PCTR_C)):
                loaded = tf.saved_model.load(exported[model]).signatures[F.RAW_SIGNATURE]
                inputs = example_request(model, batch_size=6, user_batch_size=1 if not flags else 6, seed=3)
                want = loaded(**{k: tf.constant(v) for k, v in inputs.items()})[output].numpy()
                np.testing.assert_allclose(c.predict(model, inputs, F.RAW_SIGNATURE, timeout=60)[output], want,
                                           rtol=1e-5, atol=1e-7)
