"""Command line: ``python -m simulator.combinations --out DIR [options]`` (a GenCO log with ground truth)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from simulator.combinations.config import CombinationConfig
from simulator.combinations.generate import format_summary, simulate_combinations
from simulator.cli import with_flag
from simulator.generate import OutputExistsError

_DEFAULT = CombinationConfig()
# CombinationConfig option -> its flag (error messages name the flag).
_FLAGS = {"num_impressions": "--impressions", "num_days": "--days", "test_days": "--test-days",
          "num_users": "--users", "num_ads": "--ads", "element_churn": "--churn", "target_ctr": "--target-ctr",
          "seed": "--seed", "train_shards": "--shards", "chunk_size": "--chunk-size"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulator.combinations",
        description="Simulate a multi-component creative log (GenCO, Gu et al., 2025) with ground truth: "
                    "production-logged training days, uniform-logged test days.")
    p.add_argument("--out", required=True, help="output directory (train/, eval/, summary.json, world.npz)")
    p.add_argument("--impressions", type=int, default=_DEFAULT.num_impressions)
    p.add_argument("--days", type=int, default=_DEFAULT.num_days)
    p.add_argument("--test-days", type=int, default=_DEFAULT.test_days, help="uniform-logged last days")
    p.add_argument("--users", type=int, default=None, help="users (default: impressions / 20)")
    p.add_argument("--ads", type=int, default=None, help="ads (default: impressions / 60)")
    p.add_argument("--churn", type=float, default=_DEFAULT.element_churn, help="daily element replacement rate")
    p.add_argument("--target-ctr", type=float, default=_DEFAULT.target_ctr)
    p.add_argument("--seed", type=int, default=_DEFAULT.seed)
    p.add_argument("--shards", type=int, default=_DEFAULT.train_shards, help="files of the train split")
    p.add_argument("--chunk-size", type=int, default=_DEFAULT.chunk_size)
    p.add_argument("--force", action="store_true", help="replace a non-empty --out once the new data is complete")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = CombinationConfig(
        num_impressions=args.impressions, num_days=args.days, test_days=args.test_days, num_users=args.users,
        num_ads=args.ads, element_churn=args.churn, target_ctr=args.target_ctr, seed=args.seed,
        train_shards=args.shards, chunk_size=args.chunk_size)
    try:
        summary = simulate_combinations(config, args.out, progress=not args.quiet, force=args.force)
    except (ValueError, OutputExistsError) as e:
        parser.exit(2, f"error: {with_flag(str(e), _FLAGS)}\n")
    print(f"wrote {args.out}")
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
