r"""An A/B test's metrics with 95% bootstrap confidence intervals over users, and their means over seeds.

Per arm, over its requests (ratios of sums):

* ``ctr`` = clicks / impressions (the realised CTR, from the sampled clicks);
* ``expected_ctr`` = :math:`\sum` true CTR of what was shown / impressions (no click noise: only a simulator
  knows it, and it needs far fewer requests for the same confidence);
* ``rpm`` = 1000 revenue / requests and ``expected_rpm`` (a click earns the ad's bid);
* ``rt_p50_ms``, ``rt_p99_ms``: percentiles of the router's response time over requests;
* ``<metric>_lift``: :math:`m_{arm} / m_{control} - 1` for the four ratios.

Intervals: percentile bootstrap over **users** (a user's requests stay together: users are what the arms are
assigned by), ``replicates`` resamples; arms have disjoint users, so each arm is resampled on its own and a
lift's replicate is the ratio of the two arms' replicates. Response-time percentiles resample requests.

Over seeds (:func:`over_seeds`): the mean of the seeds' values; its 95% CI is the bootstrap CI with one seed
and :math:`\bar m \pm t_{0.975,\,n-1}\, s / \sqrt{n}` with :math:`n \ge 2` seeds, whose spread includes the
world's and the training's variation. Every metric is reported as
``{"mean", "ci_low", "ci_high", "n_seeds"}``.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from experiments.abtest import Traffic

# ratio metric -> (numerator column, denominator column, scale)
RATIOS = {
    "ctr": ("clicks", "impressions", 1.0),
    "expected_ctr": ("expected_clicks", "impressions", 1.0),
    "rpm": ("revenue", "requests", 1000.0),
    "expected_rpm": ("expected_revenue", "requests", 1000.0),
}
PERCENTILES = {"rt_p50_ms": 50.0, "rt_p99_ms": 99.0}
_COLUMNS = ("requests", "impressions", "clicks", "expected_clicks", "revenue", "expected_revenue")
_CHUNK = 64  # replicates resampled at a time (bounds memory to chunk x users x columns)

Estimate = Dict[str, float]  # {"value", "ci_low", "ci_high"}


def _estimate(value: float, replicates: np.ndarray) -> Estimate:
    finite = replicates[np.isfinite(replicates)]
    lo, hi = np.percentile(finite, [2.5, 97.5]) if len(finite) else (math.nan, math.nan)
    return {"value": float(value), "ci_low": float(lo), "ci_high": float(hi)}


def user_sums(traffic: Traffic, arm: int) -> np.ndarray:
    """[users of the arm, 6] sums per user of :data:`_COLUMNS` over the arm's answered requests."""
    keep = (traffic.arm == arm) & ~traffic.failed
    _, user = np.unique(traffic.user[keep], return_inverse=True)
    values = {"requests": np.ones(int(keep.sum()))}
    values.update({c: getattr(traffic, c)[keep] for c in _COLUMNS[1:]})
    return np.stack([np.bincount(user, weights=values[c]) for c in _COLUMNS], axis=1)


def bootstrap_sums(sums: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """[replicates, columns]: column sums over users resampled with replacement."""
    n = len(sums)
    out = np.empty((replicates, sums.shape[1]))
    for start in range(0, replicates, _CHUNK):
        size = min(_CHUNK, replicates - start)
        out[start:start + size] = sums[rng.integers(0, n, (size, n))].sum(axis=1)
    return out


def _ratios(sums: np.ndarray) -> Dict[str, np.ndarray]:
    """Each ratio metric from column sums (the last axis)."""
    col = {c: sums[..., i] for i, c in enumerate(_COLUMNS)}
    with np.errstate(divide="ignore", invalid="ignore"):
        return {name: scale * col[num] / col[den] for name, (num, den, scale) in RATIOS.items()}


def arm_metrics(traffic: Traffic, control: str, replicates: int = 1000, seed: int = 0) -> Dict[str, Dict]:
    """Per arm label: ``{"metrics": {name: Estimate}, "lifts": {other arm: {<ratio>_lift: Estimate}},
    "requests", "impressions", "users", "failed", "degraded"}``; ``metrics`` holds the lifts over ``control``."""
    rng = np.random.default_rng([seed, 40])
    labels = list(traffic.labels)
    points, reps = {}, {}
    out: Dict[str, Dict] = {}
    for index, label in enumerate(labels):
        sums = user_sums(traffic, index)
        if not len(sums):
            raise ValueError(f"arm {label!r} answered no request: nothing to measure")
        points[label] = _ratios(sums.sum(axis=0))
        reps[label] = _ratios(bootstrap_sums(sums, replicates, rng))
        metrics = {name: _estimate(points[label][name], reps[label][name]) for name in RATIOS}
        mine = traffic.arm == index
        rt = traffic.rt_ms[mine & ~traffic.failed]
        rt_reps = rt[rng.integers(0, len(rt), (replicates, len(rt)))]
        for name, q in PERCENTILES.items():
            metrics[name] = _estimate(np.percentile(rt, q), np.percentile(rt_reps, q, axis=1))
        out[label] = {"metrics": metrics, "requests": int(mine.sum()), "users": int(len(sums)),
                      "impressions": int(traffic.impressions[mine].sum()), "failed": int(traffic.failed[mine].sum()),
                      "degraded": int(traffic.degraded[mine].sum())}
    if control not in out:
        raise ValueError(f"control {control!r} is not an arm of the traffic ({labels})")
    with np.errstate(divide="ignore", invalid="ignore"):
        for label in labels:
            out[label]["lifts"] = {
                ref: {f"{name}_lift": _estimate(points[label][name] / points[ref][name] - 1,
                                                reps[label][name] / reps[ref][name] - 1) for name in RATIOS}
                for ref in labels if ref != label}
            out[label]["metrics"].update(out[label]["lifts"].get(control, {}))
    return out


def _t_quantile(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def over_seeds(per_seed: Sequence[Optional[Estimate]]) -> Optional[Dict[str, float]]:
    """``{"mean", "ci_low", "ci_high", "n_seeds"}`` of one metric from each seed's estimate (see the module
    docstring); estimates without an interval (offline metrics) give a null one with one seed."""
    values = [e for e in per_seed if e is not None and e.get("value") is not None
              and math.isfinite(e["value"])]
    if not values:
        return None
    n = len(values)
    mean = float(np.mean([e["value"] for e in values]))
    if n == 1:
        lo, hi = values[0].get("ci_low"), values[0].get("ci_high")
    else:
        half = _t_quantile(n - 1) * float(np.std([e["value"] for e in values], ddof=1)) / math.sqrt(n)
        lo, hi = mean - half, mean + half
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n_seeds": n}


def metrics_over_seeds(per_seed: Sequence[Mapping[str, Estimate]]) -> Dict[str, Dict[str, float]]:
    """:func:`over_seeds` of every metric named in any seed's ``{name: Estimate}``."""
    names: List[str] = list(dict.fromkeys(name for seed in per_seed for name in seed))
    return {name: over_seeds([seed.get(name) for seed in per_seed]) for name in names}
