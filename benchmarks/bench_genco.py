"""GenCO's serving latency and training throughput on one core.

    python benchmarks/bench_genco.py [--ads 100] [--candidates 15] [--samples 16] [--calls 300] [--standin]

Serving: one ``predict_raw`` call of the online GenCO SavedModel for ``--ads`` ads x 6 components x
``--candidates`` candidates each, with K = ``--samples`` combinations sampled per ad and scored by the reward
model (Gu et al., 2025, eqs. 24-25), timed in-process with TensorFlow limited to one thread and this process
pinned to one CPU -- wall time, and the process's CPU time per call (what the call costs a core of its own,
without the waits of a shared machine); with ``--standin``, also the round trip of the same call over gRPC to
the model server stand-in pinned to its own CPU. Goal: p99 <= 28 ms (the creative module's budget in Yang et al., AAAI 2024).
Training: examples per second of GenCO's training step (the paper's batch of 1024, SGD) on one thread.
The weights are untrained (timing does not depend on them); hash tables of 100,000 rows per id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if hasattr(os, "sched_setaffinity"):  # one core for this process, before TensorFlow starts its threads
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import features as F  # noqa: E402
from transform import genco as G  # noqa: E402
from trainer.genco.config import GenCOConfig  # noqa: E402
from trainer.genco.export import export_online, to_model_inputs  # noqa: E402
from trainer.genco.model import GenCOModel, make_optimizer  # noqa: E402
from trainer.genco.serving_inputs import example_request  # noqa: E402

HASH_ROWS = 100_000


def percentiles(ms, cpu_ms=None):
    out = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
           "mean_ms": float(np.mean(ms)), "calls": len(ms)}
    if cpu_ms is not None:  # this process's CPU time: the call's cost without waiting for a shared core
        out.update(cpu_p50_ms=float(np.percentile(cpu_ms, 50)), cpu_p99_ms=float(np.percentile(cpu_ms, 99)))
    return out


def time_calls(call, calls: int, warmup: int = 20, cpu: bool = True):
    for _ in range(warmup):
        call()
    wall, used = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - t0) * 1e3)
        used.append((time.process_time() - c0) * 1e3)
    return percentiles(wall, used if cpu else None)


def training_throughput(model: GenCOModel, batch_size: int, steps: int) -> dict:
    """Examples per second of ``steps`` training steps: per wall second and per CPU second of this process."""
    request = example_request(batch_size, seed=3, user_batch_size=batch_size)
    features = to_model_inputs({k: tf.constant(v) for k, v in request.items()})
    rng = np.random.default_rng(0)
    mask = features[G.POOL_IDS].numpy() >= 0
    logged = np.where(mask.any(axis=2), ((rng.random(mask.shape) + 1) * mask).argmax(axis=2), -1)
    features[G.LOGGED] = tf.constant(logged)
    features[G.LOGGED_PROPENSITY] = tf.constant(np.where(logged >= 0, 1.0 / np.maximum(mask.sum(2), 1), 1.0),
                                                tf.float32)
    labels = tf.constant((rng.random(batch_size) < 0.07).astype(np.int64))
    model.compile(optimizer=make_optimizer(model.config))
    for _ in range(3):
        model.train_on_batch(features, labels)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(features, labels)
    rows = steps * batch_size
    return {"wall": rows / (time.perf_counter() - t0), "cpu": rows / (time.process_time() - c0)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ads", type=int, default=100)
    p.add_argument("--candidates", type=int, default=F.GENCO_MAX_CANDIDATES)
    p.add_argument("--samples", type=int, default=16, help="K, combinations sampled per ad")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--standin", action="store_true", help="also time the call over gRPC to the stand-in")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    config = GenCOConfig(num_samples=args.samples)
    model = GenCOModel(config, {k: HASH_ROWS for k in G.HASHED})
    request = example_request(args.ads, seed=1, pool_sizes={c: args.candidates for c in F.GENCO_COMPONENTS})
    model(to_model_inputs({k: tf.constant(v) for k, v in request.items()}))
    results = {"ads": args.ads, "components": len(F.GENCO_COMPONENTS), "candidates": args.candidates,
               "samples": args.samples}
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export_online(model, os.path.join(tmp, F.GENCO_MODEL_NAME, "1"))
        fn = tf.saved_model.load(export_dir).signatures[F.RAW_SIGNATURE]
        inputs = {k: tf.constant(v) for k, v in request.items()}
        results["in_process"] = time_calls(lambda: fn(**inputs), args.calls)
        if args.standin:
            from serving.backend import start_backend, split_cpus
            from serving.clients import GrpcServingClient

            cpus = split_cpus(2)[1]
            with start_backend(model_base_paths={F.GENCO_MODEL_NAME: os.path.dirname(export_dir)}, kind="stand-in",
                               cpus=cpus, intra_op_threads=1, inter_op_threads=1) as backend:
                backend.wait_until_available([F.GENCO_MODEL_NAME])
                with GrpcServingClient(backend.grpc_address) as client:
                    results["standin_grpc"] = time_calls(  # the server's CPU time is not this process's
                        lambda: client.predict(F.GENCO_MODEL_NAME, request, F.RAW_SIGNATURE, timeout=30), args.calls,
                        cpu=False)
                    results["standin_cpus"] = cpus
    results["training_examples_per_second"] = training_throughput(GenCOModel(config, {k: HASH_ROWS for k in G.HASHED}),
                                                                  config.batch_size, args.train_steps)
    for key in ("in_process", "standin_grpc"):
        if key in results:
            r = results[key]
            cpu = f"; CPU time p50 {r['cpu_p50_ms']:.2f} ms  p99 {r['cpu_p99_ms']:.2f} ms" if "cpu_p50_ms" in r else ""
            print(f"{key:13s} {args.ads} ads x 6 x {args.candidates}, K={args.samples}: wall p50 {r['p50_ms']:.2f} ms  "
                  f"p99 {r['p99_ms']:.2f} ms{cpu}  ({r['calls']} calls, goal p99 <= 28 ms)")
    speed = results["training_examples_per_second"]
    print(f"training     {speed['wall']:,.0f} examples/s ({speed['cpu']:,.0f} per CPU second; batch "
          f"{config.batch_size}, {config.optimizer}, one thread)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
