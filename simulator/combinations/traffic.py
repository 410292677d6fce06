r"""Logged traffic of the multi-component world: impressions, the two logging policies, clicks, the bias.

An impression is one ad shown to one user (the creative module composes each ad's creative; the ad ranking
is not simulated here): the user by traffic share, the ad by popularity. For every component the ad has, the
logging policy picks one element of the day's pool, independently across components:

* ``production`` (the training days): :math:`\mu_j(e) = \mathrm{softmax}_{e \in S_{a,j}}(\hat q_e / \tau)`, a
  softmax over the production system's noisy quality estimate (it knows neither the personalised effects nor
  the interactions);
* ``uniform`` (the test days, Gu et al., 2025's unbiased test set): :math:`\mu_j(e) = 1 / n_{a,j}`.

The propensity of the logged combination is :math:`\prod_j \mu_j(e_j)`; both it and the per-component
propensities are logged. Randomness comes only from the ``rng`` passed in.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simulator.arrays import bias_for_target
from simulator.combinations import truth as T
from simulator.combinations.world import CombinationWorld, truth_arrays

PRODUCTION = "production"
UNIFORM = "uniform"
POLICIES = (PRODUCTION, UNIFORM)


@dataclasses.dataclass
class CombinationBatch:
    """Impressions with their pools, truth terms and logged combination (``n`` rows; see
    :mod:`simulator.combinations.truth` for the array layout)."""

    user: np.ndarray  # [n]
    ad: np.ndarray  # [n]
    elements: np.ndarray  # [n, M, N] element index, -1 in the padding
    base: np.ndarray  # [n]
    element_logits: np.ndarray  # [n, M, N]
    styles: np.ndarray  # [n, M, N]
    pair_logits: np.ndarray  # [n, P*S*S]
    exposed: np.ndarray  # [n, M] index into the pool, -1 where the ad lacks the component
    propensity: np.ndarray  # [n, M] mu_j of the exposed element, 1 where absent

    @property
    def exposed_logit(self) -> np.ndarray:
        return T.combination_logit(self.base, self.element_logits, self.styles, self.pair_logits, self.exposed)


def draw_entities(world: CombinationWorld, rng: np.random.Generator, n: int):
    """([n] users by traffic share, [n] ads by popularity)."""
    users = np.minimum(np.searchsorted(world.user_traffic_cdf, rng.random(n), side="right"), world.num_users - 1)
    ads = np.minimum(np.searchsorted(world.ad_popularity_cdf, rng.random(n), side="right"), world.num_ads - 1)
    return users.astype(np.int64), ads.astype(np.int64)


def logging_probabilities(world: CombinationWorld, elements: np.ndarray, policy: str) -> np.ndarray:
    """[n, M, N] the logging policy's :math:`\\mu_j` over every pool (0 in the padding and for absent components)."""
    real = elements >= 0
    if policy == UNIFORM:
        weight = real.astype(np.float64)
    elif policy == PRODUCTION:
        score = np.where(real, world.estimates(elements) / world.config.production_temperature, -np.inf)
        top = np.max(score, axis=2, keepdims=True)
        weight = np.where(real, np.exp(score - np.where(np.isfinite(top), top, 0.0)), 0.0)
    else:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    total = weight.sum(axis=2, keepdims=True)
    return np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)


def draw_impressions(world: CombinationWorld, day: int, rng: np.random.Generator, n: int,
                     policy: str) -> CombinationBatch:
    """``n`` impressions of ``day`` with the combination ``policy`` logged (clicks are drawn later)."""
    users, ads = draw_entities(world, rng, n)
    elements = world.pools(day, ads)
    probs = logging_probabilities(world, elements, policy)
    has = probs.sum(axis=2) > 0
    # Inverse-CDF draw per (impression, component); the clip to the last real candidate guards the float tail.
    cdf = np.cumsum(probs, axis=2)
    u = rng.random(has.shape)[..., None]
    last = np.maximum((elements >= 0).sum(axis=2) - 1, 0)
    exposed = np.where(has, np.minimum((cdf < u * cdf[..., -1:]).sum(axis=2), last), -1)
    propensity = np.where(has, np.take_along_axis(probs, np.maximum(exposed, 0)[..., None], axis=2)[..., 0], 1.0)
    base, element_logits, styles, pair_logits = truth_arrays(world, users, ads, elements)
    return CombinationBatch(users, ads, elements, base, element_logits, styles, pair_logits, exposed, propensity)


def calibrate_bias(world: CombinationWorld) -> float:
    """Solves mean :math:`\\sigma(b + \\ldots)` = ``target_ctr`` over production-logged day-0 traffic, by bisection.

    The policies do not depend on :math:`b`, so the logged combinations are fixed and the mean is monotone in
    :math:`b`. The traffic comes from its own random stream (``[seed, 101]``); ``world`` is left as it was.
    """
    saved, world.bias = world.bias, 0.0
    try:
        rng = np.random.default_rng([world.config.seed, 101])
        logits = draw_impressions(world, 0, rng, world.config.calibration_impressions, PRODUCTION).exposed_logit
    finally:
        world.bias = saved
    return bias_for_target(logits, world.config.target_ctr)
