"""Drawing a :class:`~simulator.combinations.world.CombinationWorld` from a config (entities, then the bias).

Everything comes from ``config.seed`` in a fixed order (users, ads, pools and their elements component by
component, the click-model tables), so one config always gives the same world; the global bias is then
calibrated on simulated production-logged traffic (:func:`simulator.combinations.traffic.calibrate_bias`).
"""

from __future__ import annotations

import numpy as np

import features as F
from simulator.arrays import categorical, offsets, ragged_positions, rowwise_categorical
from simulator.combinations.config import CombinationConfig
from simulator.combinations.traffic import calibrate_bias
from simulator.combinations.world import (G, M, N, NUM_SEGMENTS, S, CombinationWorld, ComponentPools,
                                          importance_table)

_GENDER_SHARES = [0.1, 0.45, 0.45]
_AGE_SHARES = [0.05, 0.2, 0.3, 0.25, 0.13, 0.07]
_AGE_PROPENSITY = np.array([0.1, 0.15, 0.05, 0.0, -0.05, -0.1])


def geometric_for_capped_mean(mean: float, cap: int = N) -> float:
    """The success probability ``p`` whose geometric draw capped at ``cap`` has mean ``mean``.

    :math:`E[\\min(G, cap)] = (1 - (1-p)^{cap}) / p`, decreasing in :math:`p`; solved by bisection.
    """
    if not 1.0 <= mean < cap:
        raise ValueError(f"mean must be in [1, {cap}), got {mean!r}")
    low, high = 1e-9, 1.0
    for _ in range(100):
        p = 0.5 * (low + high)
        if (1.0 - (1.0 - p) ** cap) / p > mean:
            low = p
        else:
            high = p
    return 0.5 * (low + high)


def _component_pools(rng, config: CombinationConfig, j: int, num_ads: int) -> ComponentPools:
    has = rng.random(num_ads) < config.coverage[j]
    p = geometric_for_capped_mean(config.mean_candidates[j])
    size = np.where(has, np.minimum(rng.geometric(p, num_ads), N), 0).astype(np.int64)
    ad_ptr = offsets(size)
    track_ad, _ = ragged_positions(size)
    days = config.num_days
    replace = rng.random((len(track_ad), days)) < config.element_churn
    replace[:, 0] = False
    generation = np.cumsum(replace, axis=1)
    per_track = generation[:, -1] + 1
    first = np.cumsum(per_track) - per_track
    track_day_element = (first[:, None] + generation).astype(np.int64)
    element_ad = np.repeat(track_ad, per_track)
    style_mix = rng.dirichlet(np.full(S, 0.8), num_ads)
    style = rowwise_categorical(rng, style_mix, element_ad) if len(element_ad) else np.zeros(0, np.int64)
    quality = rng.normal(0.0, config.element_quality_std, len(element_ad))
    estimate = quality + rng.normal(0.0, config.estimate_noise, len(element_ad))
    return ComponentPools(ad_ptr, track_day_element, style, quality, estimate)


def build_world(config: CombinationConfig, calibrate: bool = True) -> CombinationWorld:
    """Draws every entity from ``config.seed``; calibrates the bias to ``target_ctr`` (``calibrate=False``:
    bias 0, for tests of the entities alone)."""
    config = config.validate().resolved()
    rng = np.random.default_rng([config.seed, 100])
    users, ads = config.num_users, config.num_ads

    gender = categorical(rng, _GENDER_SHARES, users)
    age = categorical(rng, _AGE_SHARES, users)
    propensity = _AGE_PROPENSITY[age] + rng.normal(0.0, config.user_propensity_std, users)
    traffic = np.cumsum(rng.lognormal(0.0, 0.8, users))
    traffic /= traffic[-1]

    category = rng.integers(0, F.NUM_AD_CATEGORIES, ads)
    quality = rng.normal(0.0, config.ad_quality_std, ads)
    rank = rng.permutation(ads)
    popularity = np.cumsum(1.0 / (rank + config.popularity_offset) ** config.popularity_exponent)
    popularity /= popularity[-1]

    components = {name: _component_pools(rng, config, j, ads) for j, name in enumerate(F.GENCO_COMPONENTS)}
    segment_style = rng.normal(0.0, config.personal_scale, (M, NUM_SEGMENTS, S))
    category_style = rng.normal(0.0, config.category_scale, (M, F.NUM_AD_CATEGORIES, S))
    pair_style = rng.normal(0.0, config.pair_scale, (G, len(F.GENCO_PAIRS), S, S))

    world = CombinationWorld(
        config=config, user_gender=gender, user_age=age, user_propensity=propensity, user_traffic_cdf=traffic,
        ad_category=category, ad_quality=quality, ad_popularity_cdf=popularity, components=components,
        segment_style=segment_style, category_style=category_style, importance=importance_table(),
        pair_style=pair_style, bias=0.0)
    if calibrate:
        world.bias = calibrate_bias(world)
    return world
