"""End-to-end properties of a simulated log, read back with features.raw_feature_spec()."""

import json
import os

import numpy as np
import pytest

import features as F
from simulator import SimulatorConfig, load_world, simulate
from simulator.truth import argmax_per_impression, policy_values, read_split, selected_ctr

IMPRESSIONS = 30_000


@pytest.fixture(scope="module")
def uniform_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sim") / "uniform")
    config = SimulatorConfig(num_impressions=IMPRESSIONS, seed=3, train_shards=3, chunk_size=4096)
    summary = simulate(config, out, progress=False)
    data = {split: read_split(out, split) for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT)}
    return config.resolved(), out, summary, data


@pytest.fixture(scope="module")
def greedy_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sim") / "greedy")
    config = SimulatorConfig(num_impressions=20_000, seed=5, logging_policy="epsilon_greedy", epsilon=0.2)
    summary = simulate(config, out, progress=False)
    return config.resolved(), summary, read_split(out, F.TRAIN_SPLIT)


def _both(data, name):
    """A column over train + eval (varlen: values and lengths concatenated)."""
    a, b = data[F.TRAIN_SPLIT][name], data[F.EVAL_SPLIT][name]
    if isinstance(a, tuple):
        return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
    return np.concatenate([a, b])


def test_layout_and_summary(uniform_run):
    config, out, summary, data = uniform_run
    assert sorted(os.listdir(os.path.join(out, F.TRAIN_SPLIT))) == [
        f"data-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert os.listdir(os.path.join(out, F.EVAL_SPLIT)) == ["data-00000-of-00001.tfrecord"]
    assert not [n for n in os.listdir(os.path.dirname(out)) if n.startswith(".")]  # no temp dirs left
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["overall"]["impressions"] == IMPRESSIONS
    n_train, n_eval = len(data[F.TRAIN_SPLIT][F.CLICK]), len(data[F.EVAL_SPLIT][F.CLICK])
    assert n_train + n_eval == IMPRESSIONS
    # Days split evenly; the eval split is exactly the last day.
    assert n_eval == len(np.array_split(np.arange(IMPRESSIONS), config.num_days)[-1])
    assert set(data[F.EVAL_SPLIT][F.DAY]) == {config.num_days - 1}
    assert set(data[F.TRAIN_SPLIT][F.DAY]) == set(range(config.num_days - 1))
    assert summary[F.TRAIN_SPLIT]["impressions"] == n_train and summary[F.EVAL_SPLIT]["impressions"] == n_eval
    assert summary["options"]["seed"] == 3


def test_every_column_with_its_dtype_and_domain(uniform_run):
    _, _, _, data = uniform_run
    cols = data[F.TRAIN_SPLIT]
    n = len(cols[F.CLICK])
    assert set(cols) == set(F.BY_NAME)
    for f in F.FEATURES:
        col = cols[f.name]
        values = col[0] if isinstance(col, tuple) else col
        assert values.dtype == (np.int64 if f.dtype == F.INT else np.float32), f.name
        if f.kind == F.SCALAR:
            assert col.shape == (n,), f.name
        elif f.kind == F.FIXED:
            assert col.shape == (n, f.length), f.name
        if f.domain is not None and len(values):
            assert values.min() >= 0 and values.max() < f.domain, f.name
    for name in (F.USER_ID, F.AD_ID, F.CREATIVE_ID, F.AD_ADVERTISER_ID, F.AD_BRAND_ID, F.REQUEST_ID):
        assert cols[name].min() >= 1, name
    for name in (F.CAND_CREATIVE_IDS, F.SEQ_AD_IDS):
        assert cols[name][0].min() >= 1, name


def test_candidate_lists_are_consistent(uniform_run):
    _, _, _, data = uniform_run
    cols = data[F.TRAIN_SPLIT]
    num = cols[F.NUM_CANDIDATES]
    assert num.min() >= 1
    for name in (F.CAND_CREATIVE_IDS, F.CAND_STYLES, F.CAND_COLOR_TONES, F.CAND_PRICE_TAGS,
                 F.CAND_TEXT_LENGTHS, F.TRUTH_CAND_CTRS):
        np.testing.assert_array_equal(cols[name][1], num, err_msg=name)
    np.testing.assert_array_equal(cols[F.CAND_EMBEDDINGS][1], num * F.CREATIVE_EMBEDDING_DIM)
    ptr = np.concatenate([[0], np.cumsum(num)])
    exposed = ptr[:-1] + cols[F.EXPOSED_INDEX]
    assert (cols[F.EXPOSED_INDEX] < num).all()
    pairs = [(F.CREATIVE_ID, F.CAND_CREATIVE_IDS), (F.CREATIVE_STYLE, F.CAND_STYLES),
             (F.CREATIVE_COLOR_TONE, F.CAND_COLOR_TONES), (F.CREATIVE_PRICE_TAG, F.CAND_PRICE_TAGS),
             (F.CREATIVE_TEXT_LENGTH, F.CAND_TEXT_LENGTHS), (F.TRUTH_CTR, F.TRUTH_CAND_CTRS)]
    for single, listed in pairs:
        np.testing.assert_array_equal(cols[single], cols[listed][0][exposed], err_msg=single)
    emb = cols[F.CAND_EMBEDDINGS][0].reshape(-1, F.CREATIVE_EMBEDDING_DIM)
    np.testing.assert_array_equal(cols[F.CREATIVE_EMBEDDING], emb[exposed])
    # Candidate ids are distinct within an impression.
    ids = cols[F.CAND_CREATIVE_IDS][0]
    rows = np.repeat(np.arange(len(num)), num)
    assert len(np.unique(rows * (ids.max() + 1) + ids)) == len(ids)
    # The candidate set is fixed per (ad, day): same ad on the same day -> same list.
    key = cols[F.AD_ID] * 100 + cols[F.DAY]
    first = {}
    for i, k in enumerate(key[:3000]):
        cand = tuple(ids[ptr[i]:ptr[i + 1]])
        assert first.setdefault(k, cand) == cand


def test_requests_show_distinct_ads_in_slots(uniform_run):
    config, _, _, data = uniform_run
    cols = data[F.TRAIN_SPLIT]
    req, slot, ad = cols[F.REQUEST_ID], cols[F.SLOT], cols[F.AD_ID]
    assert slot.max() == config.slots - 1
    assert len(np.unique(req * 10 + slot)) == len(req)  # one impression per (request, slot)
    assert len(np.unique(req * (ad.max() + 1) + ad)) == len(req)  # no ad twice in a request
    # One user per request.
    users = {}
    for r, u in zip(req[:5000], cols[F.USER_ID][:5000]):
        assert users.setdefault(r, u) == u


def test_ctr_hits_target_within_binomial_noise(uniform_run):
    config, _, summary, data = uniform_run
    clicks = _both(data, F.CLICK)
    truth = _both(data, F.TRUTH_CTR)
    n, p = len(clicks), config.target_ctr
    sigma = np.sqrt(p * (1 - p) / n)  # ~0.00088 at 30k impressions
    assert abs(clicks.mean() - p) < 4 * sigma
    # The calibrated model itself (no sampling noise in the truth): within 5% of the target.
    assert abs(truth.mean() / p - 1) < 0.05
    assert summary["overall"]["clicks"] == int(clicks.sum())
    # Clicks follow the truth: clicked impressions have a higher true CTR.
    assert truth[clicks == 1].mean() > 1.3 * truth[clicks == 0].mean()


@pytest.mark.parametrize("run", ["uniform", "greedy"])
def test_each_split_clicks_at_its_own_recorded_truth(uniform_run, greedy_run, run):
    """Clicks are Bernoulli(truth_ctr) row by row in every split, under either logging policy:
    z = (sum clicks - sum truth) / sqrt(sum truth (1 - truth)) stays within 4."""
    splits = uniform_run[3] if run == "uniform" else {F.TRAIN_SPLIT: greedy_run[2]}
    for split, cols in splits.items():
        clicks, truth = cols[F.CLICK].astype(np.float64), cols[F.TRUTH_CTR].astype(np.float64)
        z = (clicks.sum() - truth.sum()) / np.sqrt((truth * (1 - truth)).sum())
        assert abs(z) < 4, (split, z)


def test_within_ad_spread_and_oracle_beats_random(uniform_run):
    _, _, summary, data = uniform_run
    cand, num = _both(data, F.TRUTH_CAND_CTRS)
    ptr = np.concatenate([[0], np.cumsum(num)])
    best = np.maximum.reduceat(cand, ptr[:-1])
    worst = np.minimum.reduceat(cand, ptr[:-1])
    multi = num >= 2
    spread = (best[multi] / worst[multi] - 1).mean()
    assert spread >= 0.2
    assert summary["overall"]["within_ad_spread"] == pytest.approx(spread, rel=1e-4)
    # Per (ad, day): each candidate's true CTR averaged over the ad's impressions that day.
    ids, _ = _both(data, F.CAND_CREATIVE_IDS)
    rows = np.repeat(np.arange(len(num)), num)
    day = _both(data, F.DAY)[rows]
    ad = _both(data, F.AD_ID)[rows]
    keys = ad * 10 ** 9 + day * 10 ** 7 + ids
    uniq, inverse = np.unique(keys, return_inverse=True)
    mean = np.bincount(inverse, weights=cand) / np.bincount(inverse)
    groups = {}
    for k, m in zip(uniq.tolist(), mean.tolist()):
        groups.setdefault(k // 10 ** 7, []).append(m)
    by_ad = np.mean([max(g) / min(g) - 1 for g in groups.values() if len(g) >= 2])
    assert by_ad >= 0.2
    assert summary["overall"]["within_ad_spread_by_ad"] == pytest.approx(by_ad, rel=1e-4)
    values = policy_values(data[F.EVAL_SPLIT])
    assert values["oracle"] > 1.1 * values["random"]
    # Uniform logging: the logged creative is as good as random on average (~ few % noise).
    assert values["logged"] == pytest.approx(values["random"], rel=0.05)
    # selected_ctr with the oracle's choice reproduces the oracle value; the worst choice is lower.
    cand_e, num_e = data[F.EVAL_SPLIT][F.TRUTH_CAND_CTRS]
    assert selected_ctr(cand_e, num_e, argmax_per_impression(cand_e, num_e)) == pytest.approx(values["oracle"])
    assert selected_ctr(cand_e, num_e, argmax_per_impression(-cand_e, num_e)) < values["random"]


def test_uniform_propensities_are_one_over_n(uniform_run):
    _, _, _, data = uniform_run
    cols = data[F.TRAIN_SPLIT]
    np.testing.assert_allclose(cols[F.PROPENSITY], (1.0 / cols[F.NUM_CANDIDATES]).astype(np.float32))
    # The exposed index is uniform: its mean relative position is ~ 0.5 of (N - 1).
    multi = cols[F.NUM_CANDIDATES] > 1
    rel = cols[F.EXPOSED_INDEX][multi] / (cols[F.NUM_CANDIDATES][multi] - 1)
    assert abs(rel.mean() - 0.5) < 0.02


def test_epsilon_greedy_propensities(greedy_run):
    config, summary, cols = greedy_run
    eps, num, prop = config.epsilon, cols[F.NUM_CANDIDATES], cols[F.PROPENSITY]
    greedy_p = (1 - eps + eps / num).astype(np.float32)
    other_p = (eps / num).astype(np.float32)
    is_greedy = np.isclose(prop, greedy_p)
    assert (is_greedy | np.isclose(prop, other_p)).all()
    single = num == 1
    np.testing.assert_allclose(prop[single], 1.0)
    # Empirical greedy share matches the policy: E[1 - eps + eps / N].
    expected = np.mean(1 - eps + eps / num)
    sigma = np.sqrt(expected * (1 - expected) / len(num))
    assert abs(is_greedy.mean() - expected) < 5 * sigma
    assert summary[F.TRAIN_SPLIT]["greedy_share"] == pytest.approx(is_greedy.mean(), abs=1e-9)
    # The greedy choice is the same creative whenever the same ad is shown on the same day.
    multi = (num > 1) & is_greedy
    key = cols[F.AD_ID][multi] * 100 + cols[F.DAY][multi]
    chosen = {}
    for k, c in zip(key, cols[F.CREATIVE_ID][multi]):
        assert chosen.setdefault(k, c) == c
    # The production estimate is informative: greedy logging beats uniform in true CTR.
    values = policy_values(cols)
    assert values["logged"] > values["random"]


def test_creatives_are_sparse_at_default_ratios(uniform_run):
    _, _, summary, data = uniform_run
    creative_ids = _both(data, F.CREATIVE_ID)
    per_creative = len(creative_ids) / len(np.unique(creative_ids))
    assert 2 <= per_creative <= 10
    assert summary["overall"]["mean_impressions_per_creative"] == pytest.approx(per_creative)
    assert 5 <= summary["overall"]["mean_candidates"] <= 9
    assert 6 <= summary["sizes"]["mean_active_creatives_per_ad"] <= 8


def test_creatives_churn_across_days(uniform_run):
    _, _, _, data = uniform_run
    cols = data[F.TRAIN_SPLIT]
    ids, num = cols[F.CAND_CREATIVE_IDS]
    ptr = np.concatenate([[0], np.cumsum(num)])
    lists = {}
    for i in range(len(num)):
        lists.setdefault(cols[F.AD_ID][i], {})[cols[F.DAY][i]] = frozenset(ids[ptr[i]:ptr[i + 1]])
    changed = [len(set(by_day.values())) > 1 for by_day in lists.values() if len(by_day) >= 4]
    assert 0.2 < np.mean(changed) < 1.0


def test_hist_ctr_is_yesterdays_smoothed_log(uniform_run):
    config, _, _, data = uniform_run
    cols = {name: _both(data, name) for name in (F.DAY, F.AD_ID, F.CLICK, F.AD_HIST_CTR, F.AD_HIST_IMPS)}
    prior, strength = config.target_ctr, config.hist_ctr_prior_strength
    day0 = cols[F.DAY] == 0
    np.testing.assert_allclose(cols[F.AD_HIST_CTR][day0], prior, rtol=1e-6)
    assert (cols[F.AD_HIST_IMPS][day0] == 0).all()
    for day in (1, config.num_days - 1):
        before = cols[F.DAY] < day
        today = np.flatnonzero(cols[F.DAY] == day)[:500]
        for i in today:
            mine = before & (cols[F.AD_ID] == cols[F.AD_ID][i])
            imps, clicks = mine.sum(), cols[F.CLICK][mine].sum()
            assert cols[F.AD_HIST_IMPS][i] == imps
            assert cols[F.AD_HIST_CTR][i] == pytest.approx((clicks + strength * prior) / (imps + strength),
                                                          rel=1e-6)


def test_truth_matches_the_saved_world(uniform_run):
    _, out, summary, data = uniform_run
    world = load_world(os.path.join(out, "world.npz"))
    assert world.bias == pytest.approx(summary["global_bias"])
    cols = data[F.EVAL_SPLIT]
    ids, num = cols[F.CAND_CREATIVE_IDS]
    rows = np.repeat(np.arange(len(num)), num)
    expected = world.true_ctr(cols[F.USER_ID][rows] - 1, cols[F.AD_ID][rows] - 1, ids - 1, cols[F.SLOT][rows])
    np.testing.assert_allclose(cols[F.TRUTH_CAND_CTRS][0], expected, rtol=1e-5)
    # Entity features in the log are the world's.
    u = cols[F.USER_ID] - 1
    np.testing.assert_array_equal(cols[F.USER_GENDER], world.user_attrs[F.USER_GENDER][u])
    np.testing.assert_array_equal(cols[F.AD_CATEGORY], world.ad_category[cols[F.AD_ID] - 1])
    np.testing.assert_array_equal(cols[F.CREATIVE_STYLE], world.creative_style[cols[F.CREATIVE_ID] - 1])


def test_sequences_reflect_interests_and_clicks(uniform_run):
    _, out, _, data = uniform_run
    world = load_world(os.path.join(out, "world.npz"))
    cols = data[F.TRAIN_SPLIT]
    cats, lengths = cols[F.SEQ_AD_CATEGORIES]
    ids, _ = cols[F.SEQ_AD_IDS]
    assert lengths.max() <= world.config.max_seq_len and lengths.max() >= 20
    np.testing.assert_array_equal(cats, world.ad_category[ids - 1])
    rows = np.repeat(np.arange(len(lengths)), lengths)
    top = np.argmax(world.user_interest[cols[F.USER_ID] - 1], axis=1)
    share_top = np.mean(cats == top[rows])
    assert share_top > 4.0 / F.NUM_AD_CATEGORIES  # uniform would be 1/24
    # A click on day d is the newest entry of the user's sequence on day d + 1 (if not clicked again).
    clicked = np.flatnonzero((cols[F.CLICK] == 1) & (cols[F.DAY] == 0))
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    checked = 0
    for i in clicked[:200]:
        user = cols[F.USER_ID][i]
        later = np.flatnonzero((cols[F.USER_ID] == user) & (cols[F.DAY] == 1))
        if len(later):
            j = later[0]
            assert cols[F.AD_ID][i] in ids[ptr[j]:ptr[j + 1]]
            checked += 1
    assert checked > 5
