"""Command line: ``python -m simulator.cli --out DIR [options]`` (also installed as ``adcr-simulate``)."""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional, Sequence

from simulator.config import LOGGING_POLICIES, SimulatorConfig
from simulator.generate import OutputExistsError, format_summary, simulate

_DEFAULT = SimulatorConfig()

# The world's effects and live days: (flag, SimulatorConfig option, type, help).
_WORLD_FLAGS = (
    ("--relevance-style-scale", "relevance_style_scale", float, "ad relevance x creative style effect; 0 removes it"),
    ("--creative-count-quality", "creative_count_quality", float,
     "ad quality per std of the log creative count; 0 removes it"),
    ("--bid-mean", "bid_mean", float, "mean CPC bid, the revenue of a click"),
    ("--bid-std", "bid_std", float, "log-normal spread of the bids; 0: every ad bids --bid-mean"),
    ("--live-days", "live_days", int, "days of the world after the logged ones, for online experiments"),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulator.cli",
        description="Simulate an ad & creative impression log (TFRecords of tf.Example) with ground truth.")
    p.add_argument("--out", required=True, help="output directory (train/, eval/, summary.json, world.npz)")
    p.add_argument("--impressions", type=int, default=_DEFAULT.num_impressions,
                   help="total impressions over all days (default %(default)s)")
    p.add_argument("--days", type=int, default=_DEFAULT.num_days,
                   help="days of traffic; the last one is the eval split (default %(default)s)")
    p.add_argument("--users", type=int, default=None, help="users (default: impressions / 10)")
    p.add_argument("--ads", type=int, default=None, help="ads (default: impressions / 40)")
    p.add_argument("--advertisers", type=int, default=None, help="advertisers (default: ads / 5)")
    p.add_argument("--min-creatives", type=int, default=_DEFAULT.min_creatives,
                   help="fewest creatives per ad (default %(default)s)")
    p.add_argument("--mean-creatives", type=float, default=_DEFAULT.mean_creatives,
                   help="mean creative tracks per ad (default %(default)s)")
    p.add_argument("--max-creatives", type=int, default=_DEFAULT.max_creatives,
                   help="most creatives per ad (default %(default)s)")
    p.add_argument("--churn", type=float, default=_DEFAULT.creative_churn,
                   help="daily probability a creative is replaced (default %(default)s)")
    p.add_argument("--ads-per-request", type=int, default=_DEFAULT.ads_per_request,
                   help="M, candidate ads per request (default %(default)s)")
    p.add_argument("--slots", type=int, default=_DEFAULT.slots,
                   help="L, ads shown per request (default %(default)s)")
    p.add_argument("--policy", default=_DEFAULT.logging_policy,
                   help=f"logging creative policy: {', '.join(LOGGING_POLICIES)} (default %(default)s)")
    p.add_argument("--epsilon", type=float, default=_DEFAULT.epsilon,
                   help="exploration rate of epsilon_greedy (default %(default)s)")
    p.add_argument("--target-ctr", type=float, default=_DEFAULT.target_ctr,
                   help="logged CTR the global bias is calibrated to (default %(default)s)")
    for flag, option, kind, text in _WORLD_FLAGS:
        p.add_argument(flag, type=kind, default=getattr(_DEFAULT, option), help=f"{text} (default %(default)s)")
    p.add_argument("--seed", type=int, default=_DEFAULT.seed, help="random seed (default %(default)s)")
    p.add_argument("--shards", type=int, default=_DEFAULT.train_shards,
                   help="files of the train split (default %(default)s)")
    p.add_argument("--eval-shards", type=int, default=_DEFAULT.eval_shards,
                   help="files of the eval split (default %(default)s)")
    p.add_argument("--chunk-size", type=int, default=_DEFAULT.chunk_size,
                   help="impressions generated at a time (default %(default)s)")
    p.add_argument("--no-world", action="store_true", help="do not write world.npz")
    p.add_argument("--force", action="store_true",
                   help="replace a non-empty --out (only after the new data is complete)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        num_impressions=args.impressions, num_days=args.days, num_users=args.users, num_ads=args.ads,
        num_advertisers=args.advertisers, min_creatives=args.min_creatives,
        mean_creatives=args.mean_creatives, max_creatives=args.max_creatives, creative_churn=args.churn,
        ads_per_request=args.ads_per_request, slots=args.slots, logging_policy=args.policy,
        epsilon=args.epsilon, target_ctr=args.target_ctr, seed=args.seed, train_shards=args.shards,
        eval_shards=args.eval_shards, chunk_size=args.chunk_size, write_world=not args.no_world,
        **{option: getattr(args, option) for _, option, _, _ in _WORLD_FLAGS})


# SimulatorConfig option -> the flag that sets it, to name the flag in error messages.
_FLAG_OF = {
    "num_impressions": "--impressions", "num_days": "--days", "num_users": "--users", "num_ads": "--ads",
    "num_advertisers": "--advertisers", "min_creatives": "--min-creatives",
    "mean_creatives": "--mean-creatives", "max_creatives": "--max-creatives", "creative_churn": "--churn",
    "ads_per_request": "--ads-per-request", "slots": "--slots", "logging_policy": "--policy",
    "epsilon": "--epsilon", "target_ctr": "--target-ctr", "seed": "--seed", "train_shards": "--shards",
    "eval_shards": "--eval-shards", "chunk_size": "--chunk-size", "out_dir": "--out",
    **{option: flag for flag, option, _, _ in _WORLD_FLAGS},
}


def command_for(config: SimulatorConfig, out_dir: str) -> List[str]:
    """The ``python -m simulator.cli`` arguments that write ``config``'s log to ``out_dir`` (options left at
    their defaults are not spelled out). Raises ``ValueError`` for an option the command line cannot set."""
    args = ["--out", out_dir]
    for option, value in config.to_dict().items():
        if value == getattr(_DEFAULT, option):
            continue
        if option == "write_world":
            args.append("--no-world")
            continue
        flag = _FLAG_OF.get(option)
        if flag is None:
            raise ValueError(f"SimulatorConfig.{option}: the command line has no flag for it")
        args += [flag, str(value)]
    return args


def with_flag(message: str, flag_of: Optional[Dict[str, str]] = None) -> str:
    """A config error (``"<Config>.<option>[index]: problem"``) prefixed with the flag that sets ``option``
    (``flag_of``: option -> flag, default this CLI's)."""
    option = message.split(":", 1)[0].rsplit(".", 1)[-1].split("[", 1)[0]
    flag = (_FLAG_OF if flag_of is None else flag_of).get(option)
    return f"{flag} ({message})" if flag else message


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args).validate()
        summary = simulate(config, args.out, progress=not args.quiet, force=args.force)
    except (ValueError, OutputExistsError) as e:
        parser.exit(2, f"error: {with_flag(str(e))}\n")
    print(f"wrote {args.out}")
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
