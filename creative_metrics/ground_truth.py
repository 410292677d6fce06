r"""The true CTR of a creative policy, from the simulator's truth columns (NumPy only).

The simulator logs the true click probability of every candidate creative of an impression
(``features.TRUTH_CAND_CTRS``, in candidate order) and of the exposed one (``features.TRUTH_CTR``).
For a policy that picks candidate :math:`k_i` on impression :math:`i` (the CR model's top-1, i.e. the
evaluated model's ``features.SELECTED_INDEX``) its true CTR on the eval impressions is

.. math::

    V_\pi = \frac{1}{n} \sum_i q_{i, k_i},

with :math:`q_{i,k}` the true CTR of candidate :math:`k`. Two reference policies bracket it: random
(:math:`V_{rand} = \frac1n \sum_i \frac{1}{K_i}\sum_k q_{i,k}`) and the oracle
(:math:`V_{orc} = \frac1n \sum_i \max_k q_{i,k}`). The *lift share*

.. math::

    \lambda = \frac{V_\pi - V_{rand}}{V_{orc} - V_{rand}}

is the share of the oracle's lift over random that the policy achieves (0 = random, 1 = oracle).
This is what NSCTR / sCTR estimate from clicks alone, so every evaluation can show estimate vs truth.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence, Union

import numpy as np

from creative_metrics import validation as V

__all__ = ["TruePolicyValue", "TruePolicyAccumulator", "true_policy_value", "lift_share"]


@dataclasses.dataclass(frozen=True)
class TruePolicyValue:
    """True CTRs of a policy and of its reference policies, averaged over impressions.

    Attributes:
      selected: true CTR of the policy's creatives.
      random: true CTR of a uniformly random creative.
      oracle: true CTR of the best creative.
      lift_share: ``(selected - random) / (oracle - random)``; NaN when ``oracle == random``.
      logged: true CTR of the creatives exposed by the logging policy (NaN if not given).
      impressions: (weighted) impressions.
    """

    selected: float
    random: float
    oracle: float
    lift_share: float
    logged: float
    impressions: float


def lift_share(selected: float, random: float, oracle: float) -> float:
    r""":math:`(V_\pi - V_{rand}) / (V_{orc} - V_{rand})`; NaN when the oracle is no better than random."""
    gap = oracle - random
    return float((selected - random) / gap) if gap > 0 else math.nan


class TruePolicyAccumulator:
    """Weighted sums of the per-impression true CTRs (five floats, whatever the number of impressions)."""

    def __init__(self):
        self.sums = np.zeros(5)  # weight, w*selected, w*random, w*oracle, w*logged
        self.logged_weight = 0.0

    def add(self, selected, random, oracle, logged=None, weights=None) -> "TruePolicyAccumulator":
        """Adds per-impression true CTRs (1-D arrays of equal length)."""
        w = np.ones(len(selected)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.sums[0] += w.sum()
        self.sums[1] += np.dot(w, selected)
        self.sums[2] += np.dot(w, random)
        self.sums[3] += np.dot(w, oracle)
        if logged is not None:
            self.sums[4] += np.dot(w, logged)
            self.logged_weight += w.sum()
        return self

    def add_one(self, selected: float, random: float, oracle: float, logged: float,
                weight: float = 1.0) -> "TruePolicyAccumulator":
        """Adds one impression (the per-example path of the TFMA combiner)."""
        self.sums += (weight, weight * selected, weight * random, weight * oracle, weight * logged)
        self.logged_weight += weight
        return self

    def merge(self, other: "TruePolicyAccumulator") -> "TruePolicyAccumulator":
        self.sums += other.sums
        self.logged_weight += other.logged_weight
        return self

    def result(self) -> TruePolicyValue:
        total = self.sums[0]
        if total <= 0:
            raise ValueError("no impressions were added")
        sel, rnd, orc = (float(s / total) for s in self.sums[1:4])
        logged = float(self.sums[4] / self.logged_weight) if self.logged_weight > 0 else math.nan
        return TruePolicyValue(sel, rnd, orc, lift_share(sel, rnd, orc), logged, float(total))


def per_impression_truth(cand_ctrs: np.ndarray, row_lengths: np.ndarray, selected_index: np.ndarray):
    """Per-impression ``(selected, random, oracle)`` true CTRs from flat candidate CTRs.

    Args:
      cand_ctrs: float ``[sum(row_lengths)]``, every impression's candidate CTRs, concatenated.
      row_lengths: int ``[n]`` >= 1, candidates per impression.
      selected_index: int ``[n]``, the policy's candidate index, ``0 <= k < row_lengths``.
    """
    starts = np.concatenate([[0], np.cumsum(row_lengths)[:-1]])
    selected = cand_ctrs[starts + selected_index]
    random = np.add.reduceat(cand_ctrs, starts) / row_lengths
    oracle = np.maximum.reduceat(cand_ctrs, starts)
    return selected, random, oracle


def true_policy_value(
    cand_ctrs: Union[Sequence[Sequence[float]], np.ndarray],
    selected_index,
    *,
    row_lengths=None,
    logged_ctr=None,
) -> TruePolicyValue:
    r"""True CTR of a creative policy, of random and oracle selection, and the lift share.

    Args:
      cand_ctrs: the true CTR of every candidate of every impression: a sequence of ``n`` sequences
        (candidate order, as ``features.TRUTH_CAND_CTRS``), or -- with ``row_lengths`` -- one flat
        array of all of them concatenated.
      selected_index: int ``[n]``, the candidate the policy picks (``features.SELECTED_INDEX``).
      row_lengths: optional int ``[n]``, candidates per impression when ``cand_ctrs`` is flat.
      logged_ctr: optional float ``[n]``, true CTR of the exposed creative (``features.TRUTH_CTR``).

    Returns:
      :class:`TruePolicyValue`.

    Raises:
      ValueError: empty input, mismatched lengths, an impression without candidates, a selected index
        out of range, or CTRs that are NaN or outside [0, 1].
    """
    if row_lengths is None:
        rows = [np.asarray(r, dtype=np.float64).reshape(-1) for r in cand_ctrs]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        flat = np.concatenate(rows) if rows else np.empty(0)
    else:
        lengths = V.ids("row_lengths", V.as_1d("row_lengths", row_lengths))
        flat = V.as_1d("cand_ctrs", cand_ctrs).astype(np.float64)
        if lengths.sum() != len(flat):
            raise ValueError(f"cand_ctrs has {len(flat)} values but row_lengths sum to {lengths.sum()}")
    cols, _ = V.columns(cand_ctrs=lengths, selected_index=selected_index, logged_ctr=logged_ctr)
    V.reject_first(lengths < 1, "cand_ctrs", lengths, "needs at least one candidate per impression",
                   where="impression")
    _check_ctrs("cand_ctrs", flat)
    index = V.ids("selected_index", cols["selected_index"])
    bad = (index < 0) | (index >= lengths)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"selected_index {index[i]} out of range [0, {lengths[i]}) at impression {i}")
    logged = None
    if logged_ctr is not None:
        logged = cols["logged_ctr"].astype(np.float64)
        _check_ctrs("logged_ctr", logged)
    sel, rnd, orc = per_impression_truth(flat, lengths, index)
    return TruePolicyAccumulator().add(sel, rnd, orc, logged).result()


def _check_ctrs(name: str, values: np.ndarray) -> None:
    V.reject_first(np.isnan(values), name, values, "must not be NaN", where="flat index")
    V.reject_first((values < 0) | (values > 1), name, values, "must be CTRs in [0, 1]", where="flat index")
