"""The world: entities, the click model formula, calibration, sequences, save/load; the array helpers."""

import ast
import glob
import json
import os

import numpy as np
import pytest

import features as F
from simulator import SimulatorConfig, build_world, load_world
from simulator import traffic
from simulator.arrays import offsets, ragged_positions, segment_argmax, sigmoid
from simulator.world import RELEVANCE_STYLE_SLOPE, _append_sequences


@pytest.fixture(scope="module")
def world():
    return build_world(SimulatorConfig(num_impressions=20_000, seed=7))


def test_click_model_formula_by_hand(world):
    u, a, slot = 5, 9, 2
    c = int(world.track_day_creative[np.flatnonzero(world.track_ad == a)[0], 0])
    g = world.user_attrs[F.USER_GENDER][u]
    age = world.user_attrs[F.USER_AGE_BUCKET][u]
    inc = world.user_attrs[F.USER_INCOME_BUCKET][u]
    k, s, tag = world.ad_category[a], world.creative_style[c], world.creative_price_tag[c]
    rho = (world.user_interest[u, k] - world.user_interest.mean()) / world.user_interest.std()
    logit = (world.bias + world.user_propensity[u] + world.ad_quality[a]
             + world.config.interest_scale * world.user_interest[u, k]
             + world.creative_quality[c] + world.gender_style[g, s] + world.age_style[age, s]
             + world.income_price_tag[inc, tag] + world.category_style[k, s]
             + world.config.relevance_style_scale * rho * RELEVANCE_STYLE_SLOPE[s]
             + -world.config.position_decay * np.log(1 + slot))
    assert world.true_ctr([u], [a], [c], [slot])[0] == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-9)
    # Lower page slots are clicked less, all else equal.
    ctrs = world.true_ctr([u] * 3, [a] * 3, [c] * 3, [0, 1, 2])
    assert ctrs[0] > ctrs[1] > ctrs[2]


def test_personalised_creative_effect_depends_on_gender(world):
    # The same creatives rank differently for female and male users in some ads (Yang et al., AAAI 2024, Fig. 1).
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
    assert world.ad_num_tracks.min() >= cfg.min_creatives and world.ad_num_tracks.max() <= cfg.max_creatives
    assert world.ad_num_tracks.max() >= 20  # the long tail of many-creative ads exists
    assert abs(world.ad_num_tracks.mean() - cfg.mean_creatives) < 0.8
    np.testing.assert_array_equal(np.bincount(world.track_ad, minlength=world.num_ads), world.ad_num_tracks)
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
                                    late_track_rate=0.5, early_retire_rate=0.5, seed=1), calibrate=False)
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
    assert sigmoid(batch.exposed_logit).mean() == pytest.approx(0.1, rel=0.05)


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
    args = ([1, 2, 3], [4, 5, 6], [world.track_day_creative[0, 0]] * 3, [0, 1, 2])
    np.testing.assert_array_equal(loaded.true_ctr(*args), world.true_ctr(*args))


def test_world_saved_before_the_track_rename_still_loads(world, tmp_path):
    """world.npz files written with the creative "slot" names load under the "track" names."""
    path = str(tmp_path / "world.npz")
    world.save(path)
    renamed = {"ad_num_tracks": "ad_num_slots", "track_ad": "slot_ad", "track_day_creative": "slot_day_creative"}
    with np.load(path) as data:
        arrays = {renamed.get(k, k): data[k] for k in data.files}
    arrays["config_json"] = np.array(str(arrays["config_json"]).replace("late_track_rate", "late_slot_rate"))
    old = str(tmp_path / "old.npz")
    np.savez_compressed(old, **arrays)
    loaded = load_world(old)
    assert loaded.config == world.config
    np.testing.assert_array_equal(loaded.track_day_creative, world.track_day_creative)
    np.testing.assert_array_equal(loaded.ad_num_tracks, world.ad_num_tracks)


def test_world_saved_before_bids_and_the_relevance_term_loads_without_them(world, tmp_path):
    """A world.npz from before the bids and the relevance x creative term: one bid for every ad, no term."""
    path = str(tmp_path / "world.npz")
    world.save(path)
    new_options = ("relevance_style_scale", "creative_count_quality", "bid_mean", "bid_std", "live_days")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k not in ("ad_bid", "affinity_mean", "affinity_std")}
    options = {k: v for k, v in json.loads(str(arrays["config_json"])).items() if k not in new_options}
    arrays["config_json"] = np.array(json.dumps(options))
    old = str(tmp_path / "old.npz")
    np.savez_compressed(old, **arrays)
    loaded = load_world(old)
    assert loaded.config.relevance_style_scale == 0.0 and loaded.config.bid_std == 0.0
    np.testing.assert_array_equal(loaded.ad_bid, np.full(world.num_ads, loaded.config.bid_mean))
    users, ads = np.arange(5), np.arange(5)
    creatives = [int(world.track_day_creative[np.flatnonzero(world.track_ad == a)[0], 0]) for a in ads]
    gamma = world.config.relevance_style_scale
    without_term = (world.creative_logit(users, ads, creatives)
                    - gamma * world.relevance(users, ads) * RELEVANCE_STYLE_SLOPE[world.creative_style[creatives]])
    np.testing.assert_allclose(loaded.creative_logit(users, ads, creatives), without_term, rtol=1e-12)


# ------------------------------------------------------------------------------------------ arrays
def test_ragged_helpers_by_hand():
    lengths = np.array([2, 0, 3])
    np.testing.assert_array_equal(offsets(lengths), [0, 2, 2, 5])
    rows, pos = ragged_positions(lengths)
    np.testing.assert_array_equal(rows, [0, 0, 2, 2, 2])
    np.testing.assert_array_equal(pos, [0, 1, 0, 1, 2])
    # rows [0.5, 0.9], [0.1, 0.7, 0.7]: the first maximum wins ties
    np.testing.assert_array_equal(segment_argmax(np.array([0.5, 0.9, 0.1, 0.7, 0.7]), offsets([2, 3])), [1, 1])
    assert sigmoid(np.array([0.0]))[0] == 0.5 and sigmoid(np.array([np.log(3.0)]))[0] == pytest.approx(0.75)


def test_simulator_modules_import_each_other_without_cycles():
    """Every import between simulator modules (function-level ones too) goes one way."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "simulator")
    graph = {}
    for path in glob.glob(os.path.join(root, "*.py")):
        name = os.path.basename(path)[:-3]
        if name == "__init__":
            continue
        deps = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and node.module == "simulator":
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("simulator."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("simulator."))
        graph[name] = deps - {name}

    def reaches(start, target, seen=()):
        return any(d == target or (d not in seen and reaches(d, target, seen + (d,))) for d in graph.get(start, ()))

    cycles = sorted(m for m in graph if reaches(m, m))
    assert not cycles, {m: sorted(graph[m]) for m in cycles}
    assert "traffic" not in graph["world"] and "world" in graph["traffic"]
