"""Throughput and memory of the NSCTR estimator; TFMA wall time on a simulated eval split.

    python benchmarks/bench_nsctr.py                       # 1M and 10M impressions, 100k ads
    python benchmarks/bench_nsctr.py --sim-dir data/default   # + TFMA and accuracy on that split

Prints, for the NumPy reference (one core: NumPy's sort and bincount are single-threaded):

* impressions/s of ``replay.nsctr`` on synthetic logs (goal: >= 1,000,000/s at 10M impressions);
* peak traced memory (``tracemalloc``) of the call at 1M and 10M impressions with the same ads, and at
  10M impressions with 10x the ads -- it should grow with ads, not with impressions (the input arrays
  themselves belong to the caller and are not counted);
* the same for GAUC (exact, O(n) memory; bucketed, O(users x buckets)).

With ``--sim-dir`` (the simulator's output, e.g. ``python -m simulator.cli --out data/default``):

* TFMA wall time on the eval split, ExampleCount alone vs. with NSCTR and vs. with every metric of
  :mod:`creative_metrics.tfma_metrics` (predictions materialized from the log: the "model" selects the
  exposed creative), and a check that TFMA's NSCTR equals the reference on the same rows;
* estimate vs truth for three creative policies computed from the truth columns (random, logged, oracle).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import features as F  # noqa: E402
from creative_metrics import ground_truth as GT  # noqa: E402
from creative_metrics import group_auc as G  # noqa: E402
from creative_metrics import replay as E  # noqa: E402


def synthetic_log(n: int, ads: int, seed: int = 0):
    """Uniform logging over 1..12 candidates per ad; arbitrary (large, sparse) int64 ids."""
    rng = np.random.default_rng(seed)
    ad = rng.integers(0, ads, n) * 7_919 + 10**12
    cands = ad % 12 + 1
    exposed = ad * 32 + rng.integers(0, cands)
    selected = ad * 32 + rng.integers(0, cands)
    clicks = (rng.random(n) < 0.03).astype(np.int8)
    return ad, exposed, clicks, selected


def timed(fn, *args, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def peak_mib(fn, *args) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def bench_reference(sizes, ads):
    print(f"== NumPy reference: nsctr (ads={ads:,}; best of 3) ==")
    peaks = {}
    for n in sizes:
        log = synthetic_log(n, ads)
        seconds, value = timed(E.nsctr, *log)
        peaks[n] = peak_mib(E.nsctr, *log)
        print(f"  {n:>12,} impressions: {seconds:6.3f} s  {n / seconds:>14,.0f} impressions/s  "
              f"peak {peaks[n]:7.1f} MiB  (nsctr={value:.5f})")
        del log
    small, large = min(sizes), max(sizes)
    log = synthetic_log(large, ads * 10, seed=1)
    peak_ads = peak_mib(E.nsctr, *log)
    del log
    print(f"  {large:>12,} impressions, {ads * 10:,} ads: peak {peak_ads:7.1f} MiB")
    print(f"  peak ratio {large // small}x impressions: {peaks[large] / peaks[small]:.2f}x;  "
          f"10x ads: {peak_ads / peaks[large]:.2f}x")


def bench_gauc(n, users):
    print(f"== GAUC ({n:,} impressions, {users:,} users) ==")
    rng = np.random.default_rng(2)
    u = rng.integers(0, users, n)
    y = (rng.random(n) < 0.05).astype(np.int8)
    p = np.clip(0.03 + 0.02 * y + rng.normal(0, 0.01, n), 0, 1)
    for name, fn in (("exact", G.gauc_estimate), ("bucketed", G.gauc_bucketed_estimate)):
        seconds, r = timed(fn, u, y, p, repeat=1)
        print(f"  {name:>8}: {seconds:6.3f} s  {n / seconds:>12,.0f} impressions/s  peak "
              f"{peak_mib(fn, u, y, p):7.1f} MiB  gauc={r.value:.5f}  bound={r.max_abs_error:.2e}")


# ------------------------------------------------------------------------------------ simulated split
def read_split(pattern):
    import tensorflow as tf

    names = [F.AD_ID, F.CREATIVE_ID, F.CLICK, F.NUM_CANDIDATES, F.EXPOSED_INDEX, F.TRUTH_CTR,
             F.TRUTH_CAND_CTRS, F.CAND_CREATIVE_IDS, F.USER_ID, F.AD_HIST_CTR]
    spec = F.raw_feature_spec(names)
    cols = {k: [] for k in names}
    for batch in tf.data.TFRecordDataset(sorted(glob.glob(pattern))).batch(8192):
        parsed = tf.io.parse_example(batch, spec)
        for k in names:
            v = parsed[k]
            cols[k].append(tf.RaggedTensor.from_sparse(v) if isinstance(v, tf.SparseTensor) else v)
    out = {}
    for k, parts in cols.items():
        if isinstance(parts[0], tf.RaggedTensor):
            out[k] = [r.numpy() for part in parts for r in part]
        else:
            out[k] = np.concatenate([p.numpy() for p in parts])
    return out


def accuracy_on_split(log):
    print("== Estimates vs truth on the eval split (policies computed from the truth columns) ==")
    n = len(log[F.AD_ID])
    rng = np.random.default_rng(0)
    lengths = log[F.NUM_CANDIDATES]
    policies = {
        "random": rng.integers(0, lengths),
        "logged": log[F.EXPOSED_INDEX],
        "oracle": np.array([int(np.argmax(c)) for c in log[F.TRUTH_CAND_CTRS]]),
    }
    for name, index in policies.items():
        selected = np.array([ids[i] for ids, i in zip(log[F.CAND_CREATIVE_IDS], index)])
        args = (log[F.AD_ID], log[F.CREATIVE_ID], log[F.CLICK], selected)
        ns = E.nsctr_estimate(*args)
        truth = GT.true_policy_value(log[F.TRUTH_CAND_CTRS], index)
        print(f"  {name:>7}: true {truth.selected:.5f} | NSCTR {ns.value:.5f} (coverage {ns.coverage:.1%}) | "
              f"sCTR {E.sctr(*args):.5f} | cal. sCTR {E.calibrated_sctr(*args, lengths):.5f}")
    print(f"  ({n:,} impressions, {int(log[F.CLICK].sum()):,} clicks: differences within a few 1e-3 are noise)")


def bench_tfma(sim_dir, log):
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis import constants

    from creative_metrics import tfma_metrics as M

    pattern = os.path.join(sim_dir, F.EVAL_SPLIT, "*")
    n = len(log[F.AD_ID])
    print(f"== TFMA on {pattern} ({n:,} impressions, DirectRunner in-memory) ==")
    # No model: the predictions are columns of the log (the selector picks the exposed creative).
    spec = tfma.ModelSpec(label_key=F.LABEL, prediction_keys={
        F.SELECTED_CREATIVE_ID: F.CREATIVE_ID, F.SELECTED_INDEX: F.EXPOSED_INDEX, F.PCTR_AD: F.AD_HIST_CTR})
    shared = tfma.types.EvalSharedModel(model_type=constants.MATERIALIZED_PREDICTION)
    runs = {
        "ExampleCount only": [tfma.MetricConfig(class_name="ExampleCount")],
        "+ NSCTR": [tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="NSCTR", module=M.__name__)],
        "+ all creative metrics": [tfma.MetricConfig(class_name="ExampleCount")] + M.metric_configs(),
    }
    times = {}
    for name, metrics in runs.items():
        out = tempfile.mkdtemp(prefix="bench_tfma_")
        config = tfma.EvalConfig(model_specs=[spec], metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
                                 slicing_specs=[tfma.SlicingSpec()])
        t = time.perf_counter()
        result = tfma.run_model_analysis(eval_shared_model=shared, eval_config=config, data_location=pattern,
                                         output_path=out)
        times[name] = time.perf_counter() - t
        metrics_out = {k: v.get("doubleValue") for k, v in result.slicing_metrics[0][1][""][""].items()}
        print(f"  {name:>24}: {times[name]:6.1f} s  {json.dumps(metrics_out, sort_keys=True)[:160]}")
    extra = times["+ NSCTR"] - times["ExampleCount only"]
    print(f"  NSCTR adds {extra:+.1f} s ({extra / n * 1e6:+.1f} us/impression; noisy on a shared machine)")
    ref = E.nsctr(log[F.AD_ID], log[F.CREATIVE_ID], log[F.CLICK], log[F.CREATIVE_ID])
    print(f"  reference nsctr on the same rows: {ref:.6f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--ads", type=int, default=100_000)
    p.add_argument("--gauc-impressions", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--sim-dir", help="simulator output dir (eval/ split) for the TFMA and accuracy runs")
    args = p.parse_args(argv)
    bench_reference(sorted(args.sizes), args.ads)
    bench_gauc(args.gauc_impressions, args.users)
    if args.sim_dir:
        if not glob.glob(os.path.join(args.sim_dir, F.EVAL_SPLIT, "*")):
            print(f"no eval split under {args.sim_dir}: skipping TFMA "
                  f"(create one with: python -m simulator.cli --out {args.sim_dir})")
            return 0
        log = read_split(os.path.join(args.sim_dir, F.EVAL_SPLIT, "*"))
        accuracy_on_split(log)
        bench_tfma(args.sim_dir, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
