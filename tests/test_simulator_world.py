"""The world: entities, the click model formula, calibration, sequences and serving requests."""

import numpy as np
import pytest

import features as F
from simulator import SimulatorConfig, build_world, load_world, sample_requests
from simulator import traffic
from simulator.world import _append_sequences, _sigmoid


@pytest.fixture(scope="module")
def world():
    return build_world(SimulatorConfig(num_impressions=20_000, seed=7))


def test_click_model_formula_by_hand(world):
    u, a, slot = 5, 9, 2
    c = int(world.slot_day_creative[np.flatnonzero(world.slot_ad == a)[0], 0])
    g = world.user_attrs[F.USER_GENDER][u]
    age = world.user_attrs[F.USER_AGE_BUCKET][u]
    inc = world.user_attrs[F.USER_INCOME_BUCKET][u]
    k, s, tag = world.ad_category[a], world.creative_style[c], world.creative_price_tag[c]
    logit = (world.bias + world.user_propensity[u] + world.ad_quality[a]
             + world.config.interest_scale * world.user_interest[u, k]
             + world.creative_quality[c] + world.gender_style[g, s] + world.age_style[age, s]
             + world.income_price_tag[inc, tag] + world.category_style[k, s]
             + -world.config.position_decay * np.log(1 + slot))
    assert world.true_ctr([u], [a], [c], [slot])[0] == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-9)
    # Lower slots are clicked less, all else equal.
    ctrs = world.true_ctr([u] * 3, [a] * 3, [c] * 3, [0, 1, 2])
    assert ctrs[0] > ctrs[1] > ctrs[2]


def test_personalised_creative_effect_depends_on_gender(world):
    # The same creatives rank differently for female and male users in some ads (seed paper Fig. 1).
    view = world.day_view(0)
    female, male = (np.flatnonzero(world.user_attrs[F.USER_GENDER] == g)[0] for g in (1, 2))
    flips = 0
    for a in np.flatnonzero(view.count >= 3)[:200]:
        cands = view.creatives[view.ptr[a]:view.ptr[a + 1]]
        best = [np.argmax(world.creative_logit(np.full(len(cands), u), np.full(len(cands), a), cands))
                for u in (female, male)]
        flips += best[0] != best[1]
    assert flips >= 10


def test_entities_and_creative_counts(world):
    cfg = world.config
    assert len(world.user_propensity) == cfg.num_users == 2000 and world.num_ads == cfg.num_ads == 500
    assert world.ad_num_slots.min() >= cfg.min_creatives and world.ad_num_slots.max() <= cfg.max_creatives
    assert world.ad_num_slots.max() >= 20  # the long tail of many-creative ads exists
    assert abs(world.ad_num_slots.mean() - cfg.mean_creatives) < 0.8
    for name, values in world.user_attrs.items():
        assert values.min() >= 0 and values.max() < F.BY_NAME[name].domain
    assert world.ad_advertiser.min() >= 1 and world.ad_advertiser.max() <= cfg.num_advertisers
    assert world.ad_brand.min() >= 1
    for day in range(world.num_days):
        view = world.day_view(day)
        assert view.count.min() >= 1 and view.count.max() <= cfg.max_creatives
        assert (world.creative_ad[view.creatives] == np.repeat(np.arange(world.num_ads), view.count)).all()


def test_min_creatives_holds_every_day():
    w = build_world(SimulatorConfig(num_impressions=5000, min_creatives=3, mean_creatives=5.0,
                                    late_slot_rate=0.5, early_retire_rate=0.5, seed=1), calibrate=False)
    assert min(w.day_view(d).count.min() for d in range(w.num_days)) >= 3


def test_embedding_carries_style_and_quality(world):
    emb = world.creative_embedding.astype(np.float64)
    x = np.hstack([emb, np.ones((len(emb), 1))])
    fit = np.linalg.lstsq(x, world.creative_quality, rcond=None)[0]
    r2 = 1 - np.var(world.creative_quality - x @ fit) / np.var(world.creative_quality)
    assert r2 > 0.3
    centroids = np.stack([emb[world.creative_style == s].mean(0) for s in range(len(F.CREATIVE_STYLES))])
    nearest = np.argmin(((emb[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == world.creative_style) > 0.5  # chance: 1/6


def test_calibration_hits_other_targets():
    w = build_world(SimulatorConfig(num_impressions=20_000, target_ctr=0.1, seed=2))
    batch = traffic.draw_impressions(w, w.day_view(3), np.random.default_rng(99), 20_000)
    assert _sigmoid(batch.exposed_logit).mean() == pytest.approx(0.1, rel=0.05)


def test_sequences_follow_interests(world):
    lengths = np.diff(world.seq_ptr)
    assert lengths.max() <= world.config.max_seq_len and lengths.max() >= 20 and lengths.min() == 0
    users = np.repeat(np.arange(world.num_users), lengths)
    cats = world.ad_category[world.seq_ads]
    top = np.argmax(world.user_interest, axis=1)
    assert np.mean(cats == top[users]) > 5.0 / F.NUM_AD_CATEGORIES
    # More active users have longer histories.
    act = world.user_attrs[F.USER_ACTIVITY_LEVEL]
    assert lengths[act == 4].mean() > 2 * lengths[act == 0].mean()


def test_append_sequences_by_hand():
    ptr = np.array([0, 2, 2, 5])  # user 0: [10, 11]; user 1: []; user 2: [20, 21, 22]
    ads = np.array([10, 11, 20, 21, 22])
    new_ptr, new_ads = _append_sequences(ptr, ads, np.array([2, 1, 0, 2]), np.array([23, 30, 12, 24]), 4)
    np.testing.assert_array_equal(new_ptr, [0, 3, 4, 8])
    np.testing.assert_array_equal(new_ads, [10, 11, 12, 30, 21, 22, 23, 24])  # newest last, max 4


def test_end_day_updates_history(world):
    w = build_world(SimulatorConfig(num_impressions=5000, seed=3), calibrate=False)
    w.end_day(np.array([0, 0, 1]), np.array([4, 4, 7]), np.array([1, 0, 1]))
    view = w.day_view(1)
    s, p = w.config.hist_ctr_prior_strength, w.config.target_ctr
    assert view.hist_imps[4] == 2 and view.hist_ctr[4] == pytest.approx((1 + s * p) / (2 + s), rel=1e-6)
    assert view.hist_ctr[0] == pytest.approx(p, rel=1e-6)
    assert w.sequences(np.array([0]))[0][-1] == 4


def test_save_load_round_trip(world, tmp_path):
    path = str(tmp_path / "world.npz")
    world.save(path)
    loaded = load_world(path)
    assert loaded.config == world.config and loaded.bias == world.bias
    np.testing.assert_array_equal(loaded.creative_embedding, world.creative_embedding)
    np.testing.assert_array_equal(loaded.user_attrs[F.USER_OS], world.user_attrs[F.USER_OS])
    args = ([1, 2, 3], [4, 5, 6], [world.slot_day_creative[0, 0]] * 3, [0, 1, 2])
    np.testing.assert_array_equal(loaded.true_ctr(*args), world.true_ctr(*args))


def test_sample_requests(world):
    requests = sample_requests(world, 5, seed=1)
    assert requests == sample_requests(world, 5, seed=1)
    assert requests != sample_requests(world, 5, seed=2)
    for req in requests:
        assert set(req["user"]) == set(F.USER_FEATURES) and req["user"][F.USER_ID] >= 1
        assert set(req["sequence"]) == set(F.SEQUENCE_FEATURES)
        seq = req["sequence"]
        assert len(seq[F.SEQ_AD_IDS]) == len(seq[F.SEQ_AD_CATEGORIES])
        assert len(req["ads"]) == world.config.ads_per_request
        assert len({ad[F.AD_ID] for ad in req["ads"]}) == world.config.ads_per_request
        for ad in req["ads"]:
            assert set(F.AD_FEATURES + F.AD_HISTORY_FEATURES) <= set(ad)
            cands = ad["candidates"]
            n = len(cands[F.CREATIVE_ID])
            assert n >= 1 and min(cands[F.CREATIVE_ID]) >= 1
            assert set(cands) == set(F.CREATIVE_FEATURES)
            assert all(len(v) == n for v in cands.values())
            assert all(len(e) == F.CREATIVE_EMBEDDING_DIM for e in cands[F.CREATIVE_EMBEDDING])
            expected = world.true_ctr([req["user"][F.USER_ID] - 1] * n, [ad[F.AD_ID] - 1] * n,
                                      np.array(cands[F.CREATIVE_ID]) - 1, [0] * n)
            np.testing.assert_allclose(ad[F.TRUTH_CAND_CTRS], expected)
    with pytest.raises(ValueError, match="day"):
        sample_requests(world, 1, day=world.num_days)
