"""The stand-in's parts against TF Serving's semantics, hand-computed: version manager, config files and
their checks, metrics text, JSON numbers and tensors, response tensors, command line.

(The behaviour both servers share is in ``test_serving_conformance.py``.)
"""

import os
import re
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf

import features as F
from serving import protocol as P
from serving import testing as T
from serving.clients import GrpcServingClient, RestServingClient
from serving.protocol import ServingError
from serving.standin import ModelServerStandIn, cli, json_tensors, model_config, protos
from serving.standin.metrics import GRPC, REST, RequestMetrics
from serving.standin.predict import fill_as_proto_field
from serving.standin.versions import aspired_versions, parse_version

MODELS = (F.AR_MODEL_NAME, F.CR_MODEL_NAME)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raises(fn, code, text):
    """The ServingError ``fn`` raises, checked: ``code`` and a message containing ``text``."""
    with pytest.raises(ServingError, match=f"(?s)^{code.name}: .*{re.escape(text)}") as e:
        fn()
    return e.value


def _standin(root, **kw):
    return ModelServerStandIn({m: os.path.join(root, m) for m in MODELS}, poll_seconds=0, **kw)


# ------------------------------------------------------------------------------------------ versions
@pytest.mark.parametrize("name, version", [("123", 123), ("00000123", 123), ("-4", -4), ("+7", 7), ("1e3", None),
                                           ("12a", None), (".staging-3", None), ("9" * 20, None), ("", None)])
def test_version_directory_names_parse_as_tf_serving_reads_them(name, version):
    assert parse_version(name) == version


@pytest.mark.parametrize("policy, want", [
    ("", [5]), ("latest { num_versions: 2 }", [3, 5]), ("latest { num_versions: 9 }", [1, 3, 5]),
    ("all {}", [1, 3, 5]), ("specific { versions: 3 versions: 4 }", [3])])
def test_version_policies_pick_the_aspired_versions(policy, want):
    config = model_config.parse_model_server_config(
        f'model_config_list {{ config {{ name: "m" base_path: "/b" model_version_policy {{ {policy} }} }} }}'
        if policy else 'model_config_list { config { name: "m" base_path: "/b" } }')
    on_disk = {1: "1", 3: "00000003", 5: "5"}
    assert sorted(aspired_versions(config.model_config_list.config[0], on_disk)) == want


def test_new_version_is_loaded_then_old_retired_and_a_directory_without_a_savedmodel_fails(tmp_path):
    root = str(tmp_path)
    T.prepare_serving_root(root, version=1)
    with _standin(root, max_load_retries=0) as s, GrpcServingClient(s.grpc_address) as c:
        assert c.status(F.AR_MODEL_NAME)[0].version == 1
        T.push_version(root, 2)
        s.poll_once()
        assert {st.version: st.state for st in c.status(F.AR_MODEL_NAME)} == {2: "AVAILABLE", 1: "END"}
        x = T.sample_inputs(F.AR_MODEL_NAME)
        assert c.start_predict(F.AR_MODEL_NAME, x, F.RAW_SIGNATURE).result().version == 2
        _raises(lambda: c.predict(F.AR_MODEL_NAME, x, F.RAW_SIGNATURE, version=1),
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({F.AR_MODEL_NAME}, 1)")
        # TF Serving aspires every integer-named directory: one without a SavedModel fails to load (the
        # latest policy then aspires it alone) and version 2 keeps serving.
        os.makedirs(os.path.join(root, F.AR_MODEL_NAME, "3"))
        s.poll_once()
        states = {st.version: st for st in c.status(F.AR_MODEL_NAME)}
        assert (states[3].state, states[3].error_code) == ("END", "NOT_FOUND")
        assert states[3].error_message.startswith("Could not find SavedModel .pb or .pbtxt at supplied export "
                                                  f"directory path: {root}/{F.AR_MODEL_NAME}/3.")
        assert states[2].state == "AVAILABLE"
        assert c.start_predict(F.AR_MODEL_NAME, x, F.RAW_SIGNATURE).result().version == 2


def test_a_failed_load_is_retried_then_ends_with_its_error_while_the_old_version_serves(tmp_path, monkeypatch):
    from serving.standin import server as server_module

    root = str(tmp_path)
    T.prepare_serving_root(root, version=1)
    attempts = []
    real = server_module.load_servable
    monkeypatch.setattr(server_module, "load_servable", lambda name, version, *a, **k: (
        attempts.append((name, version)), real(name, version, *a, **k))[1])
    with _standin(root, max_load_retries=2, load_retry_interval_seconds=0.05) as s, \
            GrpcServingClient(s.grpc_address) as c:
        bad = os.path.join(root, F.CR_MODEL_NAME, "2")
        os.makedirs(bad)
        with open(os.path.join(bad, "saved_model.pb"), "wb") as fh:
            fh.write(b"not a SavedModel")
        started = time.monotonic()
        s.poll_once()
        assert time.monotonic() - started >= 0.1  # two waits between three attempts
        assert attempts.count((F.CR_MODEL_NAME, 2)) == 3  # the first try and max_load_retries=2 retries
        states = {st.version: st for st in c.status(F.CR_MODEL_NAME)}
        assert (states[2].state, states[2].error_code) == ("END", "DATA_LOSS")
        assert states[2].error_message == f"Can't parse {bad}/saved_model.pb as binary proto"
        assert (states[1].state, states[1].error_code) == ("AVAILABLE", "OK")
        s.poll_once()  # not tried again while it stays aspired
        assert attempts.count((F.CR_MODEL_NAME, 2)) == 3
        call = c.start_predict(F.CR_MODEL_NAME, T.sample_inputs(F.CR_MODEL_NAME), F.RAW_SIGNATURE)
        assert call.result().version == 1


def _write_warmup(path, requests_):
    from tensorflow_serving.apis import prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as w:
        for request in requests_:
            w.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())


def test_warmup_records_run_before_a_version_is_served(tmp_path):
    """A warm-up record that does not fit the model fails the load, so warm-up really runs first; the
    old version and the other model serve on."""
    from tensorflow_serving.apis import predict_pb2

    root = str(tmp_path)
    T.prepare_serving_root(root, version=1)
    with _standin(root, max_load_retries=0) as s, GrpcServingClient(s.grpc_address) as c:
        T.push_version(root, 2)
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = F.RAW_SIGNATURE
        request.inputs["not_an_input"].CopyFrom(tf.make_tensor_proto(np.zeros([1], np.int64)))
        _write_warmup(os.path.join(root, F.AR_MODEL_NAME, "2", T.WARMUP_FILE), [request])
        s.poll_once()
        ar = {st.version: st for st in c.status(F.AR_MODEL_NAME)}
        assert ar[2].state == "END" and ar[2].error_code == "INVALID_ARGUMENT"
        assert ar[2].error_message.startswith("input size does not match signature: 1!=19 len({not_an_input})")
        assert ar[1].state == "AVAILABLE"
        assert c.status(F.CR_MODEL_NAME)[0].version == 2  # CR's warm-up file is fine


def test_more_than_1000_warmup_records_fail_the_load(tmp_path):
    from tensorflow_serving.apis import predict_pb2

    from serving.standin.warmup import MAX_WARMUP_RECORDS

    root = str(tmp_path)
    T.make_fake_models(root, 1, warmup=False)
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = F.RAW_SIGNATURE
    for k, v in T.sample_inputs(F.CR_MODEL_NAME, batch=1).items():
        request.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    path = os.path.join(root, F.CR_MODEL_NAME, "1", T.WARMUP_FILE)
    _write_warmup(path, [request] * (MAX_WARMUP_RECORDS + 1))
    s = ModelServerStandIn({F.CR_MODEL_NAME: os.path.join(root, F.CR_MODEL_NAME)}, poll_seconds=0,
                           max_load_retries=0)
    _raises(s.start, grpc.StatusCode.UNKNOWN, f"due to error: INVALID_ARGUMENT: Number of warmup records exceeds "
                                              f"the maximum (1000) at {path}")


def test_batching_checks_each_request_like_tf_serving(tmp_path):
    root = str(tmp_path)
    T.prepare_serving_root(root, version=1)
    batching = model_config.read_text_proto(os.path.join(REPO, "serving", "config", "batching.config"),
                                            protos.batching_parameters_class())
    with _standin(root, enable_batching=True, batching_parameters=batching) as s, \
            GrpcServingClient(s.grpc_address) as c:
        _raises(lambda: c.predict(F.AR_MODEL_NAME, T.sample_inputs(F.AR_MODEL_NAME, broadcast_user=True),
                                  F.RAW_SIGNATURE),
                grpc.StatusCode.INVALID_ARGUMENT,
                "Batching session Run() input tensors must have equal 0th-dimension size")
        out = c.predict(F.AR_MODEL_NAME, T.sample_inputs(F.AR_MODEL_NAME, broadcast_user=False), F.RAW_SIGNATURE)
        assert out[F.PCTR_AD].shape == (3,)
        big = T.sample_inputs(F.CR_MODEL_NAME, batch=16385, broadcast_user=False)
        _raises(lambda: c.predict(F.CR_MODEL_NAME, big, F.RAW_SIGNATURE), grpc.StatusCode.INVALID_ARGUMENT,
                "Task size 16385 is larger than maximum input batch size 16384")


def test_an_emptied_base_path_unloads_and_a_missing_one_changes_nothing(tmp_path):
    """TF Serving's source: no version directory aspires nothing (all unload); a base path that cannot be
    listed fails the poll, which changes nothing."""
    import shutil

    root = str(tmp_path)
    T.prepare_serving_root(root, version=1)
    with _standin(root) as s, GrpcServingClient(s.grpc_address) as c:
        shutil.rmtree(os.path.join(root, F.CR_MODEL_NAME))
        s.poll_once()
        assert c.status(F.AR_MODEL_NAME)[0].state == "AVAILABLE"  # the whole pass failed
        os.makedirs(os.path.join(root, F.CR_MODEL_NAME))
        s.poll_once()
        assert [(st.version, st.state) for st in c.status(F.CR_MODEL_NAME)] == [(1, "END")]
        _raises(lambda: c.predict(F.CR_MODEL_NAME, T.sample_inputs(F.CR_MODEL_NAME), F.RAW_SIGNATURE),
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({F.CR_MODEL_NAME})")


# ------------------------------------------------------------------------------------------ configs
def test_a_config_that_does_not_parse_names_the_line_and_problem(tmp_path):
    path = tmp_path / "models.config"
    path.write_text('model_config_list {\n  config {\n    nme: "ar"\n  }\n}\n')
    with pytest.raises(model_config.ConfigParseError) as e:
        model_config.read_model_server_config(str(path))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.message == f"Invalid protobuf file: '{path}'"
    assert e.value.parse_error == ('Error parsing text-format tensorflow.serving.ModelServerConfig: 3:5: Message '
                                   'type "tensorflow.serving.ModelConfig" has no field named "nme".')
    _raises(lambda: model_config.read_model_server_config(str(tmp_path / "nope")), grpc.StatusCode.NOT_FOUND,
            f"{tmp_path}/nope; No such file or directory")


CONFIG_CHECKS = [
    ('config { name: "a" base_path: "/x" model_platform: "tensorflow" } '
     'config { name: "a" base_path: "/y" model_platform: "tensorflow" }',
     "Illegal to list model a multiple times in config list"),
    ('config { name: "a" base_path: "x" model_platform: "tensorflow" }',
     "Expected model a to have an absolute path or URI; got base_path()=x"),
    ('config { name: "a" base_path: "/x" }',
     "Illegal setting neither ModelServerConfig::model_type (deprecated) nor ModelServerConfig::model_platform, "
     "model name is a"),
    ('config { name: "a" base_path: "/x" model_type: TENSORFLOW model_platform: "tensorflow" }',
     "Illegal setting both ModelServerConfig::model_type (deprecated) and ModelServerConfig::model_platform, "
     "model name is a"),
    ('config { name: "a" base_path: "/x" model_platform: "tflite" }', "Model a requests unsupported platform tflite"),
]


@pytest.mark.parametrize("models, message", CONFIG_CHECKS)
def test_configs_are_checked_as_server_core_checks_them(models, message):
    config = model_config.parse_model_server_config(f"model_config_list {{ {models} }}")
    _raises(lambda: model_config.check_config(config), grpc.StatusCode.INVALID_ARGUMENT, message)


def test_config_kinds_and_transitions():
    listed = model_config.parse_model_server_config(
        'model_config_list { config { name: "a" base_path: "/x" model_type: TENSORFLOW } }')
    assert [m.name for m in model_config.check_config(listed)] == ["a"]  # the deprecated spelling
    custom = model_config.parse_model_server_config('custom_model_config { }')
    _raises(lambda: model_config.check_config(custom), grpc.StatusCode.UNIMPLEMENTED,
            "ModelServer does not yet support custom model config.")
    empty = model_config.parse_model_server_config("")
    assert model_config.check_config(empty) == []
    _raises(lambda: model_config.check_config(empty, running=listed), grpc.StatusCode.FAILED_PRECONDITION,
            "Cannot transition to requested config. It is only legal to transition from one ModelConfigList to "
            "another.")


# ------------------------------------------------------------------------------------------ metrics
def test_request_metrics_render_as_tf_serving_exports_them():
    m = RequestMetrics()
    m.record_request("ar", "Predict", GRPC, "OK", 15e-6)  # 15 µs: bucket [10, 18)
    m.record_request("ar", "Predict", GRPC, "INVALID_ARGUMENT", 1.0)  # counted, latency not recorded
    m.record_request("cr", "", REST, "OK", 5e-6)  # a status GET: API ""
    m.record_runtime("ar", "Predict", 20e-6)
    lines = m.render().splitlines()
    assert lines[:4] == [
        "# TYPE :tensorflow:serving:request_count counter",
        ':tensorflow:serving:request_count{model_name="ar",status="INVALID_ARGUMENT"} 1',
        ':tensorflow:serving:request_count{model_name="ar",status="OK"} 1',
        ':tensorflow:serving:request_count{model_name="cr",status="OK"} 1']
    assert lines[4] == "# TYPE :tensorflow:serving:request_latency histogram"
    ar = [l for l in lines if l.startswith(':tensorflow:serving:request_latency_bucket{model_name="ar"')]
    assert len(ar) == 34  # 33 exponential buckets (10 µs x 1.8^i) and +Inf
    bucket = ':tensorflow:serving:request_latency_bucket{model_name="ar",API="Predict",entrypoint="GRPC",'
    assert ar[0] == bucket + 'le="10"} 0' and ar[1] == bucket + 'le="18"} 1'
    assert ar[2].endswith('le="32.4"} 1') and ar[-1].endswith('le="+Inf"} 1')
    assert ':tensorflow:serving:request_latency_sum{model_name="ar",API="Predict",entrypoint="GRPC"} 15' in lines
    assert ':tensorflow:serving:request_latency_count{model_name="cr",API="",entrypoint="REST"} 1' in lines
    assert ':tensorflow:serving:runtime_latency_bucket{model_name="ar",API="Predict",runtime="TF1",le="32.4"} 1' \
        in lines
    with pytest.raises(ValueError, match="entrypoint must be one of"):
        m.record_request("ar", "predict", "rest", "OK", 0.001)


def _prometheus_samples(rest_url):
    text = requests.get(rest_url + "/monitoring/prometheus/metrics").text
    return {k: float(v) for k, v in (l.rsplit(" ", 1) for l in text.splitlines() if not l.startswith("#"))}


def test_prometheus_metrics_label_each_request_as_tf_serving(tmp_path):
    """gRPC Predict is API "Predict" on entrypoint "GRPC"; REST calls are their verb ("predict"; "" for
    the metadata GET) on "REST"; gRPC metadata and status calls are not counted (TF Serving's)."""
    root = str(tmp_path)
    T.make_fake_models(root, 1)
    monitoring = model_config.read_text_proto(os.path.join(REPO, "serving", "config", "monitoring.config"),
                                              protos.monitoring_config_class())
    x = T.sample_inputs(F.AR_MODEL_NAME)
    with ModelServerStandIn({F.AR_MODEL_NAME: os.path.join(root, F.AR_MODEL_NAME)}, poll_seconds=0,
                            monitoring_config=monitoring) as s:
        with GrpcServingClient(s.grpc_address) as g, RestServingClient(s.rest_url) as r:
            g.predict(F.AR_MODEL_NAME, x, F.RAW_SIGNATURE)
            g.metadata(F.AR_MODEL_NAME)
            r.predict(F.AR_MODEL_NAME, x, F.RAW_SIGNATURE)  # (and a GET .../metadata for its dtypes)
            r.predict(F.AR_MODEL_NAME, x, F.RAW_SIGNATURE)
        samples = _prometheus_samples(s.rest_url)
    latency = ':tensorflow:serving:request_latency_count{{model_name="ar",API="{}",entrypoint="{}"}}'
    assert samples[latency.format("Predict", "GRPC")] == 1
    assert samples[latency.format("predict", "REST")] == 2
    assert samples[latency.format("", "REST")] == 1
    assert samples[':tensorflow:serving:request_count{model_name="ar",status="OK"}'] == 4
    # Three requests and the two warm-up records: TF Serving's warm-up runs RunPredict too.
    assert samples[':tensorflow:serving:runtime_latency_count{model_name="ar",API="Predict",runtime="TF1"}'] == 5
    assert samples[latency.replace("_count", "_sum").format("predict", "REST")] > 0  # microseconds


def test_without_a_monitoring_config_there_is_no_metrics_endpoint(tmp_path):
    root = str(tmp_path)
    T.make_fake_models(root, 1)
    with ModelServerStandIn({F.CR_MODEL_NAME: os.path.join(root, F.CR_MODEL_NAME)}, poll_seconds=0) as s:
        assert requests.get(s.rest_url + "/monitoring/prometheus/metrics").status_code == 404


# ------------------------------------------------------------------------------------- JSON and protos
@pytest.mark.parametrize("value, double, text", [
    (3.0, False, "3.0"), (0.5, False, "0.5"), (float(np.float32(0.1)), False, "0.1"),
    (float(np.float32(1 / 3)), False, "0.333333343"), (1e-5, False, "1e-05"), (9e6, False, "9e+06"),
    (123456.0, False, "123456.0"), (float(np.float32(1234567.0)), False, "1234567.0"),
    (1 / 3, True, "0.33333333333333331"), (float("nan"), False, "NaN"), (float("-inf"), False, "-Infinity")])
def test_floats_are_written_as_tf_serving_writes_them(value, double, text):
    """WriteDecimal: six significant digits when they give the value back, else max_digits10; ".0" on
    whole numbers."""
    assert json_tensors.decimal(value, double) == text


@pytest.mark.parametrize("value, dtype, message", [
    ([1, 2.5], np.int64, "JSON Value: 2.5 Type: Number is not of expected type: int64"),
    ([True], np.float32, "JSON Value: true Type: True is not of expected type: float"),
    ([2 ** 31], np.int32, "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
    # (TF Serving reports level + 1 of the value: json_tensor.cc's FillTensorProto.)
    ([[1], 2], np.float32, "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ([1, [2]], np.float32, "Encountered list at unexpected level: 1 expected < 1"),
    ([{"b64": "!!"}], object, "Unable to base64 decode"),
    ([{"a": 1}], object, 'JSON Value: {\n    "a": 1\n} not formatted correctly for base64 data'),
])
def test_json_tensors_are_typed_strictly_with_tf_serving_messages(value, dtype, message):
    with pytest.raises(ServingError) as e:
        json_tensors.tensor_from_json(value, np.dtype(dtype), is_string=dtype is object)
    assert e.value.message == message


def test_json_tensors_shapes_and_strings():
    arr = json_tensors.tensor_from_json([[1, 2], [3, 4]], np.dtype(np.float32))
    assert arr.dtype == np.float32 and arr.shape == (2, 2)
    s = json_tensors.tensor_from_json(["a", {"b64": "AAE="}], np.dtype(object), is_string=True)
    assert list(s) == [b"a", b"\x00\x01"]
    assert json_tensors.tensor_to_json(np.array([[1.5, 2]], np.float32)) == "[[1.5,2.0]]"
    assert json_tensors.tensor_to_json(np.array([b"\x00"], object), "x_bytes") == '[{"b64": "AA=="}]'
    assert json_tensors.tensor_to_json(np.array([True, False])) == "[true,false]"
    assert json_tensors.debug_string({"a": [1, {"b": None}]}) == \
        '{\n    "a": [\n        1,\n        {\n            "b": null\n        }\n    ]\n}'


@pytest.mark.parametrize("value", [
    np.array([1.5, -2.25], np.float32), np.arange(6, dtype=np.float64).reshape(2, 3), np.array([1, -2], np.int64),
    np.array([True, False]), np.array([3, -4], np.int32), np.array([b"a", b"bc"], dtype=object),
    np.array(2.5, np.float32), np.zeros([0, 3], np.float32), np.array([1.5, 2], np.float16),
    np.array([7, 8], np.uint64), np.array([1, 2], dtype=">f4")],
    ids=["float32", "float64", "int64", "bool", "int32", "string", "scalar", "empty", "half", "uint64", "big-endian"])
def test_response_tensors_are_typed_fields_as_tf_serving_writes_them(value):
    """Tensor::AsProtoField: float_val, int64_val... (never tensor_content), read back the same by TF and by
    the clients (whose packed float_val / double_val path reads the wire bytes)."""
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto()
    fill_as_proto_field(proto, value)
    assert not proto.tensor_content
    for back in (tf.make_ndarray(proto), P.from_tensor_proto(proto)):
        assert back.shape == value.shape and np.array_equal(back, value)
        assert back.dtype == (value.dtype if value.dtype == object else value.dtype.newbyteorder("="))
    if value.dtype == np.float32 and value.size:
        assert list(proto.float_val) == value.ravel().tolist()


# ------------------------------------------------------------------------------------- command line
@pytest.mark.parametrize("flags, status", [
    (["--port=0", "--model_base_path=/x"], "INVALID_ARGUMENT: At least one of server_options.grpc_port or "
                                           "server_options.grpc_socket_path must be set."),
    ([], "INVALID_ARGUMENT: Both server_options.model_base_path and server_options.model_config_file are empty!"),
    (["--model_base_path=/x", "--batching_parameters_file=/b"],
     "INVALID_ARGUMENT: server_options.batching_parameters_file is set without setting "
     "server_options.enable_batching to true."),
])
def test_command_line_is_checked_as_tf_serving_checks_it(flags, status):
    with pytest.raises(cli.StartError) as e:
        cli.options_from_args(cli.build_parser().parse_args(flags))
    assert e.value.status == status


def test_command_line_takes_tf_serving_flags():
    options, config = cli.options_from_args(cli.build_parser().parse_args([
        "--port=9000", "--rest_api_port=9001", "--model_name=ar", "--model_base_path=/srv/ar",
        "--file_system_poll_wait_seconds=3", "--max_num_load_retries=2", "--load_retry_interval_micros=500000",
        "--enable_batching", "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=2",
        "--enable_model_warmup=false", "--saved_model_tags=serve,gpu"]))
    assert (options.port, options.rest_port, options.poll_seconds, options.max_load_retries) == (9000, 9001, 3, 2)
    assert options.load_retry_interval_seconds == 0.5 and options.enable_batching and options.max_batch_size == 1000
    assert (options.intra_op_threads, options.inter_op_threads, options.enable_model_warmup) == (1, 2, False)
    assert options.saved_model_tags == ("serve", "gpu")
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("ar", "/srv/ar", "tensorflow")
    options, _ = cli.options_from_args(cli.build_parser().parse_args(["--model_base_path=/x", "--rest_api_port=0"]))
    assert options.rest_port is None and options.prometheus_path is None  # TF Serving's defaults: neither


def test_the_command_fails_fast_on_a_bad_config_without_importing_tensorflow(tmp_path):
    bad = tmp_path / "bad.config"
    bad.write_text("improperly formatted file")
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "serving.standin", f"--model_config_file={bad}"],
                       capture_output=True, text=True, cwd=REPO, timeout=60,
                       env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 255
    assert r.stdout.strip() == f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'"
    assert ("Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: Message type "
            '"tensorflow.serving.ModelServerConfig" has no field named "improperly".') in r.stderr
    assert "| tensorflow\n" not in r.stderr  # (importtime lines): TensorFlow was never imported
    assert time.monotonic() - started < 30
