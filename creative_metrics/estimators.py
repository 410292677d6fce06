r"""Offline estimators of a creative ranker's CTR, replayed on logged impressions (NumPy only).

A creative ranker picks one creative per impression (its top-1 among the ad's candidates). Offline we
only see the click of the creative that was *exposed* online, so the estimators below keep the
impressions where the ranker's choice matches the exposed creative and estimate the CTR the ranker
would have had:

* :func:`sctr` -- simulated CTR (Wang et al. 2021): clicks / impressions over the matched impressions.
* :func:`nsctr` -- normalized sCTR (JAC, Algorithm 1): the matched CTR of every ad, re-weighted by the
  ad's share of *all* impressions, so ads with many candidates (and hence few matches) keep their
  weight.
* :func:`calibrated_sctr` -- calibrated sCTR (GenCO, Algorithm 1): every match counts ``n`` times,
  ``n`` being the number of candidates, which undoes the ``1/n`` match rate of a uniform logging policy.
* :func:`gauc` -- impression-weighted mean of per-user AUC, the ad-ranking metric.

Each named function takes equal-length 1-D arrays (one entry per impression) and returns a float.
The ``*_estimate`` companions return the value with its coverage and counts. Inputs are processed in
chunks through :class:`CreativeMatchAccumulator`, whose memory grows with the number of ads, not of
impressions; the same accumulator backs the TFMA metrics in :mod:`creative_metrics.tfma_metrics`.

Ads with no match (:math:`Imp^s_m = 0`) carry no information about the ranker's choice for them; they
are left out of both the numerator and the denominator of NSCTR, so NSCTR is the estimate over the
*covered* ads and :attr:`PolicyEstimate.coverage` says which share of impressions that is. When nothing
matches at all every estimator returns NaN (coverage 0).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = [
    "PolicyEstimate",
    "GaucEstimate",
    "KeyedCounters",
    "CreativeMatchAccumulator",
    "GaucAccumulator",
    "nsctr",
    "sctr",
    "calibrated_sctr",
    "gauc",
    "nsctr_estimate",
    "sctr_estimate",
    "calibrated_sctr_estimate",
    "gauc_estimate",
    "gauc_bucketed_estimate",
]

# Rows validated and reduced at a time by the array front-ends: bounds the temporaries to O(chunk)
# (~60 MiB at 2**18 rows, and no slower than larger chunks).
DEFAULT_CHUNK_SIZE = 1 << 18


# ------------------------------------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True)
class PolicyEstimate:
    """An estimated CTR of a creative policy and the data behind it.

    Attributes:
      value: the estimate; NaN when no impression matched.
      coverage: share of the (weighted) impressions whose ad had at least one match -- the part of
        the traffic the estimate speaks for.
      impressions: total (weighted) impressions.
      matched_impressions: impressions where the policy's creative equals the exposed one.
      ads: distinct ads.
      covered_ads: ads with at least one match.
      denominator: the estimate's denominator -- covered impressions (NSCTR), matched impressions
        (sCTR) or candidate-weighted matched impressions (calibrated sCTR); ``value * denominator`` is
        its numerator, so estimates over disjoint sets of ads can be pooled.
      logged_ctr: the logged CTR (all clicks / all impressions) of the covered ads -- what the
        logging policy achieved on the same traffic, for the lift ``value / logged_ctr - 1``.
    """

    value: float
    coverage: float
    impressions: float
    matched_impressions: float
    ads: int
    covered_ads: int
    denominator: float
    logged_ctr: float


@dataclasses.dataclass(frozen=True)
class GaucEstimate:
    """Group AUC and the data behind it.

    Attributes:
      value: impression-weighted mean of per-user AUC; NaN when no user has both classes.
      coverage: share of the (weighted) impressions whose user has both a click and a non-click.
      impressions: total (weighted) impressions.
      users: distinct users.
      scored_users: users with both classes (those that enter the mean).
      max_abs_error: upper bound on ``|value - exact GAUC|``; 0 for the exact estimator. For the
        bucketed estimator it is the weighted share of positive/negative pairs of a user that fall in
        one bucket (counted as ties), times 1/2.
    """

    value: float
    coverage: float
    impressions: float
    users: int
    scored_users: int
    max_abs_error: float


# --------------------------------------------------------------------------------------- validation
def _as_1d(name: str, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (one entry per impression), got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def _check_lengths(arrays: Dict[str, np.ndarray]) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    first_name, n = next(iter(lengths.items()))
    for name, length in lengths.items():
        if length != n:
            raise ValueError(f"length mismatch: {first_name} has {n} entries but {name} has {length}")
    if n == 0:
        raise ValueError(f"{first_name} is empty: need at least one impression")
    return n


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_no_nan(name: str, arr: np.ndarray, offset: int) -> None:
    if arr.dtype.kind == "f":
        bad = np.isnan(arr)
        if bad.any():
            raise ValueError(f"{name} contains NaN (first at index {offset + _first_bad(bad)})")


def _ids(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    """Integer ids as int64; float arrays are accepted when every value is a whole number."""
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64, copy=False)
    _check_no_nan(name, arr, offset)
    bad = ~np.isfinite(arr) | (arr != np.floor(arr))
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name} must hold integer ids, found {arr[i]!r} at index {offset + i}")
    return arr.astype(np.int64)


def _binary(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    _check_no_nan(name, arr, offset)
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name} must be 0 or 1, found {arr[i]!r} at index {offset + i}")
    return arr.astype(np.float64)


def _positive_counts(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    arr = _ids(name, arr, offset)
    bad = arr < 1
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name} must be >= 1, found {arr[i]} at index {offset + i}")
    return arr.astype(np.float64)


def _weights(name: str, arr: Optional[np.ndarray], n: int, offset: int = 0) -> np.ndarray:
    if arr is None:
        return np.ones(n)
    _check_no_nan(name, arr, offset)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name} must be finite and >= 0, found {arr[i]!r} at index {offset + i}")
    return arr.astype(np.float64)


def _finite(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    _check_no_nan(name, arr, offset)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name} must be finite, found {arr[i]!r} at index {offset + i}")
    return arr.astype(np.float64)


# ------------------------------------------------------------------------------------ keyed counters
def _unique_rows(keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted unique rows of an ``[n, k]`` int64 array and the inverse index of every row."""
    if keys.shape[1] == 1:
        uniq, inverse = np.unique(keys[:, 0], return_inverse=True)
        return uniq[:, None], inverse.reshape(-1)
    order = np.lexsort(keys.T[::-1])  # lexsort's last key is primary: sort by column 0, then 1, ...
    ordered = keys[order]
    is_new = np.empty(len(ordered), dtype=bool)
    is_new[:1] = True
    np.any(ordered[1:] != ordered[:-1], axis=1, out=is_new[1:])
    inverse = np.empty(len(ordered), dtype=np.intp)
    inverse[order] = np.cumsum(is_new) - 1
    return ordered[is_new], inverse


def _reduce(keys: np.ndarray, values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    uniq, inverse = _unique_rows(keys)
    sums = np.empty((len(uniq), values.shape[1]))
    for c in range(values.shape[1]):
        sums[:, c] = np.bincount(inverse, weights=values[:, c], minlength=len(uniq))
    return uniq, sums


class KeyedCounters:
    """Per-key sums of a few float64 columns, for keys that are tuples of ``key_width`` int64 values.

    Keys are arbitrary int64 (no dense-id assumption). Each :meth:`add` reduces its rows to one row
    per distinct key (``np.unique`` + ``np.bincount``) and queues the result; queued rows are folded
    into the sorted table once they outnumber it, so the work is amortised O(n log n) and memory is
    O(distinct keys x columns) whatever the number of rows added.

    Args:
      num_columns: number of summed columns.
      key_width: number of int64 values in a key.
    """

    def __init__(self, num_columns: int, key_width: int = 1):
        self.num_columns = num_columns
        self.key_width = key_width
        self._keys = np.empty((0, key_width), dtype=np.int64)
        self._sums = np.empty((0, num_columns))
        self._pending = []
        self._pending_rows = 0

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Adds ``values[i]`` (shape ``[n, num_columns]``) to the counters of ``keys[i]``."""
        keys = np.asarray(keys, dtype=np.int64).reshape(len(values), self.key_width)
        if len(keys) == 0:
            return
        uniq, sums = _reduce(keys, np.asarray(values, dtype=np.float64))
        self._pending.append((uniq, sums))
        self._pending_rows += len(uniq)
        if self._pending_rows > max(len(self._keys), 1 << 16):
            self._consolidate()

    def merge(self, other: "KeyedCounters") -> None:
        """Adds every counter of ``other`` into this one."""
        if (other.num_columns, other.key_width) != (self.num_columns, self.key_width):
            raise ValueError("cannot merge KeyedCounters of different shapes")
        other._consolidate()
        if len(other._keys):
            self._pending.append((other._keys, other._sums))
            self._pending_rows += len(other._keys)
            self._consolidate()

    def _consolidate(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys] + [k for k, _ in self._pending])
        sums = np.concatenate([self._sums] + [s for _, s in self._pending])
        self._keys, self._sums = _reduce(keys, sums)
        self._pending, self._pending_rows = [], 0

    def table(self) -> Tuple[np.ndarray, np.ndarray]:
        """Returns ``(keys [K, key_width], sums [K, num_columns])``, keys sorted lexicographically."""
        self._consolidate()
        return self._keys, self._sums

    def __len__(self) -> int:
        return len(self.table()[0])

    def __getstate__(self):  # ship the compact table between Beam workers
        self._consolidate()
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)


# ---------------------------------------------------------------------------- creative-match estimators
# Columns of the per-ad table.
_IMP, _CLK, _IMP_S, _CLK_S, _EXP_N, _CLK_N = range(6)


class CreativeMatchAccumulator:
    r"""Per-ad counters behind sCTR, NSCTR and calibrated sCTR; memory grows with ads, not impressions.

    For every ad :math:`m` it keeps the (weighted) impressions :math:`Imp_m` and clicks, the matched
    impressions :math:`Imp^s_m` (policy's creative = exposed creative), the matched clicks
    :math:`Clk^s_m`, and for calibrated sCTR the candidate-count-weighted matches :math:`\sum n_i` and
    clicks :math:`\sum n_i y_i`. Accumulators built on disjoint parts of the log can be merged.
    """

    def __init__(self):
        self._counters = KeyedCounters(6)
        self._all_have_num_candidates = True
        self._rows = 0

    def update(self, ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates=None,
               weights=None, *, _offset: int = 0) -> "CreativeMatchAccumulator":
        """Adds one chunk of impressions (equal-length 1-D arrays; validated here)."""
        arrays = {
            "ad_ids": _as_1d("ad_ids", ad_ids),
            "exposed_creatives": _as_1d("exposed_creatives", exposed_creatives),
            "clicks": _as_1d("clicks", clicks),
            "selected_creatives": _as_1d("selected_creatives", selected_creatives),
        }
        if num_candidates is not None:
            arrays["num_candidates"] = _as_1d("num_candidates", num_candidates)
        if weights is not None:
            arrays["weights"] = _as_1d("weights", weights)
        n = _check_lengths(arrays)
        ads = _ids("ad_ids", arrays["ad_ids"], _offset)
        match = _ids("exposed_creatives", arrays["exposed_creatives"], _offset) == _ids(
            "selected_creatives", arrays["selected_creatives"], _offset)
        y = _binary("clicks", arrays["clicks"], _offset)
        w = _weights("weights", arrays.get("weights"), n, _offset)
        values = np.zeros((n, 6))
        values[:, _IMP] = w
        values[:, _CLK] = w * y
        values[:, _IMP_S] = w * match
        values[:, _CLK_S] = values[:, _IMP_S] * y
        if num_candidates is None:
            self._all_have_num_candidates = False
        else:
            cands = _positive_counts("num_candidates", arrays["num_candidates"], _offset)
            values[:, _EXP_N] = values[:, _IMP_S] * cands
            values[:, _CLK_N] = values[:, _EXP_N] * y
        self._counters.add(ads, values)
        self._rows += n
        return self

    def merge(self, other: "CreativeMatchAccumulator") -> "CreativeMatchAccumulator":
        self._counters.merge(other._counters)
        self._all_have_num_candidates &= other._all_have_num_candidates
        self._rows += other._rows
        return self

    @property
    def num_ads(self) -> int:
        return len(self._counters)

    def _table(self) -> np.ndarray:
        if self._rows == 0:
            raise ValueError("no impressions were added")
        return self._counters.table()[1]

    @staticmethod
    def _result(value_num: float, value_den: float, t: np.ndarray) -> PolicyEstimate:
        covered = t[:, _IMP_S] > 0
        total = float(t[:, _IMP].sum())
        covered_imps = float(t[covered, _IMP].sum())
        return PolicyEstimate(
            value=float(value_num / value_den) if value_den > 0 else math.nan,
            coverage=covered_imps / total if total > 0 else math.nan,
            impressions=total,
            matched_impressions=float(t[:, _IMP_S].sum()),
            ads=int(len(t)),
            covered_ads=int(covered.sum()),
            denominator=float(value_den),
            logged_ctr=float(t[covered, _CLK].sum() / covered_imps) if covered_imps > 0 else math.nan,
        )

    def nsctr(self) -> PolicyEstimate:
        """NSCTR over the covered ads (see :func:`nsctr`)."""
        t = self._table()
        covered = t[:, _IMP_S] > 0
        clicks = np.sum(t[covered, _CLK_S] * t[covered, _IMP] / t[covered, _IMP_S])
        return self._result(clicks, t[covered, _IMP].sum(), t)

    def sctr(self) -> PolicyEstimate:
        """sCTR (see :func:`sctr`)."""
        t = self._table()
        return self._result(t[:, _CLK_S].sum(), t[:, _IMP_S].sum(), t)

    def calibrated_sctr(self) -> PolicyEstimate:
        """Calibrated sCTR (see :func:`calibrated_sctr`); needs ``num_candidates`` on every update."""
        if not self._all_have_num_candidates:
            raise ValueError("calibrated sCTR needs num_candidates for every impression")
        t = self._table()
        return self._result(t[:, _CLK_N].sum(), t[:, _EXP_N].sum(), t)


def _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates=None,
                chunk_size: int = DEFAULT_CHUNK_SIZE) -> CreativeMatchAccumulator:
    arrays = {
        "ad_ids": _as_1d("ad_ids", ad_ids),
        "exposed_creatives": _as_1d("exposed_creatives", exposed_creatives),
        "clicks": _as_1d("clicks", clicks),
        "selected_creatives": _as_1d("selected_creatives", selected_creatives),
    }
    if num_candidates is not None:
        arrays["num_candidates"] = _as_1d("num_candidates", num_candidates)
    n = _check_lengths(arrays)
    acc = CreativeMatchAccumulator()
    for start in range(0, n, chunk_size):
        chunk = {k: v[start:start + chunk_size] for k, v in arrays.items()}
        acc.update(**chunk, _offset=start)
    return acc


def nsctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> PolicyEstimate:
    """:func:`nsctr` with its coverage and counts."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives,
                       chunk_size=chunk_size).nsctr()


def sctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> PolicyEstimate:
    """:func:`sctr` with its coverage and counts."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives,
                       chunk_size=chunk_size).sctr()


def calibrated_sctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates, *,
                             chunk_size: int = DEFAULT_CHUNK_SIZE) -> PolicyEstimate:
    """:func:`calibrated_sctr` with its coverage and counts."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates,
                       chunk_size=chunk_size).calibrated_sctr()


def nsctr(ad_ids, exposed_creatives, clicks, selected_creatives) -> float:
    r"""Normalized simulated CTR (NSCTR) of a creative policy.

    JAC (Algorithm 1, "Quality of the Implicit Sub-Ranking"). For every ad :math:`m` count its
    impressions :math:`Imp_m`, the impressions where the policy's top-1 creative equals the exposed one
    :math:`Imp^s_m`, and their clicks :math:`Clk^s_m`. Each covered ad's matched CTR is scaled back to
    all of the ad's impressions:

    .. math::

        \mathrm{NSCTR} = \frac{\sum_{m: Imp^s_m > 0} Clk^s_m \, Imp_m / Imp^s_m}
                              {\sum_{m: Imp^s_m > 0} Imp_m}

    Ads without any match are left out of numerator and denominator (the paper's formula divides by
    :math:`Imp^s_m = 0`); :func:`nsctr_estimate` reports the share of impressions covered. Unlike
    :func:`sctr`, the ad mix of the estimate is the ad mix of the log: with two ads of CTR 0.2 (2
    creatives) and 0.3 (3 creatives), equal traffic and uniformly random policies, sCTR tends to 0.24
    while NSCTR tends to the true 0.25.

    Args:
      ad_ids: int ``[n]``, the ad of each impression.
      exposed_creatives: int ``[n]``, the creative shown online.
      clicks: ``[n]`` in {0, 1}.
      selected_creatives: int ``[n]``, the policy's top-1 creative for the impression.

    Returns:
      NSCTR as a float; NaN if no impression matches.

    Raises:
      ValueError: lengths differ, input is empty, clicks outside {0, 1}, NaN or non-integer ids.
    """
    return nsctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives).value


def sctr(ad_ids, exposed_creatives, clicks, selected_creatives) -> float:
    r"""Simulated CTR (sCTR, Wang et al. 2021): the CTR of the impressions the policy agrees with.

    .. math::

        \mathrm{sCTR} = \frac{\sum_i y_i \, [\hat c_i = c_i]}{\sum_i [\hat c_i = c_i]}

    with :math:`c_i` the exposed and :math:`\hat c_i` the selected creative. Biased toward ads with few
    candidates (they match more often); see :func:`nsctr`. ``ad_ids`` only feed the coverage reported by
    :func:`sctr_estimate`.

    Returns:
      sCTR as a float; NaN if no impression matches.

    Raises:
      ValueError: as :func:`nsctr`.
    """
    return sctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives).value


def calibrated_sctr(ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates) -> float:
    r"""Calibrated sCTR (GenCO, Algorithm 1): each match counts as many times as the ad has candidates.

    .. math::

        \mathrm{sCTR}_{cal} = \frac{\sum_i n_i \, y_i \, [\hat c_i = c_i]}{\sum_i n_i \, [\hat c_i = c_i]}

    Under a uniform logging policy a match happens with probability :math:`1/n_i`, so the weight
    :math:`n_i` restores each ad's share of traffic in expectation (unbiased only for a uniform logging
    policy; NSCTR uses the realised counts instead).

    Args:
      ad_ids, exposed_creatives, clicks, selected_creatives: as :func:`nsctr`.
      num_candidates: int ``[n]`` >= 1, the ad's number of candidate creatives.

    Returns:
      Calibrated sCTR as a float; NaN if no impression matches.

    Raises:
      ValueError: as :func:`nsctr`, or ``num_candidates`` < 1.
    """
    return calibrated_sctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives,
                                    num_candidates).value


# ----------------------------------------------------------------------------------------------- GAUC
def _grouped_auc(group_user: np.ndarray, neg: np.ndarray, pos: np.ndarray, num_users: int,
                 exact: bool) -> GaucEstimate:
    """GAUC from per-(user, score-group) label counts, groups sorted by user then ascending score.

    Within a user, a positive beats every negative of a lower group and ties (1/2) with the negatives
    of its own group -- the Mann-Whitney statistic with mid-ranks.
    """
    p_u = np.bincount(group_user, weights=pos, minlength=num_users)
    n_u = np.bincount(group_user, weights=neg, minlength=num_users)
    # Negatives strictly below each group within its user: exclusive cumsum minus the user's base.
    below = np.cumsum(neg) - neg
    first = np.flatnonzero(np.r_[True, group_user[1:] != group_user[:-1]])
    base = np.zeros(num_users)
    base[group_user[first]] = below[first]
    below -= base[group_user]
    wins = np.bincount(group_user, weights=pos * (below + 0.5 * neg), minlength=num_users)
    ties = np.bincount(group_user, weights=pos * neg, minlength=num_users)
    weight = p_u + n_u
    scored = (p_u > 0) & (n_u > 0)
    total = float(weight.sum())
    scored_weight = float(weight[scored].sum())
    pairs = p_u[scored] * n_u[scored]
    if scored_weight > 0:
        value = float(np.sum(weight[scored] * wins[scored] / pairs) / scored_weight)
        bound = 0.0 if exact else float(np.sum(weight[scored] * 0.5 * ties[scored] / pairs) / scored_weight)
    else:
        value, bound = math.nan, (0.0 if exact else math.nan)
    return GaucEstimate(
        value=value,
        coverage=scored_weight / total if total > 0 else math.nan,
        impressions=total,
        users=int(np.count_nonzero(weight > 0)),
        scored_users=int(scored.sum()),
        max_abs_error=bound,
    )


def _gauc_inputs(user_ids, labels, predictions):
    arrays = {
        "user_ids": _as_1d("user_ids", user_ids),
        "labels": _as_1d("labels", labels),
        "predictions": _as_1d("predictions", predictions),
    }
    _check_lengths(arrays)
    return (_ids("user_ids", arrays["user_ids"]), _binary("labels", arrays["labels"]),
            _finite("predictions", arrays["predictions"]))


def gauc_estimate(user_ids, labels, predictions) -> GaucEstimate:
    """:func:`gauc` with its coverage and counts (exact: ``max_abs_error`` is 0)."""
    users, y, p = _gauc_inputs(user_ids, labels, predictions)
    uniq, user_idx = np.unique(users, return_inverse=True)
    order = np.lexsort((p, user_idx))
    su, sp, sy = user_idx[order], p[order], y[order]
    is_new = np.empty(len(su), dtype=bool)
    is_new[:1] = True
    is_new[1:] = (su[1:] != su[:-1]) | (sp[1:] != sp[:-1])
    group = np.cumsum(is_new) - 1
    pos = np.bincount(group, weights=sy)
    neg = np.bincount(group) - pos
    return _grouped_auc(su[is_new], neg, pos, len(uniq), exact=True)


def gauc(user_ids, labels, predictions) -> float:
    r"""Group AUC: the impression-weighted mean of per-user AUC over users with both classes.

    .. math::

        \mathrm{GAUC} = \frac{\sum_{u \in U^\pm} n_u \, \mathrm{AUC}_u}{\sum_{u \in U^\pm} n_u},
        \qquad
        \mathrm{AUC}_u = \frac{1}{P_u N_u} \sum_{i: y_i = 1} \sum_{j: y_j = 0}
            \left([s_i > s_j] + \tfrac12 [s_i = s_j]\right)

    over the users :math:`U^\pm` with :math:`P_u > 0` clicks and :math:`N_u > 0` non-clicks, where
    :math:`n_u = P_u + N_u` (Zhu et al. 2017; Xiao et al. 2023). Exact, with ties counted 1/2; memory is
    O(n). :class:`GaucAccumulator` is the bounded-memory streaming version.

    Args:
      user_ids: int ``[n]``.
      labels: ``[n]`` in {0, 1}.
      predictions: float ``[n]``, finite scores (higher = more likely to click).

    Returns:
      GAUC as a float; NaN if no user has both classes.

    Raises:
      ValueError: lengths differ, input is empty, labels outside {0, 1}, NaN or infinite predictions.
    """
    return gauc_estimate(user_ids, labels, predictions).value


class GaucAccumulator:
    r"""Streaming GAUC from per-(user, prediction bucket) label counts.

    Probabilities are bucketed uniformly in logit space,
    :math:`b = \lfloor (\mathrm{logit}(p) - \ell_0) / w \rfloor` on :math:`[\ell_0, \ell_1]`
    (default :math:`[-12, 12]` in 10,000 buckets, :math:`w = 0.0024`: two probabilities closer than
    ~0.24% of each other may share a bucket). Pairs sharing a bucket count as ties, so the error against
    the exact :func:`gauc` is at most :attr:`GaucEstimate.max_abs_error`. Memory is
    O(distinct (user, bucket) pairs) <= O(users x min(impressions per user, buckets)).

    Args:
      num_buckets: number of buckets.
      logit_range: ``(low, high)`` logit range; probabilities beyond it go to the end buckets.
    """

    def __init__(self, num_buckets: int = 10_000, logit_range: Tuple[float, float] = (-12.0, 12.0)):
        if num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
        if not logit_range[0] < logit_range[1]:
            raise ValueError(f"logit_range must be increasing, got {logit_range}")
        self.num_buckets = int(num_buckets)
        self.logit_range = (float(logit_range[0]), float(logit_range[1]))
        self._counters = KeyedCounters(2, key_width=2)

    def bucket(self, predictions: np.ndarray) -> np.ndarray:
        """Bucket index of each probability in [0, 1]."""
        eps = 1e-15
        p = np.clip(predictions, eps, 1 - eps)
        logit = np.log(p) - np.log1p(-p)
        low, high = self.logit_range
        b = np.floor((logit - low) * (self.num_buckets / (high - low)))
        return np.clip(b, 0, self.num_buckets - 1).astype(np.int64)

    def update(self, user_ids, labels, predictions, weights=None) -> "GaucAccumulator":
        """Adds a chunk of impressions; predictions must be probabilities in [0, 1]."""
        users, y, p = _gauc_inputs(user_ids, labels, predictions)
        bad = (p < 0) | (p > 1)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"predictions must be probabilities in [0, 1], found {p[i]!r} at index {i}")
        w = _weights("weights", None if weights is None else _as_1d("weights", weights), len(users))
        if len(w) != len(users):
            raise ValueError(f"length mismatch: user_ids has {len(users)} entries but weights has {len(w)}")
        keys = np.stack([users, self.bucket(p)], axis=1)
        self._counters.add(keys, np.stack([w * (1 - y), w * y], axis=1))
        return self

    def merge(self, other: "GaucAccumulator") -> "GaucAccumulator":
        if (other.num_buckets, other.logit_range) != (self.num_buckets, self.logit_range):
            raise ValueError("cannot merge GaucAccumulators with different buckets")
        self._counters.merge(other._counters)
        return self

    @property
    def empty(self) -> bool:
        return len(self._counters) == 0

    def result(self) -> GaucEstimate:
        keys, sums = self._counters.table()
        if len(keys) == 0:
            raise ValueError("no impressions were added")
        # keys are sorted by (user, bucket): exactly the order _grouped_auc needs.
        is_new = np.r_[True, keys[1:, 0] != keys[:-1, 0]]
        user_idx = np.cumsum(is_new) - 1
        return _grouped_auc(user_idx, sums[:, 0], sums[:, 1], int(user_idx[-1]) + 1, exact=False)


def gauc_bucketed_estimate(user_ids, labels, predictions, *, num_buckets: int = 10_000,
                           chunk_size: int = DEFAULT_CHUNK_SIZE) -> GaucEstimate:
    """GAUC through :class:`GaucAccumulator` (bounded memory; reports its own error bound)."""
    users, y, p = _gauc_inputs(user_ids, labels, predictions)
    acc = GaucAccumulator(num_buckets=num_buckets)
    for start in range(0, len(users), chunk_size):
        sl = slice(start, start + chunk_size)
        acc.update(users[sl], y[sl], p[sl])
    return acc.result()
