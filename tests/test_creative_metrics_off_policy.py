"""Off-policy estimators (IPW, SNIPW, DR): hand-computed cases, Open Bandit Pipeline's array formulas, the
logged-propensity properties, bad input, and the TFMA combiners without Beam."""

import math
import pickle

import numpy as np
import pytest

import features as F
from creative_metrics import off_policy as O
from creative_metrics import replay as E


def _six():
    """Ad 1: creatives 10, 11 logged uniformly (mu 0.5); ad 2: 20, 21, 22 logged epsilon-greedily."""
    ad = np.array([1, 1, 1, 2, 2, 2])
    exposed = np.array([10, 11, 10, 20, 21, 22])
    selected = np.array([10, 10, 10, 20, 20, 22])
    clicks = np.array([1, 0, 0, 1, 1, 1])
    mu = np.array([0.5, 0.5, 0.5, 0.8, 0.1, 0.1])  # weights w: 2, 0, 2, 1.25, 0, 10
    return ad, exposed, clicks, selected, mu


def test_ipw_and_snipw_by_hand():
    args = _six()
    r = O.ipw_estimate(*args)
    assert r.value == pytest.approx(13.25 / 6, rel=1e-15)
    assert (r.impressions, r.matched_impressions) == (6.0, 4.0)
    assert r.mean_weight == pytest.approx(15.25 / 6)
    assert r.effective_sample_size == pytest.approx(15.25 ** 2 / (4 + 4 + 1.5625 + 100))
    assert math.isnan(r.direct)
    assert O.snipw(*args) == pytest.approx(13.25 / 15.25, rel=1e-15)
    assert O.ipw(*args) == r.value


def test_dr_with_given_rewards_by_hand():
    q_sel = np.array([0.3, 0.3, 0.3, 0.5, 0.5, 0.2])
    q_exp = np.array([0.3, 0.1, 0.3, 0.5, 0.4, 0.2])
    r = O.dr_estimate(*_six(), q_sel, q_exp)
    # per impression q_sel + w (y - q_exp): 1.7, 0.3, -0.3, 1.125, 0.5, 8.2
    assert r.value == pytest.approx(11.525 / 6, rel=1e-14)
    assert r.direct == pytest.approx(q_sel.mean())


def test_dr_with_the_empirical_reward_model_by_hand():
    # Overall CTR 4/6; s_a = 2, s_c = 1: q_ad1 = (1 + 2 * 2/3) / 5 = 7/15, q_ad2 = 13/15;
    # q(1,10) = (1 + 7/15) / 3 = 22/45, q(1,11) = (7/15) / 2, q(2, c) = (1 + 13/15) / 2 = 14/15 for each c.
    r = O.dr_estimate(*_six(), ad_prior_strength=2.0, creative_prior_strength=1.0)
    # per impression: 68/45, 22/45, -22/45, 15.25/15, 14/15, 24/15
    assert r.value == pytest.approx(227.75 / 270, rel=1e-14)
    assert r.direct == pytest.approx(192 / 270, rel=1e-14)
    q = O.empirical_rewards(np.array([1, 1, 2, 2, 2]), np.array([2.0, 1, 1, 1, 1]), np.array([1.0, 0, 1, 1, 1]),
                            2.0, 1.0)
    np.testing.assert_allclose(q, [22 / 45, 7 / 30, 14 / 15, 14 / 15, 14 / 15], rtol=1e-14)


def _obp_log(n=400, k=6, seed=0):
    """A log as Open Bandit Pipeline takes it: action (exposed index), reward, pscore, a one-hot action_dist
    of the deterministic policy and a reward model's estimates, both [n, k, 1]."""
    rng = np.random.default_rng(seed)
    cands = rng.integers(1, k + 1, n)
    action = rng.integers(0, cands)
    pscore = 1.0 / cands
    selected = rng.integers(0, cands)
    action_dist = np.zeros((n, k, 1))
    action_dist[np.arange(n), selected, 0] = 1.0
    q_hat = rng.uniform(0.01, 0.3, (n, k, 1))
    reward = (rng.random(n) < 0.2).astype(np.int64)
    return cands, action, pscore, selected, action_dist, q_hat, reward


def test_estimators_equal_open_bandit_pipelines_array_formulas():
    cands, action, pscore, selected, action_dist, q_hat, reward = _obp_log()
    n = len(action)
    iw = action_dist[np.arange(n), action, 0] / pscore  # obp.ope.InverseProbabilityWeighting
    obp_ipw = np.mean(reward * iw)
    obp_snipw = np.mean(reward * iw / iw.mean())
    obp_dr = np.mean(np.average(q_hat[:, :, 0], weights=action_dist[:, :, 0], axis=1)
                     + iw * (reward - q_hat[np.arange(n), action, 0]))
    ad = np.arange(n) // 7
    ids = (ad * 100)
    args = (ad, ids + action, reward, ids + selected, pscore)
    assert O.ipw(*args) == pytest.approx(obp_ipw, rel=1e-12)
    assert O.snipw(*args) == pytest.approx(obp_snipw, rel=1e-12)
    assert O.dr(*args, q_hat[np.arange(n), selected, 0], q_hat[np.arange(n), action, 0]) == \
        pytest.approx(obp_dr, rel=1e-12)


def test_snipw_is_calibrated_sctr_under_uniform_logging():
    cands, action, pscore, selected, _, _, reward = _obp_log(seed=3)
    ad = np.arange(len(action)) // 5
    args = (ad, ad * 100 + action, reward, ad * 100 + selected)
    assert O.snipw(*args, pscore) == pytest.approx(E.calibrated_sctr(*args, cands), rel=1e-12)


def test_ipw_is_unbiased_under_epsilon_greedy_logging_and_dr_with_the_truth_is_exact_on_average():
    """Epsilon-greedy logging, a policy that mostly disagrees with it; the truth is known."""
    rng = np.random.default_rng(11)
    n, k, eps = 400_000, 4, 0.3
    q = rng.uniform(0.01, 0.2, (n, k))
    greedy = np.argmax(q + rng.normal(0, 0.05, (n, k)), axis=1)
    explore = rng.random(n) < eps
    action = np.where(explore, rng.integers(0, k, n), greedy)
    pscore = np.where(action == greedy, 1 - eps + eps / k, eps / k)
    clicks = (rng.random(n) < q[np.arange(n), action]).astype(np.int64)
    selected = np.argmin(q, axis=1)  # the worst creative: far from the logging policy
    truth = q[np.arange(n), selected].mean()
    ad = np.arange(n) // 50
    args = (ad, ad * 10 + action, clicks, ad * 10 + selected, pscore)
    assert O.ipw(*args) == pytest.approx(truth, rel=0.05)
    assert O.ipw_estimate(*args).mean_weight == pytest.approx(1.0, rel=0.03)
    r = O.dr_estimate(*args, q[np.arange(n), selected], q[np.arange(n), action])
    assert r.direct == pytest.approx(truth, rel=1e-12) and r.value == pytest.approx(truth, rel=0.05)


def test_nothing_matched():
    ad, exposed, clicks, _, mu = _six()
    args = (ad, exposed, clicks, exposed + 1, mu)
    assert O.ipw(*args) == 0.0 and math.isnan(O.snipw(*args))
    assert O.ipw_estimate(*args).effective_sample_size == 0.0
    # DR falls back on the reward model alone.
    assert O.dr(*args) == pytest.approx(O.dr_estimate(*args).direct)


_GOOD = dict(zip(("ad_ids", "exposed_creatives", "clicks", "selected_creatives", "propensities"),
                 ([1, 1, 2], [10, 11, 20], [1, 0, 1], [10, 10, 20], [0.5, 0.5, 1.0])))


@pytest.mark.parametrize("fn", [O.ipw, O.snipw, O.dr])
@pytest.mark.parametrize("field,value,match", [
    ("propensities", [0.5, 0.0, 1.0], r"propensities must be in \(0, 1\], found 0.0 at index 1"),
    ("propensities", [0.5, 1.5, 1.0], r"propensities must be in \(0, 1\], found 1.5 at index 1"),
    ("propensities", [0.5, np.nan, 1.0], "propensities must not be NaN, found nan at index 1"),
    ("propensities", [0.5, -np.inf, 1.0], "propensities must be finite"),
    ("propensities", [0.5, 0.5], "length mismatch"),
    ("clicks", [1, 2, 0], "clicks must be 0 or 1, found 2 at index 1"),
    ("selected_creatives", [10, 10.5, 20], "selected_creatives must hold integer ids, found 10.5 at index 1"),
    ("exposed_creatives", [[10, 11, 20]], "exposed_creatives must be a 1-D array"),
    ("ad_ids", ["a", "b", "c"], "ad_ids must be numeric"),
])
def test_bad_input_names_the_field_and_row(fn, field, value, match):
    with pytest.raises(ValueError, match=match):
        fn(**{**_GOOD, field: value})


@pytest.mark.parametrize("fn", [O.ipw, O.snipw, O.dr])
def test_empty_input(fn):
    with pytest.raises(ValueError, match="ad_ids is empty"):
        fn(**{k: [] for k in _GOOD})


@pytest.mark.parametrize("kwargs,match", [
    (dict(reward_selected=[0.1, 0.2, 0.3]), "reward_selected and reward_exposed go together"),
    (dict(reward_selected=[0.1, 1.2, 0.3], reward_exposed=[0.1, 0.2, 0.3]),
     r"reward_selected must be probabilities in \[0, 1\], found 1.2 at index 1"),
    (dict(reward_selected=[0.1, 0.2, 0.3], reward_exposed=[0.1, np.nan, 0.3]), "reward_exposed must not be NaN"),
    (dict(reward_selected=[0.1, 0.2], reward_exposed=[0.1, 0.2]), "length mismatch"),
    (dict(ad_prior_strength=0.0), "ad_prior_strength and creative_prior_strength must be > 0"),
])
def test_bad_reward_model_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        O.dr(**_GOOD, **kwargs)


def test_error_rows_count_from_the_start_of_the_log_across_chunks():
    ad, exposed, clicks, selected, mu = (np.tile(a, 20) for a in _six())
    mu = mu.astype(float)
    mu[57] = 2.0
    with pytest.raises(ValueError, match="found 2.0 at index 57"):
        O.ipw_estimate(ad, exposed, clicks, selected, mu, chunk_size=10)


def test_chunks_merges_and_pickling_give_the_same_estimates():
    cands, action, pscore, selected, _, q_hat, reward = _obp_log(n=1000, seed=5)
    ad = np.arange(1000) % 37
    args = (ad, ad * 100 + action, reward, ad * 100 + selected, pscore)
    whole = O.OffPolicyAccumulator().update(*args)
    parts = [O.OffPolicyAccumulator().update(*(a[i::3] for a in args)) for i in range(3)]
    merged = pickle.loads(pickle.dumps(parts[0])).merge(parts[1]).merge(pickle.loads(pickle.dumps(parts[2])))
    for name in ("ipw", "snipw", "dr"):
        assert getattr(merged, name)() == pytest.approx(getattr(whole, name)(), rel=1e-12)
    assert O.dr_estimate(*args, chunk_size=64) == pytest.approx(O.dr_estimate(*args))
    with pytest.raises(ValueError, match="every update or on none"):
        whole.update(*args, reward_selected=q_hat[:, 0, 0], reward_exposed=q_hat[:, 0, 0])
    with pytest.raises(ValueError, match="no impressions were added"):
        O.OffPolicyAccumulator().ipw()


# ---------------------------------------------------------------------- TFMA combiners, without Beam
def _tfma_inputs(i, extra_predictions=None):
    from tensorflow_model_analysis.metrics import metric_types

    ad, exposed, clicks, selected, mu = _six()
    features = {F.AD_ID: np.array([ad[i]]), F.CREATIVE_ID: np.array([exposed[i]]),
                F.PROPENSITY: np.array([mu[i]], np.float32)}
    predictions = {F.SELECTED_CREATIVE_ID: np.array([selected[i]]), **(extra_predictions or {})}
    return metric_types.StandardMetricInputs(features=features, labels=np.array([clicks[i]]),
                                             predictions=predictions)


def _combine(metric, inputs):
    (computation,) = metric.computations(model_names=[""])
    combiner = computation.combiner
    accs = [combiner.create_accumulator(), combiner.create_accumulator()]
    for i, x in enumerate(inputs):
        combiner.add_input(accs[i % 2], x)
    merged = combiner.merge_accumulators([pickle.loads(pickle.dumps(combiner.compact(a))) for a in accs])
    return {k.name: v for k, v in combiner.extract_output(merged).items()}


def test_tfma_combiners_equal_the_reference():
    pytest.importorskip("tensorflow_model_analysis")
    from creative_metrics import tfma_metrics as M

    mu32 = _six()[4].astype(np.float32).astype(np.float64)  # the feature's float32, as TFMA reads it
    args = _six()[:4] + (mu32,)
    inputs = [_tfma_inputs(i) for i in range(6)]
    ipw = _combine(M.IPW(), inputs)
    assert ipw["ipw"] == pytest.approx(O.ipw(*args), rel=1e-12)
    assert ipw["ipw_mean_weight"] == pytest.approx(O.ipw_estimate(*args).mean_weight, rel=1e-12)
    assert _combine(M.SNIPW(), inputs)["snipw"] == pytest.approx(O.snipw(*args), rel=1e-12)
    dr = _combine(M.DoublyRobust(ad_prior_strength=2.0, creative_prior_strength=1.0), inputs)
    assert dr["dr"] == pytest.approx(O.dr(*args, ad_prior_strength=2.0, creative_prior_strength=1.0), rel=1e-12)
    # The evaluated model's own pCTRs as the reward model.
    q_sel, q_exp = [0.3, 0.3, 0.3, 0.5, 0.5, 0.2], [0.3, 0.1, 0.3, 0.5, 0.4, 0.2]
    with_rewards = [_tfma_inputs(i, {"q_sel": np.array([q_sel[i]]), "q_exp": np.array([q_exp[i]])})
                    for i in range(6)]
    model_dr = _combine(M.DoublyRobust(name="dr_model", reward_selected_key="q_sel", reward_exposed_key="q_exp"),
                        with_rewards)
    assert model_dr["dr_model"] == pytest.approx(O.dr(*args, q_sel, q_exp), rel=1e-12)
    assert model_dr["dr_model_direct"] == pytest.approx(np.mean(q_sel))


def test_tfma_combiner_errors_name_the_missing_propensity_and_reward():
    pytest.importorskip("tensorflow_model_analysis")
    from creative_metrics import tfma_metrics as M

    x = _tfma_inputs(0)
    del x.features[F.PROPENSITY]
    with pytest.raises(ValueError, match=f"ipw: feature '{F.PROPENSITY}' is missing"):
        _combine(M.IPW(), [x])
    with pytest.raises(ValueError, match="no output 'q_sel'"):
        _combine(M.DoublyRobust(reward_selected_key="q_sel", reward_exposed_key="q_exp"), [_tfma_inputs(0)])
    with pytest.raises(ValueError, match="reward_selected_key and reward_exposed_key go together"):
        M.DoublyRobust(reward_selected_key="q_sel").computations(model_names=[""])
