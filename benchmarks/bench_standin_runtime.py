"""The stand-in's model runtime: a SignatureDef run in a Session (as TF Serving) vs. its ``tf.function``.

    python benchmarks/bench_standin_runtime.py [--serving-root DIR] [--ads 1000] [--creatives 10] \\
        [--calls 40] [--intra-op-threads 1] [--inter-op-threads 2]

The stand-in runs each Predict as TF Serving's SavedModelBundle does: ``Session::Run`` over the MetaGraph,
feeds and fetches by the SignatureDef's tensor names, behind TF Serving's request checks
(:func:`serving.standin.predict.run_predict`). Before, it called the SavedModel's ``tf.function``
signature on ``tf.constant`` inputs and read ``.numpy()`` outputs. This times both on the same loaded
version, the same inputs the router sends (M ads x N creatives), the same TF thread counts as the
benchmark's pinned servers, calls alternated so both see the same machine load; it prints p50 / p90 per
model and path and the ratio. Goal (issue "TF Serving, exactly"): Session / tf.function p50 <= 1.0 for AR
and CR — executing as TF Serving does must not make serving slower.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import features as F  # noqa: E402
from serving import runtime  # noqa: E402
from serving import testing as T  # noqa: E402
from serving.router import core as C  # noqa: E402
from serving.router import parse_request  # noqa: E402
from serving.router import request as R  # noqa: E402
from serving.sample_requests import random_request  # noqa: E402

WARMUP_CALLS = 3


def _paths(model_base: str):
    """(session path, tf.function path) of the latest version under ``model_base``: callables of inputs."""
    import tensorflow as tf

    from serving.standin.predict import Runtime, run_predict
    from serving.standin.servable import session_config
    from serving.standin.versions import list_versions
    from serving.standin.warmup import load_servable

    name = os.path.basename(model_base.rstrip("/"))
    version, directory = max(list_versions(name, model_base).items())
    path = os.path.join(model_base, directory)
    threads, stand_in = tf.config.threading, Runtime()
    bundle = load_servable(name, version, path, stand_in, session_config(
        threads.get_intra_op_parallelism_threads(), threads.get_inter_op_parallelism_threads()))
    function = tf.saved_model.load(path).signatures[F.RAW_SIGNATURE]

    def session(inputs):
        return run_predict(stand_in, bundle, F.RAW_SIGNATURE, inputs)[1]

    def tf_function(inputs):  # what the stand-in did before: tf.constant in, .numpy() out
        return {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()}

    return version, session, tf_function


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving-root", help="pushed models (default: fake models sized like production)")
    parser.add_argument("--ads", type=int, default=1000, help="M")
    parser.add_argument("--creatives", type=int, default=10, help="N per ad")
    parser.add_argument("--calls", type=int, default=40, help="timed calls per model and path")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--inter-op-threads", type=int, default=2)
    args = parser.parse_args(argv)
    runtime.configure_tf_threads(args.intra_op_threads, args.inter_op_threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.serving_root
        if root is None:
            root = os.path.join(tmp, "serving")
            T.make_fake_models(root, 1, ar_hidden_units=T.BENCH_AR_HIDDEN_UNITS,
                               cr_hidden_units=T.BENCH_CR_HIDDEN_UNITS)
        requests = [parse_request(R.to_column_form(random_request(args.ads, args.creatives, seed=i)),
                                  R.RequestLimits(max_ads=args.ads, max_total_creatives=10 ** 6))
                    for i in range(4)]
        payloads = {F.AR_MODEL_NAME: [C.ar_inputs(r) for r in requests],
                    F.CR_MODEL_NAME: [C.cr_inputs(r) for r in requests]}
        print(f"stand-in runtime: M={args.ads} ads x N={args.creatives} creatives, {args.calls} calls per model "
              f"and path, alternated; TF threads intra-op {args.intra_op_threads}, inter-op "
              f"{args.inter_op_threads}; models under {os.path.abspath(root)}; load average "
              f"{os.getloadavg()[0]:.2f}")
        print(f"{'model':6} {'version':>11} {'Session p50':>12} {'p90':>7} {'tf.function p50':>16} {'p90':>7} "
              f"{'Session / tf.function':>22}")
        ratios = {}
        for model, output in ((F.AR_MODEL_NAME, F.PCTR_AD), (F.CR_MODEL_NAME, F.PCTR_C)):
            version, session, tf_function = _paths(os.path.join(root, model))
            first = payloads[model][0]
            np.testing.assert_allclose(session(first)[output], tf_function(first)[output], rtol=1e-5, atol=1e-7)
            times = {"session": [], "function": []}
            for i in range(args.calls + WARMUP_CALLS):
                inputs = payloads[model][i % len(payloads[model])]
                for key, fn in (("session", session), ("function", tf_function))[::1 if i % 2 else -1]:  # alternated
                    t0 = time.perf_counter()
                    fn(inputs)
                    if i >= WARMUP_CALLS:
                        times[key].append((time.perf_counter() - t0) * 1e3)
            p = {k: (float(np.percentile(v, 50)), float(np.percentile(v, 90))) for k, v in times.items()}
            ratios[model] = p["session"][0] / p["function"][0]
            print(f"{model:6} {version:>11} {p['session'][0]:>12.2f} {p['session'][1]:>7.2f} "
                  f"{p['function'][0]:>16.2f} {p['function'][1]:>7.2f} {ratios[model]:>22.3f}")
    met = all(r <= 1.0 for r in ratios.values())
    print(f"goal: Session / tf.function p50 <= 1.0 for AR and CR: {'met' if met else 'NOT met'}")
    print("command: python benchmarks/bench_standin_runtime.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
