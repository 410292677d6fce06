"""The world's effects the paper's claims rest on, each a SimulatorConfig knob: on by default, and gone when 0.

Each test measures the effect on simulated logged traffic (the truth of the impressions the logging ranker
shows), once with the default knob and once with the knob at 0 -- the same seed, so every other entity of
the world is the same.
"""

import numpy as np
import pytest

import features as F
from simulator import SimulatorConfig, build_world, traffic
from simulator.arrays import segment_argmax, sigmoid
from simulator.world import RELEVANCE_STYLE_SLOPE

DEFAULT = SimulatorConfig()


def _traffic(seed=5, requests=40_000, **knobs):
    world = build_world(SimulatorConfig(num_impressions=40_000, seed=seed, **knobs))
    return world, traffic.draw_impressions(world, world.day_view(0), np.random.default_rng(1), requests)


# ---------------------------------------------------------------------- ad relevance x creative style
def _best_creative_flip_share(world, batch) -> float:
    """Share of impressions whose best creative differs from that of the first impression of the same ad
    and the same (gender, age, income) segment: every creative term but the relevance term is equal there."""
    best = batch.cand_creative[batch.cand_ptr[:-1] + segment_argmax(batch.cand_logit, batch.cand_ptr)]
    u = batch.user
    key = np.stack([batch.ad] + [world.user_attrs[n][u] for n in
                                 (F.USER_GENDER, F.USER_AGE_BUCKET, F.USER_INCOME_BUCKET)], axis=1)
    _, group, size = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    first = np.empty(len(size), np.int64)
    first[group[::-1]] = best[::-1]  # the last write wins: each group's first impression
    pairs = (size[group] >= 2) & (batch.num_candidates >= 2)
    assert pairs.sum() > 10_000
    return float(np.mean(best[pairs] != first[group[pairs]]))


def test_best_creative_depends_on_ad_relevance_only_with_the_knob_on():
    assert DEFAULT.relevance_style_scale > 0
    assert _best_creative_flip_share(*_traffic()) > 0.05
    assert _best_creative_flip_share(*_traffic(relevance_style_scale=0.0)) == 0.0


def test_product_shots_gain_on_lifestyle_creatives_as_affinity_grows():
    world = build_world(SimulatorConfig(num_impressions=20_000, seed=3), calibrate=False)
    style = {name: i for i, name in enumerate(F.CREATIVE_STYLES)}
    ad = 0
    # Two users of one segment (so only the relevance term differs), far apart in affinity to the ad.
    attrs = np.stack([world.user_attrs[n] for n in (F.USER_GENDER, F.USER_AGE_BUCKET, F.USER_INCOME_BUCKET)], 1)
    same = np.flatnonzero((attrs == attrs[0]).all(axis=1))
    rho = world.relevance(same, np.full(len(same), ad))
    low, high = same[np.argmin(rho)], same[np.argmax(rho)]
    # A product-only and a lifestyle creative of equal quality: swap the style of one creative.
    creative = int(world.creative_ad.searchsorted(ad))
    gap = {}
    for user in (low, high):
        logits = {}
        for name in ("product_only", "lifestyle"):
            saved = world.creative_style[creative]
            world.creative_style[creative] = style[name]
            logits[name] = world.creative_logit(np.array([user]), np.array([ad]), np.array([creative]))[0]
            world.creative_style[creative] = saved
        gap[user] = logits["product_only"] - logits["lifestyle"]
    slope = RELEVANCE_STYLE_SLOPE[style["product_only"]] - RELEVANCE_STYLE_SLOPE[style["lifestyle"]]
    want = world.config.relevance_style_scale * slope * (rho.max() - rho.min())
    assert gap[high] - gap[low] == pytest.approx(want, rel=1e-6) and want > 0  # float32 interests


# ---------------------------------------------------------------------- ad CTR x number of creatives
def _count_effect(seed, **knobs):
    """(correlation of log candidates and log true CTR over impressions, expected sCTR bias): the bias of
    a uniformly random creative policy replayed on uniformly logged impressions, which match with
    probability 1/n, so E[sCTR] = sum(q / n) / sum(1 / n) against the truth mean(q)."""
    _, batch = _traffic(seed=seed, **knobs)
    q, n = sigmoid(batch.exposed_logit), batch.num_candidates
    corr = np.corrcoef(np.log(n), np.log(q))[0, 1]
    return corr, np.sum(q / n) / np.sum(1 / n) / q.mean() - 1


def test_ad_ctr_grows_with_its_creatives_and_biases_sctr_only_with_the_knob_on():
    assert DEFAULT.creative_count_quality > 0
    on = np.mean([_count_effect(seed) for seed in (1, 2, 3)], axis=0)
    off = np.mean([_count_effect(seed, creative_count_quality=0.0) for seed in (1, 2, 3)], axis=0)
    assert on[0] > 0.1 and on[1] < -0.06  # many-creative ads click more, so sCTR underestimates
    assert abs(off[0]) < 0.03 and abs(off[1]) < 0.03


# --------------------------------------------------------------------------------------------- bids
def test_bids_steer_the_ranker_only_with_the_knob_on():
    assert DEFAULT.bid_std > 0
    world, batch = _traffic()
    # The logging ranker ranks by eCPM: the ads it shows bid more than the candidates do on average.
    assert world.ad_bid[batch.ad].mean() / world.ad_bid.mean() > 1.1
    assert world.ad_bid.mean() == pytest.approx(world.config.bid_mean, rel=0.05)
    flat, flat_batch = _traffic(bid_std=0.0)
    np.testing.assert_array_equal(flat.ad_bid, np.full(flat.num_ads, flat.config.bid_mean))
    assert flat.ad_bid[flat_batch.ad].mean() == flat.ad_bid.mean()


def test_bids_follow_price_and_leave_every_other_entity_unchanged():
    world = build_world(SimulatorConfig(num_impressions=40_000, seed=4), calibrate=False)
    flat = build_world(SimulatorConfig(num_impressions=40_000, seed=4, bid_std=0.0), calibrate=False)
    np.testing.assert_array_equal(world.ad_quality, flat.ad_quality)
    np.testing.assert_array_equal(world.creative_embedding, flat.creative_embedding)
    by_price = [np.log(world.ad_bid[world.ad_price == p]).mean() for p in range(len(F.PRICE_BUCKETS))]
    assert np.all(np.diff(by_price) > 0)  # dearer products pay more per click
