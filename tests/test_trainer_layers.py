"""Layers and models: shapes, masking, get_config round-trips; the config dataclass."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import features as F
from trainer.ar_model import ARModel
from trainer.config import JACConfig
from trainer.cr_model import CRModel
from trainer.embeddings import BlockUniform, CategoricalEmbeddings
from trainer.jac_model import JACModel
from trainer.random_batch import random_transformed_batch, small_cardinalities
from trainer.sequence import BehaviorSequenceEncoder, TargetAttention, TransformerBlock
from trainer.unique_sequences import unique_sequences
from transform import names as N

CARDS = small_cardinalities()
TINY = dict(ar_embedding_dim=4, transformer_ff_dim=8, num_cross_layers=2, cross_projection_dim=3,
            ar_hidden_units=[16, 8], cr_embedding_dim=2, cr_hidden_units=[8, 4], quantizer_buckets=32,
            quantizer_dim=4, quantizer_r=10.0)


def _copy_weights(src, dst, batch_fn):
    batch_fn(dst)
    dst.set_weights(src.get_weights())


# ------------------------------------------------------------------------------------------ layers
def test_categorical_embeddings_shapes_rows_and_config():
    layer = CategoricalEmbeddings({"a": 5, "b": 3}, ["a", "b"], dim=2)
    out = layer({"a": tf.constant([0, 4]), "b": tf.constant([2, 1]), "ignored": tf.constant([9, 9])})
    assert out.shape == (2, 4)
    np.testing.assert_array_equal(out[0, :2], layer.table("a")[0])
    np.testing.assert_array_equal(out[1, 2:], layer.table("b")[1])
    assert CategoricalEmbeddings.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="'c'"):
        CategoricalEmbeddings({"a": 5}, ["a", "c"], dim=2)


def test_one_table_holds_each_feature_in_its_own_block():
    layer = CategoricalEmbeddings({"a": 5, "b": 3}, ["a", "b"], dim=2)
    out = layer({"a": tf.constant([0, 4]), "b": tf.constant([2, 1])})
    table = layer.embeddings.numpy()
    assert table.shape == (8, 2) and layer.offsets == {"a": 0, "b": 5}
    np.testing.assert_array_equal(out, np.concatenate([table[[0, 4]], table[[5 + 2, 5 + 1]]], axis=1))
    np.testing.assert_array_equal(layer.table("b"), table[5:8])
    np.testing.assert_array_equal(layer.lookup("b", tf.constant([[1, 2]])), table[None, [6, 7]])
    # one user row for three ads: broadcast to every row
    out = layer({"a": tf.constant([3]), "b": tf.constant([0, 1, 2])}, batch_size=3)
    np.testing.assert_array_equal(out[:, :2], np.repeat(table[[3]], 3, axis=0))


def test_table_rows_fold_ids_when_fewer_and_leave_spares_when_more():
    folded = CategoricalEmbeddings({"a": 5, "b": 3}, ["a", "b"], dim=2, rows=6)
    folded.build()
    table = folded.embeddings
    assert table.shape == (6, 2)
    # b's index 1 is row (5 + 1) mod 6 = 0, a's index 0: the two collide (the hashing trick)
    np.testing.assert_array_equal(folded.lookup("b", tf.constant([1])), folded.lookup("a", tf.constant([0])))
    np.testing.assert_array_equal(folded.table("b"), table.numpy()[[5, 0, 1]])
    spare = CategoricalEmbeddings({"a": 5, "b": 3}, ["a", "b"], dim=2, rows=10)
    spare.build()
    assert spare.embeddings.shape == (10, 2)
    np.testing.assert_array_equal(spare.table("b"), spare.embeddings.numpy()[5:8])
    assert CategoricalEmbeddings.from_config(folded.get_config()).rows == 6
    with pytest.raises(ValueError, match="rows"):
        CategoricalEmbeddings({"a": 5}, ["a"], dim=2, rows=0)


def test_block_initializer_draws_what_one_table_per_feature_drew():
    keras.utils.set_random_seed(3)
    separate = [keras.initializers.RandomUniform(-0.05, 0.05)((rows, 4)) for rows in (7, 2, 5)]
    keras.utils.set_random_seed(3)
    fused = BlockUniform([7, 2, 5], -0.05, 0.05)((14, 4))
    np.testing.assert_array_equal(fused, np.concatenate(separate))
    assert float(tf.reduce_min(fused)) >= -0.05 and float(tf.reduce_max(fused)) < 0.05


def test_attention_is_keras_multi_head_attention():
    """Same weights, same function as ``keras.layers.MultiHeadAttention`` (which it replaces for speed)."""
    x, mask = _seq(batch=3, length=5, dim=4)
    block = TransformerBlock(num_heads=2, ff_dim=8)
    block(x, mask)
    mha = keras.layers.MultiHeadAttention(2, key_dim=2)
    attention_mask = tf.broadcast_to(tf.cast(mask, tf.bool)[:, None, :], [3, 5, 5])
    mha(x, x, x, attention_mask=attention_mask)
    for dense, name in ((mha._query_dense, "query"), (mha._key_dense, "key"), (mha._value_dense, "value")):
        kernel, bias = block.projections[name]
        bias.assign(tf.random.normal(bias.shape, seed=len(name)))  # non-zero biases too
        dense.kernel.assign(kernel)
        dense.bias.assign(bias)
    block.output_bias.assign(tf.random.normal([4], seed=3))
    mha._output_dense.kernel.assign(block.output_kernel)
    mha._output_dense.bias.assign(block.output_bias)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, theirs = block.attention(x, mask), mha(x, x, x, attention_mask=attention_mask)
        # rows 0-1 have real items; row 2's empty sequence attends uniformly in both
        loss_ours, loss_theirs = tf.reduce_sum(ours[:2] ** 2), tf.reduce_sum(theirs[:2] ** 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(loss_ours, x), tape.gradient(loss_theirs, x), rtol=1e-4, atol=1e-6)
    assert [v.shape.as_list() for v in block.weights[:8]] == [v.shape.as_list() for v in mha.weights]


def _seq(batch=3, length=5, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(batch, length, dim)), tf.float32)
    mask = tf.constant([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], tf.float32)[:batch]
    return x, mask


def _perturb_padding(x, mask):
    noise = tf.random.stateless_normal(tf.shape(x), seed=[1, 2]) * 100.0
    return x + noise * (1.0 - mask[:, :, None])


def test_transformer_block_shape_and_padding_is_never_attended():
    x, mask = _seq()
    block = TransformerBlock(num_heads=2, ff_dim=8)
    y = block(x, mask)
    assert y.shape == x.shape
    y2 = block(_perturb_padding(x, mask), mask)
    real = mask.numpy().astype(bool)
    np.testing.assert_allclose(y.numpy()[real], y2.numpy()[real], rtol=1e-5, atol=1e-5)
    assert TransformerBlock.from_config(block.get_config()).get_config() == block.get_config()
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(num_heads=3, ff_dim=8)(x, mask)


def test_target_attention_pools_by_the_target_and_empty_is_zero():
    x, mask = _seq()
    att = TargetAttention()
    target = tf.ones([3, 4])
    out = att(x, mask, target)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out[2], np.zeros(4))  # empty sequence
    np.testing.assert_allclose(out[1], att.value(x[1:2, 0])[0], rtol=1e-5)  # one item: its value
    np.testing.assert_allclose(att(_perturb_padding(x, mask), mask, target), out, rtol=1e-5, atol=1e-5)
    assert TargetAttention.from_config(att.get_config()).get_config() == att.get_config()


def test_target_attention_computes_its_formula_item_by_item():
    """Projecting the query through W_k and pooling before W_v gives the per-item formula, and its gradients;
    one user's sequence (batch 1) against several targets is that sequence repeated."""
    x, mask = _seq()
    att = TargetAttention()
    target = tf.constant(np.random.default_rng(2).normal(size=(3, 4)), tf.float32)
    att(x, mask, target)

    def per_item(x, mask, target):  # the docstring's formula, every item projected
        logits = tf.reduce_sum(att.query(target)[:, None, :] * att.key(x), axis=-1) / 2.0  # sqrt(E) = 2
        weights = tf.nn.softmax(logits + (1.0 - mask) * -1e9, axis=-1) * mask
        return tf.reduce_sum(weights[:, :, None] * att.value(x), axis=1)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, target])
        ours, reference = att(x, mask, target), per_item(x, mask, target)
        weights = tf.constant(np.random.default_rng(3).normal(size=(3, 4)), tf.float32)
        loss_ours, loss_reference = tf.reduce_sum(ours * weights), tf.reduce_sum(reference * weights)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    for wrt in [x, target] + att.trainable_weights:
        np.testing.assert_allclose(tape.gradient(loss_ours, wrt), tape.gradient(loss_reference, wrt),
                                   rtol=1e-4, atol=1e-6)
    one_user = att(x[:1], mask[:1], target)
    np.testing.assert_allclose(one_user, att(tf.repeat(x[:1], 3, 0), tf.repeat(mask[:1], 3, 0), target), rtol=1e-6)
    assert [w.shape.as_list() for w in att.trainable_weights] == [[4, 4]] * 3  # W_q, W_k, W_v


def test_transformer_block_is_post_norm_attention_then_feed_forward():
    x, mask = _seq(batch=3, length=5, dim=4)
    block = TransformerBlock(num_heads=2, ff_dim=8)
    y = block(x, mask)
    h = block.attention_norm(tf.reshape(x + block.attention(x, mask), [15, 4]))  # the block's norms are 2-D
    h = tf.reshape(h, [3, 5, 4])  # and the feed-forward runs on [B, L, E], Keras' Dense as a tensordot
    reference = tf.reshape(block.ff_norm(tf.reshape(h + block.ff_out(block.ff_hidden(h)), [15, 4])), [3, 5, 4])
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-6)


def test_behavior_sequence_encoder_shapes_masking_and_config():
    x, mask = _seq()
    enc = BehaviorSequenceEncoder(num_layers=2, num_heads=2, ff_dim=8, max_length=5)
    target = tf.constant(np.random.default_rng(1).normal(size=(3, 4)), tf.float32)
    out = enc(x, mask, target)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(enc(_perturb_padding(x, mask), mask, target), out, rtol=1e-4, atol=1e-5)
    assert len(enc.blocks) == 2
    assert BehaviorSequenceEncoder.from_config(enc.get_config()).get_config() == enc.get_config()


def test_unique_sequences_hand_case_keeps_dtypes_and_first_seen_order():
    ids = tf.constant([[4, 2, 0], [7, 0, 0], [4, 2, 0], [4, 2, 0], [7, 0, 0], [4, 3, 0]], tf.int64)
    mask = tf.constant([[1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0]], tf.float32)
    categories = tf.constant([[1, 1, 0], [2, 0, 0], [1, 1, 0], [1, 1, 0], [2, 0, 0], [1, 1, 0]], tf.int64)
    (u_ids, u_categories, u_mask), index = unique_sequences(ids, categories, mask)
    np.testing.assert_array_equal(u_ids, [[4, 2, 0], [7, 0, 0], [4, 3, 0]])  # [4, 3] differs from [4, 2]
    np.testing.assert_array_equal(u_categories, [[1, 1, 0], [2, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(u_mask, [[1, 1, 0], [1, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(index, [0, 1, 0, 0, 1, 2])
    assert (u_ids.dtype, u_categories.dtype, u_mask.dtype, index.dtype) == (tf.int64, tf.int64, tf.float32, tf.int32)
    # equal ids with a different mask are different sequences
    (_, _), both = unique_sequences(tf.concat([ids[:1], ids[:1]], 0), tf.constant([[1, 1, 0], [1, 0, 0]], tf.float32))
    np.testing.assert_array_equal(both, [0, 1])
    with pytest.raises(ValueError, match="at least one column"):
        unique_sequences()


def test_encoder_over_distinct_sequences_equals_the_per_row_encoder():
    x, mask = _seq()  # 3 distinct sequences
    index = tf.constant([0, 0, 1, 2, 1, 0, 2])
    target = tf.constant(np.random.default_rng(2).normal(size=(7, 4)), tf.float32)
    enc = BehaviorSequenceEncoder(num_layers=2, num_heads=2, ff_dim=8, max_length=5)
    per_row = enc(tf.gather(x, index), tf.gather(mask, index), target)
    np.testing.assert_allclose(enc(x, mask, target, index=index), per_row, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ models
def _ar():
    config = JACConfig.from_dict(TINY)
    return ARModel(CARDS, embedding_dim=config.ar_embedding_dim, transformer_ff_dim=config.transformer_ff_dim,
                   num_cross_layers=config.num_cross_layers, cross_projection_dim=config.cross_projection_dim,
                   hidden_units=config.ar_hidden_units)


def _cr():
    return CRModel(CARDS, embedding_dim=2, hidden_units=[8, 4], quantizer_buckets=32, quantizer_dim=4,
                   quantizer_r=10.0)


def _only(batch, names):
    return {n: batch[n] for n in names}


def test_ar_model_shapes_config_round_trip_and_inputs():
    batch = random_transformed_batch(CARDS, 16)
    ar = _ar()
    out = ar(_only(batch, ARModel.feature_names))  # reads nothing but its declared inputs
    assert out.shape == (16,)
    assert len(ar.cross_layers) == 2 and [l.units for l in ar.deep_layers] == [16, 8]
    clone = ARModel.from_config(ar.get_config())
    assert clone.get_config() == ar.get_config()
    _copy_weights(ar, clone, lambda m: m(batch))
    np.testing.assert_allclose(clone(batch), out, rtol=1e-6)


def test_ar_model_broadcasts_one_users_features_over_many_ads():
    batch = random_transformed_batch(CARDS, 6)
    # every transformed input computed from broadcastable raw inputs only comes with batch 1
    user_level = [n for n in N.AR_INPUTS if set(N.SOURCES[n]) <= set(F.BROADCASTABLE_INPUTS)]
    assert N.SEQ_LENGTH_FRACTION in user_level and N.SEQ_CATEGORY_SHARE not in user_level
    once = {k: (v[:1] if k in user_level else v) for k, v in batch.items()}
    repeated = {k: (tf.repeat(v[:1], 6, axis=0) if k in user_level else v) for k, v in batch.items()}
    ar = _ar()
    np.testing.assert_allclose(ar(once), ar(repeated), rtol=1e-5, atol=1e-6)


def test_ar_model_runs_the_transformer_once_per_request_with_the_per_row_output_and_gradients(monkeypatch):
    batch = random_transformed_batch(CARDS, 12, seed=3, request_rows=3)  # 4 requests of 3 ads
    ar = _ar()
    ar(batch)
    rows_seen = []
    call = TransformerBlock.call
    monkeypatch.setattr(TransformerBlock, "call", lambda self, x, mask: rows_seen.append(int(x.shape[0]))
                        or call(self, x, mask))

    def logits_and_grads(features):
        with tf.GradientTape() as tape:
            logits = ar(features)
            loss = tf.reduce_sum(logits * tf.range(1.0, 1.0 + tf.cast(tf.shape(logits)[0], tf.float32)))
        return logits, tape.gradient(loss, ar.trainable_variables)

    logits, grads = logits_and_grads(batch)
    assert rows_seen == [4, 4]  # both blocks saw the 4 requests' sequences, not the 12 rows
    # one row at a time nothing can be shared: the same logits, and gradients that sum to the batch's
    rows = [logits_and_grads({k: v[i:i + 1] * 1 for k, v in batch.items()}) for i in range(12)]
    np.testing.assert_allclose(logits, tf.concat([r[0] for r in rows], 0), rtol=1e-5, atol=1e-6)
    for i, g in enumerate(grads):
        total = sum(tf.convert_to_tensor(r[1][i]) * (n + 1) for n, r in enumerate(rows))
        np.testing.assert_allclose(tf.convert_to_tensor(g), total, rtol=1e-4, atol=1e-5)


def test_cr_model_shapes_config_round_trip_and_layout():
    batch = random_transformed_batch(CARDS, 16)
    cr = _cr()
    out = cr(_only(batch, CRModel.feature_names), batch[N.AD_HIST_CTR_CLIPPED])
    assert out.shape == (16,)
    blocks = cr.first_layer_blocks()
    assert blocks[-1] == ("pctr", blocks[-2][2], blocks[-2][2] + 4)
    assert blocks[-1][2] == cr.hidden_layers[0].kernel.shape[0]
    clone = CRModel.from_config(cr.get_config())
    assert clone.get_config() == cr.get_config()
    _copy_weights(cr, clone, lambda m: m(batch, batch[N.AD_HIST_CTR_CLIPPED]))
    np.testing.assert_allclose(clone(batch, batch[N.AD_HIST_CTR_CLIPPED]), out, rtol=1e-6)


@pytest.mark.parametrize("variant, heads", [("jac", {F.PCTR_AD, F.PCTR_C}), ("ar", {F.PCTR_AD}), ("cr", {F.PCTR_C})])
def test_jac_model_variants_outputs_and_config(variant, heads):
    batch = random_transformed_batch(CARDS, 8)
    model = JACModel(JACConfig.from_dict(dict(TINY, variant=variant)), CARDS)
    out = model(_only(batch, model.feature_names))
    assert set(out) == heads
    for v in out.values():
        assert v.shape == (8,) and bool(tf.reduce_all((v > 0) & (v < 1)))
    clone = JACModel.from_config(json.loads(json.dumps(model.get_config())))
    assert clone.get_config() == model.get_config()
    _copy_weights(model, clone, lambda m: m(batch))
    for k in heads:
        np.testing.assert_allclose(clone(batch)[k], out[k], rtol=1e-6)


def test_model_inputs_exclude_non_model_features():
    model = JACModel(JACConfig.from_dict(dict(TINY, variant="jac")), CARDS)
    cr_only = JACModel(JACConfig.from_dict(dict(TINY, variant="cr")), CARDS)
    forbidden = set(F.NON_MODEL_FEATURES) | {N.xf(n) for n in F.NON_MODEL_FEATURES}
    for m in (model, cr_only):
        assert not forbidden & set(m.feature_names)
        for name in m.feature_names:
            assert not set(F.NON_MODEL_FEATURES) & set(N.SOURCES[name]), name
    hist_ctr = N.AD_HIST_CTR_CLIPPED  # variant "cr" reads it as its pctr; "jac" feeds AR's pctr_ad instead
    assert hist_ctr in cr_only.feature_names and hist_ctr not in model.feature_names


def test_jac_cr_reads_ar_output_and_cr_variant_reads_historical_ctr():
    batch = random_transformed_batch(CARDS, 8)
    jac = JACModel(JACConfig.from_dict(dict(TINY, variant="jac")), CARDS)
    jac(batch)
    changed = dict(batch, **{N.AD_HIST_CTR_CLIPPED: batch[N.AD_HIST_CTR_CLIPPED] + 0.5})
    np.testing.assert_array_equal(jac(changed)[F.PCTR_C], jac(batch)[F.PCTR_C])  # ignores hist CTR
    cr = JACModel(JACConfig.from_dict(dict(TINY, variant="cr", quantizer_buckets=4)), CARDS)
    assert not np.allclose(cr(changed)[F.PCTR_C], cr(batch)[F.PCTR_C])


@pytest.mark.parametrize("variant", ["jac", "cr"])
def test_initial_ctr_sets_the_output_biases_to_its_log_odds(variant):
    model = JACModel(JACConfig.from_dict(dict(TINY, variant=variant, initial_ctr=0.02)), CARDS)
    model(random_transformed_batch(CARDS, 4))
    for sub in (model.ar, model.cr):
        if sub is not None:
            assert float(sub.logit_layer.bias[0]) == pytest.approx(np.log(0.02 / 0.98), rel=1e-6)
            assert sub.get_config()["initial_ctr"] == 0.02


def test_train_step_logs_both_losses_and_aucs():
    cfg = JACConfig.from_dict(dict(TINY, variant="jac"))
    model = JACModel(cfg, CARDS)
    from trainer.jac_model import make_optimizer
    model.compile(optimizer=make_optimizer(cfg))
    batch = random_transformed_batch(CARDS, 64, click_rate=0.3)
    logs = model.train_on_batch(batch, batch[N.LABEL_KEY], return_dict=True)
    assert set(logs) == {"loss", "ar_loss", "ar_auc", "cr_loss", "cr_auc"}
    assert logs["loss"] == pytest.approx(logs["ar_loss"] + logs["cr_loss"], rel=1e-5)
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(0.05)


# ------------------------------------------------------------------------------------------ config
def test_config_defaults_follow_the_paper():
    c = JACConfig()
    assert (c.ar_embedding_dim, c.transformer_layers, c.transformer_heads) == (16, 2, 2)
    assert c.ar_hidden_units == (512, 512, 256, 128) and c.cr_hidden_units == (128, 64, 32)
    assert (c.cr_embedding_dim, c.quantizer_buckets, c.quantizer_dim) == (4, 8192, 128)
    assert (c.learning_rate, c.batch_size, c.epochs) == (0.05, 512, 1)


def test_config_dict_round_trip_and_overrides():
    c = JACConfig.from_dict({"variant": "cr", "cr_hidden_units": [32, 16], "quantizer_r": 50})
    assert c.cr_hidden_units == (32, 16)
    assert JACConfig.from_dict(json.loads(c.to_json())) == c
    assert c.has_cr and not c.has_ar


@pytest.mark.parametrize("overrides, field", [
    ({"variant": "both"}, "variant"), ({"ar_embedding_dim": 0}, "ar_embedding_dim"),
    ({"cr_hidden_units": []}, "cr_hidden_units"), ({"quantizer_r": "big"}, "quantizer_r"),
    ({"quantizer_r": -1.0}, "quantizer_r"), ({"cross_projection_dim": 0}, "cross_projection_dim"),
    ({"learning_rate": 0}, "learning_rate"), ({"transformer_heads": 3}, "transformer_heads"),
    ({"quantizer_buckets": 1}, "quantizer_buckets"), ({"no_such_field": 1}, "no_such_field"),
    ({"initial_ctr": 1.0}, "initial_ctr"),
])
def test_config_rejects_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        JACConfig.from_dict(overrides)


@pytest.mark.parametrize("overrides, field", [
    ({"ar_embedding_rows": 0}, "ar_embedding_rows"), ({"cr_embedding_rows": 2.5}, "cr_embedding_rows"),
    ({"embedding_min_shard_bytes": 0}, "embedding_min_shard_bytes"), ({"steps_per_execution": 0}, "steps_per_execution"),
])
def test_config_rejects_bad_scale_settings_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        JACConfig.from_dict(overrides)
