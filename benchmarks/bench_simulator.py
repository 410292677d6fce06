"""Simulator throughput: impressions written per second, against the 50,000/s goal (one process).

    python benchmarks/bench_simulator.py                      # 1M impressions, uniform logging
    python benchmarks/bench_simulator.py --impressions 200000 --policy epsilon_greedy

Also times the tf.Example encoder alone on one chunk, next to tfx_bsl's C++ RecordBatchToExamplesEncoder
on the same rows (which the simulator does not use: its map order differs between processes).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import features as F  # noqa: E402
from simulator import SimulatorConfig, build_world, simulate, traffic  # noqa: E402
from simulator.tfrecord import encode_tfrecords  # noqa: E402

GOAL = 50_000


def _encoder_rates(chunk: int, repeats: int = 3):
    world = build_world(SimulatorConfig(num_impressions=max(chunk, 50_000)))
    view = world.day_view(0)
    batch = traffic.draw_impressions(world, view, np.random.default_rng(0), chunk // world.config.slots)
    clicks = np.zeros(len(batch.user), np.int64)
    columns = traffic.to_columns(world, view, batch, clicks, 1)
    n = len(clicks)
    ours = min(_timed(lambda: encode_tfrecords(columns)) for _ in range(repeats))
    theirs = None
    try:
        import pyarrow as pa
        from tfx_bsl.coders import example_coder

        arrays = []
        for f in F.FEATURES:
            values, lengths = columns[f.name]
            lengths = np.ones(n, np.int64) if lengths is None else lengths
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)))
        record_batch = pa.RecordBatch.from_arrays(arrays, [f.name for f in F.FEATURES])
        encoder = example_coder.RecordBatchToExamplesEncoder()
        theirs = min(_timed(lambda: encoder.encode(record_batch)) for _ in range(repeats))
    except ImportError:
        pass
    return n, ours, theirs


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impressions", type=int, default=1_000_000)
    p.add_argument("--policy", default="uniform")
    p.add_argument("--out", default=None, help="keep the output here (default: a temp dir, deleted)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    config = SimulatorConfig(num_impressions=args.impressions, logging_policy=args.policy, seed=args.seed,
                             write_world=False).validate()
    tmp = tempfile.mkdtemp(prefix="bench_simulator-") if args.out is None else None
    out = args.out or os.path.join(tmp, "data")
    try:
        start = time.perf_counter()
        summary = simulate(config, out, progress=False, force=args.out is not None)
        elapsed = time.perf_counter() - start
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    rate = args.impressions / elapsed
    print(f"simulate: {args.impressions:,} impressions ({args.policy}) in {elapsed:.1f} s "
          f"-> {rate:,.0f} impressions/s, {rate / GOAL:.2f}x the {GOAL:,}/s goal; "
          f"{size / 2 ** 20:.0f} MiB written")
    o = summary["overall"]
    print(f"  CTR {o['ctr']:.4f}, candidates/impression {o['mean_candidates']:.2f}, "
          f"impressions/creative {o['mean_impressions_per_creative']:.2f}, "
          f"within-ad spread {o['within_ad_spread']:.2f}")
    n, ours, theirs = _encoder_rates(config.chunk_size)
    line = f"encoder alone ({n:,} rows): {n / ours:,.0f} examples/s"
    if theirs is not None:
        line += f"; tfx_bsl RecordBatchToExamplesEncoder {n / theirs:,.0f} examples/s ({theirs / ours:.2f}x slower)"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
