"""Distributed training: TF_CONFIG parsing, table partitioning, and real clusters of local processes
(trainer.local_cluster) running run_fn: parameter-server training with sharded tables, exports equal in
layout to a single-process run's and equal in value to the trained checkpoint, a killed worker, Ctrl-C."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import features as F
from trainer import distribute, random_batch, testing
from trainer.cacs_teacher import TEACHER_DIR
from trainer.config import MODEL_CONFIG_KEY, VARIANTS, JACConfig
from trainer.data import make_dataset
from trainer.jac_model import JACModel, make_optimizer
from trainer.local_cluster import LocalCluster
from trainer.variants import build_model
from transform import names as N

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = dict(testing.TINY_MODEL, quantizer_r=30.0, initial_ctr=0.5, embedding_min_shard_bytes=1)
EVAL_STEPS = 3
NUM_EXAMPLES = 32


def _tf_config(jobs, task_type, index=0):
    return json.dumps({"cluster": jobs, "task": {"type": task_type, "index": index}})


JOBS_PS = {"chief": ["h:1"], "worker": ["h:2", "h:3"], "ps": ["h:4", "h:5"]}


# ------------------------------------------------------------------------------------ TF_CONFIG
@pytest.mark.parametrize("tf_config, mode, chief, server", [
    (None, distribute.SINGLE, True, False),
    ("", distribute.SINGLE, True, False),
    (json.dumps({"cluster": {}, "task": {}}), distribute.SINGLE, True, False),
    (_tf_config({"chief": ["h:1"]}, "chief"), distribute.SINGLE, True, False),
    (_tf_config({"chief": ["h:1"], "worker": ["h:2"]}, "chief"), distribute.MULTI_WORKER, True, False),
    (_tf_config({"chief": ["h:1"], "worker": ["h:2"]}, "worker"), distribute.MULTI_WORKER, False, False),
    (_tf_config({"worker": ["h:1", "h:2"]}, "worker", 0), distribute.MULTI_WORKER, True, False),  # TF's rule
    (_tf_config({"worker": ["h:1", "h:2"]}, "worker", 1), distribute.MULTI_WORKER, False, False),
    (_tf_config({"master": ["h:1"], "worker": ["h:2"]}, "master"), distribute.MULTI_WORKER, True, False),
    (_tf_config(JOBS_PS, "chief"), distribute.PARAMETER_SERVER, True, False),
    (_tf_config(JOBS_PS, "worker", 1), distribute.PARAMETER_SERVER, False, True),
    (_tf_config(JOBS_PS, "ps", 0), distribute.PARAMETER_SERVER, False, True),
])
def test_cluster_mode_chief_and_servers_from_tf_config(tf_config, mode, chief, server):
    cluster = distribute.Cluster.from_tf_config(tf_config)
    assert (cluster.mode, cluster.is_chief, cluster.is_server) == (mode, chief, server)


@pytest.mark.parametrize("tf_config, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    (_tf_config({"chief": ["h:1"], "evaluator": ["h:2"]}, "chief"), "unsupported job.*evaluator"),
    (_tf_config({"chief": ["h:1"], "worker": ["h:2"]}, "ps"), "task.type 'ps' is not a job"),
    (_tf_config({"chief": ["h:1"], "worker": ["h:2"]}, "worker", 1), "task.index 1 out of range"),
    (_tf_config({"worker": ["h:2"], "ps": ["h:3"]}, "worker"), "exactly one chief"),
    (_tf_config({"chief": ["h:1"], "ps": ["h:3"]}, "chief"), "at least one worker"),
])
def test_bad_tf_config_is_named(tf_config, message):
    with pytest.raises(distribute.ClusterConfigError, match=message):
        distribute.Cluster.from_tf_config(tf_config)


def test_the_chief_waits_for_the_servers_and_names_those_that_never_answer():
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    up, down = (f"127.0.0.1:{s.getsockname()[1]}" for s in (listening, silent))
    cluster = distribute.Cluster.from_tf_config(_tf_config({"chief": ["h:1"], "worker": [up], "ps": [down]}, "chief"))
    with listening, silent, pytest.raises(TimeoutError, match=rf"ps 0 \({down}\)") as error:
        distribute.wait_for_servers(cluster, timeout=1.0, poll=0.1)
    assert "worker" not in str(error.value)


def test_only_embedding_tables_are_partitioned():
    partitioner = distribute.TablePartitioner(num_shards=2, min_shard_bytes=1000)
    assert partitioner(tf.TensorShape([512, 512]), tf.float32) == [1, 1]  # a dense kernel stays whole
    with distribute.sharded_tables():
        assert partitioner(tf.TensorShape([1000, 16]), tf.float32) == [2, 1]  # 64 kB: two shards
        assert partitioner(tf.TensorShape([10, 16]), tf.float32) == [1, 1]  # 640 B < one shard's minimum
    assert partitioner(tf.TensorShape([1000, 16]), tf.float32) == [1, 1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_rebuilds_from_its_config_and_restores_its_checkpoint(variant, tmp_path):
    """What the chief of a cluster does before exporting (``distribute.exportable``), for every variant:
    ``from_config(get_config())`` (through JSON) builds the same heads, a checkpoint of the trained model
    restores into every variable of the copy, and the copy scores as the model."""
    cards = random_batch.small_cardinalities()
    batch = random_batch.random_transformed_batch(cards, 16, seed=1)
    model = build_model(JACConfig.from_dict(dict(MODEL, variant=variant)), cards)
    before = model(batch)
    rng = np.random.default_rng(0)
    for v in model.variables:  # as if trained or fitted: no value left at its initial one (signs kept)
        v.assign(v * rng.uniform(0.5, 1.5, v.shape).astype(v.dtype.as_numpy_dtype))
    if variant == "beta_ts":
        model.cr.prior = (2.0, 50.0)  # fitted into a constructor argument, carried by the head's config
    trained = model(batch)
    assert any(not np.allclose(trained[k], before[k]) for k in trained)
    prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))

    copy = JACModel.from_config(json.loads(json.dumps(model.get_config())))
    assert [type(h) for h in (copy.ar, copy.cr)] == [type(h) for h in (model.ar, model.cr)]
    assert copy.get_config() == model.get_config()
    copy(batch)
    tf.train.Checkpoint(model=copy).read(prefix).assert_existing_objects_matched().expect_partial()
    restored = copy(batch)
    assert set(restored) == set(trained)
    for k in trained:
        np.testing.assert_allclose(restored[k], trained[k], rtol=1e-6)


def test_workers_read_their_own_files_or_their_own_order(tmp_path):
    data = testing.transformed_data()
    names = [N.xf(F.USER_ID)]

    def ids(files, pipeline, seed=0):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        ds = make_dataset(files, data.tft_output, names, 64, num_epochs=1, seed=seed, input_context=context)
        return np.concatenate([f[names[0]].numpy() for f, _ in ds])

    # One file, two workers: each reads it all, shuffled differently.
    first, second = ids(data.train, 0), ids(data.train, 1)
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)
    # Two files, two workers: each reads one of them.
    raw = list(tf.data.TFRecordDataset(tf.io.gfile.glob(data.train), compression_type="GZIP").take(200))
    for i in range(2):
        with tf.io.TFRecordWriter(str(tmp_path / f"part-{i}.gz"), options="GZIP") as w:
            for record in raw[i * 100:(i + 1) * 100]:
                w.write(record.numpy())
    pattern = str(tmp_path / "part-*.gz")
    shares = [ids(pattern, i) for i in range(2)]
    assert len(shares[0]) == len(shares[1]) == 100
    everything = make_dataset(pattern, data.tft_output, names, 200, num_epochs=1, shuffle=False)
    assert sorted(np.concatenate(shares)) == sorted(next(iter(everything))[0][names[0]].numpy())


# ------------------------------------------------------------------------------- local clusters
def _fn_args(out, train_steps, model, eval_steps=EVAL_STEPS):
    data = testing.transformed_data()
    return dict(train_files=[data.train], eval_files=[data.eval], transform_output=data.transform_graph,
                serving_model_dir=str(out / "serving"), model_run_dir=str(out / "run"), train_steps=train_steps,
                eval_steps=eval_steps, custom_config={MODEL_CONFIG_KEY: model})


def _run_cluster(out, workers, ps, train_steps, model=MODEL):
    cluster = LocalCluster(_fn_args(out, train_steps, model), workers=workers, ps=ps, log_dir=str(out / "logs"))
    with cluster:
        cluster.wait(timeout=900)
    assert all(t.process.poll() is not None for t in cluster.tasks)
    with open(out / "run" / "model_config.json") as f:
        return json.load(f), cluster


@pytest.fixture(scope="module")
def ps_run(tmp_path_factory):
    """1 chief + 1 worker + 2 ps, 200 steps."""
    return _run_cluster(tmp_path_factory.mktemp("ps-cluster"), workers=1, ps=2, train_steps=200)


def test_every_embedding_table_is_split_across_the_two_ps_tasks(ps_run):
    summary, _ = ps_run
    assert summary["cluster"] == {"chief": 1, "worker": 1, "ps": 2}
    cards = N.cardinalities(testing.transformed_data().tft_output)
    expected = {"ar/embeddings/table": (sum(cards[n] for n in N.AR_CATEGORICAL), MODEL["ar_embedding_dim"]),
                "cr/embeddings/table": (sum(cards[n] for n in N.CR_CATEGORICAL), MODEL["cr_embedding_dim"])}
    assert set(summary["sharded_tables"]) == set(expected)
    for table, (rows, dim) in expected.items():
        shards = summary["sharded_tables"][table]
        assert [s["shape"] for s in shards] == [[rows - rows // 2, dim], [rows // 2, dim]], table
        assert sorted(s["device"] for s in shards) == ["/job:ps/replica:0/task:0/device:CPU:0",
                                                       "/job:ps/replica:0/task:1/device:CPU:0"], table


@pytest.fixture(scope="module")
def reference_model(ps_run):
    """The run's config as a fresh model: untrained, then restored from the chief's checkpoint."""
    summary, _ = ps_run
    config = JACConfig.from_dict(summary["config"])
    data = testing.transformed_data()
    keras.utils.set_random_seed(config.seed)
    model = JACModel(config, N.cardinalities(data.tft_output))
    model.compile(optimizer=make_optimizer(config))
    evaluation = make_dataset(data.eval, data.tft_output, model.feature_names, config.eval_batch_size,
                              num_epochs=None, shuffle=False)
    untrained = model.evaluate(evaluation, steps=EVAL_STEPS, return_dict=True, verbose=0)
    prefix = os.path.join(os.path.dirname(summary["exported"]["eval"]), "run", "checkpoint", "ckpt")
    tf.train.Checkpoint(model=model).read(prefix).assert_existing_objects_matched().expect_partial()
    return model, untrained


def test_both_losses_fall(ps_run, reference_model):
    summary, _ = ps_run
    _, untrained = reference_model
    for head in ("ar", "cr"):
        assert summary["metrics"][f"val_{head}_loss"] < untrained[f"{head}_loss"] - 0.3, head
    assert summary["steps"]["train"] == 200
    assert summary["throughput"]["examples_per_second"] > 0


def _signatures(export_dir):
    loaded = tf.saved_model.load(export_dir)
    return {name: ({k: (v.dtype, v.shape.as_list()) for k, v in fn.structured_input_signature[1].items()},
                   sorted(fn.structured_outputs))
            for name, fn in loaded.signatures.items()}


def test_exports_have_the_single_process_layout_and_signatures(ps_run):
    summary, _ = ps_run
    single = testing.exported_models("jac")
    assert set(summary["exported"]) == set(single) == {"eval", F.AR_MODEL_NAME, F.CR_MODEL_NAME, TEACHER_DIR}
    for name in single:
        relative = sorted(os.path.relpath(os.path.join(d, f), single[name])
                          for d, _, files in os.walk(single[name]) for f in files
                          if name != "eval" or all(m not in d for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME, TEACHER_DIR)))
        here = summary["exported"][name]
        assert all(os.path.exists(os.path.join(here, r)) for r in relative if "variables" not in r), name
        assert _signatures(here) == _signatures(single[name]), name


FRESH = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    eval_dir, ar_dir, cr_dir, examples_file, out_file = sys.argv[1:]
    examples = tf.constant(np.load(examples_file, allow_pickle=True))
    scores = {}
    for name, path, key in (("ar", ar_dir, "pctr_ad"), ("cr", cr_dir, "pctr_c"), ("eval", eval_dir, "pctr_ad")):
        scores[name] = tf.saved_model.load(path).signatures["serving_default"](examples=examples)[key].numpy()
    np.savez(out_file, **scores)
""")


def test_exported_models_load_in_a_fresh_process_and_score_as_the_trained_model(ps_run, reference_model,
                                                                                 tmp_path):
    summary, _ = ps_run
    model, _ = reference_model
    data = testing.transformed_data()
    examples = testing.raw_examples(data.raw_eval, NUM_EXAMPLES)
    xf = data.tft_output.transform_features_layer()(tf.io.parse_example(examples, F.raw_feature_spec()))
    reference = {"ar": tf.sigmoid(model.ar(xf)).numpy(),
                 "cr": tf.sigmoid(model.cr(xf, xf[N.AD_HIST_CTR_CLIPPED])).numpy()}
    np.save(tmp_path / "examples.npy", examples.numpy())
    (tmp_path / "fresh.py").write_text(FRESH)
    exported = summary["exported"]
    subprocess.run([sys.executable, str(tmp_path / "fresh.py"), exported["eval"], exported[F.AR_MODEL_NAME],
                    exported[F.CR_MODEL_NAME], str(tmp_path / "examples.npy"), str(tmp_path / "scores.npz")],
                   check=True, timeout=300)
    scores = np.load(tmp_path / "scores.npz")
    np.testing.assert_allclose(scores["ar"], reference["ar"], atol=1e-5)
    np.testing.assert_allclose(scores["eval"], reference["ar"], atol=1e-5)
    np.testing.assert_allclose(scores["cr"], reference["cr"], atol=1e-5)
    assert np.ptp(scores["ar"]) > 0 and np.ptp(scores["cr"]) > 0


def test_multi_worker_mirrored_training_exports_from_the_chief(tmp_path):
    # The CR variant: the smallest model and export; what is tested is the synchronous training and the export.
    summary, cluster = _run_cluster(tmp_path, workers=1, ps=0, train_steps=30, model=dict(MODEL, variant="cr"))
    assert summary["cluster"] == {"chief": 1, "worker": 1} and summary["sharded_tables"] == {}
    assert set(summary["exported"]) == {"eval", F.CR_MODEL_NAME, TEACHER_DIR}
    assert summary["metrics"]["val_cr_loss"] < 0.6  # from ~ln 2 at zero logits (initial_ctr 0.5)
    assert [t.process.returncode for t in cluster.tasks] == [0, 0]  # the worker waited for the export


# ------------------------------------------------------------------------------- failures
def _launch(tmp_path, workers, ps):
    data = testing.transformed_data()
    command = [sys.executable, "-m", "trainer.local_cluster", "--workers", str(workers), "--ps", str(ps),
               "--transform-graph", data.transform_graph, "--train-files", data.train, "--eval-files", data.eval,
               "--train-steps", "100000", "--model-config", json.dumps(MODEL), "--output-dir", str(tmp_path)]
    launcher = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tasks = {}
    while len(tasks) < 1 + workers + ps:
        line = launcher.stdout.readline()
        assert line, launcher.stderr.read()
        match = re.match(r"started (\w+ \d+) \(pid (\d+)\) at ([\d.]+):(\d+)", line)
        if match:
            tasks[match.group(1)] = (int(match.group(2)), (match.group(3), int(match.group(4))))
    return launcher, tasks


def _listening(address, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing listens at {address}")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone for good
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("event", ["worker killed", "ctrl-c"])
def test_a_failure_or_ctrl_c_stops_every_task(tmp_path, event):
    launcher, tasks = _launch(tmp_path, workers=1, ps=1)
    try:
        _listening(tasks["worker 0"][1])  # the worker's server is up
        if event == "worker killed":
            os.kill(tasks["worker 0"][0], signal.SIGKILL)
        else:
            launcher.send_signal(signal.SIGINT)
        # Stopping takes seconds (SIGTERM, then SIGKILL after 10 s). The launcher handles SIGINT even when it
        # inherits it ignored, as it does from this test process once some earlier test has ignored it.
        _, stderr = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    if event == "worker killed":
        assert launcher.returncode == 1
        assert re.search(r"worker 0 \(pid \d+\) was killed by SIGKILL before the chief finished", stderr), stderr
    else:
        assert launcher.returncode == 130 and "interrupted; stopped every task" in stderr
    assert not [name for name, (pid, _) in tasks.items() if _alive(pid)]
