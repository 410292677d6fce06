"""Latency of the online CR SavedModels: one raw-signature call scoring 10,000 (ad, creative) rows on one core.

    python benchmarks/bench_cr_latency.py [--rows 10000] [--calls 300] [--impressions 5000] [--variants jac,dssm,hbm,beta_ts]

Builds each variant's CR at its default size -- JAC's MLP CR (Yang et al., AAAI 2024: dim-4 embeddings,
128x64x32 MLP, K=8192 x D=128 pctr codes), the two-tower DSSM, VAM-HBM and Beta-TS (posteriors fitted to the
log) -- on a small simulated log (simulator -> Transform -> export; the weights need not be trained for
timing), loads the exported SavedModels with ``tf.saved_model.load`` and times ``predict_raw`` with TensorFlow
limited to one thread (intra- and inter-op), the calls interleaved so machine load hits all alike. The
request is one user (batch-1 user features, broadcast by the model) and ``rows`` (ad, creative) rows drawn
from the log. With ``dssm``, the same run also times the two-tower CR from precomputed creative vectors
(``features.CREATIVE_VECTORS_SIGNATURE``: the user features and the ``rows`` vectors its creative tower made
beforehand, as a serving system keeps them, ``serving.creative_vectors``), and, apart, the router-side
look-up of those vectors in a :class:`~serving.creative_vectors.CreativeVectorCache` holding them. Goals: the
MLP CR's p99 <= 28 ms; DSSM's p99 <= half the MLP CR's (cheap scoring is the two-tower's reason to exist).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import features as F  # noqa: E402
from simulator import SimulatorConfig, simulate  # noqa: E402
from trainer.config import JACConfig  # noqa: E402
from trainer.export import export_cr  # noqa: E402
from trainer.random_batch import random_transformed_batch  # noqa: E402
from trainer.serving_module import export_online  # noqa: E402
from trainer.variants import VARIANTS, build_model, fit_posteriors  # noqa: E402
from transform import names as N  # noqa: E402
from transform.local import TRANSFORM_GRAPH, analyze_and_transform  # noqa: E402

MLP_GOAL_MS = 28.0
LABELS = {"jac": "MLP CR (fused)", "dssm": "DSSM two-tower", "hbm": "VAM-HBM", "beta_ts": "Beta-TS"}
PLAIN = "MLP CR (plain Keras)"
VECTORS = "DSSM, creative vectors"
LOOKUP = "  cache look-up (router)"


class _LoadedClient:
    """The loaded SavedModel's signatures as a serving client of one version (for the cache's look-up)."""

    def __init__(self, loaded, version: int = 1):
        self.loaded, self.version = loaded, version

    def start_predict(self, model, inputs, signature, version=None, timeout=None):
        from serving.clients import PredictResult
        from serving.inprocess import _DoneCall

        out = self.loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return _DoneCall(PredictResult({k: v.numpy() for k, v in out.items()}, model, self.version, signature,
                                       0.0, 0.0, 0.0))


def request_from_log(pattern: str, rows: int) -> dict:
    """One user's features (batch 1) and ``rows`` logged (ad, creative) rows, as raw serving tensors."""
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)).batch(rows).take(1).get_single_element()
    parsed = tf.io.parse_example(records, F.raw_feature_spec(F.CR_SERVING_INPUTS))
    reps = -(-rows // int(parsed[F.AD_ID].shape[0]))
    out = {}
    for name in F.CR_SERVING_INPUTS:
        x = parsed[name]
        if name in F.BROADCASTABLE_INPUTS:
            out[name] = x[:1]
        else:
            out[name] = tf.tile(x, [reps] + [1] * (len(x.shape) - 1))[:rows]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--impressions", type=int, default=5_000)
    parser.add_argument("--variants", default="jac,dssm,hbm,beta_ts", help="variants whose CR to time")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        simulate(SimulatorConfig(num_impressions=args.impressions, num_days=2, seed=0,
                                 calibration_impressions=args.impressions), os.path.join(tmp, "raw"), progress=False)
        raw_train, raw_eval = (os.path.join(tmp, "raw", split, "*") for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT))
        paths = analyze_and_transform(raw_train, raw_eval, os.path.join(tmp, "xf"))
        import tensorflow_transform as tft
        tft_output = tft.TFTransformOutput(paths[TRANSFORM_GRAPH])
        cardinalities = N.cardinalities(tft_output)
        request = request_from_log(raw_eval, args.rows)
        signatures, requests, lookup = {}, {}, None
        for variant in variants:
            config = JACConfig(variant=variant, quantizer_r=100.0, initial_ctr=0.025)
            model = build_model(config, cardinalities)
            model(random_transformed_batch(cardinalities, 8))  # build the weights
            fit_posteriors(model, paths[F.TRAIN_SPLIT], tft_output)
            module = VARIANTS[variant].cr.serving_module(model, tft_output)
            export_dir = export_online(module, os.path.join(tmp, f"cr_{variant}"), warmup=False, request_rows=8)
            loaded = tf.saved_model.load(export_dir)
            signatures[LABELS.get(variant, variant)] = loaded.signatures[F.RAW_SIGNATURE]
            if variant == "dssm":  # the vectors made beforehand, as a serving system keeps them
                from serving.creative_vectors import TOWER_INPUTS, CreativeVectorCache

                cache = CreativeVectorCache(_LoadedClient(loaded))
                creatives = {n: request[n].numpy() for n in TOWER_INPUTS}
                vectors = cache.vectors(creatives, version=1)
                signatures[VECTORS] = loaded.signatures[F.CREATIVE_VECTORS_SIGNATURE]
                requests[VECTORS] = dict({n: request[n] for n in F.CR_USER_FEATURES},
                                         **{F.CREATIVE_VECTOR: tf.constant(vectors)})
                shuffled = {n: c[np.random.default_rng(0).permutation(args.rows)] for n, c in creatives.items()}
                lookup = lambda: cache.vectors(shuffled, version=1)  # noqa: E731
            if variant == "jac":
                plain = export_cr(model, tft_output, os.path.join(tmp, "cr_plain"), warmup=False, fused=False)
                signatures[PLAIN] = tf.saved_model.load(plain).signatures[F.RAW_SIGNATURE]
        times = {label: [] for label in signatures}
        if lookup is not None:
            times[LOOKUP] = []
        for label, fn in signatures.items():
            for _ in range(10):
                out = fn(**requests.get(label, request))[F.PCTR_C]
            assert out.shape == (args.rows,), out.shape
        if VECTORS in signatures:  # the same scores as from the raw rows
            np.testing.assert_allclose(signatures[VECTORS](**requests[VECTORS])[F.PCTR_C],
                                       signatures[LABELS["dssm"]](**request)[F.PCTR_C], rtol=1e-5, atol=1e-6)
        for _ in range(args.calls):  # interleaved, so machine load affects all alike
            for label, fn in signatures.items():
                inputs = requests.get(label, request)
                start = time.perf_counter()
                fn(**inputs)[F.PCTR_C].numpy()
                times[label].append((time.perf_counter() - start) * 1e3)
            if lookup is not None:
                start = time.perf_counter()
                lookup()
                times[LOOKUP].append((time.perf_counter() - start) * 1e3)
    print(f"CR SavedModel predict_raw: {args.rows} rows/call (1 user), 1 thread, {args.calls} calls each")
    stats = {}
    for label, t in times.items():
        p50, p99 = np.percentile(t, [50, 99])
        stats[label] = (p50, p99)
        print(f"  {label:24s} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   mean {np.mean(t):6.1f} ms")
    mlp = stats.get(LABELS["jac"])
    if mlp:
        print(f"MLP CR: p99 {mlp[1]:.1f} ms vs goal {MLP_GOAL_MS:.0f} ms -> {'met' if mlp[1] <= MLP_GOAL_MS else 'missed'}"
              + (f"; fused/plain p50 ratio {mlp[0] / stats[PLAIN][0]:.2f}" if PLAIN in stats else ""))
        dssm = stats.get(LABELS["dssm"])
        if dssm:
            ratio = dssm[1] / mlp[1]
            print(f"DSSM/MLP CR p99 ratio {ratio:.2f} vs goal 0.50 -> {'met' if ratio <= 0.5 else 'missed'}; "
                  f"p50 ratio {dssm[0] / mlp[0]:.2f}")
        vec = stats.get(VECTORS)
        if vec:
            ratio = vec[1] / mlp[1]
            print(f"DSSM from creative vectors / MLP CR p99 ratio {ratio:.3f} vs goal 0.50 -> "
                  f"{'met' if ratio <= 0.5 else 'missed'}; p50 ratio {vec[0] / mlp[0]:.3f}"
                  + (f"; with the router's look-up added, p50 ratio {(vec[0] + stats[LOOKUP][0]) / mlp[0]:.3f}"
                     if LOOKUP in stats else ""))
        floor = stats.get(LABELS["beta_ts"])
        if floor:  # a table lookup per row: what reading the inputs and the id vocabularies cost any CR
            print(f"Beta-TS (lookup only) / MLP CR p50 ratio {floor[0] / mlp[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
