"""Writes a simulated impression log: training days then one evaluation day, as sharded TFRecords.

Layout of ``out_dir`` (each split in its own folder, so ImportExampleGen's input config can point at
``train/*`` and ``eval/*``)::

    train/data-00000-of-00004.tfrecord ...   days 0 .. num_days-2
    eval/data-00000-of-00001.tfrecord        the last day
    summary.json                             sizes, CTR, candidates, sparsity, spread, options
    world.npz                                entity tables and end state (optional; see simulator.world)

Everything is written into a temporary sibling directory that is renamed onto ``out_dir`` only when
complete, so an interrupted run never leaves a split that looks whole and never destroys existing data.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Callable, Dict

import numpy as np

import features as F
from simulator import traffic
from simulator.arrays import sigmoid
from simulator.build import build_world
from simulator.config import EPSILON_GREEDY, SimulatorConfig
from simulator.tfrecord import ShardedWriter, encode_tfrecords
from simulator.world import World

SUMMARY_FILE = "summary.json"
WORLD_FILE = "world.npz"


class OutputExistsError(FileExistsError):
    """The output directory already holds data and overwriting was not requested."""


class _SplitStats:
    """Running totals of one split: a few scalars plus per-creative (and per creative-day) sums.

    Two within-ad spreads of the true CTR (best / worst - 1 among an ad's candidates):

    * ``within_ad_spread``: per impression (the spread this user sees), averaged over impressions with
      at least 2 candidates;
    * ``within_ad_spread_by_ad``: per (ad, day), from each candidate's true CTR averaged over the
      impressions of that ad that day, averaged over (ad, day) pairs with at least 2 candidates.
    """

    def __init__(self, num_creatives: int, creative_ad: np.ndarray = None, num_days: int = 1):
        self.creative_ad = creative_ad
        self.num_days = num_days
        self.cand_ctr_sum = np.zeros(num_creatives * num_days)
        self.cand_count = np.zeros(num_creatives * num_days, np.int64)
        self.impressions = 0
        self.requests = 0
        self.clicks = 0
        self.truth_logged = 0.0
        self.revenue = 0.0
        self.expected_revenue = 0.0
        self.truth_oracle = 0.0
        self.truth_random = 0.0
        self.candidates = 0
        self.spread_sum = 0.0
        self.spread_count = 0
        self.greedy = 0
        self.creative_imps = np.zeros(num_creatives, np.int64)

    def add(self, batch: traffic.ImpressionBatch, clicks: np.ndarray, truth: np.ndarray, day: int,
            bids: np.ndarray) -> None:
        ptr = batch.cand_ptr
        cand_ctr = sigmoid(batch.cand_logit)
        best = np.maximum.reduceat(cand_ctr, ptr[:-1])
        worst = np.minimum.reduceat(cand_ctr, ptr[:-1])
        multi = batch.num_candidates >= 2
        self.impressions += len(clicks)
        self.requests += len(np.unique(batch.request))
        self.clicks += int(clicks.sum())
        self.truth_logged += float(truth.sum())
        self.revenue += float(np.dot(clicks, bids))  # a click earns the ad's bid
        self.expected_revenue += float(np.dot(truth, bids))
        self.truth_oracle += float(best.sum())
        self.truth_random += float((np.add.reduceat(cand_ctr, ptr[:-1]) / batch.num_candidates).sum())
        self.candidates += int(batch.num_candidates.sum())
        self.spread_sum += float((best[multi] / worst[multi] - 1.0).sum())
        self.spread_count += int(multi.sum())
        if batch.greedy_index is not None:
            self.greedy += int((batch.exposed_index == batch.greedy_index).sum())
        self.creative_imps += np.bincount(batch.exposed_creative, minlength=len(self.creative_imps))
        key = batch.cand_creative * self.num_days + day
        self.cand_ctr_sum += np.bincount(key, weights=cand_ctr, minlength=len(self.cand_ctr_sum))
        self.cand_count += np.bincount(key, minlength=len(self.cand_count))

    def merged(self, other: "_SplitStats") -> "_SplitStats":
        out = _SplitStats(len(self.creative_imps), self.creative_ad, self.num_days)
        for key, value in vars(self).items():
            if key not in ("creative_ad", "num_days"):
                setattr(out, key, value + getattr(other, key))
        return out

    def spread_by_ad(self) -> float:
        seen = np.flatnonzero(self.cand_count)
        if self.creative_ad is None or not len(seen):
            return 0.0
        mean = self.cand_ctr_sum[seen] / self.cand_count[seen]
        group = self.creative_ad[seen // self.num_days] * self.num_days + seen % self.num_days
        uniq, inverse, size = np.unique(group, return_inverse=True, return_counts=True)
        best = np.full(len(uniq), -np.inf)
        worst = np.full(len(uniq), np.inf)
        np.maximum.at(best, inverse, mean)
        np.minimum.at(worst, inverse, mean)
        multi = size >= 2
        return float((best[multi] / worst[multi] - 1.0).mean()) if multi.any() else 0.0

    def summary(self) -> Dict[str, float]:
        n = max(self.impressions, 1)
        exposed = int((self.creative_imps > 0).sum())
        out = {
            "impressions": self.impressions,
            "requests": self.requests,
            "clicks": self.clicks,
            "ctr": self.clicks / n,
            "expected_ctr_logged": self.truth_logged / n,
            "expected_ctr_oracle": self.truth_oracle / n,
            "expected_ctr_random": self.truth_random / n,
            "rpm": 1000.0 * self.revenue / max(self.requests, 1),
            "expected_rpm": 1000.0 * self.expected_revenue / max(self.requests, 1),
            "mean_candidates": self.candidates / n,
            "creatives_exposed": exposed,
            "mean_impressions_per_creative": self.impressions / max(exposed, 1),
            "within_ad_spread": self.spread_sum / max(self.spread_count, 1),
            "within_ad_spread_by_ad": self.spread_by_ad(),
        }
        if self.greedy:
            out["greedy_share"] = self.greedy / n
        return out


def _day_sizes(config: SimulatorConfig):
    return [len(part) for part in np.array_split(np.arange(config.num_impressions), config.num_days)]


def _directory_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _check_target(out_dir: str, force: bool) -> None:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExistsError(f"out_dir: {out_dir} exists and is not a directory")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise OutputExistsError(f"out_dir: {out_dir} already exists and is not empty; pass force=True "
                                f"(--force) to replace it once the new data is complete")


def simulate(config: SimulatorConfig, out_dir: str, progress: bool = True, force: bool = False) -> dict:
    """Simulates ``config`` and writes the log to ``out_dir``; returns the summary (also ``summary.json``).

    Raises ``ValueError`` for invalid options and :class:`OutputExistsError` for a non-empty ``out_dir``
    without ``force`` — both before anything is written.
    """
    config = config.validate().resolved()
    started = time.perf_counter()
    return write_dataset(out_dir, force, lambda tmp: _generate(config, tmp, progress, started))


def write_dataset(out_dir: str, force: bool, generate: Callable[[str], dict]) -> dict:
    """Runs ``generate(directory) -> summary`` into a temporary sibling of ``out_dir``, adds the list of split
    files to the summary, writes it as ``summary.json`` and renames the directory onto ``out_dir``.

    Raises :class:`OutputExistsError` for a non-empty ``out_dir`` without ``force`` before anything is
    written; on any failure the temporary directory is removed and ``out_dir`` is left as it was.
    """
    out_dir = os.path.abspath(out_dir)
    _check_target(out_dir, force)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)

    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    os.chmod(tmp, _directory_mode())  # mkdtemp makes it private; the data is meant to be shared
    try:
        summary = generate(tmp)
        summary["files"] = {split: sorted(f"{split}/{name}" for name in os.listdir(os.path.join(tmp, split)))
                            for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT)}
        with open(os.path.join(tmp, SUMMARY_FILE), "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)
        _check_target(out_dir, force)  # someone may have written there meanwhile
        if os.path.isdir(out_dir) and os.listdir(out_dir):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=parent)
            os.rename(out_dir, os.path.join(old, "data"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if os.path.isdir(out_dir):
                os.rmdir(out_dir)
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _generate(config: SimulatorConfig, out_dir: str, progress: bool, started: float) -> dict:
    world = build_world(config)
    day_sizes = _day_sizes(config)
    stats = {split: _SplitStats(world.num_creatives, world.creative_ad, config.num_days)
             for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT)}
    writers = {F.TRAIN_SPLIT: ShardedWriter(os.path.join(out_dir, F.TRAIN_SPLIT), config.train_shards),
               F.EVAL_SPLIT: ShardedWriter(os.path.join(out_dir, F.EVAL_SPLIT), config.eval_shards)}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.num_impressions, unit="imp", unit_scale=True, desc="simulating")
    chunk_requests = max(1, config.chunk_size // config.slots)
    next_request_id = 1
    try:
        for day, day_imps in enumerate(day_sizes):
            split = F.EVAL_SPLIT if day == config.num_days - 1 else F.TRAIN_SPLIT
            view = world.day_view(day)
            day_requests = -(-day_imps // config.slots)
            day_users, day_ads, day_clicks = [], [], []
            for chunk, first in enumerate(range(0, day_requests, chunk_requests)):
                num_requests = min(chunk_requests, day_requests - first)
                max_imps = day_imps - first * config.slots
                rng = np.random.default_rng([config.seed, 2, day, chunk])
                batch = traffic.draw_impressions(world, view, rng, num_requests, max_imps)
                truth = sigmoid(batch.exposed_logit)
                clicks = (rng.random(len(truth)) < truth).astype(np.int64)
                columns = traffic.to_columns(world, view, batch, clicks, next_request_id)
                buffer, bounds = encode_tfrecords(columns)
                writers[split].write(buffer, bounds)
                stats[split].add(batch, clicks, truth, day, world.ad_bid[batch.ad])
                day_users.append(batch.user)
                day_ads.append(batch.ad)
                day_clicks.append(clicks)
                next_request_id += num_requests
                if bar is not None:
                    bar.update(len(clicks))
            world.end_day(np.concatenate(day_users), np.concatenate(day_ads), np.concatenate(day_clicks))
    finally:
        for writer in writers.values():
            writer.close()
        if bar is not None:
            bar.close()
    if config.write_world:
        world.save(os.path.join(out_dir, WORLD_FILE))
    elapsed = time.perf_counter() - started
    return _summary(config, world, stats, elapsed)


def _summary(config: SimulatorConfig, world: World, stats: Dict[str, _SplitStats], elapsed: float) -> dict:
    total = stats[F.TRAIN_SPLIT].merged(stats[F.EVAL_SPLIT])
    overall = total.summary()
    active_per_day = [(world.track_day_creative[:, d] >= 0).sum() / world.num_ads for d in range(config.num_days)]
    summary = {
        "seed": config.seed,
        "options": config.to_dict(),
        "sizes": {
            "users": world.num_users,
            "ads": world.num_ads,
            "advertisers": config.num_advertisers,
            "creatives": world.num_creatives,
            "days": config.num_days,
            "train_days": config.num_days - 1,
            "live_days": config.live_days,
            "mean_active_creatives_per_ad": float(np.mean(active_per_day)),
            "max_creatives_per_ad": int(world.ad_num_tracks.max()),
        },
        "global_bias": world.bias,
        "overall": overall,
        F.TRAIN_SPLIT: stats[F.TRAIN_SPLIT].summary(),
        F.EVAL_SPLIT: stats[F.EVAL_SPLIT].summary(),
        "seconds": elapsed,
        "impressions_per_second": config.num_impressions / max(elapsed, 1e-9),
    }
    if config.logging_policy == EPSILON_GREEDY:
        summary["overall"].setdefault("greedy_share", 0.0)
    return summary


def format_summary(summary: dict) -> str:
    """A few human-readable lines of a summary."""
    o, s = summary["overall"], summary["sizes"]
    lines = [
        f"impressions {o['impressions']:,} (train {summary[F.TRAIN_SPLIT]['impressions']:,}, "
        f"eval {summary[F.EVAL_SPLIT]['impressions']:,}) over {s['days']} days, {o['requests']:,} requests",
        f"users {s['users']:,}  ads {s['ads']:,}  creatives {s['creatives']:,} "
        f"(exposed {o['creatives_exposed']:,})",
        f"CTR {o['ctr']:.4f} (target {summary['options']['target_ctr']})  "
        f"candidates/impression {o['mean_candidates']:.2f}  "
        f"impressions/creative {o['mean_impressions_per_creative']:.2f}",
        f"within-ad best/worst true CTR {1 + o['within_ad_spread']:.2f}x per impression, "
        f"{1 + o['within_ad_spread_by_ad']:.2f}x per ad",
        f"expected CTR: logged {o['expected_ctr_logged']:.4f}, oracle {o['expected_ctr_oracle']:.4f}, "
        f"random {o['expected_ctr_random']:.4f}",
        f"RPM {o['rpm']:.2f} (expected {o['expected_rpm']:.2f}; a click earns the ad's bid)",
        f"{summary['seconds']:.1f} s ({summary['impressions_per_second']:,.0f} impressions/s)",
    ]
    return "\n".join(lines)
