"""Per-component wall time of one local pipeline run on the default simulated data (>= 200,000 impressions).

    python benchmarks/bench_pipeline.py [--data-dir data/default] [--output-dir outputs/bench]

Prints each component's seconds and share of the run, and the ratio of the whole run to the 10-minute goal.
"""

import argparse
import os
import shutil
import tempfile
import time

from tfx_pipeline import config as config_lib
from tfx_pipeline import local_runner

GOAL_SECONDS = 600.0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=config_lib.PipelineConfig.data_dir)
    p.add_argument("--output-dir", default=None, help="default: a fresh temporary directory")
    a = p.parse_args()
    out = a.output_dir or tempfile.mkdtemp(prefix="adcr-bench-")
    cfg = config_lib.PipelineConfig(output_dir=out, data_dir=os.path.abspath(a.data_dir))
    local_runner.ensure_data(cfg)
    start = time.time()
    summary = local_runner.run(cfg)
    wall = time.time() - start
    total = sum(c.seconds for c in summary.components) or 1.0
    print(f"{'component':34s} {'seconds':>8s} {'share':>6s}")
    for c in sorted(summary.components, key=lambda c: -c.seconds):
        print(f"{c.name:34s} {c.seconds:8.1f} {c.seconds / total:6.1%}")
    print(f"whole run (wall, incl. orchestration): {wall:.1f} s; ratio to the {GOAL_SECONDS:.0f} s goal: "
          f"{wall / GOAL_SECONDS:.2f}")
    if a.output_dir is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
