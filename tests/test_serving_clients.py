"""gRPC and REST clients against the model server stand-in (and real TF Serving when on PATH).

Models: fake AR/CR SavedModels with the serving contract (serving.testing), or copies of a real
serving root when $ADCR_SERVING_ROOT is set.
"""

import json
import os

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf

import features as F
from serving import backend as B
from serving import protocol as P
from serving import testing as T
from serving import tf_serving
from serving.clients import GrpcServingClient, RestServingClient, make_client
from serving.protocol import ServingError
from serving.standin import ModelServerStandIn

MODELS = (F.AR_MODEL_NAME, F.CR_MODEL_NAME)
OUTPUT = {F.AR_MODEL_NAME: F.PCTR_AD, F.CR_MODEL_NAME: F.PCTR_C}


@pytest.fixture(scope="module")
def serving_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("serving"))
    real = T.prepare_serving_root(root, version=1)
    return root, real


@pytest.fixture(scope="module")
def server(serving_root):
    root, _ = serving_root
    s = ModelServerStandIn({m: os.path.join(root, m) for m in MODELS}, poll_seconds=0).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def loaded(serving_root):
    root, _ = serving_root
    return {m: tf.saved_model.load(os.path.join(root, m, "1")) for m in MODELS}


@pytest.fixture(params=["grpc", "rest"])
def client(request, server):
    c = GrpcServingClient(server.grpc_address) if request.param == "grpc" else RestServingClient(server.rest_url)
    yield c
    c.close()


def in_process(loaded, model, inputs, signature):
    """The signature run in this process (a tf.function). The servers run the same graph in a Session,
    as TF Serving does, where Grappler may reorder float arithmetic: compare to ~1 ulp (rtol 1e-6)."""
    fn = loaded[model].signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def examples_input(inputs):
    return {"examples": np.array(T.examples_from_inputs(inputs), dtype=object)}


# ------------------------------------------------------------------------------------------ predict
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("broadcast", [True, False])
def test_raw_predict_equals_in_process(client, loaded, model, broadcast):
    inputs = T.sample_inputs(model, batch=7, seed=3, broadcast_user=broadcast, seq_len=5)
    got = client.predict(model, inputs, signature=F.RAW_SIGNATURE, timeout=30)
    want = in_process(loaded, model, inputs, F.RAW_SIGNATURE)
    assert set(got) == {OUTPUT[model]}
    assert got[OUTPUT[model]].dtype == np.float32 and got[OUTPUT[model]].shape == (7,)
    np.testing.assert_allclose(got[OUTPUT[model]], want[OUTPUT[model]], rtol=1e-6)


@pytest.mark.parametrize("model", MODELS)
def test_examples_predict_equals_in_process_and_raw(client, loaded, model):
    inputs = T.sample_inputs(model, batch=4, seed=5, broadcast_user=False)
    got = client.predict(model, examples_input(inputs), timeout=30)  # serving_default
    want = in_process(loaded, model, examples_input(inputs), F.SERVING_SIGNATURE)
    np.testing.assert_allclose(got[OUTPUT[model]], want[OUTPUT[model]], rtol=1e-6)
    raw = client.predict(model, inputs, signature=F.RAW_SIGNATURE)
    np.testing.assert_allclose(got[OUTPUT[model]], raw[OUTPUT[model]], rtol=1e-6)


def test_fake_models_match_hand_formulas(server, serving_root):
    if serving_root[1]:
        return  # real models: the formula holds only for the fake ones (the other tests still run)
    c = GrpcServingClient(server.grpc_address)
    ar = T.sample_inputs(F.AR_MODEL_NAME, batch=6, seed=11)
    ar[F.SEQ_AD_IDS][0, :2] = ar[F.AD_ID][:2]  # two sequence hits for ad 0 (and 1 if equal)
    np.testing.assert_allclose(c.predict(F.AR_MODEL_NAME, ar, F.RAW_SIGNATURE)[F.PCTR_AD],
                               T.reference_pctr_ad(ar), rtol=2e-6)
    cr = T.sample_inputs(F.CR_MODEL_NAME, batch=6, seed=12)
    np.testing.assert_allclose(c.predict(F.CR_MODEL_NAME, cr, F.RAW_SIGNATURE)[F.PCTR_C],
                               T.reference_pctr_c(cr), rtol=2e-6)
    # A hand-computed CR row: all codes 0, ad_id 11 (mod 11 = 0), hist ctr 0.05, creative id 194 (mod 97 = 0),
    # embedding e_0 = 1 only: z = -2 + 4*0.05 + 0.5*tanh(-0.4).
    row = {n: np.zeros([1], np.int64) for n in F.CR_SERVING_INPUTS}
    row[F.AD_ID][0], row[F.CREATIVE_ID][0] = 11, 194
    row[F.AD_HIST_CTR] = np.array([0.05], np.float32)
    emb = np.zeros([1, F.CREATIVE_EMBEDDING_DIM], np.float32)
    emb[0, 0] = 1.0
    row[F.CREATIVE_EMBEDDING] = emb
    z = -2 + 4 * 0.05 + 0.5 * np.tanh(-0.4)
    assert c.predict(F.CR_MODEL_NAME, row, F.RAW_SIGNATURE)[F.PCTR_C][0] == pytest.approx(
        1 / (1 + np.exp(-z)), rel=1e-6)
    c.close()


def test_start_predict_runs_concurrently_and_reports_version(server):
    c = GrpcServingClient(server.grpc_address)
    calls = [c.start_predict(m, T.sample_inputs(m, batch=3), F.RAW_SIGNATURE, timeout=30) for m in MODELS]
    results = [call.result() for call in calls]
    assert [r.version for r in results] == [1, 1]
    assert all(r.rpc_ms > 0 and r.encode_ms >= 0 and r.decode_ms >= 0 for r in results)
    c.close()


# ---------------------------------------------------------------------------------- metadata, status
@pytest.mark.parametrize("model", MODELS)
def test_metadata_lists_both_signatures_with_contract_inputs(client, model):
    md = client.metadata(model)
    assert md.name == model and md.version == 1
    raw = md.signatures[F.RAW_SIGNATURE]
    names = F.AR_SERVING_INPUTS if model == F.AR_MODEL_NAME else F.CR_SERVING_INPUTS
    assert set(raw.inputs) == set(names)
    assert set(raw.outputs) == {OUTPUT[model]}
    for n in names:
        want = "int64" if F.BY_NAME[n].dtype == F.INT else "float32"
        assert raw.inputs[n].dtype == want, n
    if model == F.CR_MODEL_NAME:
        assert raw.inputs[F.CREATIVE_EMBEDDING].shape == (None, F.CREATIVE_EMBEDDING_DIM)
    else:
        assert raw.inputs[F.SEQ_AD_IDS].shape == (None, None)
    serving = md.signatures[F.SERVING_SIGNATURE]
    assert list(serving.inputs) == ["examples"] and serving.inputs["examples"].dtype == "string"
    assert serving.method_name == "tensorflow/serving/predict"


def test_status_available(client):
    for m in MODELS:
        (s,) = client.status(m)
        assert (s.version, s.state, s.error_code) == (1, "AVAILABLE", "OK")
    assert client.status(F.AR_MODEL_NAME, version=1)[0].state == "AVAILABLE"
    assert client.wait_until_available(MODELS, timeout=5) == {m: 1 for m in MODELS}


# ----------------------------------------------------------------------------------------- errors
def _raises(fn, code, text):
    with pytest.raises(ServingError) as e:
        fn()
    assert e.value.code == code, e.value
    assert text in e.value.message, e.value.message
    return e.value


def test_unknown_model_and_version_are_not_found(client):
    x = T.sample_inputs(F.AR_MODEL_NAME)
    _raises(lambda: client.predict("nope", x, F.RAW_SIGNATURE), grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)")
    _raises(lambda: client.predict(F.AR_MODEL_NAME, x, F.RAW_SIGNATURE, version=9),
            grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({F.AR_MODEL_NAME}, 9)")
    _raises(lambda: client.status("nope"), grpc.StatusCode.NOT_FOUND,
            "Could not find any versions of model nope")
    _raises(lambda: client.status(F.AR_MODEL_NAME, version=9), grpc.StatusCode.NOT_FOUND,
            f"Could not find version 9 of model {F.AR_MODEL_NAME}")
    _raises(lambda: client.metadata("nope"), grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)")


_AR_NAMES = ",".join(sorted(F.AR_SERVING_INPUTS))  # 19 inputs; ad_id is the 6th (arg[5])
_AR_NAMES_BUT_AD_ID = ",".join(n for n in sorted(F.AR_SERVING_INPUTS) if n != F.AD_ID)

# (case, change to valid AR inputs, message over gRPC, message over REST or None if REST accepts it).
# TF Serving's messages: gRPC checks the inputs against the signature, then the Session checks dtypes
# ("Expects arg[i]": ad_id is the 6th feed); REST's JSON decoding reads only the signature's inputs (an
# extra one is ignored) and types each value. Neither checks shapes against the TensorInfo.
BAD_INPUTS = [
    ("missing", lambda x: {k: v for k, v in x.items() if k != F.AD_ID},
     f"input size does not match signature: 18!=19 len({{{_AR_NAMES_BUT_AD_ID}}}) != len({{{_AR_NAMES}}}). "
     "Sent extra: {}. Missing but required: {ad_id}.",
     "Missing named input: ad_id in 'inputs' object."),
    ("extra", lambda x: dict(x, bogus=np.zeros([3], np.int64)),
     f"input size does not match signature: 20!=19 len({{{','.join(sorted([*F.AR_SERVING_INPUTS, 'bogus']))}}}) "
     f"!= len({{{_AR_NAMES}}}). "
     "Sent extra: {bogus}. Missing but required: {}.",
     None),
    ("float for int64", lambda x: dict(x, **{F.AD_ID: np.array([1.5, 2.5, 3.5], np.float32)}),
     "Expects arg[5] to be int64 but float is provided",
     "JSON Value: 1.5 Type: Number is not of expected type: int64"),
]


@pytest.mark.parametrize("case, mutate, grpc_message, rest_message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_are_invalid_argument(client, case, mutate, grpc_message, rest_message):
    inputs = mutate(T.sample_inputs(F.AR_MODEL_NAME))
    message = grpc_message if isinstance(client, GrpcServingClient) else rest_message
    if message is None:
        assert client.predict(F.AR_MODEL_NAME, inputs, F.RAW_SIGNATURE)[F.PCTR_AD].shape == (3,)
        return
    e = _raises(lambda: client.predict(F.AR_MODEL_NAME, inputs, F.RAW_SIGNATURE),
                grpc.StatusCode.INVALID_ARGUMENT, message)
    assert e.message == message


def test_unknown_signature_is_failed_precondition(client):
    # REST looks the signature up itself (INVALID_ARGUMENT, HTTP 400), with its own message.
    if isinstance(client, GrpcServingClient):
        code, message = grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'
    else:
        code, message = grpc.StatusCode.INVALID_ARGUMENT, 'Serving signature name: "nope" not found in signature def'
    _raises(lambda: client.predict(F.AR_MODEL_NAME, T.sample_inputs(F.AR_MODEL_NAME), "nope"), code, message)


# ------------------------------------------------------------------------------------ REST formats
def test_rest_wire_formats_match_tf_serving(server, loaded):
    url = f"{server.rest_url}/v1/models/{F.CR_MODEL_NAME}"
    x = T.sample_inputs(F.CR_MODEL_NAME, batch=2, broadcast_user=False)
    want = in_process(loaded, F.CR_MODEL_NAME, x, F.RAW_SIGNATURE)[F.PCTR_C]
    # Columnar: a single output comes back unnamed.
    r = requests.post(url + ":predict", json={"signature_name": F.RAW_SIGNATURE,
                                              "inputs": {k: v.tolist() for k, v in x.items()}})
    assert r.status_code == 200
    np.testing.assert_allclose(np.float32(r.json()["outputs"]), want, rtol=1e-6)
    # Row format: "instances" -> "predictions".
    rows = [{k: v[i].tolist() for k, v in x.items()} for i in range(2)]
    r = requests.post(url + "/versions/1:predict", json={"signature_name": F.RAW_SIGNATURE,
                                                         "instances": rows})
    assert r.status_code == 200
    np.testing.assert_allclose(np.float32(r.json()["predictions"]), want, rtol=1e-6)
    # Binary strings as {"b64": ...} (serving_default takes serialized tf.Examples).
    import base64
    ex = [{"b64": base64.b64encode(e).decode()} for e in T.examples_from_inputs(x)]
    r = requests.post(url + ":predict", json={"instances": ex})
    assert r.status_code == 200
    np.testing.assert_allclose(np.float32(r.json()["predictions"]), want, rtol=1e-6)
    # Status and metadata documents.
    status = requests.get(url).json()
    assert status == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                "status": {"error_code": "OK", "error_message": ""}}]}
    md = requests.get(url + "/metadata").json()
    assert md["model_spec"] == {"name": F.CR_MODEL_NAME, "signature_name": "", "version": "1"}
    sig = md["metadata"]["signature_def"]["signature_def"][F.RAW_SIGNATURE]
    assert sig["inputs"][F.CREATIVE_EMBEDDING]["dtype"] == "DT_FLOAT"


@pytest.mark.parametrize("body, status, text", [
    (b"{not json", 400, "JSON Parse error"),
    (b"[1, 2]", 400, "JSON Value: [\n    1,\n    2\n] Is not object"),
    (b"{}", 400, "Missing 'inputs' or 'instances' key"),
    (json.dumps({"inputs": {}, "instances": []}).encode(), 400, "only one of 'inputs' or 'instances'"),
    (json.dumps({"signature_name": F.RAW_SIGNATURE, "inputs": {F.AD_ID: [1]}}).encode(), 400,
     "Missing named input"),
    (json.dumps({"signature_name": "nope", "inputs": {}}).encode(), 400,
     'Serving signature name: "nope" not found in signature def'),
])
def test_rest_errors(server, body, status, text):
    r = requests.post(f"{server.rest_url}/v1/models/{F.AR_MODEL_NAME}:predict", data=body)
    assert r.status_code == status
    assert text in r.json()["error"]


def test_rest_rejects_floats_for_int_inputs_and_unknown_paths(server):
    x = {k: v.tolist() for k, v in T.sample_inputs(F.AR_MODEL_NAME, broadcast_user=False).items()}
    x[F.AD_ID] = [1.5, 2.0, 3.0]
    r = requests.post(f"{server.rest_url}/v1/models/{F.AR_MODEL_NAME}:predict",
                      json={"signature_name": F.RAW_SIGNATURE, "inputs": x})
    assert r.status_code == 400 and "not of expected type: int64" in r.json()["error"]
    r = requests.post(f"{server.rest_url}/v1/models/nope:predict", json={"inputs": {}})
    assert r.status_code == 404 and "Latest(nope)" in r.json()["error"]
    r = requests.get(f"{server.rest_url}/v2/whatever")
    assert r.status_code == 404 and "error" in r.json()


@pytest.mark.parametrize("value", [
    np.arange(12, dtype=np.int64).reshape(3, 4), np.linspace(0, 1, 10, dtype=np.float32).reshape(5, 2),
    np.array([0.25, -1.5]), np.array(3.5, dtype=np.float32), np.zeros([0, 8], np.float32),
    np.array([True, False, True]), np.array([[7, -8]], dtype=">i8"), np.array([1, 2], dtype=np.int32),
    np.array([b"a", b"bc"], dtype=object),
], ids=["int64", "float32", "float64", "scalar", "empty", "bool", "big-endian", "int32", "string"])
def test_tensor_protos_match_tensorflow_both_ways(value):
    """The tensor_content fast path writes what tf.make_tensor_proto means and reads what it writes."""
    ours = P.to_tensor_proto(value)
    # (tf.make_tensor_proto copies a big-endian array's bytes as they are: give it native ones.)
    ref = tf.make_tensor_proto(value.astype(object) if value.dtype == object
                               else value.astype(value.dtype.newbyteorder("=")))
    assert ours.dtype == ref.dtype
    assert [d.size for d in ours.tensor_shape.dim] == list(value.shape)
    np.testing.assert_array_equal(tf.make_ndarray(ours), value)  # TF reads ours
    back = P.from_tensor_proto(ref)  # we read TF's (typed *_val fields for small tensors)
    np.testing.assert_array_equal(back, value)
    assert back.shape == value.shape
    if value.dtype != object:
        assert back.dtype == value.dtype.newbyteorder("=")
        np.testing.assert_array_equal(P.from_tensor_proto(ours), value)


def test_tensor_content_of_the_wrong_size_is_rejected():
    proto = P.to_tensor_proto(np.arange(6, dtype=np.int64).reshape(2, 3))
    proto.tensor_content = proto.tensor_content[:-8]
    with pytest.raises(ValueError, match="holds 5 values for shape \\[2, 3\\]"):
        P.from_tensor_proto(proto)


def test_make_client_rejects_unknown_protocol():
    with pytest.raises(ValueError, match="protocol"):
        make_client("udp", "x")


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_connection_refused_is_unavailable(protocol):
    port = B.free_port()
    with make_client(protocol, f"127.0.0.1:{port}") as c:
        e = _raises(lambda: c.status(F.AR_MODEL_NAME, timeout=2), grpc.StatusCode.UNAVAILABLE,
                    "Connection refused")
    # The message names the address (gRPC's own text; the REST client puts the URL first).
    if protocol == "grpc":
        assert e.message.startswith("failed to connect to all addresses") and f"127.0.0.1:{port}" in e.message
    else:
        assert e.message.startswith(f"http://127.0.0.1:{port}/v1/models/{F.AR_MODEL_NAME}: ")


# ----------------------------------------------------------------------------- real TF Serving
@pytest.mark.skipif(tf_serving.find_model_server() is None,
                    reason="tensorflow_model_server is not on PATH (TF Serving binary not installed)")
def test_real_tf_serving_matches_in_process(serving_root, loaded):
    root, _ = serving_root
    with B.start_backend(root, kind=B.TF_SERVING) as server:
        server.wait_until_available(timeout=120)
        for c in (GrpcServingClient(server.grpc_address), RestServingClient(server.rest_url)):
            for m in MODELS:
                x = T.sample_inputs(m, batch=5, seed=7)
                got = c.predict(m, x, F.RAW_SIGNATURE, timeout=30)[OUTPUT[m]]
                np.testing.assert_allclose(got, in_process(loaded, m, x, F.RAW_SIGNATURE)[OUTPUT[m]],
                                           rtol=1e-6)
                assert set(c.metadata(m).signatures) >= {F.RAW_SIGNATURE, F.SERVING_SIGNATURE}
                assert c.status(m)[0].state == "AVAILABLE"
            _raises(lambda: c.predict("nope", x, F.RAW_SIGNATURE), grpc.StatusCode.NOT_FOUND,
                    "Servable not found for request: Latest(nope)")
            c.close()
