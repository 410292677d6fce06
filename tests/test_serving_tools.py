"""TF Serving configs and launcher, sample requests from TFRecords, and the demo end to end."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import features as F
from serving import backend as B
from serving import demo
from serving import tf_serving
from serving.router import parse_request
from serving.router import request as R
from serving.sample_requests import random_request, requests_from_tfrecords

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse_models_config(text):
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_models_config_serves_ar_and_cr_with_latest_policy(tmp_path):
    config = _parse_models_config(tf_serving.models_config(str(tmp_path)))
    entries = {c.name: c for c in config.model_config_list.config}
    assert set(entries) == {F.AR_MODEL_NAME, F.CR_MODEL_NAME}
    for name, c in entries.items():
        assert c.base_path == os.path.join(str(tmp_path), name)
        assert c.model_platform == "tensorflow"
        assert c.model_version_policy.WhichOneof("policy_choice") == "latest"
        assert c.model_version_policy.latest.num_versions == 1
    relative = _parse_models_config(tf_serving.models_config("rel/root"))
    assert relative.model_config_list.config[0].base_path == os.path.abspath("rel/root/ar")
    with pytest.raises(ValueError, match="num_versions"):
        tf_serving.models_config("/x", num_versions=0)


def test_models_config_for_paths_pins_versions_and_labels_them():
    paths = {F.AR_MODEL_NAME: "/m/ar", F.CR_MODEL_NAME: "/m/cr"}
    config = _parse_models_config(tf_serving.models_config_for_paths(
        paths, versions={F.AR_MODEL_NAME: 3}, labels={F.AR_MODEL_NAME: {"stable": 3}, F.CR_MODEL_NAME: {"canary": 7}}))
    ar, cr = config.model_config_list.config
    assert list(ar.model_version_policy.specific.versions) == [3] and dict(ar.version_labels) == {"stable": 3}
    assert cr.model_version_policy.WhichOneof("policy_choice") == "latest" and dict(cr.version_labels) == {"canary": 7}
    with pytest.raises(ValueError, match="label 'stable' names version 4, which is not served"):
        tf_serving.models_config_for_paths(paths, versions={F.AR_MODEL_NAME: 3}, labels={F.AR_MODEL_NAME: {"stable": 4}})
    with pytest.raises(ValueError, match="name model 'dssm', which has no base path"):
        tf_serving.models_config_for_paths(paths, versions={"dssm": 1})


def test_models_config_template_renders_to_the_generated_config():
    with open(tf_serving.MODELS_CONFIG_TEMPLATE) as fh:
        template = fh.read()
    rendered = _parse_models_config(template.replace("${SERVING_ROOT}", "/srv/push"))
    assert rendered == _parse_models_config(tf_serving.models_config("/srv/push"))


def _text_proto_fields(path):
    with open(path) as fh:
        lines = [l.split("#", 1)[0].strip() for l in fh]
    return " ".join(l for l in lines if l)


def test_batching_and_monitoring_configs():
    batching = _text_proto_fields(tf_serving.BATCHING_CONFIG)
    values = dict(re.findall(r"(\w+) \{ value: (\d+) \}", batching))
    assert set(values) == {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                           "num_batch_threads"}
    assert int(values["max_batch_size"]) >= 1000 * 10  # one 1,000 x 10 CR request fits
    assert int(values["batch_timeout_micros"]) <= 1000
    monitoring = _text_proto_fields(tf_serving.MONITORING_CONFIG)
    assert re.fullmatch(r'prometheus_config \{ enable: true, path: "/monitoring/prometheus/metrics" \}',
                        monitoring)


def test_model_server_command_flags():
    cmd = tf_serving.model_server_command("/c/models.config", binary="/bin/tms", port=9000, rest_port=9001,
                                          enable_batching=True, poll_seconds=2, intra_op_threads=3)
    assert cmd[0] == "/bin/tms"
    flags = dict(a[2:].split("=", 1) for a in cmd[1:])
    assert flags == {
        "port": "9000", "rest_api_port": "9001", "model_config_file": "/c/models.config",
        "enable_batching": "true", "batching_parameters_file": tf_serving.BATCHING_CONFIG,
        "monitoring_config_file": tf_serving.MONITORING_CONFIG, "file_system_poll_wait_seconds": "2",
        "tensorflow_intra_op_parallelism": "3"}
    off = tf_serving.model_server_command("/c/m.config")
    assert "--enable_batching=false" in off and not any("batching_parameters" in a for a in off)
    standin = tf_serving.model_server_command("/c/m.config", binary=tf_serving.STANDIN, config_poll_seconds=5)
    assert standin[:3] == list(tf_serving.STANDIN) and standin[3:-1] == off[1:]  # the same flags
    assert standin[-1] == "--model_config_file_poll_wait_seconds=5"


def test_start_script_without_binary_explains_and_exits_127(tmp_path):
    env = dict(os.environ, PATH="/usr/bin:/bin")
    env.pop("TF_MODEL_SERVER", None)
    r = subprocess.run(["bash", os.path.join(REPO, "serving", "start_tf_serving.sh"), str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 127
    assert "tensorflow_model_server is not on PATH" in r.stderr
    assert f"MODEL_SERVER=standin {os.path.join(REPO, 'serving', 'start_tf_serving.sh')} {tmp_path}" in r.stderr


def test_start_script_runs_the_binary_with_rendered_config(tmp_path):
    # A fake binary that records its arguments and the rendered models.config.
    fake = tmp_path / "tensorflow_model_server"
    record = tmp_path / "record.txt"
    fake.write_text("#!/bin/bash\nprintf '%s\\n' \"$@\" > " + str(record) + "\n"
                    "cfg=$(printf '%s\\n' \"$@\" | sed -n 's/^--model_config_file=//p')\n"
                    "cat \"$cfg\" >> " + str(record) + "\n")
    fake.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    env = dict(os.environ, TF_MODEL_SERVER=str(fake), GRPC_PORT="9100", ENABLE_BATCHING="true")
    r = subprocess.run(["bash", os.path.join(REPO, "serving", "start_tf_serving.sh"), str(root)],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    text = record.read_text()
    assert "--port=9100" in text and "--rest_api_port=8501" in text
    assert "--enable_batching=true" in text and "--batching_parameters_file=" in text
    assert "--monitoring_config_file=" in text and "--file_system_poll_wait_seconds=5" in text
    config_text = text[text.index("model_config_list"):]
    entries = {c.name: c.base_path for c in _parse_models_config(config_text).model_config_list.config}
    assert entries == {F.AR_MODEL_NAME: f"{root}/{F.AR_MODEL_NAME}", F.CR_MODEL_NAME: f"{root}/{F.CR_MODEL_NAME}"}


def test_start_script_serves_a_given_config_and_starts_either_binary_with_the_same_flags(tmp_path):
    fake = tmp_path / "tensorflow_model_server"
    record = tmp_path / "record.txt"
    fake.write_text("#!/bin/bash\nprintf '%s\\n' \"$@\" > " + str(record) + "\n")
    fake.chmod(0o755)
    config = tmp_path / "canary.config"
    config.write_text("model_config_list {}\n")
    script = os.path.join(REPO, "serving", "start_tf_serving.sh")
    env = dict(os.environ, TF_MODEL_SERVER=str(fake), MODEL_CONFIG_FILE=str(config), CONFIG_POLL_SECONDS="2")
    r = subprocess.run(["bash", script, "-", "--max_num_load_retries=0"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    flags = record.read_text().split()
    assert f"--model_config_file={config}" in flags and "--model_config_file_poll_wait_seconds=2" in flags
    assert flags[-1] == "--max_num_load_retries=0"  # passed on
    # The stand-in, same flags (--version: it prints and exits before serving).
    env = dict(env, MODEL_SERVER="standin")
    r = subprocess.run(["bash", script, "-", "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("TensorFlow ModelServer: stand-in")
    assert ("+ python -m serving.standin " + " ".join(flags[:-1]) + " --version") in r.stderr


def test_backend_kind_resolution(monkeypatch):
    monkeypatch.setattr(tf_serving, "find_model_server", lambda: None)
    assert B.resolve_kind("auto") == B.STAND_IN
    with pytest.raises(FileNotFoundError):
        B.resolve_kind(B.TF_SERVING)
    with pytest.raises(ValueError, match="backend kind"):
        B.resolve_kind("docker")
    monkeypatch.setattr(tf_serving, "find_model_server", lambda: "/usr/bin/tensorflow_model_server")
    assert B.resolve_kind("auto") == B.TF_SERVING


def test_split_cpus_deals_disjoint_groups():
    cpus = sorted(os.sched_getaffinity(0))
    groups = B.split_cpus(2)
    if len(cpus) < 2:
        assert groups == [None, None]
    else:
        assert sorted(groups[0] + groups[1]) == cpus and not set(groups[0]) & set(groups[1])
    assert B.split_cpus(len(cpus) + 1) == [None] * (len(cpus) + 1)
    with pytest.raises(ValueError, match="not all available"):
        B.start_backend(model_base_paths={"ar": "/nonexistent"}, kind=B.STAND_IN, cpus=[max(cpus) + 1000])
    with pytest.raises(ValueError, match="layout must be one of"):
        B.start_servers("root", "diagonal")
    with pytest.raises(ValueError, match="pin_cpus needs the split layout"):
        B.start_servers("root", B.SHARED, pin_cpus=True)


def test_model_servers_one_per_model_pinned_and_stopped(tmp_path):
    from serving.clients import GrpcServingClient
    from serving.protocol import ServingError
    from serving.testing import make_fake_models

    root = str(tmp_path / "root")
    make_fake_models(root, 1)
    with B.start_model_servers(root, kind=B.STAND_IN, pin_cpus=True) as servers:
        assert servers.wait_until_available(timeout=180) == {F.AR_MODEL_NAME: 1, F.CR_MODEL_NAME: 1}
        assert servers.addresses == {F.AR_MODEL_NAME: servers.ar.grpc_address,
                                     F.CR_MODEL_NAME: servers.cr.grpc_address}
        assert servers.ar.grpc_address != servers.cr.grpc_address
        assert [s.models for s in servers.processes] == [(F.AR_MODEL_NAME,), (F.CR_MODEL_NAME,)]
        for model, other in ((F.AR_MODEL_NAME, F.CR_MODEL_NAME), (F.CR_MODEL_NAME, F.AR_MODEL_NAME)):
            server = servers.servers[model]
            with GrpcServingClient(server.grpc_address) as client:
                assert client.status(model)[0].state == "AVAILABLE"
                with pytest.raises(ServingError) as e:  # each server holds only its own model
                    client.status(other)
                assert e.value.code.name == "NOT_FOUND"
            if len(os.sched_getaffinity(0)) >= 2:
                assert sorted(os.sched_getaffinity(server.process.pid)) == server.cpus
        if len(os.sched_getaffinity(0)) >= 2:
            assert not set(servers.ar.cpus) & set(servers.cr.cpus)
        processes = [s.process for s in servers.servers.values()]
    assert [p.poll() for p in processes] == [0, 0]  # SIGTERM: each stopped its servers and exited


def test_model_servers_stop_the_first_when_the_second_fails(monkeypatch, tmp_path):
    stopped = []

    class FakeServer:
        def __init__(self, name):
            self.name = name

        def stop(self, grace=10.0):
            stopped.append(self.name)

    def fake_start(model_base_paths, **kwargs):
        (name,) = model_base_paths
        if name == F.CR_MODEL_NAME:
            raise RuntimeError("cr server failed to start")
        return FakeServer(name)

    monkeypatch.setattr(B, "start_backend", fake_start)
    with pytest.raises(RuntimeError, match="cr server failed"):
        B.start_model_servers(str(tmp_path), kind=B.STAND_IN)
    assert stopped == [F.AR_MODEL_NAME]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_run_until_signalled_stops_the_server_once_on_a_signal(capsys, sig):
    """The main loop of both servers (router, stand-in): start, ready line, serve, stop on a signal."""
    import gc
    import signal
    import threading

    from serving import runtime

    events = []

    class Server:
        def stop(self):
            events.append("stop")

    def start():
        events.append("start")
        threading.Timer(0.3, os.kill, (os.getpid(), getattr(signal, sig))).start()
        return Server()

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    threshold = gc.get_threshold()
    try:
        runtime.run_until_signalled(start, lambda server: f"ready: {type(server).__name__}")
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert events == ["start", "stop"]
    assert capsys.readouterr().err == "ready: Server\n"


# ------------------------------------------------------------------------------------ sample requests
def test_random_request_is_valid_and_sized():
    req = random_request(7, 3, seed=2, hist_ctr=True, slots=2, mode=R.POST)
    parsed = parse_request(req)
    assert (parsed.num_ads, parsed.num_creatives, parsed.slots, parsed.mode) == (7, 21, 2, R.POST)
    assert np.isfinite(parsed.creative_hist_ctr).all()


def _example(request_id, ad_id, cand_ids, user_id=5):
    n = len(cand_ids)
    values = {
        F.REQUEST_ID: [request_id], F.USER_ID: [user_id], F.AD_ID: [ad_id],
        F.AD_HIST_CTR: [0.02], F.AD_HIST_IMPS: [100], F.SEQ_AD_IDS: [ad_id, 9], F.SEQ_AD_CATEGORIES: [1, 2],
        F.CAND_CREATIVE_IDS: cand_ids, F.CAND_EMBEDDINGS: [0.25] * (n * F.CREATIVE_EMBEDDING_DIM),
    }
    for name in F.USER_FEATURES + F.AD_FEATURES:
        values.setdefault(name, [1])
    for name in F.CREATIVE_ATTRIBUTES:
        values[F.CANDIDATE_OF[name]] = [k % 2 for k in range(n)]
    feats = {}
    for k, v in values.items():
        if F.BY_NAME[k].dtype == F.FLOAT:
            feats[k] = tf.train.Feature(float_list=tf.train.FloatList(value=v))
        else:
            feats[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=v))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def test_requests_from_tfrecords_group_by_request_and_ad(tmp_path):
    split = tmp_path / "Split-eval"
    split.mkdir()
    with tf.io.TFRecordWriter(str(split / "data_tfrecord-00000-of-00001.gz"),
                              options=tf.io.TFRecordOptions(compression_type="GZIP")) as w:
        # request 1: ads 10 (twice: two impressions), 11; request 2: ad 20.
        for rid, ad, cands in [(1, 10, [100, 101]), (1, 11, [110]), (1, 10, [100, 101]), (2, 20, [200, 201, 202])]:
            w.write(_example(rid, ad, cands))
    reqs = requests_from_tfrecords(str(tmp_path), max_requests=5, slots=2)
    assert [r[R.REQUEST_ID] for r in reqs] == [1, 2]  # most ads first
    first = reqs[0]
    assert [a[F.AD_ID] for a in first[R.ADS]] == [10, 11]
    assert [c[F.CREATIVE_ID] for c in first[R.ADS][0][R.CREATIVES]] == [100, 101]
    assert first[R.ADS][0][R.CREATIVES][1][F.CREATIVE_STYLE] == 1
    assert first[R.ADS][0][R.CREATIVES][0][F.CREATIVE_EMBEDDING] == [0.25] * F.CREATIVE_EMBEDDING_DIM
    assert first[R.SEQUENCE][F.SEQ_AD_IDS] == [10, 9] and first[R.SLOTS] == 2
    for r in reqs:
        parse_request(r)  # valid router requests
    with pytest.raises(FileNotFoundError):
        requests_from_tfrecords(str(tmp_path / "nothing"))


# ------------------------------------------------------------------------------------------- demo
def test_demo_table_format():
    request = random_request(2, 2, seed=1, request_id="r1")
    ok = {"timing_ms": {"total": 12.5, "scoring": 10.0}, "degraded": True, "degraded_reason": "cr down",
          "ads": [{F.AD_ID: 7, F.CREATIVE_ID: 70, F.PCTR_AD: 0.25, F.PCTR_C: None,
                   "creative_source": "fallback:first"}]}
    text = demo.format_table(request, {R.PERI: ok, R.PRE: {"error": "HTTP 503: ar down"}}, 1)
    assert "Request 1 (request_id r1)" in text and "2 ads, 4 creatives" in text
    assert "7/70 (0.250 | -, fallback:first)" in text and "degraded: cr down" in text
    assert "pre    error: HTTP 503: ar down" in text


def test_demo_end_to_end_with_fake_models(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "serving.demo", "--serving-root", str(tmp_path / "root"),
                        "--fake-models", "--requests", "2", "--ads", "8", "--creatives", "3",
                        "--backend", B.STAND_IN], capture_output=True, text=True, env=env, timeout=300,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "Models AVAILABLE: ar v1, cr v1" in out
    assert out.count("Request ") == 2
    for mode in R.MODES:
        assert len(re.findall(rf"^  {re.escape(mode)}\s+\d", out, flags=re.M)) == 2
    assert "error" not in out
    # One stand-in per model, both gone at the end (no server left listening on the demo's ports).
    ports = [int(p) for p in re.findall(r"gRPC 127\.0\.0\.1:(\d+)", out)]
    assert len(set(ports)) == 2
    import socket
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def test_demo_refuses_an_empty_root_without_fake_models(tmp_path):
    with pytest.raises(SystemExit):
        demo.main(["--serving-root", str(tmp_path)])


def test_demo_shuts_the_backend_down_on_sigterm(tmp_path):
    import queue
    import signal
    import socket
    import threading
    import time

    env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "serving.demo", "--serving-root", str(tmp_path / "root"),
                             "--fake-models", "--requests", "2000", "--ads", "50", "--backend", B.STAND_IN],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    try:
        ports, deadline = [], time.monotonic() + 240
        while time.monotonic() < deadline:  # until the first table is out: the demo is mid-run
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                assert proc.poll() is None, "the demo exited early"
                continue
            ports += [int(p) for p in re.findall(r"gRPC 127\.0\.0\.1:(\d+)", line)]
            if line.startswith("Request "):
                break
        assert len(ports) == 2
        proc.send_signal(signal.SIGTERM)  # mid-run: requests are still being sent
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    for port in ports:  # the stand-ins are gone too
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
