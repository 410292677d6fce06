"""Writes a simulated GenCO log: production-logged training days, then uniform-logged test days, as TFRecords.

Layout of ``out_dir`` (the same as the single-creative simulator's, so the same ExampleGen input config reads
it)::

    train/data-*.tfrecord       days 0 .. num_days - test_days - 1, production logging policy
    eval/data-*.tfrecord        the last test_days days, uniform random logging policy
    summary.json                sizes, Table-1-style pool statistics, CTRs, truth values, options
    world.npz                   the entity tables (simulator.combinations.world)

Every row has every column of ``features.GENCO_FEATURES``. The directory is written aside and renamed into
place when complete (:func:`simulator.generate.write_dataset`).
"""

from __future__ import annotations

import os
import time
from typing import Dict

import numpy as np

import features as F
from simulator.arrays import sigmoid
from simulator.combinations import traffic
from simulator.combinations import truth as T
from simulator.combinations.build import build_world
from simulator.combinations.config import CombinationConfig
from simulator.combinations.world import M, CombinationWorld
from simulator.generate import WORLD_FILE, write_dataset
from simulator.tfrecord import Column, ShardedWriter, encode_tfrecords


def _ragged(padded: np.ndarray, real: np.ndarray) -> Column:
    """[n, N] padded rows -> (flat values of the real entries in row order, per-row lengths)."""
    return padded[real], real.sum(axis=1)


def to_columns(world: CombinationWorld, day: int, batch: traffic.CombinationBatch, clicks: np.ndarray,
               first_request_id: int) -> Dict[str, Column]:
    """The log columns of ``batch`` keyed by feature name (every name of ``features.GENCO_FEATURES``)."""
    n = len(batch.user)
    real = batch.elements >= 0
    ids = world.element_ids(batch.elements)
    oracle, _ = T.best_combination(batch.base, batch.element_logits, batch.styles, batch.pair_logits)
    cols: Dict[str, Column] = {
        F.REQUEST_ID: (np.arange(n, dtype=np.int64) + first_request_id, None),
        F.DAY: (np.full(n, day, np.int64), None),
        F.USER_ID: (batch.user + 1, None),
        F.USER_GENDER: (world.user_gender[batch.user], None),
        F.USER_AGE_BUCKET: (world.user_age[batch.user], None),
        F.AD_ID: (batch.ad + 1, None),
        F.AD_CATEGORY: (world.ad_category[batch.ad], None),
        F.GENCO_PROPENSITY: (batch.propensity.prod(axis=1).astype(np.float32), None),
        F.CLICK: (clicks.astype(np.int64), None),
        F.GENCO_TRUTH_CTR: (sigmoid(batch.exposed_logit).astype(np.float32), None),
        F.GENCO_TRUTH_ORACLE_CTR: (sigmoid(oracle).astype(np.float32), None),
        F.GENCO_TRUTH_BASE_LOGIT: (batch.base.astype(np.float32), None),
        F.GENCO_TRUTH_PAIR_LOGITS: (batch.pair_logits.astype(np.float32).ravel(),
                                    np.full(n, batch.pair_logits.shape[1])),
    }
    for j, c in enumerate(F.GENCO_COMPONENTS):
        cols[F.GENCO_CAND_IDS[c]] = _ragged(ids[:, j], real[:, j])
        cols[F.GENCO_CAND_STYLES[c]] = _ragged(batch.styles[:, j], real[:, j])
        cols[F.GENCO_TRUTH_LOGITS[c]] = _ragged(batch.element_logits[:, j].astype(np.float32), real[:, j])
        cols[F.GENCO_EXPOSED[c]] = (batch.exposed[:, j], None)
        cols[F.GENCO_COMPONENT_PROPENSITY[c]] = (batch.propensity[:, j].astype(np.float32), None)
    missing = set(F.GENCO_BY_NAME) - set(cols)
    assert not missing, missing
    return cols


class _SplitStats:
    """Running totals of one split: CTR, truth values, and per-component exposures of distinct elements."""

    def __init__(self, world: CombinationWorld):
        self.rows = self.clicks = 0
        self.truth = {"logged": 0.0, "oracle": 0.0, "component_best": 0.0}
        self.differs = 0  # rows whose best combination is not the per-component bests
        self.exposures = {c: np.zeros(world.components[c].num_elements, np.int64) for c in F.GENCO_COMPONENTS}

    def add(self, batch: traffic.CombinationBatch, clicks: np.ndarray) -> None:
        args = (batch.base, batch.element_logits, batch.styles, batch.pair_logits)
        oracle_logit, oracle = T.best_combination(*args)
        best_each = T.component_argmax(batch.element_logits, batch.styles)
        self.rows += len(clicks)
        self.clicks += int(clicks.sum())
        self.truth["logged"] += float(sigmoid(batch.exposed_logit).sum())
        self.truth["oracle"] += float(sigmoid(oracle_logit).sum())
        self.truth["component_best"] += float(T.combination_ctr(*args, best_each).sum())
        self.differs += int((T.combination_logit(*args, best_each) < oracle_logit - 1e-9).sum())
        for j, c in enumerate(F.GENCO_COMPONENTS):
            shown = batch.exposed[:, j] >= 0
            element = batch.elements[shown, j, batch.exposed[shown, j]]
            self.exposures[c] += np.bincount(element, minlength=len(self.exposures[c]))

    def summary(self, days: int) -> dict:
        n = max(self.rows, 1)
        return {
            "impressions": self.rows, "clicks": self.clicks, "ctr": self.clicks / n,
            "expected_ctr_logged": self.truth["logged"] / n, "expected_ctr_oracle": self.truth["oracle"] / n,
            "expected_ctr_component_best": self.truth["component_best"] / n,
            "oracle_differs_from_component_best": self.differs / n,
            "exposures_per_element_per_day": {
                c: float(e.sum() / max((e > 0).sum(), 1) / days) for c, e in self.exposures.items()},
        }


def _pool_statistics(world: CombinationWorld) -> dict:
    """Table-1-style statistics of the pools: coverage, mean candidates of the ads with the component, ids."""
    out = {}
    for c in F.GENCO_COMPONENTS:
        size = world.components[c].pool_size
        out[c] = {"coverage": float((size > 0).mean()),
                  "mean_candidates": float(size[size > 0].mean()) if (size > 0).any() else 0.0,
                  "ids": world.components[c].num_elements}
    return out


def _day_sizes(config: CombinationConfig):
    return [len(part) for part in np.array_split(np.arange(config.num_impressions), config.num_days)]


def simulate_combinations(config: CombinationConfig, out_dir: str, progress: bool = True,
                          force: bool = False) -> dict:
    """Simulates ``config`` into ``out_dir`` (see the module docstring); returns the summary.

    Raises ``ValueError`` for invalid options and ``simulator.OutputExistsError`` for a non-empty ``out_dir``
    without ``force``, before anything is written.
    """
    config = config.validate().resolved()
    started = time.perf_counter()
    return write_dataset(out_dir, force, lambda tmp: _generate(config, tmp, progress, started))


def _generate(config: CombinationConfig, out_dir: str, progress: bool, started: float) -> dict:
    world = build_world(config)
    first_test_day = config.num_days - config.test_days
    splits = {F.TRAIN_SPLIT: (config.train_shards, traffic.PRODUCTION),
              F.EVAL_SPLIT: (config.eval_shards, traffic.UNIFORM)}
    writers = {s: ShardedWriter(os.path.join(out_dir, s), shards) for s, (shards, _) in splits.items()}
    stats = {s: _SplitStats(world) for s in splits}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.num_impressions, unit="imp", unit_scale=True, desc="simulating")
    next_id = 1
    try:
        for day, size in enumerate(_day_sizes(config)):
            split = F.EVAL_SPLIT if day >= first_test_day else F.TRAIN_SPLIT
            for chunk, first in enumerate(range(0, size, config.chunk_size)):
                n = min(config.chunk_size, size - first)
                rng = np.random.default_rng([config.seed, 102, day, chunk])
                batch = traffic.draw_impressions(world, day, rng, n, splits[split][1])
                clicks = (rng.random(n) < sigmoid(batch.exposed_logit)).astype(np.int64)
                writers[split].write(*encode_tfrecords(to_columns(world, day, batch, clicks, next_id),
                                                       F.GENCO_FEATURES))
                stats[split].add(batch, clicks)
                next_id += n
                if bar is not None:
                    bar.update(n)
    finally:
        for writer in writers.values():
            writer.close()
        if bar is not None:
            bar.close()
    world.save(os.path.join(out_dir, WORLD_FILE))
    elapsed = time.perf_counter() - started
    return {
        "seed": config.seed, "options": config.to_dict(), "global_bias": world.bias,
        "sizes": {"users": world.num_users, "ads": world.num_ads, "days": config.num_days,
                  "train_days": first_test_day, "test_days": config.test_days, "components": M},
        "pools": _pool_statistics(world),
        F.TRAIN_SPLIT: stats[F.TRAIN_SPLIT].summary(first_test_day),
        F.EVAL_SPLIT: stats[F.EVAL_SPLIT].summary(config.test_days),
        "seconds": elapsed, "impressions_per_second": config.num_impressions / max(elapsed, 1e-9),
    }


def format_summary(summary: dict) -> str:
    """A few human-readable lines of a summary."""
    train, test = summary[F.TRAIN_SPLIT], summary[F.EVAL_SPLIT]
    pools = summary["pools"]
    lines = [
        f"impressions: train {train['impressions']:,} (production policy, CTR {train['ctr']:.4f}), "
        f"test {test['impressions']:,} (uniform policy, CTR {test['ctr']:.4f})",
        "component            coverage  mean candidates  ids      exposures/element/day (train)",
    ]
    for c in F.GENCO_COMPONENTS:
        lines.append(f"{c:<20} {pools[c]['coverage']:8.1%}  {pools[c]['mean_candidates']:15.2f}  "
                     f"{pools[c]['ids']:<8,} {train['exposures_per_element_per_day'][c]:.2f}")
    lines.append(f"test true CTR: uniform {test['expected_ctr_logged']:.4f}, per-component bests "
                 f"{test['expected_ctr_component_best']:.4f}, oracle {test['expected_ctr_oracle']:.4f} "
                 f"(oracle differs from the per-component bests on {test['oracle_differs_from_component_best']:.0%} "
                 f"of impressions)")
    lines.append(f"{summary['seconds']:.1f} s")
    return "\n".join(lines)
