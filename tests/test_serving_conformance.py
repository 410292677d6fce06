"""TF Serving conformance: one test code for the model server stand-in and for ``tensorflow_model_server``.

Cases and expected values come from TF Serving's own model-server tests
(``tensorflow_serving/model_servers/tensorflow_model_server_test.py``: predict row and columnar,
classify and regress over gRPC and REST, model status, metadata against their JSON) and from its REST
documentation (``g3doc/api_rest.md``: version and label URLs, error bodies), on the models of
``tests/conformance_models.py``, all answered by one shared server; error codes and messages are those of
TF Serving 2.16's sources. Config files, their reload, version policies and labels moved at run time need a
server of their own: ``test_serving_conformance_config.py``. Harness: ``tests/conformance_servers.py``.

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

import re

import numpy as np
import pytest
import requests

import conformance_models as M
import features as F
from conformance_servers import RPC_TIMEOUT, examples_request, fixtures, predict_x, rest, rpc_error
from serving import testing as T

kind, built, server = fixtures()


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
    result = predict_x(server, 2.0, model=model, output_filter=output_filter)
    assert set(result.outputs) == {"y"}
    y = result.outputs["y"]
    assert y.dtype == 1 and list(y.float_val) == [3.0] and not y.tensor_content
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == \
        (model, "serving_default", M.VERSION)


def test_predict_grpc_does_not_check_shapes_against_the_signature(server):
    result = predict_x(server, 2.0, 3.0, 4.0, shape=[3])  # x is [-1, 1] in the signature
    assert [d.size for d in result.outputs["y"].tensor_shape.dim] == [3]
    assert list(result.outputs["y"].float_val) == [3.0, 3.5, 4.0]
    batched = predict_x(server, 2.0, shape=[1, 1])
    assert [d.size for d in batched.outputs["y"].tensor_shape.dim] == [1, 1]


@pytest.mark.parametrize("model", ["default", "half_plus_two_tf2"])
def test_classify_and_regress_grpc(server, model):
    """testClassify / testRegress (TF1 and TF2)."""
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    classified = server.prediction.Classify(examples_request(
        classification_pb2.ClassificationRequest, model, "classify_x_to_y", [2.0]), RPC_TIMEOUT)
    assert len(classified.result.classifications) == 1
    assert [(c.label, c.score) for c in classified.result.classifications[0].classes] == [("", 3.0)]
    assert (classified.model_spec.name, classified.model_spec.signature_name,
            classified.model_spec.version.value) == (model, "classify_x_to_y", M.VERSION)
    regressed = server.prediction.Regress(examples_request(
        regression_pb2.RegressionRequest, model, "regress_x_to_y", [2.0, 4.0]), RPC_TIMEOUT)
    assert [r.value for r in regressed.result.regressions] == [3.0, 4.0]
    # The context is merged into every example.
    with_context = server.prediction.Regress(examples_request(
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
    by_label = predict_x(server, 2.0, model="labelled", label="canary")
    assert (by_label.model_spec.version.value, list(by_label.outputs["y"].float_val)) == (124, [4.0])
    by_version = predict_x(server, 2.0, model="labelled", version=123)
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
        ("unknown model", lambda s: predict_x(s, 1.0, model="nope"), "NOT_FOUND",
         "Servable not found for request: Latest(nope)"),
        ("unknown version", lambda s: predict_x(s, 1.0, version=7), "NOT_FOUND",
         "Servable not found for request: Specific(default, 7)"),
        ("unknown label", lambda s: predict_x(s, 1.0, model="labelled", label="beta"), "INVALID_ARGUMENT",
         "Unrecognized servable version label: beta"),
        ("no model name", lambda s: predict_x(s, 1.0, model=""), "INVALID_ARGUMENT",
         "ModelSpec has no name specified."),
        ("unknown signature", lambda s: predict_x(s, 1.0, signature="nope"), "FAILED_PRECONDITION",
         'Serving signature key "nope" not found.'),
        ("extra input", predict_inputs(["x", "z"]), "INVALID_ARGUMENT",
         "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but "
         "required: {}."),
        ("unknown input", predict_inputs(["z"]), "INVALID_ARGUMENT",
         re.compile(r"^Signature input alias: x ?\(x:0\) not found in request")),
        ("double for float", lambda s: predict_x(s, 2.0, dtype=2), "INVALID_ARGUMENT",
         "Expects arg[0] to be float but double is provided"),
        ("unknown output", lambda s: predict_x(s, 1.0, output_filter=("z",)), "INVALID_ARGUMENT",
         "output tensor alias not found in signature: z Outputs expected to be in the set {y}."),
        ("duplicate output", lambda s: predict_x(s, 1.0, output_filter=("y", "y")), "INVALID_ARGUMENT",
         "duplicate output tensor alias: y"),
        ("unknown metadata field", metadata("foo"), "INVALID_ARGUMENT", "Metadata field foo is not supported"),
        ("classify no examples", lambda s: s.prediction.Classify(classify_empty, RPC_TIMEOUT), "INVALID_ARGUMENT",
         "Input is empty."),
    ]


GRPC_ERRORS = _grpc_errors()


@pytest.mark.parametrize("case, call, code, message", GRPC_ERRORS, ids=[c[0] for c in GRPC_ERRORS])
def test_grpc_errors_carry_tf_serving_codes_and_messages(server, case, call, code, message):
    e = rpc_error(lambda: call(server))
    assert e.code().name == code, e.details()
    if isinstance(message, str):
        assert e.details() == message
    else:
        assert message.search(e.details()), e.details()


# ------------------------------------------------------------------------------------------ metrics
def test_prometheus_metrics_have_tf_serving_names_and_labels(server):
    """testPrometheusEndpoint, and the request metrics' names and labels (servables/tensorflow/util.cc)."""
    rest(server, "POST", "/v1/models/default:predict", {"instances": [1.0]})
    predict_x(server, 1.0)
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
