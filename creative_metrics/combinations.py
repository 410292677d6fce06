r"""Offline metrics of a combination policy (GenCO, Gu et al., 2025) on a uniform-logged test set (NumPy only).

A policy picks, for each test impression :math:`r`, one element per component the ad has: ``chosen [n, m]``
(index into the pool, -1 for absent components), beside the logged combination ``logged [n, m]``.

* :func:`component_calibrated_sctr` -- calibrated sCTR per component, Gu et al., 2025, Algorithm 1 (the
  component-level evaluation of their Table 3): for component :math:`j`, over the impressions whose ad has it,

  .. math::
      \mathrm{sCTR}_j = \frac{\sum_r n_{r,j}\, y_r\, [\hat c_{r,j} = c_{r,j}]}{\sum_r n_{r,j}\, [\hat c_{r,j} = c_{r,j}]},

  :func:`creative_metrics.replay.calibrated_sctr` on that component's columns (on a match the ad adds its
  :math:`n_{r,j}` candidates to the exposure and :math:`n_{r,j} y_r` to the clicks);
* :func:`components_mean` -- their mean over the components (the one number a pipeline blesses on);
* :func:`lift_by_pool_size` -- the true-CTR lift of a policy over a reference per component and pool-size
  bucket (Table 4, buckets of :data:`creative_metrics.candidate_buckets.COMPONENT_BUCKETS`).

The true CTR of any combination is :func:`simulator.combinations.truth.combination_ctr` of the log's truth
columns; :func:`true_ctrs` evaluates it for a policy, and the oracle is
:func:`simulator.combinations.truth.best_combination`.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping

import numpy as np

import features as F
from creative_metrics import candidate_buckets as CB
from creative_metrics import replay
from creative_metrics.replay import PolicyEstimate

__all__ = ["CombinationTruthAccumulator", "ComponentSCTRAccumulator", "component_calibrated_sctr",
           "components_mean", "lift_by_pool_size", "true_ctrs"]


def _matrix(name: str, values, n: int, m: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n, m):
        raise ValueError(f"{name} must have shape [impressions, components] = [{n}, {m}], got {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


class ComponentSCTRAccumulator:
    """One :class:`creative_metrics.replay.CreativeMatchAccumulator` per component; merges across workers."""

    def __init__(self, components=F.GENCO_COMPONENTS):
        self.components = tuple(components)
        self.accumulators = {c: replay.CreativeMatchAccumulator() for c in self.components}
        self.rows = 0

    def update(self, ad_ids, logged, chosen, clicks, pool_sizes, weights=None) -> "ComponentSCTRAccumulator":
        """Adds impressions: ``ad_ids [n]``, ``logged``, ``chosen``, ``pool_sizes`` ``[n, m]``, ``clicks [n]``.

        Rows where a component's pool is empty (the ad lacks it) do not count for that component; there the
        logged and chosen indices must be -1 too (a ``ValueError`` names the component and row otherwise).
        """
        ad_ids = np.asarray(ad_ids)
        n, m = len(ad_ids), len(self.components)
        logged, chosen = _matrix("logged", logged, n, m), _matrix("chosen", chosen, n, m)
        sizes = _matrix("pool_sizes", pool_sizes, n, m)
        for j, c in enumerate(self.components):
            has = sizes[:, j] > 0
            for name, col in (("logged", logged[:, j]), ("chosen", chosen[:, j])):
                bad = np.where(has, (col < 0) | (col >= sizes[:, j]), col != -1)
                if bad.any():
                    i = int(np.argmax(bad))
                    raise ValueError(f"{name} component {c!r}: index {col[i]} at row {self.rows + i} is not in "
                                     f"[0, {sizes[i, j]})" if has[i] else
                                     f"{name} component {c!r}: row {self.rows + i} has no pool, expected -1, "
                                     f"got {col[i]}")
            if has.any():
                w = None if weights is None else np.asarray(weights)[has]
                self.accumulators[c].update(ad_ids[has], logged[has, j], np.asarray(clicks)[has], chosen[has, j],
                                            sizes[has, j], w, offset=self.rows)
        self.rows += n
        return self

    def merge(self, other: "ComponentSCTRAccumulator") -> "ComponentSCTRAccumulator":
        for c in self.components:
            self.accumulators[c].merge(other.accumulators[c])
        self.rows += other.rows
        return self

    @property
    def empty(self) -> bool:
        return self.rows == 0

    def result(self) -> Dict[str, PolicyEstimate]:
        """Calibrated sCTR per component (NaN value for a component no row had)."""
        nan = PolicyEstimate(math.nan, math.nan, 0.0, 0.0, 0, 0, 0.0, math.nan)
        return {c: acc.calibrated_sctr() if not acc.empty else nan for c, acc in self.accumulators.items()}


def component_calibrated_sctr(ad_ids, logged, chosen, clicks, pool_sizes) -> Dict[str, PolicyEstimate]:
    """Calibrated sCTR of ``chosen`` per component (see the module docstring); ``[n, m]`` matrices in
    ``features.GENCO_COMPONENTS`` order."""
    return ComponentSCTRAccumulator().update(ad_ids, logged, chosen, clicks, pool_sizes).result()


def components_mean(estimates: Mapping[str, PolicyEstimate]) -> float:
    """Mean of the per-component calibrated sCTRs that are defined (NaN if none is)."""
    values = [e.value for e in estimates.values() if math.isfinite(e.value)]
    return float(np.mean(values)) if values else math.nan


def true_ctrs(truth: Mapping[str, np.ndarray], chosen: np.ndarray) -> np.ndarray:
    """[n] true CTR of combination ``chosen`` per impression; ``truth`` holds ``base`` [n], ``element_logits`` and
    ``styles`` [n, m, N], ``pair_logits`` [n, P*S*S] (see :mod:`simulator.combinations.truth`)."""
    from simulator.combinations.truth import combination_ctr

    return combination_ctr(truth["base"], truth["element_logits"], truth["styles"], truth["pair_logits"], chosen)


class CombinationTruthAccumulator:
    """Sums of the true CTR of the chosen, logged and best combinations (a few floats however many rows).

    ``result()`` is a :class:`creative_metrics.ground_truth.TruePolicyValue` whose ``random`` is the logged
    combinations' true CTR: on the uniform-logged test days that *is* the uniform random policy's value, so its
    ``lift_share`` is (chosen - uniform) / (oracle - uniform).
    """

    def __init__(self):
        from creative_metrics.ground_truth import TruePolicyAccumulator

        self.sums = TruePolicyAccumulator()

    def update(self, base, element_logits, styles, pair_logits, chosen, logged_ctr, oracle_ctr,
               weights=None) -> "CombinationTruthAccumulator":
        truth = {"base": base, "element_logits": element_logits, "styles": styles, "pair_logits": pair_logits}
        selected = true_ctrs(truth, chosen)
        logged = np.asarray(logged_ctr, np.float64)
        self.sums.add(selected, logged, np.asarray(oracle_ctr, np.float64), logged, weights)
        return self

    def merge(self, other: "CombinationTruthAccumulator") -> "CombinationTruthAccumulator":
        self.sums.merge(other.sums)
        return self

    @property
    def empty(self) -> bool:
        return self.sums.sums[0] <= 0

    def result(self):
        return self.sums.result()


def lift_by_pool_size(policy_ctr, reference_ctr, pool_sizes) -> Dict[str, Dict[str, float]]:
    """``{component: {bucket label: mean(policy) / mean(reference) - 1}}`` over the impressions whose pool of
    the component falls in the bucket (Gu et al., 2025, Table 4); NaN for an empty bucket."""
    policy_ctr, reference_ctr = np.asarray(policy_ctr, np.float64), np.asarray(reference_ctr, np.float64)
    sizes = _matrix("pool_sizes", pool_sizes, len(policy_ctr), len(F.GENCO_COMPONENTS))
    out: Dict[str, Dict[str, float]] = {}
    for j, c in enumerate(F.GENCO_COMPONENTS):
        out[c] = {}
        for low, high, label in CB.COMPONENT_BUCKETS[c]:
            rows = (sizes[:, j] >= (low if low is not None else 1)) & (sizes[:, j] <= (high or np.inf))
            ref = reference_ctr[rows].sum()
            out[c][label] = float(policy_ctr[rows].sum() / ref - 1.0) if rows.any() and ref > 0 else math.nan
    return out
