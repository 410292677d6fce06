"""CACS's dual-tower selector (Lin et al., SIGIR 2022): ID dropout wiring, the distillation term against a
hand computation over each impression's candidates, the teacher SavedModel, the id counts, and the exported
CR-contract and creative-tower signatures after a save/load round trip."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import features as F
from trainer import testing
from trainer.candidates import candidate_lists, candidate_rows
from trainer.cacs_model import CACSSelectorModel, fit_id_counts, id_counts
from trainer.cacs_teacher import TEACHER_SIGNATURE, HeadTeacher, SavedModelTeacher, save_teacher
from trainer.config import JACConfig
from trainer.creative_log import CreativeLog
from trainer.data import make_dataset
from trainer.dssm_export import TwoTowerCRServingModule
from trainer.listwise_distillation import mean_listwise_distillation
from trainer.jac_model import JACModel, build_ar, make_optimizer
from trainer.random_batch import random_transformed_batch, small_cardinalities
from trainer.serving_module import export_online
from trainer.cacs_ranker import SHARED_CREATIVE_VECTOR, CACSRankerModel, CACSRankerServingModule
from trainer.variants import VARIANTS, build_cacs, build_model, export_models
from transform import names as N

CARDS = small_cardinalities()  # 50 in-vocabulary ids + the OOV buckets
AD, CREATIVE = N.xf(F.AD_ID), N.xf(F.CREATIVE_ID)
TOWERS = dict(embedding_dim=4, hidden_units=(8,), output_dim=4)


def _selector(**kwargs):
    return CACSSelectorModel(CARDS, **TOWERS, **kwargs, seed=0)


@pytest.fixture(scope="module")
def data():
    return testing.transformed_data()


@pytest.fixture(scope="module")
def teacher_head():
    return testing.trained_model("jac", steps=20).cr


@pytest.fixture(scope="module")
def batch(data):
    names = tuple(dict.fromkeys(N.AR_INPUTS + N.CR_INPUTS + tuple(N.CANDIDATE_INPUTS)))
    features, labels = next(iter(make_dataset(data.train, data.tft_output, names, 32, shuffle=False)))
    return features, labels


def test_cacs_is_a_registered_variant_on_the_dssm_towers():
    assert VARIANTS["cacs"].cr.serving_module is TwoTowerCRServingModule
    model = build_model(JACConfig.from_dict(dict(testing.TINY_MODEL, variant="cacs")), CARDS)
    assert isinstance(model.cr, CACSSelectorModel) and model.cr.teacher is None
    assert (model.cr.output_dim, model.cr.hidden_units) == (4, (8,))  # the dssm_* sizes of TINY_MODEL


def test_at_inference_the_selector_is_the_two_tower_score():
    selector = _selector(id_dropout_rate=1.0)
    features = random_transformed_batch(CARDS, 16)
    logit = selector(features, training=False)
    np.testing.assert_allclose(logit, selector.logit(selector.user_vectors(features),
                                                     selector.creative_vectors(features)), rtol=1e-6)


def test_training_hides_the_ids_as_their_oov_buckets():
    """Rate 1 and no counts: every ad and creative id is dropped -> the score of the rows with OOV ids."""
    selector = _selector(id_dropout_rate=1.0)
    features = random_transformed_batch(CARDS, 16)
    hidden = dict(features)
    for name, raw in ((AD, F.AD_ID), (CREATIVE, F.CREATIVE_ID)):
        buckets = N.ID_VOCABULARIES[raw].num_oov_buckets
        size = CARDS[name] - buckets
        ids = features[name].numpy()
        hidden[name] = tf.constant(np.where(ids < size, size + ids % buckets, ids))
    np.testing.assert_allclose(selector(features, training=True), selector(hidden, training=False), rtol=1e-6)
    assert not np.allclose(selector(features, training=True), selector(features, training=False))
    off = _selector(id_dropout_rate=0.0)
    np.testing.assert_array_equal(off(features, training=True), off(features, training=False))


def test_id_counts_by_hand():
    log = CreativeLog(ad=np.array([0, 1, 0, 3]), creative=np.array([2, 0, 1, 5]), attributes=np.zeros((4, 4)),
                      embedding=np.zeros((4, 8)), impressions=np.array([10, 5, 7, 100]), clicks=np.zeros(4),
                      creative_vocab_size=4, ad_vocab_size=3)  # ad 3 and creative 5 are OOV buckets
    counts = id_counts(log)
    np.testing.assert_array_equal(counts[AD], [17, 5, 0])
    np.testing.assert_array_equal(counts[CREATIVE], [5, 7, 10, 0])
    selector = CACSSelectorModel({**CARDS, AD: 3 + 50, CREATIVE: 4 + 50}, **TOWERS, id_dropout_rate=0.5,
                                 id_dropout_half_count=5.0)
    summary = fit_id_counts(selector, log, None, None)
    np.testing.assert_allclose(selector.id_dropout[CREATIVE].rates.numpy(),
                               [0.5 * 5 / 10, 0.5 * 5 / 12, 0.5 * 5 / 15, 0.5], rtol=1e-6)
    assert summary[f"{CREATIVE}_dropout"]["seen"] == 3


def _hand_distillation(features, student_fn, teacher_fn, temperature):
    """Per impression: its candidates as rows (user and ad features repeated), CE of the softmaxes at T."""
    ids = features[N.xf(F.CAND_CREATIVE_IDS)]
    losses = []
    for b in range(int(features[N.AD_HIST_CTR_CLIPPED].shape[0])):
        k = int(np.sum(ids.indices.numpy()[:, 0] == b))
        if k == 0:
            continue
        rows = {n: tf.repeat(features[n][b:b + 1], k) for n in N.CR_USER_CATEGORICAL + N.CR_AD_CATEGORICAL}
        for cand, creative in N.CANDIDATE_INPUTS.items():
            sp = features[cand]
            values = sp.values.numpy()[sp.indices.numpy()[:, 0] == b]
            rows[creative] = tf.constant(values.reshape(k, -1) if creative in N.DENSE_WIDTHS else values)
        pctr = tf.repeat(features[N.AD_HIST_CTR_CLIPPED][b:b + 1], k)
        s = np.asarray(student_fn(rows), np.float64) / temperature
        t = np.asarray(teacher_fn(rows, pctr), np.float64) / temperature
        p = np.exp(t - t.max()) / np.exp(t - t.max()).sum()
        log_q = s - s.max() - np.log(np.exp(s - s.max()).sum())
        losses.append(-(p * log_q).sum())
    return np.mean(losses)


@pytest.fixture(scope="module")
def data_cards(data):
    return N.cardinalities(data.tft_output)


def test_distillation_term_is_the_list_loss_over_each_impressions_candidates(batch, teacher_head, data_cards):
    features, _ = batch
    selector = CACSSelectorModel(data_cards, **TOWERS, distillation_temperature=2.0, distillation_weight=0.5,
                                 teacher=HeadTeacher(teacher_head), seed=0)
    got = selector.auxiliary_losses(features, training=False)["distillation"]
    want = 0.5 * _hand_distillation(features, lambda rows: selector(rows, training=False),
                                    lambda rows, pctr: teacher_head(rows, pctr, training=False), 2.0)
    np.testing.assert_allclose(float(got), want, rtol=1e-4)


def _cacs_model(data_cards, teacher, **overrides):
    config = JACConfig.from_dict(dict(testing.TINY_MODEL, variant="cacs", initial_ctr=0.05, **overrides))
    keras.utils.set_random_seed(config.seed)  # the same weights and dropout draws whichever tests ran before
    model = JACModel(config, data_cards, heads=(build_ar(config, data_cards), build_cacs(config, data_cards, teacher)))
    model.compile(optimizer=make_optimizer(config))
    return model


def test_training_loss_is_weighted_click_losses_plus_the_distillation_term(batch, teacher_head, data_cards):
    features, labels = batch
    model = _cacs_model(data_cards, HeadTeacher(teacher_head), cacs_click_weight=0.25)
    assert set(N.CANDIDATE_INPUTS) <= set(model.feature_names)
    total, losses, _, _ = model._forward_losses(features, labels, training=False)
    assert set(losses) == {"ar", "cr", "cr_distillation"}
    np.testing.assert_allclose(float(total), float(losses["ar"] + 0.25 * losses["cr"] + losses["cr_distillation"]),
                               rtol=1e-6)
    logs = model.train_on_batch({k: features[k] for k in model.feature_names}, labels, return_dict=True)
    assert {"cr_loss", "cr_auc", "cr_distillation_loss"} <= set(logs)


def test_distillation_alone_teaches_the_teachers_order(data, teacher_head, data_cards):
    """Click weight 0: 40 steps shrink the KL part of the loss (loss - teacher entropy) on held-out impressions."""
    teacher = HeadTeacher(teacher_head)
    model = _cacs_model(data_cards, teacher, cacs_click_weight=0.0, learning_rate=0.2)
    held_out = next(iter(make_dataset(data.eval, data.tft_output, model.feature_names, 256, shuffle=False)))[0]
    rows, pctr, impression, position = candidate_rows(held_out)
    batch = int(held_out[N.AD_HIST_CTR_CLIPPED].shape[0])
    t, mask = candidate_lists(teacher.candidate_logits(rows, pctr), impression, position, batch)
    entropy = float(mean_listwise_distillation(t, t, mask, model.config.cacs_distillation_temperature))

    def kl():
        return float(model.cr.auxiliary_losses(held_out, training=False)["distillation"]) - entropy

    model(held_out)
    before = kl()
    model.fit(make_dataset(data.train, data.tft_output, model.feature_names, 64, seed=0), steps_per_epoch=40,
              epochs=1, verbose=0)
    assert before > 0 and kl() < 0.5 * before


# ------------------------------------------------------------------------------------------ teacher
@pytest.fixture(scope="module")
def teacher_dir(teacher_head, data, tmp_path_factory):
    return save_teacher(teacher_head, str(tmp_path_factory.mktemp("teacher")), data.tft_output)


class _ReorderedVocabulary:
    """A Transform output whose creative-id vocabulary lists the same ids in another order (same size)."""

    def __init__(self, tft_output, tmp_path):
        self._tft, self._tmp = tft_output, tmp_path

    def vocabulary_file_by_name(self, name):
        path = self._tft.vocabulary_file_by_name(name)
        if name != N.ID_VOCABULARIES[F.CREATIVE_ID].filename:
            return path
        lines = open(path, "rb").read().splitlines(keepends=True)
        out = self._tmp / "reordered_vocabulary"
        out.write_bytes(b"".join([lines[1], lines[0]] + lines[2:]))
        return str(out)


def test_the_teacher_records_its_vocabularies_and_refuses_a_reordered_one(teacher_dir, data, data_cards, tmp_path):
    teacher = SavedModelTeacher(teacher_dir)
    assert set(teacher.fingerprints) == {n for n in N.CR_CATEGORICAL if n[:-3] in N.ID_VOCABULARIES}
    teacher.check(data_cards, data.tft_output)  # its own Transform output
    with pytest.raises(ValueError) as info:  # same sizes, so only the fingerprint tells
        teacher.check(data_cards, _ReorderedVocabulary(data.tft_output, tmp_path))
    assert f"CACS teacher model {teacher_dir!r}: was trained on other vocabularies" in str(info.value)
    assert f"the vocabulary files of ['{CREATIVE}'] differ" in str(info.value)


def test_run_fn_refuses_a_teacher_of_other_vocabularies_before_training(teacher_head, data, tmp_path):
    from tfx.v1.components import FnArgs

    from trainer.config import MODEL_CONFIG_KEY
    from trainer.run import run_fn

    path = save_teacher(teacher_head, str(tmp_path / "model" / "teacher"),
                        _ReorderedVocabulary(data.tft_output, tmp_path))
    fn_args = FnArgs(train_files=[data.train], eval_files=[data.eval], transform_output=data.transform_graph,
                     serving_model_dir=str(tmp_path / "serving"), train_steps=10, data_accessor=testing.data_accessor(),
                     custom_config={MODEL_CONFIG_KEY: dict(testing.TINY_MODEL, variant="cacs",
                                                           cacs_teacher_model=str(tmp_path / "model"))})
    with pytest.raises(ValueError, match=f"CACS teacher model {path!r}: was trained on other vocabularies"):
        run_fn(fn_args)
    assert not (tmp_path / "serving").exists()


def test_teacher_saved_model_gives_the_heads_logits(teacher_dir, teacher_head, batch):
    rows, pctr, _, _ = candidate_rows(batch[0])
    loaded = SavedModelTeacher(teacher_dir)
    assert set(loaded.inputs) == set(N.CR_CATEGORICAL + N.CR_DENSE) | {"pctr"}
    np.testing.assert_allclose(loaded.candidate_logits(rows, pctr), HeadTeacher(teacher_head).candidate_logits(
        rows, pctr), rtol=1e-5, atol=1e-6)


def test_the_variant_loads_its_teacher_from_the_config(teacher_dir, data_cards):
    model = build_model(JACConfig.from_dict(dict(testing.TINY_MODEL, variant="cacs", cacs_teacher_model=teacher_dir)),
                        data_cards)
    assert isinstance(model.cr.teacher, SavedModelTeacher) and model.cr.auxiliary_loss_names == ("distillation",)


def test_a_teacher_of_other_vocabularies_is_refused(teacher_dir, data_cards):
    teacher = SavedModelTeacher(teacher_dir)
    assert teacher.cardinalities == {n: data_cards[n] for n in N.CR_CATEGORICAL}
    teacher.check(data_cards)
    other = dict(data_cards, **{CREATIVE: data_cards[CREATIVE] + 7})
    with pytest.raises(ValueError) as info:
        build_cacs(JACConfig.from_dict(dict(testing.TINY_MODEL, variant="cacs", cacs_teacher_model=teacher_dir)),
                   other)
    assert f"CACS teacher model {teacher_dir!r}: was trained on other vocabularies" in str(info.value)
    assert f"{CREATIVE}: teacher {data_cards[CREATIVE]} rows, this run {data_cards[CREATIVE] + 7}" in str(info.value)


def _module_with(signature_name, spec, tmp_path, output="logit"):
    module = tf.Module()
    module.cardinality_rows = tf.Variable([1], dtype=tf.int64)
    module.f = tf.function(lambda x: {output: tf.cast(list(x.values())[0], tf.float32)}, input_signature=[spec],
                           autograph=False)
    path = str(tmp_path / signature_name)
    tf.saved_model.save(module, path, signatures={signature_name: module.f})
    return path


PCTR_SPEC = {"pctr": tf.TensorSpec([None], tf.float32, "pctr")}


@pytest.mark.parametrize("signature_name, spec, output, message", [
    ("serving_default", PCTR_SPEC, "logit", "has no 'teacher_logits' signature (it has ['serving_default'])"),
    (TEACHER_SIGNATURE, {"query_text": tf.TensorSpec([None], tf.int64, "query_text")}, "logit",
     "needs the inputs ['query_text'], which the candidate rows do not carry"),
    (TEACHER_SIGNATURE, PCTR_SPEC, "pctr_c", "signature has no 'logit' output (it has ['pctr_c'])"),
])
def test_bad_teacher_is_refused_naming_the_model_and_the_problem(signature_name, spec, output, message, tmp_path):
    path = _module_with(signature_name, spec, tmp_path, output)
    with pytest.raises(ValueError) as info:
        SavedModelTeacher(path)
    assert f"CACS teacher model {path!r}" in str(info.value) and message in str(info.value)


def test_missing_teacher_directory_and_wrong_variant_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot be loaded as a SavedModel"):
        SavedModelTeacher(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="JACConfig.cacs_teacher_model: only variant 'cacs'"):
        JACConfig.from_dict({"variant": "dssm", "cacs_teacher_model": "/x"})


# ------------------------------------------------------------------------------------------- export
def test_exported_selector_and_creative_tower_match_the_in_memory_model(data, data_cards, tmp_path):
    model = _cacs_model(data_cards, None)
    train = make_dataset(data.train, data.tft_output, model.feature_names, 64, seed=0)
    model.fit(train, steps_per_epoch=3, epochs=1, verbose=0)  # dropout active in these steps only
    path = export_online(TwoTowerCRServingModule(model, data.tft_output), str(tmp_path / "cr"), False, 8)
    loaded = tf.saved_model.load(path)
    examples = testing.raw_examples(data.raw_eval, 24)
    parsed = tf.io.parse_example(examples, F.raw_feature_spec())
    xf = data.tft_output.transform_features_layer()(dict(parsed))
    inputs = {n: parsed[n] for n in F.CR_SERVING_INPUTS}
    sigs = loaded.signatures
    np.testing.assert_allclose(sigs[F.RAW_SIGNATURE](**inputs)[F.PCTR_C], tf.sigmoid(model.cr(xf, training=False)),
                               atol=1e-6)
    np.testing.assert_allclose(sigs[F.SERVING_SIGNATURE](examples=examples)[F.PCTR_C],
                               tf.sigmoid(model.cr(xf, training=False)), atol=1e-6)
    tower = sigs[F.CREATIVE_TOWER_SIGNATURE](**{n: inputs[n] for n in F.CR_AD_FEATURES + F.CREATIVE_FEATURES})
    np.testing.assert_allclose(tower[F.CREATIVE_VECTOR], model.cr.creative_vectors(xf), atol=1e-6)
    user = sigs[F.USER_TOWER_SIGNATURE](**{n: inputs[n] for n in F.CR_USER_FEATURES})
    np.testing.assert_allclose(user[F.USER_VECTOR], model.cr.user_vectors(xf), atol=1e-6)


# ------------------------------------------------------------------------------------------ ranker
def _raw(parsed, names):
    return {n: tf.sparse.to_dense(parsed[n], default_value=F.SEQUENCE_PAD) if isinstance(parsed[n], tf.SparseTensor)
            else parsed[n] for n in names}


@pytest.fixture(scope="module")
def exported_pair(data, tmp_path_factory):
    """The cacs variant trained 5 steps and exported (eval model, ar/, cr/), each loaded back."""
    model = testing.trained_model("cacs", steps=5)
    out = export_models(model, data.tft_output, str(tmp_path_factory.mktemp("cacs")), warmup=True)
    return model, {name: tf.saved_model.load(path) for name, path in out.items()}, out


def test_the_ranker_reads_the_selectors_creative_vectors(exported_pair, data):
    """The vectors the exported AR consumes are the selector's ``creative_tower`` signature's, and its pctr_ad
    is the in-memory ranker's given exactly those vectors."""
    model, loaded, _ = exported_pair
    assert isinstance(model.ar, CACSRankerModel) and not {id(v) for v in model.ar.variables} & {
        id(v) for v in model.cr.variables}  # the tower is the selector's, not a copy inside the ranker
    examples = testing.raw_examples(data.raw_eval, 24)
    parsed = tf.io.parse_example(examples, F.raw_feature_spec())
    xf = data.tft_output.transform_features_layer()(dict(parsed))
    ar, cr = loaded[F.AR_MODEL_NAME].signatures, loaded[F.CR_MODEL_NAME].signatures
    assert set(ar) == {F.SERVING_SIGNATURE, F.RAW_SIGNATURE, F.CREATIVE_TOWER_SIGNATURE}
    assert set(ar[F.RAW_SIGNATURE].structured_input_signature[1]) == set(F.CACS_AR_SERVING_INPUTS)
    tower_inputs = _raw(parsed, F.CR_AD_FEATURES + F.CREATIVE_FEATURES)
    served = cr[F.CREATIVE_TOWER_SIGNATURE](**tower_inputs)[F.CREATIVE_VECTOR].numpy()
    consumed = ar[F.CREATIVE_TOWER_SIGNATURE](**tower_inputs)[F.CREATIVE_VECTOR].numpy()
    np.testing.assert_allclose(consumed, served, atol=1e-6)
    np.testing.assert_allclose(served, model.cr.creative_vectors(xf), atol=1e-6)
    want = tf.sigmoid(model.ar(dict(xf, **{SHARED_CREATIVE_VECTOR: tf.constant(served)}), training=False)).numpy()
    inputs = _raw(parsed, F.CACS_AR_SERVING_INPUTS)
    np.testing.assert_allclose(ar[F.RAW_SIGNATURE](**inputs)[F.PCTR_AD], want, atol=1e-6)
    np.testing.assert_allclose(ar[F.SERVING_SIGNATURE](examples=examples)[F.PCTR_AD], want, atol=1e-6)
    np.testing.assert_allclose(tf.sigmoid(model.ar(xf, training=False)), want, atol=1e-6)  # the tower in-graph
    # Another creative id moves the vector, hence pctr_ad: the ranker reads the id through the tower.
    other = dict(inputs, **{F.CREATIVE_ID: inputs[F.CREATIVE_ID][::-1]})
    assert not np.allclose(ar[F.RAW_SIGNATURE](**other)[F.PCTR_AD], want)


def test_the_ranker_reads_the_vector_but_does_not_train_the_selector():
    model = build_model(JACConfig.from_dict(dict(testing.TINY_MODEL, variant="cacs")), CARDS)
    batch = random_transformed_batch(CARDS, 16)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.ar(batch, training=True))
    grads = tape.gradient(loss, model.cr.trainable_variables + model.ar.trainable_variables)
    n = len(model.cr.trainable_variables)
    assert all(g is None for g in grads[:n]) and all(g is not None for g in grads[n:])
    vectors = model.cr.creative_vectors(batch)
    np.testing.assert_allclose(model.ar(batch), model.ar(dict(batch, **{SHARED_CREATIVE_VECTOR: vectors})), rtol=1e-6)
    assert not np.allclose(model.ar(batch), model.ar(dict(batch, **{SHARED_CREATIVE_VECTOR: -vectors})))


def test_every_exported_cacs_signature_survives_save_and_load(exported_pair, data):
    """Each signature of the eval model, the AR and the CR, run before saving and after loading."""
    model, loaded, _ = exported_pair
    examples = testing.raw_examples(data.raw_eval, 16)
    parsed = tf.io.parse_example(examples, F.raw_feature_spec())
    modules = {F.AR_MODEL_NAME: CACSRankerServingModule(model, data.tft_output),
               F.CR_MODEL_NAME: TwoTowerCRServingModule(model, data.tft_output)}
    inputs_of = {F.RAW_SIGNATURE: {F.AR_MODEL_NAME: F.CACS_AR_SERVING_INPUTS, F.CR_MODEL_NAME: F.CR_SERVING_INPUTS},
                 F.CREATIVE_TOWER_SIGNATURE: F.CR_AD_FEATURES + F.CREATIVE_FEATURES,
                 F.USER_TOWER_SIGNATURE: F.CR_USER_FEATURES}
    checked = 0
    for name, module in modules.items():
        fns = {F.SERVING_SIGNATURE: module.serve_examples, F.RAW_SIGNATURE: module.predict_raw,
               **module.extra_signatures}
        assert set(fns) == set(loaded[name].signatures)
        for sig, fn in fns.items():
            if sig == F.SERVING_SIGNATURE:
                before, after = fn({"examples": examples}), loaded[name].signatures[sig](examples=examples)
            elif sig == F.CREATIVE_VECTORS_SIGNATURE:  # the user features + the creative tower's vectors
                tower = loaded[name].signatures[F.CREATIVE_TOWER_SIGNATURE]
                vectors = tower(**_raw(parsed, F.CR_AD_FEATURES + F.CREATIVE_FEATURES))[F.CREATIVE_VECTOR]
                feed = dict(_raw(parsed, F.CR_USER_FEATURES), **{F.CREATIVE_VECTOR: vectors})
                before, after = fn(feed), loaded[name].signatures[sig](**feed)
                np.testing.assert_allclose(after[F.PCTR_C], loaded[name].signatures[F.RAW_SIGNATURE](
                    **_raw(parsed, F.CR_SERVING_INPUTS))[F.PCTR_C], atol=1e-6)  # the same as from raw inputs
            else:
                names = inputs_of[sig][name] if isinstance(inputs_of[sig], dict) else inputs_of[sig]
                before, after = fn(_raw(parsed, names)), loaded[name].signatures[sig](**_raw(parsed, names))
            assert set(before) == set(after)
            for key in before:
                np.testing.assert_allclose(after[key], before[key], atol=1e-6, err_msg=f"{name} {sig} {key}")
            checked += 1
    assert checked == 8  # ar: 3 signatures, cr: 5
    eval_out = loaded["eval"].signatures[F.SERVING_SIGNATURE](examples=examples)
    xf = data.tft_output.transform_features_layer()(dict(parsed))
    np.testing.assert_allclose(eval_out[F.PCTR_AD], tf.sigmoid(model.ar(xf, training=False)), atol=1e-6)
    np.testing.assert_allclose(eval_out[F.PCTR_C], tf.sigmoid(model.cr(xf, training=False)), atol=1e-6)


# ------------------------------------------------------------------------------------------- run_fn
def test_run_fn_trains_the_selector_with_its_teacher_and_exports_the_pair(data, teacher_dir, tmp_path):
    from tfx.v1.components import FnArgs

    from trainer.config import MODEL_CONFIG_KEY
    from trainer.run import run_fn

    model_config = dict(testing.TINY_MODEL, variant="cacs", cacs_teacher_model=teacher_dir, eval_steps=2)
    fn_args = FnArgs(train_files=[data.train], eval_files=[data.eval], transform_output=data.transform_graph,
                     serving_model_dir=str(tmp_path / "serving"), train_steps=10,
                     custom_config={MODEL_CONFIG_KEY: model_config}, data_accessor=testing.data_accessor())
    summary = run_fn(fn_args)
    metrics = summary["metrics"]
    assert np.isfinite(metrics["cr_distillation_loss"]) and np.isfinite(metrics["val_cr_distillation_loss"])
    assert metrics["loss"] == pytest.approx(metrics["ar_loss"] + metrics["cr_loss"] + metrics["cr_distillation_loss"],
                                            rel=1e-4)
    dropout = summary["posteriors"][f"{CREATIVE}_dropout"]
    assert 0 < dropout["seen"] <= dropout["ids"] and 0 < dropout["mean_rate"] < 0.5  # seen ids drop less than 0.5
    assert set(summary["exported"]) == {"eval", F.AR_MODEL_NAME, F.CR_MODEL_NAME}
    cr = tf.saved_model.load(summary["exported"][F.CR_MODEL_NAME])
    assert {F.RAW_SIGNATURE, F.CREATIVE_TOWER_SIGNATURE} <= set(cr.signatures)


def test_candidate_lists_by_hand():
    dense, mask = candidate_lists(tf.constant([1.0, 2.0, 3.0, 4.0]), tf.constant([0, 0, 2, 2], tf.int64),
                                  tf.constant([0, 1, 0, 2], tf.int64), 4)
    np.testing.assert_array_equal(dense, [[1, 2, 0], [0, 0, 0], [3, 0, 4], [0, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 0], [0, 0, 0], [1, 0, 1], [0, 0, 0]])
