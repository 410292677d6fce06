"""The comparison systems' SavedModels: every new signature against the in-memory model after a save/load
round trip, the creative-aware AR's creative inputs, reproducible Thompson samples, and the bandits' daily
update (a warm start from the exported posterior)."""

import numpy as np
import pytest
import tensorflow as tf

import features as F
from trainer import testing, thompson
from trainer.bandit_export import BanditCRServingModule, load_posterior, select_by_thompson
from trainer.bandit_fit import fit_beta_ts, fit_hbm
from trainer.creative_log import read_creative_log
from trainer.dssm_export import TwoTowerCRServingModule
from trainer.export import creative_aware_ar_module, export_eval
from trainer.hbm import NIGPosterior, regression_stats
from trainer.serving_inputs import CREATIVE_AWARE_AR, SERVING_INPUTS
from trainer.serving_module import export_online
from trainer.variants import build_model
from trainer.warmup import read_warmup_requests
from transform import names as N

ROWS = 24


@pytest.fixture(scope="module")
def data():
    return testing.transformed_data()


@pytest.fixture(scope="module")
def examples(data):
    return testing.raw_examples(data.raw_eval, ROWS)


@pytest.fixture(scope="module")
def parsed(examples):
    return tf.io.parse_example(examples, F.raw_feature_spec())


def raw(parsed, inputs_key):
    out = {}
    for name in SERVING_INPUTS[inputs_key]:
        x = parsed[name]
        out[name] = tf.sparse.to_dense(x, default_value=F.SEQUENCE_PAD) if isinstance(x, tf.SparseTensor) else x
    return out


def transformed(data, parsed):
    return data.tft_output.transform_features_layer()(dict(parsed))


def _export(variant, module_fn, tmp_path_factory, warmup=False):
    model = testing.trained_model(variant, steps=0)
    path = export_online(module_fn(model, testing.transformed_data().tft_output),
                         str(tmp_path_factory.mktemp(variant)), warmup=warmup, request_rows=8)
    return model, path, tf.saved_model.load(path)


# ------------------------------------------------------------------------------------------- DSSM
@pytest.fixture(scope="module")
def dssm(tmp_path_factory):
    return _export("dssm", TwoTowerCRServingModule, tmp_path_factory)


def test_two_tower_signatures_match_the_in_memory_model(dssm, data, parsed, examples):
    model, _, loaded = dssm
    sigs = loaded.signatures
    assert set(sigs) == {F.SERVING_SIGNATURE, F.RAW_SIGNATURE, F.CREATIVE_TOWER_SIGNATURE, F.USER_TOWER_SIGNATURE,
                         F.CREATIVE_VECTORS_SIGNATURE}
    assert set(sigs[F.RAW_SIGNATURE].structured_input_signature[1]) == set(F.CR_SERVING_INPUTS)
    xf = transformed(data, parsed)
    want = tf.sigmoid(model.cr(xf)).numpy()
    inputs = raw(parsed, F.CR_MODEL_NAME)
    np.testing.assert_allclose(sigs[F.RAW_SIGNATURE](**inputs)[F.PCTR_C], want, atol=1e-6)
    np.testing.assert_allclose(sigs[F.SERVING_SIGNATURE](examples=examples)[F.PCTR_C], want, atol=1e-6)
    # The towers alone give the same score: sigmoid(s <u, c> + b).
    user = sigs[F.USER_TOWER_SIGNATURE](**{n: inputs[n] for n in F.CR_USER_FEATURES})[F.USER_VECTOR].numpy()
    creative = sigs[F.CREATIVE_TOWER_SIGNATURE](**{n: inputs[n] for n in F.CR_AD_FEATURES + F.CREATIVE_FEATURES})[
        F.CREATIVE_VECTOR].numpy()
    assert user.shape == creative.shape == (ROWS, model.cr.output_dim)
    np.testing.assert_allclose(np.linalg.norm(creative, axis=1), 1.0, rtol=1e-5)
    s, b = float(loaded.logit_scale), float(loaded.logit_bias)
    np.testing.assert_allclose(1 / (1 + np.exp(-(s * (user * creative).sum(1) + b))), want, atol=1e-6)
    # One user for all rows (batch 1) equals the user repeated.
    once = dict(inputs, **{n: inputs[n][:1] for n in F.CR_USER_FEATURES})
    rep = dict(inputs, **{n: tf.repeat(inputs[n][:1], ROWS) for n in F.CR_USER_FEATURES})
    np.testing.assert_allclose(sigs[F.RAW_SIGNATURE](**once)[F.PCTR_C], sigs[F.RAW_SIGNATURE](**rep)[F.PCTR_C],
                               atol=1e-6)


def test_two_tower_scores_from_precomputed_creative_vectors_as_from_raw_rows(dssm, parsed):
    model, path, loaded = dssm
    inputs = raw(parsed, F.CR_MODEL_NAME)
    once = dict(inputs, **{n: inputs[n][:1] for n in F.CR_USER_FEATURES})  # one user, ROWS creatives
    want = loaded.signatures[F.RAW_SIGNATURE](**once)[F.PCTR_C].numpy()
    assert want.std() > 1e-4  # the creatives' scores differ: the parity below is not of a constant
    tower = loaded.signatures[F.CREATIVE_TOWER_SIGNATURE]
    vectors = tower(**{n: inputs[n] for n in F.CR_AD_FEATURES + F.CREATIVE_FEATURES})[F.CREATIVE_VECTOR]
    user = {n: inputs[n][:1] for n in F.CR_USER_FEATURES}
    # Another load of the same SavedModel (a model server's) scores from the vectors alone.
    fn = tf.saved_model.load(path).signatures[F.CREATIVE_VECTORS_SIGNATURE]
    assert set(fn.structured_input_signature[1]) == set(F.CR_USER_FEATURES) | {F.CREATIVE_VECTOR}
    np.testing.assert_allclose(fn(**user, creative_vector=vectors)[F.PCTR_C], want, rtol=1e-6, atol=1e-7)
    # A user row per creative row, as the raw signature takes them.
    np.testing.assert_allclose(fn(**{n: inputs[n] for n in F.CR_USER_FEATURES}, creative_vector=vectors)[F.PCTR_C],
                               loaded.signatures[F.RAW_SIGNATURE](**inputs)[F.PCTR_C], rtol=1e-6, atol=1e-7)
    # Hand formula: sigmoid(s <u, c> + b) of the two towers' outputs.
    u = loaded.signatures[F.USER_TOWER_SIGNATURE](**user)[F.USER_VECTOR].numpy()
    s, b = float(loaded.logit_scale), float(loaded.logit_bias)
    np.testing.assert_allclose(1 / (1 + np.exp(-(s * (u * vectors.numpy()).sum(1) + b))), want, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{F.CR_USER_FEATURES[0]} must have batch size 1"):
        fn(**{n: inputs[n][:2] for n in F.CR_USER_FEATURES}, creative_vector=vectors)


# -------------------------------------------------------------------------------------------- ACR
@pytest.fixture(scope="module")
def acr(tmp_path_factory):
    return _export("acr", creative_aware_ar_module, tmp_path_factory, warmup=True)


def test_creative_aware_ar_signature_takes_one_creative_per_ad_row(acr, data, parsed):
    model, path, loaded = acr
    fn = loaded.signatures[F.RAW_SIGNATURE]
    assert set(fn.structured_input_signature[1]) == set(F.ACR_SERVING_INPUTS)
    assert set(F.ACR_SERVING_INPUTS) - set(F.AR_SERVING_INPUTS) == set(F.ACR_CREATIVE_INPUTS)
    inputs = raw(parsed, CREATIVE_AWARE_AR)
    got = fn(**inputs)[F.PCTR_AD].numpy()
    np.testing.assert_allclose(got, tf.sigmoid(model.ar(transformed(data, parsed))).numpy(), atol=1e-6)
    other = dict(inputs, **{F.CREATIVE_EMBEDDING: inputs[F.CREATIVE_EMBEDDING][::-1],
                            F.CREATIVE_STYLE: inputs[F.CREATIVE_STYLE][::-1]})
    assert not np.allclose(fn(**other)[F.PCTR_AD].numpy(), got)  # another creative, another pctr_ad
    for request in read_warmup_requests(path):
        assert request.model_spec.name == F.AR_MODEL_NAME
        assert set(request.inputs) == set(F.ACR_SERVING_INPUTS)
    with pytest.raises(Exception, match=F.CREATIVE_STYLE):
        fn(**{k: v for k, v in inputs.items() if k != F.CREATIVE_STYLE})


# ---------------------------------------------------------------------------------------- bandits
@pytest.fixture(scope="module")
def hbm(tmp_path_factory):
    return _export("hbm", BanditCRServingModule, tmp_path_factory)


@pytest.fixture(scope="module")
def beta(tmp_path_factory):
    return _export("beta_ts", BanditCRServingModule, tmp_path_factory)


@pytest.mark.parametrize("which", ["hbm", "beta"])
def test_bandit_signatures_sample_reproducibly_and_average_to_the_posterior_mean(which, hbm, beta, data, parsed,
                                                                                   examples):
    model, _, loaded = {"hbm": hbm, "beta": beta}[which]
    sigs = loaded.signatures
    assert set(sigs) == {F.SERVING_SIGNATURE, F.RAW_SIGNATURE, F.POSTERIOR_MEAN_SIGNATURE}
    xf = transformed(data, parsed)
    inputs = raw(parsed, F.CR_MODEL_NAME)
    np.testing.assert_allclose(sigs[F.POSTERIOR_MEAN_SIGNATURE](**inputs)[F.PCTR_C], model.cr.mean_pctr(xf),
                               rtol=1e-5, atol=1e-7)
    sample = sigs[F.RAW_SIGNATURE](**inputs)[F.PCTR_C].numpy()
    np.testing.assert_array_equal(sample, sigs[F.RAW_SIGNATURE](**inputs)[F.PCTR_C].numpy())  # a replay
    seed = thompson.request_seed([inputs[n] for n in sorted(inputs)])  # as the signature derives it
    np.testing.assert_allclose(sample, model.cr.thompson_pctr(xf, seed), rtol=1e-5, atol=1e-7)
    changed = dict(inputs, **{F.USER_GENDER: (inputs[F.USER_GENDER] + 1) % len(F.GENDERS)})
    assert not np.array_equal(sample, sigs[F.RAW_SIGNATURE](**changed)[F.PCTR_C].numpy())  # another request
    by_example = sigs[F.SERVING_SIGNATURE](examples=examples)[F.PCTR_C].numpy()
    np.testing.assert_array_equal(by_example, sigs[F.SERVING_SIGNATURE](examples=examples)[F.PCTR_C].numpy())
    assert ((sample > 0) & (sample < 1)).all() and ((by_example > 0) & (by_example < 1)).all()


def test_bandit_posterior_is_restored_by_name(hbm, beta):
    for (model, path, _), kind in ((hbm, "hbm"), (beta, "beta_ts")):
        saved = load_posterior(path, kind)
        for name, variable in model.cr.posterior_variables().items():
            np.testing.assert_array_equal(saved.state[name], variable.numpy())
        rows = model.cr.cardinalities[N.xf(F.CREATIVE_ID)]
        assert saved.keys["creative"].shape == (rows,) and (saved.keys["creative"][-50:] == -1).all()
    assert len(load_posterior(hbm[1], "hbm").vam_weights) == len(hbm[0].cr.vam.weights)
    with pytest.raises(ValueError, match="holds no hbm posterior"):
        load_posterior(beta[1], "hbm")
    with pytest.raises(FileNotFoundError, match="no CR SavedModel"):
        load_posterior(str(beta[1]) + "-missing", "beta_ts")


def test_daily_update_from_the_exported_posterior_equals_one_update_on_both_days(hbm, beta, data):
    """Warm-starting on the same day again = the prior updated once with that day's statistics doubled."""
    log = read_creative_log(data.train, data.tft_output)
    model, path, _ = hbm
    config = model.config.replace(warm_start_model=path)
    again = build_model(config, model.cardinalities)
    fit_hbm(again.cr, log, data.tft_output, config)
    x = again.cr.regression_features({k: tf.constant(v) for k, v in log.features().items()}).numpy()
    np.testing.assert_allclose(x, model.cr.regression_features(
        {k: tf.constant(v) for k, v in log.features().items()}).numpy(), rtol=1e-6)  # the same visual prior
    known = log.known_creative
    rows = again.cr.creative_posterior.rows
    xtx, xty, yty, n = regression_stats(x[known], log.impressions[known], log.clicks[known], log.creative[known], rows)
    once = NIGPosterior.prior(rows, x.shape[1], **model.cr.prior).update(2 * xtx, 2 * xty, 2 * yty, 2 * n)
    got = again.cr.creative_posterior.read()
    seen = n > 0
    np.testing.assert_allclose(got.precision[seen], once.precision[seen], rtol=1e-4)
    np.testing.assert_allclose(got.mean[seen], once.mean[seen], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(got.a, once.a, rtol=1e-6)
    np.testing.assert_allclose(again.cr.item_impressions.numpy(), 2 * model.cr.item_impressions.numpy())

    model, path, _ = beta
    config = model.config.replace(warm_start_model=path)
    again = build_model(config, model.cardinalities)
    fit_beta_ts(again.cr, log, data.tft_output, config)
    a0, b0 = model.cr.prior
    np.testing.assert_allclose(again.cr.alpha.numpy() - a0, 2 * (model.cr.alpha.numpy() - a0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(again.cr.beta.numpy() - b0, 2 * (model.cr.beta.numpy() - b0), rtol=1e-4, atol=1e-2)


def test_bandit_eval_model_picks_by_a_reproducible_thompson_sample(hbm, data, examples, parsed, tmp_path):
    model = hbm[0]
    loaded = tf.saved_model.load(export_eval(model, data.tft_output, str(tmp_path), select=select_by_thompson))
    out = loaded.signatures[F.SERVING_SIGNATURE](examples=examples)
    again = loaded.signatures[F.SERVING_SIGNATURE](examples=examples)
    np.testing.assert_array_equal(out[F.SELECTED_INDEX], again[F.SELECTED_INDEX])
    index, counts = out[F.SELECTED_INDEX].numpy(), parsed[F.NUM_CANDIDATES].numpy()
    assert ((0 <= index) & (index < counts)).all()
    np.testing.assert_allclose(out[F.PCTR_C], model.cr.mean_pctr(transformed(data, parsed)), rtol=1e-5, atol=1e-7)


def test_training_steps_leave_the_visual_prior_and_the_posterior_as_fitted(hbm):
    """The posterior is over the visual prior's z: ``fit`` (the AR's steps) must not move either. (Keras's fit
    restores the trainable state that compile saw, so the frozen prior needs a compile after it froze.)"""
    fitted, trained = hbm[0], testing.trained_model("hbm", steps=5)
    assert not all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(fitted.ar.weights, trained.ar.weights))
    for a, b in zip(fitted.cr.vam.weights, trained.cr.vam.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    for name, variable in fitted.cr.posterior_variables().items():
        np.testing.assert_array_equal(variable.numpy(), trained.cr.posterior_variables()[name].numpy(), err_msg=name)
