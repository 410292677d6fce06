"""Training step time of JAC vs AR alone at the same batch size (paper-size models, CPU).

    python benchmarks/bench_trainer.py [--batch-size 512] [--steps 30] [--rounds 5]

Both models use the default ``JACConfig`` (AR: dim-16 embeddings, 2x2 transformer, DCN + 512x512x256x128;
CR: dim-4 embeddings, 128x64x32; K=8192 x D=128 codes) and Adagrad, on the same random batch of
transformed features with realistic vocabulary sizes. Steps are timed in interleaved rounds so machine load
hits both alike; the ratio of median step times is the figure of merit (goal: JAC / AR <= 1.15).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import features as F  # noqa: E402
from trainer.config import JACConfig  # noqa: E402
from trainer.jac_model import JACModel, make_optimizer  # noqa: E402
from trainer.random_batch import random_transformed_batch  # noqa: E402
from transform import names as N  # noqa: E402

VOCAB_SIZES = {F.USER_ID: 100_000, F.AD_ID: 20_000, F.AD_ADVERTISER_ID: 4_000, F.AD_BRAND_ID: 4_000,
               F.CREATIVE_ID: 150_000}


def _train_fn(variant: str, batch, batch_size: int):
    config = JACConfig(variant=variant, quantizer_r=100.0, batch_size=batch_size)
    model = JACModel(config, N.cardinalities_from_vocab_sizes(VOCAB_SIZES))
    model.compile(optimizer=make_optimizer(config))
    data = iter(tf.data.Dataset.from_tensors((batch, batch[N.LABEL_KEY])).repeat())
    fn = model.make_train_function()
    return lambda: {k: float(v) for k, v in fn(data).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30, help="steps per round and model")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    batch = random_transformed_batch(N.cardinalities_from_vocab_sizes(VOCAB_SIZES), args.batch_size, seed=0)
    steps = {v: _train_fn(v, batch, args.batch_size) for v in ("ar", "jac")}
    for step in steps.values():  # trace and warm up
        for _ in range(5):
            step()
    times = {v: [] for v in steps}
    for _ in range(args.rounds):
        for variant, step in steps.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times[variant].append((time.perf_counter() - start) * 1e3)
    med = {v: float(np.median(t)) for v, t in times.items()}
    print(f"train step, batch {args.batch_size}, {args.rounds} x {args.steps} steps per model, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads")
    for v, t in times.items():
        print(f"  {v:4s} median {med[v]:7.1f} ms   p90 {np.percentile(t, 90):7.1f} ms")
    ratio = med["jac"] / med["ar"]
    print(f"JAC / AR step time = {ratio:.3f} (goal <= 1.15: {'met' if ratio <= 1.15 else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
