"""The online A/B test: the simulated world as a live environment, days of requests through the router.

For each live day:

1. the day's requests are drawn from the world's current state (:func:`simulator.live.draw_requests`: a
   user, M candidate ads with every active creative and their bids);
2. each goes to an arm by a hash of its user id (:func:`assign_arms`: a user stays in one arm on every day,
   as online A/B tests assign), and all arms draw from the same days and the same user population;
3. it is sent with the arm's router mode to the arm's deployment (:mod:`experiments.deployments`), which
   answers the top-L ads, each with its creative;
4. each shown impression's click is drawn from its true CTR in its page slot; a click earns the ad's bid;
5. each arm's impressions of the day are written in the training format
   (``<log_dir>/day-<d>/<arm>/data-00000-of-00001.tfrecord``, every column of ``features.FEATURES``, the
   serving policy's propensity: 1 for a model's top-1, ``1/N`` for ``no-cr``'s random creative), so an arm
   that learns online can retrain on its days through the pipeline (:func:`training_data` lays them out as
   the pipeline's ``train/`` and ``eval/``);
6. the day's impressions and clicks are folded into the world (:meth:`simulator.World.end_day`): ad history
   and behaviour sequences move on, as production's would.

:func:`run` returns one :class:`Traffic` entry per request; :mod:`experiments.stats` turns it into metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import orjson

import features as F
from experiments.config import Arm
from serving.router.core import SOURCE_RANDOM
from serving.router.request import MODE
from simulator import live, traffic
from simulator.tfrecord import ShardedWriter, encode_tfrecords
from simulator.world import World

# Streams of the harness's randomness: a day's requests, and its clicks.
_REQUESTS_STREAM, _CLICKS_STREAM = 30, 31


def assign_arms(user_ids: np.ndarray, num_arms: int, salt: str) -> np.ndarray:
    """The arm (``0 .. num_arms - 1``) of each user id: a 64-bit mix (splitmix64's finaliser) of the id and
    a hash of ``salt``, modulo the arms -- stable across days, runs and machines, about equal shares."""
    key = np.uint64(int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little"))
    x = np.asarray(user_ids).astype(np.uint64) ^ key
    with np.errstate(over="ignore"):  # the mix multiplies modulo 2**64 on purpose
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(num_arms)).astype(np.int64)


@dataclasses.dataclass
class Traffic:
    """What every request of an A/B test got: one entry per request (arrays), arms by index into ``labels``.

    ``expected_clicks`` / ``expected_revenue`` sum the true click probability (times the bid) of what was
    shown: the outcome without the click noise, which only a simulator knows. ``rt_ms`` is the router's own
    response time (its ``timing_ms.total``), ``roundtrip_ms`` the call as the harness saw it; ``failed``:
    the router answered an error (nothing shown). ``seconds``: the loop's wall time, ``rank_seconds`` the
    part spent waiting for the router.
    """

    labels: Sequence[str]
    arm: np.ndarray
    user: np.ndarray
    day: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    expected_clicks: np.ndarray
    revenue: np.ndarray
    expected_revenue: np.ndarray
    rt_ms: np.ndarray
    roundtrip_ms: np.ndarray
    degraded: np.ndarray
    failed: np.ndarray
    seconds: float = 0.0
    rank_seconds: float = 0.0

    @classmethod
    def concat(cls, parts: Sequence["Traffic"]) -> "Traffic":
        fields = [f.name for f in dataclasses.fields(cls) if f.name not in ("labels", "seconds", "rank_seconds")]
        return cls(parts[0].labels, **{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields},
                   seconds=sum(p.seconds for p in parts), rank_seconds=sum(p.rank_seconds for p in parts))

    @property
    def harness_ms_per_request(self) -> float:
        """The harness's own time per request (drawing, encoding, clicks, logging): the loop minus the router."""
        return 1e3 * (self.seconds - self.rank_seconds) / max(len(self.arm), 1)


def run_day(world: World, day: int, arms: Sequence[Arm], deployments: Mapping[str, object],
            num_requests: int, seed: int, salt: str, log_dir: Optional[str] = None) -> Traffic:
    """One live day of the A/B test (steps 1-6 of the module docstring)."""
    started = time.perf_counter()
    batch = live.draw_requests(world, day, np.random.default_rng([seed, _REQUESTS_STREAM, day]), num_requests)
    arm_of = assign_arms(batch.users + 1, len(arms), salt)
    m = batch.ads_per_request
    shown = {k: [] for k in ("request", "ad", "creative", "slot", "propensity")}
    rt, roundtrip = np.full(num_requests, np.nan), np.full(num_requests, np.nan)
    degraded, failed = np.zeros(num_requests, bool), np.zeros(num_requests, bool)
    rank_seconds = 0.0
    for r in range(num_requests):
        arm = arms[arm_of[r]]
        body = orjson.dumps({**batch.request(r, request_id=f"d{day}-{r + 1}"), MODE: arm.mode})
        t0 = time.perf_counter()
        try:
            response, roundtrip[r] = deployments[arm.label].rank(body)
        except Exception:  # the arm failed this request: it showed nothing (counted, reported)
            failed[r] = True
            continue
        finally:
            rank_seconds += time.perf_counter() - t0
        rt[r] = response["timing_ms"]["total"]
        degraded[r] = response["degraded"]
        ad_ids = batch.ads[r] + 1
        for slot, ad in enumerate(response["ads"]):
            j = int(np.searchsorted(ad_ids, ad["ad_id"]))
            lo, hi = batch.ptr[r * m + j], batch.ptr[r * m + j + 1]
            k = int(np.flatnonzero(batch.creatives[lo:hi] + 1 == ad["creative_id"])[0])
            shown["request"].append(r)
            shown["ad"].append(j)
            shown["creative"].append(k)
            shown["slot"].append(slot)
            shown["propensity"].append(1.0 / (hi - lo) if ad["creative_source"] == SOURCE_RANDOM else 1.0)
    shown = {k: np.asarray(v, np.float64 if k == "propensity" else np.int64) for k, v in shown.items()}
    p = batch.true_ctr(shown["request"], shown["ad"], shown["creative"], shown["slot"])
    clicks = (np.random.default_rng([seed, _CLICKS_STREAM, day]).random(len(p)) < p).astype(np.int64)
    ads = batch.ads[shown["request"], shown["ad"]]
    bids = world.ad_bid[ads]
    if log_dir is not None:
        _write_logs(batch, shown, clicks, arm_of, arms, day, num_requests, log_dir)
    world.end_day(batch.users[shown["request"]], ads, clicks)

    def per_request(values):
        return np.bincount(shown["request"], weights=values, minlength=num_requests)

    return Traffic(labels=[a.label for a in arms], arm=arm_of, user=batch.users + 1, day=np.full(num_requests, day),
                   impressions=per_request(np.ones(len(p))), clicks=per_request(clicks),
                   expected_clicks=per_request(p), revenue=per_request(clicks * bids),
                   expected_revenue=per_request(p * bids), rt_ms=rt, roundtrip_ms=roundtrip, degraded=degraded,
                   failed=failed, seconds=time.perf_counter() - started, rank_seconds=rank_seconds)


def _write_logs(batch, shown, clicks, arm_of, arms, day, num_requests, log_dir) -> None:
    """Each arm's impressions of the day as TFRecords of every ``features.FEATURES`` column."""
    arm_of_impression = arm_of[shown["request"]]
    for index, arm in enumerate(arms):
        mask = arm_of_impression == index
        if not mask.any():
            continue
        impressions = batch.impressions(*(shown[k][mask] for k in ("request", "ad", "creative", "slot",
                                                                  "propensity")))
        columns = traffic.to_columns(batch.world, batch.view, impressions, clicks[mask],
                                     first_request_id=day * num_requests + 1)
        with ShardedWriter(day_log_dir(log_dir, day, arm.label), 1) as writer:
            writer.write(*encode_tfrecords(columns))


def day_log_dir(log_dir: str, day: int, arm: str) -> str:
    """Where :func:`run_day` writes ``arm``'s impressions of ``day``."""
    return os.path.join(log_dir, f"day-{day:02d}", arm)


def training_data(log_dir: str, arm: str, train_days: Sequence[int], eval_day: int, out_dir: str) -> str:
    """An arm's logged days as a pipeline data directory (``out_dir/train/``, ``out_dir/eval/``, the layout
    ``tfx_pipeline.local_runner --data-dir`` reads): what an arm that learns online retrains on between days."""
    for split, days in ((F.TRAIN_SPLIT, train_days), (F.EVAL_SPLIT, [eval_day])):
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        for day in days:
            source = day_log_dir(log_dir, day, arm)
            for name in sorted(os.listdir(source)):
                shutil.copyfile(os.path.join(source, name), os.path.join(out_dir, split, f"day-{day:02d}-{name}"))
    return out_dir


def run(world: World, arms: Sequence[Arm], deployments: Mapping[str, object], days: Sequence[int],
        requests_per_day: int, seed: int, salt: str, log_dir: Optional[str] = None,
        progress=None) -> Traffic:
    """The A/B test over ``days`` (each a day of ``world``); ``deployments``: arm label -> deployment.

    ``progress(day, traffic_of_the_day)`` is called after each day.
    """
    missing = [a.label for a in arms if a.label not in deployments]
    if missing:
        raise ValueError(f"no deployment for arm(s) {missing}")
    parts = []
    for day in days:
        parts.append(run_day(world, day, arms, deployments, requests_per_day, seed, salt, log_dir))
        if progress is not None:
            progress(day, parts[-1])
    return Traffic.concat(parts)


def deployments_by_arm(arms: Sequence[Arm], make, serving_roots: Mapping[str, str]) -> Dict[str, object]:
    """One deployment per distinct (AR, CR) model pair (and versions and label), shared by the arms that
    serve it: ``make(ar_path, cr_path, **arm.serving())`` builds one. Returns arm label -> deployment (close
    each distinct one)."""
    built: Dict[tuple, object] = {}
    out = {}
    try:
        for arm in arms:
            paths = (arm.ar.base_path(serving_roots), arm.cr.base_path(serving_roots))
            serving = arm.serving()
            key = paths + (tuple(sorted(serving.get("versions", {}).items())), serving.get("label"))
            if key not in built:
                built[key] = make(*paths, **serving)
            out[arm.label] = built[key]
    except BaseException:
        close_all(built.values())
        raise
    return out


def close_all(deployments) -> None:
    """Closes each distinct deployment once."""
    for deployment in {id(d): d for d in deployments}.values():
        deployment.close()
