"""The comparison systems' models, by hand: NIG posteriors, the HBM blend, Thompson draws, the Beta prior, the
two-tower score, the visual prior's list-wise loss, the creative-aware AR, the variant registry."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

import features as F
from trainer import thompson
from trainer.acr_model import CreativeAwareARModel
from trainer.beta_ts import BetaThompsonCRModel, fit_beta_thompson
from trainer.config import VARIANTS, JACConfig
from trainer.creative_log import AD_INDEX, CREATIVE_INDEX, CreativeLog, aggregate, fit_beta_prior
from trainer.dssm_model import TwoTowerCRModel
from trainer.hbm import HybridBanditCRModel, NIGPosterior, blend_weight, fit_hybrid_bandit, regression_stats
from trainer.random_batch import random_transformed_batch, small_cardinalities
from trainer.vam_model import VisualPriorModel, creative_lists, listwise_losses
from trainer.variants import VARIANTS as REGISTRY
from trainer.variants import build_model
from transform import names as N

CARDS = small_cardinalities()
TINY = dict(ar_embedding_dim=4, transformer_ff_dim=8, num_cross_layers=1, cross_projection_dim=3,
            ar_hidden_units=[8], cr_embedding_dim=2, cr_hidden_units=[4], quantizer_buckets=16, quantizer_dim=2,
            quantizer_r=10.0, dssm_hidden_units=[8], dssm_output_dim=4, vam_hidden_units=[8])


# --------------------------------------------------------------------------------------- NIG posterior
def _batch(rng, n, d=3):
    x = rng.normal(size=(n, d))
    y = (rng.uniform(size=n) < 0.3).astype(np.float64)
    return x, y


def _stats(x, y):
    return x.T @ x, x.T @ y, y @ y, len(y)


def test_nig_posterior_after_two_batches_equals_the_closed_form():
    """Two sequential updates = the textbook closed form on all rows at once:
    Lambda = L0 + X'X, mu = Lambda^-1 (L0 mu0 + X'y), a = a0 + n/2, b = b0 + (y'y + mu0'L0 mu0 - mu'Lambda mu)/2."""
    rng = np.random.default_rng(0)
    (x1, y1), (x2, y2) = _batch(rng, 7), _batch(rng, 11)
    prior = NIGPosterior.prior(1, 3, mean=0.1, precision=0.25, a=3.0, b=2.0)
    post = prior
    for x, y in ((x1, y1), (x2, y2)):
        xtx, xty, yty, n = _stats(x, y)
        post = post.update(xtx[None], xty[None], np.array([yty]), np.array([n]))

    x, y = np.vstack([x1, x2]), np.concatenate([y1, y2])
    mu0, l0 = np.full(3, 0.1), 0.25 * np.eye(3)
    lam = l0 + x.T @ x
    mu = np.linalg.solve(lam, l0 @ mu0 + x.T @ y)
    b = 2.0 + 0.5 * (y @ y + mu0 @ l0 @ mu0 - mu @ lam @ mu)
    np.testing.assert_allclose(post.precision[0], lam, rtol=1e-12)
    np.testing.assert_allclose(post.mean[0], mu, rtol=1e-10)
    assert post.a[0] == pytest.approx(3.0 + 18 / 2)
    assert post.b[0] == pytest.approx(b, rel=1e-10)
    # b is the prior's b plus half the residual sum of squares plus the prior-mean penalty: never below b0.
    assert post.b[0] > 2.0


def test_nig_one_dimension_by_hand():
    """d = 1, x = 1: three impressions with one click from mu0 = 0.1, lambda0 = 0.25, a0 = 1, b0 = 1.
    Lambda = 3.25, mu = (0.025 + 1) / 3.25, a = 2.5, b = 1 + (1 + 0.0025 - 3.25 mu^2) / 2."""
    prior = NIGPosterior.prior(1, 1, mean=0.1, precision=0.25, a=1.0, b=1.0)
    xtx, xty, yty, n = regression_stats(np.array([[1.0]]), np.array([3]), np.array([1]), np.array([0]), 1)
    post = prior.update(xtx, xty, yty, n)
    mu = 1.025 / 3.25
    assert post.precision[0, 0, 0] == pytest.approx(3.25)
    assert post.mean[0, 0] == pytest.approx(mu)
    assert (post.a[0], post.b[0]) == pytest.approx((2.5, 1 + (1.0025 - 3.25 * mu ** 2) / 2))


def test_regression_stats_count_impressions_as_rows():
    """A group shown n times with c clicks is n rows x of which c clicked."""
    x = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    xtx, xty, yty, n = regression_stats(x, np.array([4, 2, 1]), np.array([1, 0, 1]), np.array([0, 0, 1]), 2)
    rows = np.repeat(x[:2], [4, 2], axis=0)
    y = np.array([1, 0, 0, 0, 0, 0], np.float64)
    np.testing.assert_allclose(xtx[0], rows.T @ rows)
    np.testing.assert_allclose(xty[0], rows.T @ y)
    np.testing.assert_allclose(xty[1], x[2])
    assert yty.tolist() == [1.0, 1.0] and n.tolist() == [6.0, 1.0]


@pytest.mark.parametrize("pv, w", [(150, 0.5), (200, 1 / (1 + math.exp(-1))), (100, 1 / (1 + math.exp(1))),
                                   (0, 1 / (1 + math.exp(3)))])
def test_blend_weight(pv, w):
    assert float(blend_weight(pv)) == pytest.approx(w, rel=1e-6)


# ---------------------------------------------------------------------------------------------- HBM
def _log(rows):
    """A CreativeLog from (ad, creative, style, impressions, clicks) tuples (other attributes 0)."""
    rows = np.array(rows, np.int64)
    attrs = np.zeros((len(rows), 4), np.int64)
    attrs[:, 0] = rows[:, 2]
    emb = np.tile(np.linspace(-1, 1, F.CREATIVE_EMBEDDING_DIM, dtype=np.float32), (len(rows), 1)) * rows[:, 2:3]
    return CreativeLog(rows[:, 0], rows[:, 1], attrs, emb.astype(np.float32), rows[:, 3], rows[:, 4],
                       creative_vocab_size=40, ad_vocab_size=40)


@pytest.fixture(scope="module")
def hbm():
    model = HybridBanditCRModel(CARDS, vam_hidden_units=(8,), prior={"mean": 0.1, "precision": 0.25, "a": 50.0,
                                                                     "b": 0.5})
    log = _log([(1, 3, 0, 120, 6), (1, 4, 2, 60, 1), (2, 5, 1, 400, 12), (2, 6, 3, 10, 0)])
    model.vam(random_transformed_batch(CARDS, 1))
    state = fit_hybrid_bandit(model, log)
    return model, log, state


def test_hbm_posteriors_are_the_nig_update_of_each_level(hbm):
    model, log, state = hbm
    x = model.regression_features({k: tf.constant(v) for k, v in log.features().items()}).numpy()
    prior = NIGPosterior.prior(1, 10, 0.1, 0.25, 50.0, 0.5)
    # creative 3 sees only its own impressions; ad 1 pools creatives 3 and 4
    c3 = prior.update(*regression_stats(x[:1], [120], [6], np.array([0]), 1))
    ad1 = prior.update(*regression_stats(x[:2], [120, 60], [6, 1], np.array([0, 0]), 1))
    np.testing.assert_allclose(state.creative.mean[3], c3.mean[0], rtol=1e-6)
    np.testing.assert_allclose(state.item.mean[1], ad1.mean[0], rtol=1e-6)
    assert state.item.a[1] == pytest.approx(50 + 90) and state.creative.a[4] == pytest.approx(50 + 30)
    assert state.item_impressions[1] == 180 and state.item_impressions[2] == 410
    np.testing.assert_allclose(state.creative.mean[7], np.full(10, 0.1))  # never shown: the prior


def test_hbm_mean_is_the_blend_of_item_and_creative_scores(hbm):
    model, log, state = hbm
    features = {k: tf.constant(v) for k, v in log.features().items()}
    x = model.regression_features(features).numpy().astype(np.float64)
    item = np.einsum("gi,gi->g", x, state.item.mean[log.ad])
    creative = np.einsum("gi,gi->g", x, state.creative.mean[log.creative])
    w = 1 / (1 + np.exp(-(state.item_impressions[log.ad] - 150) / 50))
    np.testing.assert_allclose(model.mean_pctr(features).numpy(), np.clip((1 - w) * item + w * creative, 1e-6, 1),
                               rtol=1e-4)
    assert w[2] > 0.99 and w[0] == pytest.approx(1 / (1 + math.exp(-0.6)))  # ad 2: 410 impressions; ad 1: 180


def test_thompson_samples_are_reproducible_per_request_and_follow_the_posterior(hbm):
    model, log, state = hbm
    features = {k: tf.constant(np.repeat(v, 3, axis=0)) for k, v in log.features().items()}
    seed = thompson.request_seed([features[CREATIVE_INDEX]])
    a, b = model.thompson_pctr(features, seed).numpy(), model.thompson_pctr(features, seed).numpy()
    np.testing.assert_array_equal(a, b)  # a replayed request gets the same sample
    assert not np.array_equal(a, model.thompson_pctr(features, thompson.salted(seed, 99)).numpy())

    # The creative level draws x'beta ~ N(x'mu, s2 x'Lambda^-1 x) per row, s2 ~ IG(a, b):
    # mean x'mu, variance E[s2] x'Lambda^-1 x = b / (a - 1) x'Lambda^-1 x.
    rows = tf.constant(np.full(40_000, 3))
    x = model.regression_features({k: v[:1] for k, v in features.items()})
    xs = tf.repeat(x, 40_000, axis=0)
    draws = model.creative_posterior.sampled_score(rows, xs, tf.constant([5, 6], tf.int64)).numpy()
    x64 = x.numpy()[0].astype(np.float64)
    mean = x64 @ state.creative.mean[3]
    var = state.creative.b[3] / (state.creative.a[3] - 1) * x64 @ np.linalg.solve(state.creative.precision[3], x64)
    assert draws.mean() == pytest.approx(mean, abs=4 * np.sqrt(var / 40_000))
    assert draws.var() == pytest.approx(var, rel=0.05)
    # The item level draws one beta per ad per request: rows of one ad and one x get one score.
    shared = model.item_posterior.shared_sampled_score(tf.constant([1, 1, 2]), tf.repeat(x, 3, axis=0), seed).numpy()
    assert shared[0] == shared[1] != shared[2]


def test_request_seed_depends_on_every_value():
    base = [tf.constant([1, 2, 3], tf.int64), tf.constant([[0.5, 0.25]], tf.float32), tf.constant([b"x"])]
    seed = thompson.request_seed(base).numpy()
    assert seed.shape == (2,) and seed.dtype == np.int64
    np.testing.assert_array_equal(seed, thompson.request_seed(base).numpy())
    for changed in ([tf.constant([1, 2, 4], tf.int64)] + base[1:], [base[0], tf.constant([[0.5, 0.26]])] + base[2:],
                    base[:2] + [tf.constant([b"y"])]):
        assert not np.array_equal(seed, thompson.request_seed(changed).numpy())


def test_carry_over_maps_rows_by_raw_id():
    old_keys = np.array([10, 30, -1, 20])
    old_rows = np.array([[1.0], [3.0], [9.0], [2.0]])
    got = thompson.carry_over(old_keys, old_rows, np.array([20, 40, -1, 10, 30]), default=[0.5])
    np.testing.assert_array_equal(got, [[2.0], [0.5], [0.5], [1.0], [3.0]])


# ------------------------------------------------------------------------------------------ Beta-TS
def test_fit_beta_prior_recovers_the_prior_of_simulated_counts():
    rng = np.random.default_rng(1)
    theta = rng.beta(3.0, 120.0, 20_000)
    n = rng.integers(20, 400, theta.size)
    alpha, beta = fit_beta_prior(rng.binomial(n, theta), n)
    assert alpha == pytest.approx(3.0, rel=0.1) and beta == pytest.approx(120.0, rel=0.1)


@pytest.mark.parametrize("clicks, impressions, match", [([1, 2], [1], "one shape"), ([3], [2], "clicks <= "),
                                                         ([0, 0], [5, 5], "at least one click"), ([], [], "")])
def test_fit_beta_prior_rejects_bad_counts(clicks, impressions, match):
    with pytest.raises(ValueError, match=match):
        fit_beta_prior(clicks, impressions)


def test_beta_thompson_posterior_adds_clicks_and_non_clicks():
    model = BetaThompsonCRModel({CREATIVE_INDEX: 40})
    log = _log([(1, 3, 0, 120, 6), (1, 4, 2, 60, 1), (2, 5, 1, 400, 12), (2, 45, 3, 10, 2)])  # 45: an OOV bucket
    alpha, beta = fit_beta_thompson(model, log)
    a0, b0 = model.prior
    assert alpha[3] == pytest.approx(a0 + 6) and beta[3] == pytest.approx(b0 + 114)
    assert alpha[7] == pytest.approx(a0) and beta[5] == pytest.approx(b0 + 388)
    features = {CREATIVE_INDEX: tf.constant([3, 7])}
    np.testing.assert_allclose(model.mean_pctr(features), [(a0 + 6) / (a0 + b0 + 120), a0 / (a0 + b0)], rtol=1e-5)
    np.testing.assert_allclose(tf.sigmoid(model(features)), model.mean_pctr(features), rtol=1e-5)
    many = {CREATIVE_INDEX: tf.constant(np.full(20_000, 3))}
    draws = model.thompson_pctr(many, tf.constant([1, 2], tf.int64)).numpy()
    assert draws.mean() == pytest.approx((a0 + 6) / (a0 + b0 + 120), rel=0.03)


# ------------------------------------------------------------------------------------------- DSSM
def test_two_tower_score_is_scale_times_cosine_plus_bias():
    model = TwoTowerCRModel(CARDS, embedding_dim=3, hidden_units=(5,), output_dim=4, initial_scale=2.5,
                            initial_ctr=0.02)
    batch = random_transformed_batch(CARDS, 6, seed=2)
    logit = model(batch).numpy()
    model.scale.assign(3.0)
    model.bias.assign(-1.5)

    def tower(layers, x):
        for layer in layers:
            x = layer(x)
        return x.numpy()

    u = tower(model.user_tower, model.user_embeddings(batch))
    c = tower(model.creative_tower, tf.concat([model.creative_embeddings(batch), batch[N.CREATIVE_EMBEDDING]], 1))
    def unit(v):  # as tf.math.l2_normalize: a zero vector stays zero
        return v / np.sqrt(np.maximum((v ** 2).sum(1, keepdims=True), 1e-12))

    cosine = (unit(u) * unit(c)).sum(1)
    np.testing.assert_allclose(model(batch).numpy(), 3.0 * cosine - 1.5, rtol=1e-5, atol=1e-6)
    assert np.allclose(logit, 2.5 * cosine + math.log(0.02 / 0.98), atol=1e-5)  # the initial scale and bias
    # One user row broadcast over every creative row gives what repeating it gives.
    one = dict(batch, **{n: batch[n][:1] for n in N.CR_USER_CATEGORICAL})
    rep = dict(batch, **{n: tf.repeat(batch[n][:1], 6) for n in N.CR_USER_CATEGORICAL})
    np.testing.assert_allclose(model(one), model(rep), rtol=1e-6)
    clone = TwoTowerCRModel.from_config(json.loads(json.dumps(model.get_config())))
    clone(batch)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(batch), model(batch), rtol=1e-6)


# ------------------------------------------------------------------------------------------- VAM
def test_listwise_losses_by_hand():
    """One list of 2 real creatives (+1 pad): sCTR 0.002 / 0.001, so labels softmax(2, 1); scores 0.3 / 0.1."""
    scores = tf.constant([[0.3, 0.1, 5.0]])
    sctr = tf.constant([[0.002, 0.001, 0.0]])
    mask = tf.constant([[1.0, 1.0, 0.0]])
    rank, point = listwise_losses(scores, sctr, mask)
    p = np.exp([2.0, 1.0]) / np.exp([2.0, 1.0]).sum()
    logq = np.log(np.exp([0.3, 0.1]) / np.exp([0.3, 0.1]).sum())
    assert float(rank) == pytest.approx(-(p * logq).sum(), rel=1e-5)
    assert float(point) == pytest.approx(((0.3 - 0.2) ** 2 + (0.1 - 0.1) ** 2) / 2, rel=1e-5)


def test_creative_lists_keep_ads_with_two_known_creatives_above_the_threshold():
    log = _log([(1, 3, 0, 12, 1), (1, 4, 2, 15, 0), (1, 8, 1, 3, 0), (2, 5, 1, 40, 1), (2, 45, 3, 30, 1),
                (3, 6, 0, 50, 2), (3, 7, 1, 10, 0)])
    lists = creative_lists(log, alpha=1.0, beta=49.0, min_impressions=10)
    assert len(lists) == 2  # ad 1 (creatives 3, 4; 8 is below 10) and ad 3; ad 2 has one known creative
    np.testing.assert_allclose(lists.mask, [[1, 1], [1, 1]])
    np.testing.assert_allclose(lists.sctr[0], [2 / 62, 1 / 65], rtol=1e-6)
    assert lists.attributes[1, :, 0].tolist() == [0, 1]


def test_visual_prior_learns_the_better_creative_of_each_list():
    """Style 1 creatives always click more than style 0 in their ad: after training, style 1 scores higher."""
    rows = [(ad, 2 * ad + s, s, 100, 1 + 4 * s) for ad in range(20) for s in (0, 1)]
    from trainer.vam_model import fit_visual_prior
    model = VisualPriorModel(CARDS, hidden_units=(8,))
    lists = creative_lists(_log(rows), 1.0, 40.0, 10)
    fit_visual_prior(model, lists, steps=150, batch_ads=20, learning_rate=0.02)
    z = model({N.xf(n): tf.constant([0, 1] if n == F.CREATIVE_STYLE else [0, 0]) for n in F.CREATIVE_ATTRIBUTES}
              | {N.CREATIVE_EMBEDDING: tf.constant(_log(rows[:2]).embedding)})
    score = model.score(z).numpy()
    assert z.shape == (2, 10) and score[1] > score[0]


def test_aggregate_groups_rows_by_ad_creative_and_content():
    columns = {AD_INDEX: np.array([1, 1, 1, 2]), CREATIVE_INDEX: np.array([3, 3, 45, 45]),
               N.CREATIVE_EMBEDDING: np.array([[0.0] * 8, [0.0] * 8, [1.0] * 8, [1.0] * 8], np.float32)}
    columns.update({N.xf(n): np.zeros(4, np.int64) for n in F.CREATIVE_ATTRIBUTES})
    log = aggregate(columns, np.array([1, 0, 1, 1]), creative_vocab_size=40, ad_vocab_size=40)
    assert sorted(zip(log.ad.tolist(), log.creative.tolist(), log.impressions.tolist(), log.clicks.tolist())) == [
        (1, 3, 2, 1), (1, 45, 1, 1), (2, 45, 1, 1)]
    assert log.known_creative.tolist() == [c < 40 for c in log.creative]


# ------------------------------------------------------------------------------------ ACR, registry
def test_creative_aware_ar_reads_the_creative_and_ar_does_not():
    batch = random_transformed_batch(CARDS, 8, seed=4)
    acr = build_model(JACConfig.from_dict(dict(TINY, variant="acr")), CARDS)
    jac = build_model(JACConfig.from_dict(dict(TINY, variant="jac")), CARDS)
    assert isinstance(acr.ar, CreativeAwareARModel)
    changed = dict(batch, **{N.CREATIVE_EMBEDDING: batch[N.CREATIVE_EMBEDDING] + 1.0,
                             N.xf(F.CREATIVE_STYLE): (batch[N.xf(F.CREATIVE_STYLE)] + 1) % 6})
    assert not np.allclose(acr.ar(batch), acr.ar(changed))
    np.testing.assert_array_equal(jac.ar(batch), jac.ar(changed))
    assert set(acr.ar.feature_names) - set(jac.ar.feature_names) == {
        N.xf(n) for n in F.CREATIVE_ATTRIBUTES} | {N.CREATIVE_EMBEDDING}
    config = acr.ar.get_config()
    clone = CreativeAwareARModel.from_config(json.loads(json.dumps(config)))
    clone(batch)
    clone.set_weights(acr.ar.get_weights())
    np.testing.assert_allclose(clone(batch), acr.ar(batch), rtol=1e-5)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in ("jac", "ar", "cr")])  # those: test_trainer_layers
def test_every_variant_builds_its_heads_and_trains_a_step(variant):
    config = JACConfig.from_dict(dict(TINY, variant=variant))
    model = build_model(config, CARDS)
    from trainer.jac_model import make_optimizer
    model.compile(optimizer=make_optimizer(config))
    batch = random_transformed_batch(CARDS, 16, click_rate=0.3)
    features = {k: batch[k] for k in model.feature_names}
    logs = model.train_on_batch(features, batch[N.LABEL_KEY], return_dict=True)
    spec = REGISTRY[variant]
    assert set(model.heads) == {h for h, head in (("ar", spec.ar), ("cr", spec.cr)) if head}
    assert logs["loss"] == pytest.approx(sum(logs[f"{h}_loss"] for h in model.heads), rel=1e-5)
    forbidden = set(F.NON_MODEL_FEATURES) | {N.xf(n) for n in F.NON_MODEL_FEATURES}
    assert not forbidden & set(model.feature_names)


def test_bandit_heads_have_no_trainable_weights_after_fitting(hbm):
    model, _, _ = hbm
    model.vam.trainable = False
    assert model.trainable_weights == []
    assert BetaThompsonCRModel({CREATIVE_INDEX: 4}).trainable_weights == []


@pytest.mark.parametrize("overrides, field", [
    ({"dssm_output_dim": 0}, "dssm_output_dim"), ({"vam_hidden_units": []}, "vam_hidden_units"),
    ({"hbm_prior_a": 0.0}, "hbm_prior_a"), ({"vam_min_impressions": 0}, "vam_min_impressions"),
    ({"variant": "jac", "warm_start_model": "/x"}, "warm_start_model"), ({"hbm_blend_width": -1.0}, "hbm_blend_width"),
])
def test_config_rejects_bad_baseline_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        JACConfig.from_dict(overrides)


def test_fit_beta_prior_finds_the_maximum_when_the_moments_see_no_spread():
    """Sparse creatives (~4 impressions) of low, spread CTRs beside popular ones (400 impressions) at 3%: the
    impression-weighted moments then show *less* spread than binomial noise (as on the default simulation,
    where popular ads' creatives differ in CTR from the rest), which put the start at an almost infinite prior
    strength, where the likelihood is flat. The fit must still reach the maximum (a strength of a few hundred):
    at least the best prior of a grid of strengths around the pooled CTR."""
    from scipy import special

    rng = np.random.default_rng(0)
    n = np.concatenate([rng.poisson(3, 20_000) + 1, np.full(300, 400)])
    c = rng.binomial(n, np.concatenate([rng.beta(3.0, 297.0, 20_000), np.full(300, 0.03)]))
    mean = c.sum() / n.sum()

    def loglik(a, b):
        return (special.betaln(c + a, n - c + b) - special.betaln(a, b)).sum()

    best_on_grid = max(loglik(mean * s, (1 - mean) * s) for s in np.logspace(0, 6, 25))
    alpha, beta = fit_beta_prior(c, n)
    assert loglik(alpha, beta) >= best_on_grid - 1e-6
    assert 100 < alpha + beta < 3000
