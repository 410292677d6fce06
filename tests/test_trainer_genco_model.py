"""The GenCO network end to end on a small simulated log: training, the three selection rules, the ablations,
the MLP and DCO baselines; the SavedModels (round trip, warm-up, the raw contract's bad-input errors)."""

import itertools
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import features as F
from serving.standin.predict import Runtime
from serving.standin.warmup import load_servable
from transform import genco as G
from trainer.genco import data as D
from trainer.genco import sampling
from trainer.genco import testing as GT
from trainer.genco.config import GenCOConfig
from trainer.genco.dco import SuccessiveElimination
from trainer.genco.mlp_baseline import CombinationMLP
from trainer.genco.model import F_COMB, F_ELE, GENCO, GenCOModel
from trainer.genco.serving_inputs import example_request
from trainer.warmup import read_warmup_requests


@pytest.fixture(scope="module")
def logs():
    return GT.logs()


@pytest.fixture(scope="module")
def model():
    return GT.trained_model()


def _rows(log, n=512):
    return {k: tf.constant(v) for k, v in D.model_inputs(log, slice(0, n)).items()}


def test_training_starts_at_the_click_rate_and_fits_the_log(logs, model):
    train, _ = logs
    untrained = GT.trained_model(epochs=0)
    ctr = float(train[G.LABEL_KEY].mean())
    assert untrained.config.initial_ctr == pytest.approx(ctr)
    x, y = _rows(train, 3000), tf.constant(train[G.LABEL_KEY][:3000])
    start = untrained.objective(x, y)
    # The scorer's output bias starts at the log-odds of the click rate: predictions start near it.
    assert float(tf.reduce_mean(tf.sigmoid(start["combination_logit"]))) == pytest.approx(ctr, rel=0.25)
    end = model.objective(x, y)
    assert float(end["comb_loss"]) < float(start["comb_loss"]) - 0.003
    assert float(end["ele_loss"]) < float(start["ele_loss"]) - 0.003
    assert all(np.isfinite(v) for v in model.history.history["rl_loss"])
    # ... and ranks the test day's clicks better than chance (AUC 0.62 on this seeded run).
    _, test = logs
    auc = keras.metrics.AUC()
    auc.update_state(test[G.LABEL_KEY], tf.sigmoid(model(_rows(test, len(test[G.LABEL_KEY])))["combination_logit"]))
    assert float(auc.result()) > 0.56


def test_every_policy_chooses_a_real_candidate_of_each_component_the_ad_has(logs, model):
    _, test = logs
    x = _rows(test)
    mask = np.asarray(test[G.POOL_IDS][:512]) >= 0
    for policy in (GENCO, F_ELE, F_COMB):
        chosen = model.select(x, policy=policy)["chosen"].numpy()
        present = mask.any(axis=2)
        assert ((chosen >= 0) == present).all(), policy
        assert np.take_along_axis(mask, np.maximum(chosen, 0)[..., None], axis=2)[..., 0][present].all(), policy
    logits = model(x)["element_logits"].numpy()
    assert (logits[~mask] == -1e9).all()  # padding is never a candidate
    greedy = np.where(mask.any(axis=2), logits.argmax(axis=2), -1)
    assert (model.select(x, policy=F_ELE)["chosen"].numpy() == greedy).all()


def test_genco_returns_the_best_of_its_k_samples_by_the_reward_model(logs, model):
    _, test = logs
    x = _rows(test, 64)
    seed = sampling.seed_of(x[F.USER_ID], x[F.AD_ID], base=model.config.seed)
    enc = model.encode(x)
    samples = sampling.sample(enc.logits, enc.mask, model.config.num_samples, seed)
    scores = model.combination_logits(enc, samples)[0].numpy()
    out = model.select(x)
    best = np.take_along_axis(samples.numpy(), scores.argmax(axis=1)[:, None, None], axis=1)[:, 0]
    assert (out["chosen"].numpy() == best).all()
    np.testing.assert_allclose(out["score"].numpy(), 1 / (1 + np.exp(-scores.max(axis=1))), rtol=1e-5)


def test_the_ablation_without_all_three_drops_them_and_still_trains(logs):
    train, _ = logs
    config = GenCOConfig.ablation("no_all", GT.TINY_TRAINING)
    m = GenCOModel(config, G.hash_sizes_of(train))
    m.compile(optimizer="adam")
    before = [v.numpy().copy() for v in m.trainable_variables] if m.built else None
    out = m.train_step(next(iter(D.batches(train, 256))))  # eager: one step, no tracing
    assert np.isfinite(float(out["loss"])) and before is None
    assert m.attention is None and m.pooling is None and m.combination_scorer is not None
    assert float(out["rl_loss"]) != 0.0 and config.rl_weight == 0.0  # measured, not optimised


def test_config_round_trip_rebuilds_the_same_network(model):
    clone = GenCOModel.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_the_mlp_scores_every_combination_of_a_small_space(logs):
    train, test = logs
    mlp = CombinationMLP(GenCOConfig.from_dict(GT.TINY_TRAINING), G.hash_sizes_of(train), max_combinations=64)
    mlp.compile(optimizer="adam")
    for batch in D.batches(train, 256).take(3):  # eager steps: no tracing
        mlp.train_step(batch)
    x = _rows(test, 200)
    out = {k: v.numpy() for k, v in mlp.select(x).items()}
    sizes = D.pool_sizes(test)[:200]
    space = np.prod(np.maximum(sizes, 1), axis=1)
    assert (out["exhaustive"] == (space <= 64)).all() and out["exhaustive"].any() and not out["exhaustive"].all()
    for i in np.flatnonzero(out["exhaustive"])[:10]:
        combos = np.array(list(itertools.product(*[range(s) if s else [-1] for s in sizes[i]])))
        row = {k: v[i:i + 1] for k, v in x.items()}
        logits = mlp.logits(row, tf.constant(combos[None])).numpy()[0]
        assert (combos[logits.argmax()] == out["chosen"][i]).all()


def test_dco_serves_the_best_surviving_observed_combination():
    """Ad 7: (10, 20) 1/1 clicks, (11, 20) 0/3; the smoothed means are (1 + 20*.25)/21 and (0 + 5)/23."""
    ads = np.array([7, 7, 7, 7])
    combos = np.array([[10, 20], [11, 20], [11, 20], [11, 20]])
    dco = SuccessiveElimination(prior_strength=20.0).fit(ads, combos, np.array([1, 0, 0, 0]))
    arms, means = dco.arms[7]
    assert arms.tolist() == [[10, 20], [11, 20]] and means == pytest.approx([6 / 21, 5 / 23])
    pools = np.array([[[11, 10, -1], [20, -1, -1]],      # both arms available: (10, 20) -> indices (1, 0)
                      [[11, 12, -1], [20, 21, -1]]])     # 10 churned away: (11, 20) -> (0, 0)
    chosen, from_arm = dco.select(np.array([7, 7]), pools)
    assert chosen.tolist() == [[1, 0], [0, 0]] and from_arm.tolist() == [True, True]
    chosen, from_arm = dco.select(np.array([8]), pools[:1])  # an unseen ad: a random real candidate
    assert not from_arm[0] and chosen[0, 0] in (0, 1) and chosen[0, 1] == 0


# ---------------------------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def exported():
    return GT.exported()


@pytest.fixture(scope="module")
def online(exported):
    return tf.saved_model.load(exported[F.GENCO_MODEL_NAME]).signatures[F.RAW_SIGNATURE]


def _call(fn, request):
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in request.items()}).items()}


def test_the_saved_model_chooses_what_the_model_chooses(model, online):
    request = example_request(40, seed=5, width=11)
    out = _call(online, request)
    dense = {n: request[n] for n in F.GENCO_USER_FEATURES + F.GENCO_AD_FEATURES}
    pad = lambda x: np.pad(x, [(0, 0), (0, G.N - x.shape[1])], constant_values=F.GENCO_PAD)  # noqa: E731
    dense[G.POOL_IDS] = np.stack([pad(request[F.GENCO_CAND_IDS[c]]) for c in F.GENCO_COMPONENTS], axis=1)
    dense[G.POOL_STYLES] = np.stack([pad(request[F.GENCO_CAND_STYLES[c]]) for c in F.GENCO_COMPONENTS], axis=1)
    expected = model.select({k: tf.constant(v) for k, v in dense.items()})
    for j, c in enumerate(F.GENCO_COMPONENTS):
        index = expected["chosen"].numpy()[:, j]
        np.testing.assert_array_equal(out[F.GENCO_CHOSEN_INDEX[c]], index)
        ids = dense[G.POOL_IDS][:, j]
        np.testing.assert_array_equal(out[F.GENCO_CHOSEN_ID[c]],
                                      np.where(index >= 0, ids[np.arange(40), np.maximum(index, 0)], -1))
    np.testing.assert_allclose(out[F.GENCO_SCORE], expected["score"].numpy(), rtol=1e-5)
    assert _call(online, request)[F.GENCO_SCORE].tolist() == out[F.GENCO_SCORE].tolist()  # seeded by the ids


def test_the_examples_signatures_match_the_raw_one(exported, online):
    files = sorted(tf.io.gfile.glob(os.path.join(GT.log_dir(), F.EVAL_SPLIT, "*")))
    serialized = next(iter(tf.data.TFRecordDataset(files).batch(30)))
    by_examples = {k: v.numpy() for k, v in tf.saved_model.load(exported[F.GENCO_MODEL_NAME])
                   .signatures[F.SERVING_SIGNATURE](examples=serialized).items()}
    raw = tf.io.parse_example(serialized, F.genco_raw_feature_spec())
    request = {n: tf.sparse.to_dense(raw[n], default_value=F.GENCO_PAD).numpy() if isinstance(raw[n], tf.SparseTensor)
               else raw[n].numpy() for n in F.GENCO_SERVING_INPUTS}
    by_raw = _call(online, request)
    for key in by_raw:
        np.testing.assert_allclose(by_examples[key], by_raw[key], rtol=1e-5)
    evaluation = tf.saved_model.load(exported["eval"]).signatures[F.SERVING_SIGNATURE](examples=serialized)
    assert set(evaluation) == set(by_raw) | {F.GENCO_LOGGED_PCTR} | set(F.GENCO_WEIGHT.values())
    weights = np.stack([evaluation[F.GENCO_WEIGHT[c]].numpy() for c in F.GENCO_COMPONENTS], axis=1)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(evaluation[F.GENCO_CHOSEN_INDEX["title"]].numpy(),
                               by_raw[F.GENCO_CHOSEN_INDEX["title"]])


def test_a_model_never_called_on_a_combination_exports_too(logs, tmp_path):
    """Only element scores computed (no combination yet): the export builds the rest before saving."""
    from trainer.genco.export import export_online

    train, _ = logs
    m = GenCOModel(GenCOConfig(), G.hash_sizes_of(train))
    m.encode(_rows(train, 4))
    assert m.pooling.built is False
    out = _call(tf.saved_model.load(export_online(m, str(tmp_path / "m"), warmup=False)).signatures[F.RAW_SIGNATURE],
                example_request(3, seed=2))
    assert out[F.GENCO_SCORE].shape == (3,)


def test_warmup_records_replay_on_load(exported):
    requests = read_warmup_requests(exported[F.GENCO_MODEL_NAME])
    assert [r.model_spec.name for r in requests] == [F.GENCO_MODEL_NAME] * 2
    assert all(r.model_spec.signature_name == F.RAW_SIGNATURE for r in requests)
    load_servable(F.GENCO_MODEL_NAME, 1, exported[F.GENCO_MODEL_NAME], Runtime()).close()  # replays; raises on failure


def _bad(name, value):
    def mutate(request):
        request[name] = value(request)
        return request
    return mutate


IMAGE_IDS, IMAGE_STYLES = F.GENCO_CAND_IDS["image"], F.GENCO_CAND_STYLES["image"]
BAD_INPUTS = [
    ("pool wider than the padding", lambda r: {**r, IMAGE_IDS: np.ones((3, 16), np.int64),
                                               IMAGE_STYLES: np.zeros((3, 16), np.int64)},
     "genco_image_ids: the image pool has more candidates than the padding of 15"),
    ("id below the padding", _bad(IMAGE_IDS, lambda r: np.where(r[IMAGE_IDS] >= 0, -5, -1)),
     "genco_image_ids: element ids must be >= 0"),
    ("style out of its domain", _bad(IMAGE_STYLES, lambda r: np.where(r[IMAGE_IDS] >= 0, 4, -1)),
     "genco_image_styles: styles of real candidates must be in \\[0, 4\\)"),
    ("styles not shaped like ids", _bad(IMAGE_STYLES, lambda r: r[IMAGE_STYLES][:, :3]),
     "genco_image_styles must have the shape of genco_image_ids"),
    ("ad batch mismatch", _bad(F.AD_CATEGORY, lambda r: r[F.AD_CATEGORY][:2]),
     "ad_category has a batch size different from ad_id"),
    ("user batch neither 1 nor B", _bad(F.USER_GENDER, lambda r: np.zeros(2, np.int64)),
     "user_gender must have batch size 1 or that of ad_id"),
]


@pytest.mark.parametrize("case, mutate, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_the_raw_signature_names_the_bad_input(online, case, mutate, message):
    request = mutate(example_request(3, seed=1, pool_sizes={c: 4 for c in F.GENCO_COMPONENTS}))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _call(online, request)
