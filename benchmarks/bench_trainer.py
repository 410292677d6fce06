"""Training speed: JAC vs AR steps, where a step's time goes, run_fn against a baseline checkout, local clusters.

    python benchmarks/bench_trainer.py step [--batch-size 512] [--steps 30] [--rounds 5]
    python benchmarks/bench_trainer.py profile [--batch-size 512] [--steps 10] [--request-rows 3]
    python benchmarks/bench_trainer.py step-vs --baseline-root BASE [--rounds 40] [--steps 3] [--request-rows 3]
    python benchmarks/bench_trainer.py fit --pipeline-root OUT/pipeline_root --baseline-root BASE [--rounds 2]
    python benchmarks/bench_trainer.py cluster [--impressions 20000] [--workers 1 2] [--ps 2] [--steps 60 260]
    python benchmarks/bench_trainer.py ps-memory [--rows 16777216] [--ps 2]

* ``step``: JAC vs AR alone at the same batch size, paper-size models (``JACConfig`` defaults) on one random
  batch, in interleaved rounds; the ratio of median step times is the figure (goal: JAC / AR <= 1.15).
* ``profile``: where a JAC training step goes: the TensorFlow profiler's op time per part of the model
  (embedding lookups, the transformer, DCN and deep tower, CR, the optimiser, metrics; backward included)
  and the input pipeline's CPU time per batch (the TFX data accessor parsing Transform's output).
* ``step-vs``: the JAC training step of this checkout against ``--baseline-root``'s (paper-size model, one
  random batch whose rows come ``--request-rows`` per request, as the training input's block shuffle delivers
  them), each in its own process, interleaved in slices of ``--steps`` steps (the parent lets one
  process run a slice, then the other, alternating who goes first), so both see the same machine load; the
  per-round ratios of wall and CPU time per step are the figure.
* ``fit``: ``run_fn`` as the default pipeline's Trainer runs it (TFX data accessor, 400 steps of 512, 50 eval
  steps of 2048, default model) on a pipeline run's Transform output, in fresh processes alternating this
  checkout and ``--baseline-root`` (another checkout, e.g. ``git archive 6e90663 | tar -x -C BASE``). Per run:
  the epoch time (the Keras epoch line: first-step tracing, steps, validation), the steps' time, steady
  examples/s (steps after the 20th), validation time and metrics; then this checkout / baseline ratios.
* ``cluster``: parameter-server training on localhost (``trainer.local_cluster``) with 1 and 2 workers and
  ``--ps`` ps tasks, and one process, on the same simulated data, at two step counts: the difference gives
  the time per step without start-up and tracing.
* ``ps-memory``: peak RSS of each ps task training with one AR table of ``--rows`` x 16 split across them.

The machine is shared and timings are noisy: compare figures from one run (interleaved), report the load.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB_SIZES = {"user_id": 100_000, "ad_id": 20_000, "ad_advertiser_id": 4_000, "ad_brand_id": 4_000,
               "creative_id": 150_000}


def _import_root(root: str) -> None:
    """Makes ``root``'s packages the ones imported (a baseline checkout, or this one)."""
    sys.path.insert(0, root)


def _model(variant: str, batch_size: int):
    from trainer.config import JACConfig
    from trainer.jac_model import JACModel, make_optimizer
    from transform import names as N

    config = JACConfig(variant=variant, quantizer_r=100.0, batch_size=batch_size)
    model = JACModel(config, N.cardinalities_from_vocab_sizes(VOCAB_SIZES))
    model.compile(optimizer=make_optimizer(config))
    return model


def _train_fn(model, batch):
    import tensorflow as tf
    from transform import names as N

    data = iter(tf.data.Dataset.from_tensors((batch, batch[N.LABEL_KEY])).repeat())
    fn = model.make_train_function()
    return lambda: {k: float(v) for k, v in fn(data).items()}


def _random_batch(batch_size: int, request_rows: int = 1):
    from trainer.random_batch import random_transformed_batch
    from transform import names as N

    return random_transformed_batch(N.cardinalities_from_vocab_sizes(VOCAB_SIZES), batch_size, seed=0,
                                    request_rows=request_rows)


# -------------------------------------------------------------------------------------------- step
def bench_step(a) -> None:
    import numpy as np
    import tensorflow as tf

    batch = _random_batch(a.batch_size)
    steps = {v: _train_fn(_model(v, a.batch_size), batch) for v in ("ar", "jac")}
    for step in steps.values():  # trace and warm up
        for _ in range(5):
            step()
    times = {v: [] for v in steps}
    for _ in range(a.rounds):
        for variant, step in steps.items():
            for _ in range(a.steps):
                start = time.perf_counter()
                step()
                times[variant].append((time.perf_counter() - start) * 1e3)
    med = {v: float(np.median(t)) for v, t in times.items()}
    print(f"train step, batch {a.batch_size}, {a.rounds} x {a.steps} steps per model, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads")
    for v, t in times.items():
        print(f"  {v:4s} median {med[v]:7.1f} ms   p90 {np.percentile(t, 90):7.1f} ms")
    ratio = med["jac"] / med["ar"]
    print(f"JAC / AR step time = {ratio:.3f} (goal <= 1.15: {'met' if ratio <= 1.15 else 'missed'})")


# ----------------------------------------------------------------------------------------- profile
_PARTS = (("transformer", ("sequence_encoder",)), ("embedding lookups", ("embeddings", "embedding_lookup", "Gather")),
          ("DCN + deep tower", ("cross_", "deep_", "ar/logit")), ("CR MLP + quantizer", ("cr/",)),
          ("optimiser", ("Adagrad",)), ("metrics", ("_auc", "Cumsum", "Mean")))


def _part(op_name: str) -> str:
    for part, keys in _PARTS:
        if any(k in op_name for k in keys):
            return part
    return "other (losses, concat, casts)"


def bench_profile(a) -> None:
    """Op time per part of a JAC step (TensorFlow profiler), and the input pipeline's CPU time per batch."""
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler

    from trainer import testing
    from trainer.data import make_dataset

    model = _model("jac", a.batch_size)
    step = _train_fn(model, _random_batch(a.batch_size, a.request_rows))
    for _ in range(5):
        step()
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    wall = (time.perf_counter() - start) / a.steps
    tf.profiler.experimental.stop()
    xspace = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    trace = json.loads(_pywrap_profiler.xspace_to_tools_data([xspace], "trace_viewer@", {})[0])
    frames = trace.get("stackFrames", {})
    parts = collections.Counter()
    for event in trace["traceEvents"]:
        name = frames.get(str(event.get("sf")), {}).get("name", "")
        if event.get("ph") == "X" and ":" in name:  # one op execution: "scope/op:OpType"
            parts[_part(name.rsplit(":", 1)[0])] += event["dur"] / 1e3 / a.steps
    total = sum(parts.values())
    print(f"JAC train step, batch {a.batch_size} ({a.request_rows} rows per request): {wall * 1e3:.1f} ms wall "
          f"per step; op time per part "
          f"(summed over threads, forward and backward):")
    for part, ms in parts.most_common():
        print(f"  {part:32s} {ms:7.1f} ms  {100 * ms / total:5.1f} %")

    data = testing.transformed_data(a.impressions)
    ds = iter(make_dataset(data.train, data.tft_output, model.feature_names, a.batch_size, _data_accessor(),
                           seed=0, shuffle_block_rows=model.config.shuffle_block_rows))
    next(ds)
    cpu = time.process_time()
    for _ in range(a.steps):
        next(ds)
    print(f"input pipeline (TFX data accessor: read, parse, block shuffle, batch): "
          f"{(time.process_time() - cpu) / a.steps * 1e3:.1f} ms CPU per batch of {a.batch_size}")


def _data_accessor():
    """The TFX Trainer's ``fn_args.data_accessor`` for tf.Example files."""
    from tfx.components.trainer.fn_args_utils import DataAccessor
    from tfx.components.util import tfxio_utils
    from tfx.proto import example_gen_pb2

    def factory(file_pattern, options, schema):
        return tfxio_utils.make_tfxio(file_pattern=file_pattern, telemetry_descriptors=["bench"],
                                      payload_format=example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE,
                                      schema=schema).TensorFlowDataset(options)
    return DataAccessor(tf_dataset_factory=factory, record_batch_factory=None, data_view_decode_fn=None)


# ----------------------------------------------------------------------------------------- step-vs
def step_child(a) -> None:
    """Builds the JAC step of ``--code-root``, then runs ``n`` steps per ``n`` read from stdin; prints JSON."""
    _import_root(a.code_root)
    import numpy as np
    import tensorflow as tf

    with np.load(a.batch_file) as stored:  # the parent's batch: both checkouts train on the same rows
        batch = {k: tf.constant(stored[k]) for k in stored.files}
    step = _train_fn(_model("jac", a.batch_size), batch)
    for _ in range(10):  # trace and warm up
        step()
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        if n <= 0:
            break
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            step()
        print(json.dumps({"wall": (time.perf_counter() - wall) / n, "cpu": (time.process_time() - cpu) / n}),
              flush=True)


def bench_step_vs(a) -> None:
    import numpy as np

    roots = {"this": REPO_ROOT, "baseline": os.path.abspath(a.baseline_root)}
    batch_file = os.path.join(tempfile.mkdtemp(), "batch.npz")
    np.savez(batch_file, **{k: v.numpy() for k, v in _random_batch(a.batch_size, a.request_rows).items()})
    children = {name: subprocess.Popen([sys.executable, __file__, "step-child", "--code-root", root, "--batch-size",
                                        str(a.batch_size), "--batch-file", batch_file], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=root))
                for name, root in roots.items()}
    try:
        for name, child in children.items():
            while child.stdout.readline().strip() != "ready":
                if child.poll() is not None:
                    raise RuntimeError(f"the {name} step process exited with code {child.returncode}")
        runs = {name: [] for name in children}
        for r in range(a.rounds):
            for name in (list(children) if r % 2 == 0 else list(children)[::-1]):
                children[name].stdin.write(f"{a.steps}\n")
                children[name].stdin.flush()
                line = children[name].stdout.readline()
                while line and not line.startswith("{"):  # anything else the process printed
                    line = children[name].stdout.readline()
                if not line:
                    raise RuntimeError(f"the {name} step process exited with code {children[name].wait()}")
                runs[name].append(json.loads(line))
    finally:
        for child in children.values():
            with contextlib.suppress(OSError, ValueError):
                child.stdin.write("0\n")
                child.stdin.close()
            child.wait(timeout=60)
    print(f"JAC train step, batch {a.batch_size} ({a.request_rows} rows per request), {a.rounds} rounds of "
          f"{a.steps} steps per checkout, interleaved (load average now {os.getloadavg()[0]:.1f})")
    for key in ("wall", "cpu"):
        this, base = (np.array([run[key] for run in runs[n]]) for n in ("this", "baseline"))
        ratios = base / this  # speed-up of this checkout, round by round
        lo, hi = np.percentile(ratios, [10, 90])
        print(f"  {key:4s} per step: this {np.median(this) * 1e3:6.1f} ms, baseline {np.median(base) * 1e3:6.1f} ms; "
              f"speed-up (baseline / this per round) median x{np.median(ratios):.2f} (10-90 %: x{lo:.2f}-x{hi:.2f})")


# --------------------------------------------------------------------------------------------- fit
def fit_child(a) -> None:
    """One ``run_fn`` on a pipeline's Transform output, timed by a callback added to ``fit``; prints JSON."""
    _import_root(a.code_root)
    import tf_keras as keras
    from tfx.v1.components import FnArgs

    marks = {}

    class Marks(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = True

        def on_train_begin(self, logs=None):
            marks["begin"] = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if "warm" not in marks and batch + 1 >= 20:
                marks["warm"], marks["warm_steps"] = time.perf_counter(), batch + 1

        def on_test_begin(self, logs=None):
            marks.setdefault("test", time.perf_counter())

        def on_train_end(self, logs=None):
            marks["end"] = time.perf_counter()

    fit = keras.Model.fit
    keras.Model.fit = lambda self, *args, callbacks=None, **kw: fit(self, *args, callbacks=list(callbacks or [])
                                                                     + [Marks()], **kw)
    from trainer.run import run_fn

    root = a.pipeline_root
    out = tempfile.mkdtemp()
    start = time.perf_counter()
    summary = run_fn(FnArgs(
        train_files=glob.glob(f"{root}/Transform/transformed_examples/*/Split-train/*"),
        eval_files=glob.glob(f"{root}/Transform/transformed_examples/*/Split-eval/*"),
        transform_output=sorted(glob.glob(f"{root}/Transform/transform_graph/*"))[-1],
        serving_model_dir=os.path.join(out, "serving"), model_run_dir=os.path.join(out, "run"),
        train_steps=a.train_steps, eval_steps=a.eval_steps, custom_config={"model_config": {}},
        data_accessor=_data_accessor()))
    batch = summary["config"]["batch_size"]
    print(json.dumps({
        "run_fn_s": time.perf_counter() - start, "epoch_s": marks["end"] - marks["begin"],
        "steps_s": marks["test"] - marks["begin"], "first_20_steps_s": marks["warm"] - marks["begin"],
        "steady_examples_per_s": (a.train_steps - marks["warm_steps"]) * batch / (marks["test"] - marks["warm"]),
        "validation_s": marks["end"] - marks["test"],
        "metrics": {k: v for k, v in summary["metrics"].items() if k.startswith("val_")}}))


def bench_fit(a) -> None:
    roots = {"this": REPO_ROOT, "baseline": os.path.abspath(a.baseline_root)}
    runs = {name: [] for name in roots}
    for r in range(a.rounds):
        for name, root in roots.items():
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, __file__, "fit-child", "--code-root", root, "--pipeline-root",
                                  a.pipeline_root, "--train-steps", str(a.train_steps), "--eval-steps",
                                  str(a.eval_steps)], capture_output=True, text=True, check=True,
                                 env=dict(os.environ, PYTHONPATH=root)).stdout
            run = json.loads(out.strip().splitlines()[-1])
            run["load"] = load
            runs[name].append(run)
            print(f"round {r} {name:8s} load {load:4.1f}: epoch {run['epoch_s']:6.1f} s (first 20 steps "
                  f"{run['first_20_steps_s']:5.1f} s, validation {run['validation_s']:5.1f} s), steps "
                  f"{run['steps_s']:6.1f} s, steady {run['steady_examples_per_s']:6.0f} examples/s; "
                  f"{json.dumps({k: round(v, 4) for k, v in run['metrics'].items()})}", flush=True)
    examples = a.train_steps * 512
    for r in range(a.rounds):
        new, old = runs["this"][r], runs["baseline"][r]
        print(f"round {r}: examples/s over the epoch {examples / new['epoch_s']:.0f} vs {examples / old['epoch_s']:.0f}"
              f" = x{old['epoch_s'] / new['epoch_s']:.2f}; over the steps x{old['steps_s'] / new['steps_s']:.2f}; "
              f"steady x{new['steady_examples_per_s'] / old['steady_examples_per_s']:.2f}")


# ----------------------------------------------------------------------------------------- cluster
def _cluster_run(data, out, workers, ps, steps, model_config):
    from trainer.config import MODEL_CONFIG_KEY
    from trainer.local_cluster import LocalCluster

    fn_args = dict(train_files=[data.train], eval_files=[data.eval], transform_output=data.transform_graph,
                   serving_model_dir=os.path.join(out, "serving"), model_run_dir=os.path.join(out, "run"),
                   train_steps=steps, eval_steps=2, custom_config={MODEL_CONFIG_KEY: model_config})
    if not workers:  # one process, no TF_CONFIG
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "fn_args.json"), "w") as f:
            json.dump(fn_args, f)
        subprocess.run([sys.executable, "-m", "trainer.local_cluster", "--task-args", os.path.join(out, "fn_args.json")],
                       check=True, env=env, cwd=REPO_ROOT, capture_output=True)
        tasks = []
    else:
        cluster = LocalCluster(fn_args, workers, ps, os.path.join(out, "logs"))
        with cluster:
            cluster.wait(timeout=3600)
        tasks = cluster.tasks
    with open(os.path.join(out, "run", "model_config.json")) as f:
        return json.load(f), tasks


def bench_cluster(a) -> None:
    from trainer import testing

    data = testing.transformed_data(a.impressions)
    model_config = json.loads(a.model_config)
    for workers in [0] + a.workers:
        seconds = {}
        for steps in a.steps:
            load = os.getloadavg()[0]
            summary, _ = _cluster_run(data, tempfile.mkdtemp(), workers, a.ps if workers else 0, steps, model_config)
            seconds[steps] = summary["throughput"]["train_seconds"]
            batch = summary["config"]["batch_size"]
            name = f"{workers} worker(s) + {a.ps} ps" if workers else "one process"
            print(f"{name:20s} {steps:4d} steps: {seconds[steps]:6.1f} s of steps, "
                  f"{steps * batch / seconds[steps]:6.0f} examples/s (load {load:.1f})", flush=True)
        (s1, t1), (s2, t2) = sorted(seconds.items())[:2]
        print(f"{name:20s} per step after start-up: {(t2 - t1) / (s2 - s1) * 1e3:6.1f} ms = "
              f"{(s2 - s1) * batch / (t2 - t1):6.0f} examples/s", flush=True)


def _rss_mb(pid: int):
    """The process's resident memory now (Linux ``VmRSS``) in MiB, or ``None`` once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None


def bench_ps_memory(a) -> None:
    """Peak RSS of each ps task, and where it comes from: each task's RSS is sampled while the cluster runs."""
    import threading

    from trainer import testing
    from trainer.config import MODEL_CONFIG_KEY
    from trainer.local_cluster import LocalCluster

    data = testing.transformed_data(a.impressions)
    config = {"ar_embedding_rows": a.rows, "embedding_min_shard_bytes": 1 << 20, "quantizer_r": 100.0}
    out = tempfile.mkdtemp()
    fn_args = dict(train_files=[data.train], eval_files=[data.eval], transform_output=data.transform_graph,
                   serving_model_dir=os.path.join(out, "serving"), model_run_dir=os.path.join(out, "run"),
                   train_steps=a.train_steps, eval_steps=2, custom_config={MODEL_CONFIG_KEY: config})
    samples = collections.defaultdict(list)  # task name -> [(seconds, MiB)]
    done = threading.Event()
    cluster = LocalCluster(fn_args, 1, a.ps, os.path.join(out, "logs"))
    with cluster:
        start = time.monotonic()

        def sample():
            while not done.wait(0.2):
                for task in cluster.tasks:
                    rss = _rss_mb(task.process.pid)
                    if rss is not None:
                        samples[task.name].append((time.monotonic() - start, rss))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            cluster.wait(timeout=3600)
        finally:
            done.set()
            sampler.join()
    with open(os.path.join(out, "run", "model_config.json")) as f:
        summary = json.load(f)
    shards = summary["sharded_tables"]["ar/embeddings/table"]
    shard_mb = a.rows // a.ps * 16 * 4 / 2 ** 20
    print(f"AR table {a.rows} x 16 float32 = {a.rows * 16 * 4 / 2 ** 20:.0f} MiB, shards {[s['shape'] for s in shards]} "
          f"({shard_mb:.0f} MiB each, and as much again for each one's Adagrad accumulator)")
    for task in cluster.tasks:
        series = samples.get(task.name, [])
        if not series:
            continue
        # The process itself (TensorFlow, the server, the trainer's imports) grows in small steps; a variable's
        # initial value arrives as shard-sized allocations: the first rise of > 100 MiB between two samples
        # (0.2 s apart) once the process holds 512 MiB marks the variables' arrival.
        floor, base_at = series[0][1], series[0][0]
        for (t0, r0), (t1, r1) in zip(series, series[1:]):
            if r0 >= 512 and r1 - r0 > 100:
                floor, base_at = r0, t0
                break
        end = series[-1][1]
        peak = task.peak_rss_mb or max(r for _, r in series)
        print(f"  {task.name}: peak RSS {peak:.0f} MiB = process {floor:.0f} + variables at the end "
              f"{end - floor:.0f} + transient {peak - end:.0f} (peak at {max(series, key=lambda s: s[1])[0]:.0f} s, "
              f"variables from {base_at:.0f} s, end {series[-1][0]:.0f} s)")
        steps, last = [], None
        for t, rss in series:
            if last is None or abs(rss - last) > 128:
                steps.append(f"{t:.0f} s {rss:.0f}")
                last = rss
        print(f"    RSS (MiB) where it moved by > 128 MiB: {', '.join(steps[:24])}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="mode")
    step = sub.add_parser("step")
    step.add_argument("--batch-size", type=int, default=512)
    step.add_argument("--steps", type=int, default=30, help="steps per round and model")
    step.add_argument("--rounds", type=int, default=5)
    profile = sub.add_parser("profile")
    profile.add_argument("--batch-size", type=int, default=512)
    profile.add_argument("--steps", type=int, default=10)
    profile.add_argument("--impressions", type=int, default=20_000, help="simulated data for the input pipeline")
    profile.add_argument("--request-rows", type=int, default=3, help="rows per request in the batch")
    for name in ("step-vs", "step-child"):
        vs = sub.add_parser(name)
        vs.add_argument("--batch-size", type=int, default=512)
        if name == "step-vs":
            vs.add_argument("--baseline-root", required=True)
            vs.add_argument("--rounds", type=int, default=40)
            vs.add_argument("--steps", type=int, default=3, help="steps per slice")
            vs.add_argument("--request-rows", type=int, default=3,
                            help="rows per request in the batch (sharing the user's sequence), as the "
                                 "block-shuffled training input delivers them; 3 = the simulator's slots")
        else:
            vs.add_argument("--code-root", required=True)
            vs.add_argument("--batch-file", required=True)
    for name in ("fit", "fit-child"):
        fit = sub.add_parser(name)
        fit.add_argument("--pipeline-root", required=True, help="a pipeline run's root (its Transform output)")
        fit.add_argument("--train-steps", type=int, default=400)
        fit.add_argument("--eval-steps", type=int, default=50)
        if name == "fit":
            fit.add_argument("--baseline-root", required=True)
            fit.add_argument("--rounds", type=int, default=2)
        else:
            fit.add_argument("--code-root", required=True)
    cluster = sub.add_parser("cluster")
    cluster.add_argument("--impressions", type=int, default=20_000)
    cluster.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    cluster.add_argument("--ps", type=int, default=2)
    cluster.add_argument("--steps", type=int, nargs=2, default=[60, 260])
    cluster.add_argument("--model-config", default="{}")
    memory = sub.add_parser("ps-memory")
    memory.add_argument("--rows", type=int, default=1 << 24)
    memory.add_argument("--ps", type=int, default=2)
    memory.add_argument("--train-steps", type=int, default=20)
    memory.add_argument("--impressions", type=int, default=3_000)
    parser.set_defaults(mode="step", batch_size=512, steps=30, rounds=5)
    a = parser.parse_args(argv)
    if a.mode not in ("fit-child", "step-child"):
        _import_root(REPO_ROOT)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    {"step": bench_step, "profile": bench_profile, "step-vs": bench_step_vs, "step-child": step_child,
     "fit": bench_fit, "fit-child": fit_child,
     "cluster": bench_cluster, "ps-memory": bench_ps_memory}[a.mode](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
