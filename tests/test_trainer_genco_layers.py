"""GenCO's layers and losses, one concept each, against NumPy: hash embeddings, the context encoder, the
cross-component attention (eq. 13), the shared scorer, multi-instance pooling (eq. 17), non-autoregressive
sampling (eqs. 14-15, 24), the MIL and REINFORCE losses (eqs. 11-12, 20-23); and the config."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.genco import losses, sampling
from trainer.genco.config import ABLATIONS, GenCOConfig
from trainer.genco.context_encoder import ContextEncoder
from trainer.genco.cross_attention import CrossComponentAttention
from trainer.genco.hash_embedding import HashEmbedding
from trainer.genco.mil_pooling import MILPooling
from trainer.genco.scorer import SharedScorer


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------------------------------- hash embedding
def test_hash_embedding_rows_are_the_id_modulo_the_size_and_padding_is_zero():
    layer = HashEmbedding(5, 2)
    layer.build()
    table = np.arange(10, dtype=np.float32).reshape(5, 2)
    layer.table.assign(table)
    out = layer(tf.constant([[0, 7, 12, -1], [5, 4, 2**40 + 3, 1]], tf.int64)).numpy()
    np.testing.assert_array_equal(out[0], [table[0], table[2], table[2], [0, 0]])
    np.testing.assert_array_equal(out[1], [table[0], table[4], table[(2**40 + 3) % 5], table[1]])
    assert HashEmbedding.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize("size, dim, message", [(0, 4, "size: must be an integer >= 1"),
                                                (3, 0, "dim: must be an integer >= 1"),
                                                (2.5, 4, "size: must be an integer >= 1, got 2.5")])
def test_hash_embedding_rejects_bad_sizes(size, dim, message):
    with pytest.raises(ValueError, match=message):
        HashEmbedding(size, dim)


# ------------------------------------------------------------------------------------- context encoder
def test_context_encoder_is_dense_batchnorm_relu_per_layer():
    layer = ContextEncoder((3, 2))
    x = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 1.0]], np.float32)
    layer(x, training=False)
    w0, b0, w1, b1 = (np.random.default_rng(i).normal(size=s).astype(np.float32)
                      for i, s in enumerate([(2, 3), (3,), (3, 2), (2,)]))
    layer.dense[0].set_weights([w0, b0])
    layer.dense[1].set_weights([w1, b1])
    eps = layer.norms[0].epsilon
    # Inference: moving mean 0, variance 1, gamma 1, beta 0 -> BN(y) = y / sqrt(1 + eps).
    h1 = np.maximum((x @ w0 + b0) / np.sqrt(1 + eps), 0)
    expected = np.maximum((h1 @ w1 + b1) / np.sqrt(1 + eps), 0)
    np.testing.assert_allclose(layer(x, training=False).numpy(), expected, rtol=1e-5)
    # Training: the batch's own statistics.
    y = x @ w0 + b0
    h1 = np.maximum((y - y.mean(0)) / np.sqrt(y.var(0) + eps), 0)
    y = h1 @ w1 + b1
    np.testing.assert_allclose(layer(x, training=True).numpy(), np.maximum((y - y.mean(0)) / np.sqrt(y.var(0) + eps), 0),
                               rtol=1e-4, atol=1e-5)
    assert layer.get_config()["units"] == [3, 2]


# ----------------------------------------------------------------------------------- cross attention
def _attention_reference(e, mask, wq, wk, wv):
    b, m, n, d = e.shape
    flat, valid = e.reshape(b, m * n, d), mask.reshape(b, m * n)
    comp = np.repeat(np.arange(m), n)
    out = np.zeros((b, m * n, wv.shape[1]))
    for i in range(b):
        for q in range(m * n):
            keys = [k for k in range(m * n) if k == q or (valid[i, k] and comp[k] != comp[q])]
            logits = np.array([(flat[i, q] @ wq) @ (flat[i, k] @ wk) for k in keys]) / math.sqrt(wq.shape[1])
            out[i, q] = _softmax(logits) @ np.stack([flat[i, k] @ wv for k in keys])
    return out.reshape(b, m, n, -1)


def test_cross_attention_attends_to_itself_and_the_other_components_real_candidates():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    mask = np.ones((2, 3, 4), bool)
    mask[0, 1, 2:] = False
    mask[1, 2, :] = False  # an absent component
    layer = CrossComponentAttention(hidden_dim=4)
    layer(e, mask)
    wq, wk, wv = (rng.normal(size=(5, 4)).astype(np.float32) for _ in range(3))
    layer.query.set_weights([wq])
    layer.key.set_weights([wk])
    layer.value.set_weights([wv])
    # Real candidates only: a padded query's output is meaningless (and masked by the model).
    np.testing.assert_allclose(layer(e, mask).numpy()[mask], _attention_reference(e, mask, wq, wk, wv)[mask],
                               rtol=1e-4, atol=1e-5)


def test_padding_changes_nothing_and_a_lone_component_sees_only_itself():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(1, 2, 3, 4)).astype(np.float32)
    mask = np.array([[[1, 1, 0], [0, 0, 0]]], bool)
    layer = CrossComponentAttention(hidden_dim=4)
    z = layer(e, mask).numpy()
    noisy = e.copy()
    noisy[~mask] = 1e3  # whatever the padding holds
    np.testing.assert_allclose(layer(noisy, mask).numpy()[mask], z[mask], rtol=1e-5)
    # Only component 0 is present: each of its candidates attends to itself alone, z = W_v e.
    np.testing.assert_allclose(z[0, 0, :2], e[0, 0, :2] @ layer.value.get_weights()[0], rtol=1e-5)


# ---------------------------------------------------------------------------------------------- scorer
def test_shared_scorer_is_one_mlp_over_context_and_features():
    rng = np.random.default_rng(2)
    h, f = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 4, 5, 2)).astype(np.float32)
    layer = SharedScorer((4, 3))
    out = layer(h, f).numpy()
    assert out.shape == (2, 4, 5)
    (w0, b0), (w1, b1), (w2, b2) = (d.get_weights() for d in layer.hidden + [layer.out])
    x = np.concatenate([np.broadcast_to(h[:, None, None, :], (2, 4, 5, 3)), f], axis=-1)
    expected = (np.maximum(np.maximum(x @ w0 + b0, 0) @ w1 + b1, 0) @ w2 + b2)[..., 0]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # The same weights score a [B, K, F] combination feature.
    assert layer(h, f[:, :, 0]).shape == (2, 4)
    started = SharedScorer((4,), initial_ctr=0.2)
    started(h, f)
    assert started.out.get_weights()[1] == pytest.approx([math.log(0.2 / 0.8)])
    assert SharedScorer.from_config(started.get_config()).get_config() == started.get_config()


# ---------------------------------------------------------------------------------------- MIL pooling
def test_mil_weights_are_a_softmax_over_the_present_components():
    rng = np.random.default_rng(3)
    h = rng.normal(size=(2, 3)).astype(np.float32)
    f = rng.normal(size=(2, 2, 4, 5)).astype(np.float32)
    pool_mean = rng.normal(size=(2, 4, 5)).astype(np.float32)
    present = np.array([[1, 1, 0, 1], [1, 0, 0, 0]], bool)
    layer = MILPooling(units=6)
    f_c, w = (t.numpy() for t in layer(h, f, pool_mean, present))
    (wh, bh), (ws,) = layer.hidden.get_weights(), layer.score.get_weights()
    x = np.concatenate([np.broadcast_to(h[:, None, None], (2, 2, 4, 3)), f,
                        np.broadcast_to(pool_mean[:, None], (2, 2, 4, 5))], axis=-1)
    a = (np.tanh(x @ wh + bh) @ ws)[..., 0]
    expected = np.where(present[:, None], _softmax(np.where(present[:, None], a, -1e9)), 0.0)
    np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    assert (w[1, :, 1:] == 0).all() and np.allclose(w[1, :, 0], 1.0)
    np.testing.assert_allclose(f_c, (expected[..., None] * f).sum(axis=2), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------- sampling
def test_samples_follow_each_components_softmax_and_never_pick_padding():
    logits = tf.constant([[[0.0, 1.0, 2.0, 9.0], [0.5, 0.5, -9.0, 0.0], [1.0, 2.0, 3.0, 4.0]]], tf.float32)
    mask = tf.constant([[[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]]]) > 0
    draws = sampling.sample(logits, mask, 20_000, tf.constant([3, 4], tf.int64)).numpy()[0]
    assert (draws[:, 2] == -1).all()  # absent component
    assert set(np.unique(draws[:, 0])) <= {0, 1, 2} and set(np.unique(draws[:, 1])) <= {0, 1}
    freq = np.bincount(draws[:, 0], minlength=3) / len(draws)
    np.testing.assert_allclose(freq, _softmax(np.array([0.0, 1.0, 2.0])), atol=0.012)
    assert (draws[:, 1] == 0).mean() == pytest.approx(0.5, abs=0.012)
    # Same seed, same draws; another seed, others.
    again = sampling.sample(logits, mask, 20_000, tf.constant([3, 4], tf.int64)).numpy()[0]
    other = sampling.sample(logits, mask, 20_000, tf.constant([5, 4], tf.int64)).numpy()[0]
    assert (again == draws).all() and (other != draws).any()
    uniform = sampling.sample_uniform(mask, 20_000, tf.constant([1, 2], tf.int64)).numpy()[0]
    np.testing.assert_allclose(np.bincount(uniform[:, 0], minlength=3) / 20_000, [1 / 3] * 3, atol=0.012)


def test_greedy_and_log_probability_hand_computed():
    logits = tf.constant([[[0.0, 1.0, 5.0], [2.0, 0.0, 0.0]]], tf.float32)
    mask = tf.constant([[[1, 1, 0], [1, 1, 1]]]) > 0
    assert sampling.greedy(logits, mask).numpy().tolist() == [[1, 0]]  # 5.0 is padding
    lp = sampling.log_probability(logits, mask, tf.constant([[0, 2]], tf.int64)).numpy()[0]
    expected = math.log(1 / (1 + math.e)) + math.log(1 / (math.exp(2) + 2))
    assert lp == pytest.approx(expected, rel=1e-5)
    absent = sampling.log_probability(logits, mask, tf.constant([[0, -1]], tf.int64)).numpy()[0]
    assert absent == pytest.approx(math.log(1 / (1 + math.e)), rel=1e-5)


def test_enumerate_or_sample_lists_every_combination_of_small_spaces():
    mask = np.zeros((2, 3, 4), bool)
    mask[0, 0, :2] = mask[0, 1, :3] = True  # 2 x 3 x (absent) = 6 combinations
    mask[1, :, :4] = True  # 64 > 8: sampled
    combos, exhaustive = sampling.enumerate_or_sample(tf.constant(mask), 8, tf.constant([0, 1], tf.int64))
    combos, exhaustive = combos.numpy(), exhaustive.numpy()
    assert exhaustive.tolist() == [True, False]
    assert {tuple(c) for c in combos[0]} == {(a, b, -1) for a in range(2) for b in range(3)}
    assert (combos[1] >= 0).all() and (combos[1] < 4).all()


def test_seeds_derive_from_the_request_ids():
    a = sampling.seed_of(tf.constant([1, 2]), tf.constant([7]), base=3).numpy()
    assert a.tolist() == sampling.seed_of(tf.constant([1, 2]), tf.constant([7]), base=3).numpy().tolist()
    assert a.tolist() != sampling.seed_of(tf.constant([1, 2]), tf.constant([8]), base=3).numpy().tolist()
    assert a[1] == 3 and 0 <= a[0] < 2**31


# --------------------------------------------------------------------------------------------- losses
def _bce(y, x):
    return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))


def test_mil_losses_hand_computed():
    labels = tf.constant([1, 0])
    assert float(losses.combination_loss(labels, tf.constant([0.5, -1.0]))) == pytest.approx(
        (_bce(1, 0.5) + _bce(0, -1.0)) / 2, rel=1e-6)
    element_logits = tf.constant([[[0.2, 3.0], [1.0, -1.0]], [[-2.0, 0.0], [9.0, 9.0]]], tf.float32)
    logged = tf.constant([[1, 0], [0, -1]], tf.int64)  # row 1 lacks component 1
    expected = (_bce(1, 3.0) + _bce(1, 1.0) + _bce(0, -2.0)) / 3
    assert float(losses.element_loss(labels, element_logits, logged)) == pytest.approx(expected, rel=1e-6)


def test_reinforce_loss_and_its_gradient():
    """L = -(1/B) sum_i r_i sum_j rho_ij log pi_j(c_ij); dL/dp_j = -(1/B) r rho (onehot - pi_j)."""
    logits = tf.Variable([[[0.0, 1.0, 2.0]], [[1.0, 1.0, 0.0]]], dtype=tf.float32)
    mask = tf.constant([[[1, 1, 1]], [[1, 1, 0]]]) > 0
    logged = tf.constant([[2], [0]], tf.int64)
    labels = tf.constant([1, 0])
    with tf.GradientTape() as tape:
        loss = losses.reinforce_loss(labels, logits, mask, logged, 1.0, -0.1)
    pi0, pi1 = _softmax(np.array([0.0, 1.0, 2.0])), np.array([0.5, 0.5, 0.0])
    assert float(loss) == pytest.approx(-(1.0 * math.log(pi0[2]) - 0.1 * math.log(0.5)) / 2, rel=1e-5)
    grad = tape.gradient(loss, logits).numpy()
    np.testing.assert_allclose(grad[0, 0], -0.5 * 1.0 * (np.eye(3)[2] - pi0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad[1, 0, :2], -0.5 * -0.1 * (np.eye(3)[0] - pi1)[:2], rtol=1e-5, atol=1e-7)


def test_importance_ratios_weight_and_clip_the_policy_gradient():
    logits = tf.constant([[[0.0, math.log(3.0)]], [[0.0, 0.0]]], tf.float32)  # pi = (1/4, 3/4) and (1/2, 1/2)
    mask = tf.ones([2, 1, 2], tf.bool)
    logged = tf.constant([[1], [0]], tf.int64)
    rho = losses.importance_ratios(logits, mask, logged, tf.constant([[0.5], [0.01]]), max_ratio=10.0).numpy()
    np.testing.assert_allclose(rho, [[1.5], [10.0]], rtol=1e-5)  # 0.75 / 0.5; 0.5 / 0.01 clipped at 10
    plain = losses.reinforce_loss(tf.constant([1, 1]), logits, mask, logged)
    weighted = losses.reinforce_loss(tf.constant([1, 1]), logits, mask, logged,
                                     propensities=tf.constant([[0.5], [0.01]]))
    assert float(weighted) == pytest.approx(-(1.5 * math.log(0.75) + 10 * math.log(0.5)) / 2, rel=1e-5)
    assert float(plain) == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2, rel=1e-5)


def test_rewards_are_plus_one_and_minus_a_tenth():
    assert losses.rewards(tf.constant([1, 0, 1])).numpy().tolist() == pytest.approx([1.0, -0.1, 1.0])


# --------------------------------------------------------------------------------------------- config
def test_config_defaults_follow_the_paper_and_round_trip():
    c = GenCOConfig()
    assert (c.embedding_dim, c.context_units, c.attention_dim, c.scorer_units) == (4, (32, 16, 8), 4, (64, 32, 8))
    assert (c.num_samples, c.rl_weight, c.click_reward, c.no_click_reward) == (16, 0.15, 1.0, -0.1)
    assert (c.optimizer, c.learning_rate, c.batch_size) == ("sgd", 5e-3, 1024)
    assert GenCOConfig.from_dict(c.to_dict()) == c
    assert GenCOConfig.ablation("no_all", {"batch_size": 8}) == c.replace(
        use_mil=False, rl_weight=0.0, use_context=False, batch_size=8)
    assert set(ABLATIONS) == {"genco", "no_mil", "no_rl", "no_context", "no_all"}


@pytest.mark.parametrize("overrides, message", [
    ({"embedding_dim": 0}, "embedding_dim: must be a positive integer"),
    ({"scorer_units": []}, "scorer_units: must be a non-empty sequence"),
    ({"rl_weight": -0.1}, "rl_weight: must be >= 0"),
    ({"optimizer": "rmsprop"}, "optimizer: must be one of"),
    ({"use_mil": 1}, "use_mil: must be true or false"),
    ({"max_importance_ratio": 0}, "max_importance_ratio: must be positive"),
    ({"initial_ctr": 1.0}, "initial_ctr: must lie in \\(0, 1\\) or be None"),
    ({"batch": 3}, "unknown fields \\['batch'\\]"),
])
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        GenCOConfig.from_dict(overrides)


def test_unknown_ablation_is_named():
    with pytest.raises(ValueError, match="unknown GenCO ablation 'no_foo'"):
        GenCOConfig.ablation("no_foo")
