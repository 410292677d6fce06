r"""DCO, the dynamic-creative-optimization baseline of Gu et al., 2025 (Table 2, "+DCO"): successive elimination
over each ad's combinations by their observed CTRs (NumPy only).

Every combination of an ad seen in the training log is an *arm* with :math:`n` impressions and :math:`k` clicks.
Its CTR estimate is smoothed towards the log's CTR :math:`\bar y` and bounded by Hoeffding's inequality:

.. math::
    \hat\mu = \frac{k + \alpha \bar y}{n + \alpha}, \qquad
    \mathrm{LCB}, \mathrm{UCB} = \hat\mu \mp \sqrt{\frac{\log(2 / \delta)}{2 n}}.

Successive elimination drops every arm whose UCB is below the best LCB; of the surviving arms still available
(all their elements are in the ad's pools today) it serves the one with the highest :math:`\hat\mu`. An ad with
no available observed arm (new ad, churned elements) gets a uniformly random combination -- the exploration
DCO would do online. Combinations are compared by element *ids*, so a pool's order may change between days.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

import features as F


class SuccessiveElimination:
    """Per-ad combination arms from a training log, then a choice per test impression.

    Args:
      delta: confidence level of the elimination bounds.
      prior_strength: :math:`\\alpha`, pseudo-impressions of the smoothing prior.
      seed: seed of the uniform fallback.
    """

    def __init__(self, delta: float = 0.05, prior_strength: float = 20.0, seed: int = 0):
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        self.delta, self.prior_strength, self.seed = delta, prior_strength, seed
        self.arms: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}  # ad -> (survivor combos [a, m] by id, means)
        self.mean_ctr = 0.0

    def fit(self, ad_ids: np.ndarray, combination_ids: np.ndarray, clicks: np.ndarray) -> "SuccessiveElimination":
        """``combination_ids [n, m]``: the logged element id per component (``features.GENCO_PAD`` if absent)."""
        ad_ids, combination_ids = np.asarray(ad_ids, np.int64), np.asarray(combination_ids, np.int64)
        clicks = np.asarray(clicks, np.float64)
        if not (len(ad_ids) == len(combination_ids) == len(clicks)):
            raise ValueError("ad_ids, combination_ids and clicks must have one entry per impression")
        self.mean_ctr = float(clicks.mean()) if len(clicks) else 0.0
        keys = np.concatenate([ad_ids[:, None], combination_ids], axis=1)
        arms, inverse = np.unique(keys, axis=0, return_inverse=True)
        n = np.bincount(inverse, minlength=len(arms)).astype(np.float64)
        k = np.bincount(inverse, weights=clicks, minlength=len(arms))
        mean = (k + self.prior_strength * self.mean_ctr) / (n + self.prior_strength)
        radius = np.sqrt(math.log(2.0 / self.delta) / (2.0 * n))
        starts = np.flatnonzero(np.r_[True, arms[1:, 0] != arms[:-1, 0]])
        for lo, hi in zip(starts, np.r_[starts[1:], len(arms)]):
            keep = mean[lo:hi] + radius[lo:hi] >= (mean[lo:hi] - radius[lo:hi]).max()
            order = np.argsort(-mean[lo:hi][keep], kind="stable")
            self.arms[int(arms[lo, 0])] = (arms[lo:hi, 1:][keep][order], mean[lo:hi][keep][order])
        return self

    def select(self, ad_ids: np.ndarray, pool_ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``pool_ids [n, m, N]`` (padding ``features.GENCO_PAD``) -> (chosen index [n, m], from_arm [n] bool)."""
        pool_ids = np.asarray(pool_ids, np.int64)
        n, m, width = pool_ids.shape
        rng = np.random.default_rng([self.seed, 7])
        real = pool_ids != F.GENCO_PAD
        draw = (rng.random((n, m, width)) + 1.0) * real  # uniform fallback: argmax of positive noise on real slots
        chosen = np.where(real.any(axis=2), draw.argmax(axis=2), -1)
        from_arm = np.zeros(n, bool)
        for i, ad in enumerate(np.asarray(ad_ids, np.int64).tolist()):
            arms = self.arms.get(ad)
            if arms is None:
                continue
            for combo in arms[0]:
                index = self._indices(pool_ids[i], combo)
                if index is not None:
                    chosen[i], from_arm[i] = index, True
                    break
        return chosen, from_arm

    @staticmethod
    def _indices(pools: np.ndarray, combo: np.ndarray):
        """Index of each of ``combo``'s element ids in its pool [m, N] (None if one is no longer there)."""
        out = np.full(len(combo), -1, np.int64)
        for j, element in enumerate(combo.tolist()):
            if element == F.GENCO_PAD:
                if (pools[j] != F.GENCO_PAD).any():
                    return None  # the ad has the component now
                continue
            hits = np.flatnonzero(pools[j] == element)
            if not len(hits):
                return None
            out[j] = hits[0]
        return out
