r"""Group AUC (GAUC), the ad-ranking metric: the impression-weighted mean of per-user AUC (NumPy only).

* :func:`gauc` / :func:`gauc_estimate` -- exact, ties counted 1/2, O(n) memory.
* :class:`GaucAccumulator` / :func:`gauc_bucketed_estimate` -- streaming, from per-(user, prediction
  bucket) label counts: memory grows with users x buckets, never with impressions, and the result
  carries a bound on its deviation from the exact value. It backs the TFMA ``GAUC`` metric.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import numpy as np

from creative_metrics import validation as V
from creative_metrics.keyed_counters import KeyedCounters

__all__ = ["GaucEstimate", "GaucAccumulator", "gauc", "gauc_estimate", "gauc_bucketed_estimate"]


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


def _gauc_columns(user_ids, labels, predictions):
    return V.columns(user_ids=user_ids, labels=labels, predictions=predictions)


def gauc_estimate(user_ids, labels, predictions) -> GaucEstimate:
    """:func:`gauc` with its coverage and counts (exact: ``max_abs_error`` is 0)."""
    cols, _ = _gauc_columns(user_ids, labels, predictions)
    users = V.ids("user_ids", cols["user_ids"])
    y = V.binary("labels", cols["labels"])
    p = V.finite("predictions", cols["predictions"])
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

    def update(self, user_ids, labels, predictions, weights=None, *, offset: int = 0) -> "GaucAccumulator":
        """Adds a chunk of impressions; predictions must be probabilities in [0, 1].

        ``offset`` is the log row of the chunk's first impression: error messages count from there.
        """
        cols, n = V.columns(user_ids=user_ids, labels=labels, predictions=predictions, weights=weights)
        users = V.ids("user_ids", cols["user_ids"], offset)
        y = V.binary("labels", cols["labels"], offset)
        p = V.probabilities("predictions", cols["predictions"], offset)
        w = V.weights("weights", cols.get("weights"), n, offset)
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
                           chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> GaucEstimate:
    """GAUC through :class:`GaucAccumulator` (bounded memory; reports its own error bound).

    Each chunk is validated once, by :meth:`GaucAccumulator.update`; errors name the row in the log.
    """
    cols, n = _gauc_columns(user_ids, labels, predictions)
    acc = GaucAccumulator(num_buckets=num_buckets)
    for offset, chunk in V.chunks(cols, n, chunk_size):
        acc.update(**chunk, offset=offset)
    return acc.result()
