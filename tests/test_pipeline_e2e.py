"""The whole local pipeline on a small simulated dataset: blessed and pushed; a worse model is not; bad data
stops the run before training. One module-scoped output directory carries the runs in order, as a user's
would: the second and third runs see the first run's pushed models. The first run and one bad-data run go
through the command line, as a user's do, and check what its console shows and what its log file holds."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import features as F
from simulator import SimulatorConfig, simulate
from tfx_pipeline import config as config_lib
from tfx_pipeline import local_runner, pair_pusher, run_summary

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough for CI, large enough that a trained model beats the AUC floor.
IMPRESSIONS = 30_000
TRAIN_STEPS = 120
ALL_COMPONENTS = ("ImportExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema", "ExampleValidator",
                  "DataGate", "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator",
                  "EvaluationReport", "Pusher")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    simulate(SimulatorConfig(num_impressions=IMPRESSIONS, num_days=4, seed=7), str(root / "data"),
             progress=False)
    return root


def _cfg(workdir, data="data", **overrides):
    # A small model keeps the test quick; the architecture is the default one.
    model_config = {"batch_size": 256}
    model_config.update(overrides.pop("model_config", {}))
    return config_lib.PipelineConfig(output_dir=str(workdir / "out"), data_dir=str(workdir / data),
                                     train_steps=TRAIN_STEPS, eval_steps=10, model_config=model_config,
                                     **overrides)


def _served(cfg):
    return {name: pair_pusher.served_versions(cfg.serving_root, name)
            for name in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)}


def _run_cli(cfg):
    """``python -m tfx_pipeline.local_runner`` on ``cfg``: (return code, console stdout, console stderr)."""
    args = ["--output-dir", cfg.output_dir, "--data-dir", cfg.data_dir, "--train-steps", str(cfg.train_steps),
            "--eval-steps", str(cfg.eval_steps), "--model-config", json.dumps(cfg.model_config)]
    proc = subprocess.run([sys.executable, "-m", "tfx_pipeline.local_runner", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout, proc.stderr


def _log_path(console: str) -> str:
    path = re.search(r"^    log: (\S+\.log)$", console, flags=re.M).group(1)
    assert os.path.isfile(path), path
    return path


@pytest.fixture(scope="module")
def first_run(workdir):
    cfg = _cfg(workdir)
    code, out, err = _run_cli(cfg)
    assert code == 0, out[-3000:] + err[-3000:]
    return cfg, run_summary.read_latest_run(cfg.metadata_path), out, err


def _component_line(name: str, state: str = "done") -> str:
    return rf"^\[\s*\d+/{len(ALL_COMPONENTS)}\] {re.escape(name)}\s+{state}\s+\d+\.\d s$"


def test_the_console_shows_one_line_per_component_and_the_log_holds_the_rest(first_run):
    cfg, summary, out, err = first_run
    assert err == ""
    lines = out.splitlines()
    before_summary = lines[:next(i for i, line in enumerate(lines) if line.startswith("Pipeline run "))]
    for component in ALL_COMPONENTS:
        assert len(re.findall(_component_line(component), out, flags=re.M)) == 1, (component, before_summary)
    # Two header lines, the log's path, a line per component, the Trainer's epoch line and its line again.
    assert len([line for line in before_summary if line.strip()]) <= len(ALL_COMPONENTS) + 5, before_summary
    assert len(lines) < 80, out
    for noise in ("WARNING", "absl", "cuda", "Instructions for updating"):
        assert noise not in out, noise
    log = _log_path(out)
    assert os.path.dirname(log) == os.path.join(cfg.output_dir, "logs")
    text = open(log, errors="replace").read()
    assert "Component Trainer is finished." in text and "WARNING" in text
    assert len(text.splitlines()) > 10 * len(lines)


def test_every_component_succeeds_and_the_model_is_blessed_and_pushed(first_run):
    cfg, summary, _, _ = first_run
    names = [c.name for c in summary.components]
    for component in ALL_COMPONENTS:
        assert any(n.startswith(component) for n in names), (component, names)
    assert summary.succeeded, [(c.name, c.state) for c in summary.components]
    assert summary.component("Evaluator").properties.get("blessed") == 1
    pusher = summary.component("Pusher")
    assert pusher.properties.get("pushed") == 1
    version = int(pusher.properties["pushed_version"])
    assert _served(cfg) == {F.AR_MODEL_NAME: [version], F.CR_MODEL_NAME: [version]}


def test_metrics_hold_auc_gauc_nsctr_and_truth(first_run):
    cfg, summary, out, _ = first_run
    metrics = local_runner.overall_metrics(summary.output_uri("Evaluator", "evaluation"))
    for key in (f"{F.PCTR_AD}/auc", f"{F.PCTR_AD}/gauc", "nsctr", "sctr", "calibrated_sctr"):
        matches = [k for k in metrics if k.lower().endswith(key)]
        assert matches, (key, sorted(metrics))
        assert all(np.isfinite(metrics[k]) for k in matches), {k: metrics[k] for k in matches}
    report = os.path.join(summary.output_uri("EvaluationReport", "report"), "report.html")
    html = open(report).read()
    assert "NSCTR" in html and "<svg" in html
    assert f"report: {report}" in out  # and the console's summary says where it is


_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    root, version, request = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    out = {}
    for name, output in (("ar", "pctr_ad"), ("cr", "pctr_c")):
        model = tf.saved_model.load(f"{root}/{name}/{version}")
        fn = model.signatures["predict_raw"]
        inputs = {k: tf.constant(v, dtype=fn.structured_input_signature[1][k].dtype)
                  for k, v in request[name].items()}
        out[name] = fn(**inputs)[output].numpy().tolist()
    print(json.dumps(out))
""")


def _request(eval_dir, n=5):
    """Raw serving inputs for the first ``n`` eval impressions, straight from the TFRecords."""
    files = sorted(os.path.join(eval_dir, f) for f in os.listdir(eval_dir))
    rows = [tf.io.parse_single_example(r, F.raw_feature_spec())
            for r in tf.data.TFRecordDataset(files).take(n)]

    def column(name):
        values = [r[name] for r in rows]
        if isinstance(values[0], tf.SparseTensor):
            dense = [v.values.numpy().tolist() for v in values]
            width = max(1, max(len(d) for d in dense))
            return [d + [F.SEQUENCE_PAD] * (width - len(d)) for d in dense]
        return [v.numpy().tolist() for v in values]

    return {"ar": {k: column(k) for k in F.AR_SERVING_INPUTS},
            "cr": {k: column(k) for k in F.CR_SERVING_INPUTS}}


def test_pushed_models_load_and_score_in_a_fresh_process(first_run, workdir, tmp_path):
    cfg, summary, _, _ = first_run
    version = summary.component("Pusher").properties["pushed_version"]
    request = _request(os.path.join(cfg.data_dir, "eval"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    # Run from an empty directory so the project cannot be imported: the SavedModels must stand alone.
    proc = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, cfg.serving_root, version, json.dumps(request)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("ar", "cr"):
        assert len(scores[name]) == 5
        assert all(0.0 < s < 1.0 for s in scores[name]), scores


def test_a_worse_model_is_not_blessed_and_changes_nothing_served(first_run, workdir):
    cfg = first_run[0]
    before = _served(cfg)
    # A model that barely moves from its initialisation: AR's AUC near 0.5 is below the floor and CR's
    # NSCTR falls towards the random policy's.
    worse = _cfg(workdir, model_config={"learning_rate": 1e-7})
    summary = local_runner.run(worse)
    assert summary.component("Evaluator").properties.get("blessed") == 0
    assert summary.component("Pusher").properties.get("pushed") == 0
    assert _served(cfg) == before


def _corrupt_copy(src, dst, mutate):
    """Copies the dataset, rewriting the first training shard's examples through ``mutate``."""
    import shutil

    shutil.copytree(src, dst)
    shard = os.path.join(dst, "train", sorted(os.listdir(os.path.join(dst, "train")))[0])
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(shard)]
    with tf.io.TFRecordWriter(shard) as w:
        for i, ex in enumerate(records):
            if i % 10 == 0:
                mutate(ex)
            w.write(ex.SerializeToString())


def _drop_label(ex):
    del ex.features.feature[F.CLICK]


def _float_label(ex):
    value = ex.features.feature[F.CLICK].int64_list.value[0]
    ex.features.feature[F.CLICK].ClearField("int64_list")
    ex.features.feature[F.CLICK].float_list.value.append(float(value))


def _empty_candidates(ex):
    ex.features.feature[F.CAND_CREATIVE_IDS].int64_list.ClearField("value")


def _assert_stopped_before_training(cfg, bad_cfg, served_before):
    summary = run_summary.read_latest_run(bad_cfg.metadata_path)
    assert summary.component("Trainer") is None or summary.component("Trainer").state != "COMPLETE"
    assert _served(cfg) == served_before


@pytest.mark.parametrize("mutate,anomalous_feature", [
    (_float_label, F.CLICK),
    (_empty_candidates, F.CAND_CREATIVE_IDS),
])
def test_bad_data_stops_before_training_and_keeps_served_models(first_run, workdir, mutate, anomalous_feature):
    cfg = first_run[0]
    before = _served(cfg)
    bad = f"bad-{mutate.__name__}"
    _corrupt_copy(workdir / "data", workdir / bad, mutate)
    bad_cfg = _cfg(workdir, data=bad)
    with pytest.raises(RuntimeError) as err:
        local_runner.run(bad_cfg)
    assert anomalous_feature in str(err.value)
    _assert_stopped_before_training(cfg, bad_cfg, before)


def test_a_failing_component_prints_its_error_and_the_log_path(first_run, workdir):
    cfg = first_run[0]
    before = _served(cfg)
    _corrupt_copy(workdir / "data", workdir / "bad-cli", _drop_label)
    bad_cfg = _cfg(workdir, data="bad-cli")
    code, out, err = _run_cli(bad_cfg)
    assert code == 1
    assert re.search(_component_line("DataGate", "FAILED"), out, flags=re.M), out
    assert not re.search(r"^\[.*\] Transform", out, flags=re.M)  # nothing ran after it
    assert "Pipeline run " in out and "FAILED" in out  # the summary still says what happened
    log = _log_path(out)
    assert "Traceback (most recent call last)" in err and F.CLICK in err
    assert "ERROR: the pipeline run failed: " in err and f"(full log: {log})" in err
    assert "Traceback (most recent call last)" in open(log, errors="replace").read()
    _assert_stopped_before_training(cfg, bad_cfg, before)
