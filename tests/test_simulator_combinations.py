"""The multi-component world (simulator.combinations): the truth formula and its exact oracle, Table-1 pools,
churn, the two logging policies and their propensities, the written log; and the default single-creative
world left byte for byte as it was."""

import glob
import hashlib
import itertools
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import features as F
from simulator import SimulatorConfig, simulate
from simulator.arrays import sigmoid
from simulator.combinations import CombinationConfig, build_world, cli, simulate_combinations, traffic
from simulator.combinations import truth as T
from simulator.combinations.config import PAPER_COVERAGE, PAPER_MEAN_CANDIDATES
from simulator.combinations.world import importance_table
from simulator.generate import OutputExistsError

M, N, S = len(F.GENCO_COMPONENTS), F.GENCO_MAX_CANDIDATES, F.GENCO_NUM_STYLES


def test_the_default_single_creative_world_is_byte_identical(tmp_path):
    """The multi-component world is an option: the default simulator still writes exactly the bytes it wrote
    before it existed (hashes of main's simulator at 9f84707, world knobs on)."""
    simulate(SimulatorConfig(num_impressions=3000, num_days=3, seed=11, calibration_impressions=5000,
                             train_shards=2), str(tmp_path / "d"), progress=False)
    digest = {os.path.relpath(p, tmp_path / "d"): hashlib.sha256(open(p, "rb").read()).hexdigest()
              for p in sorted(glob.glob(str(tmp_path / "d" / "*" / "*.tfrecord")))}
    assert digest == {
        "eval/data-00000-of-00001.tfrecord": "cd94da122ab7e4e0316eb649101b698340a0ee841fafa43ba757cb4417b06143",
        "train/data-00000-of-00002.tfrecord": "ee89565776ed2b16e132dad9cc642d12737972b61b3b092d391d2517c98010e4",
        "train/data-00001-of-00002.tfrecord": "7b2aad6b1c6ba0b8b93095c5cee3dd95df1dacf947faf6c9390405159bca8e8d",
    }


# ------------------------------------------------------------------------------------------------ truth
def _row(pools, element_logits, pair_tables=None, base=0.0):
    """One impression: ``pools`` = per component a list of styles (empty: absent); ``element_logits`` alike."""
    styles = np.full((1, M, N), -1)
    logits = np.zeros((1, M, N))
    for j, (st, lg) in enumerate(zip(pools, element_logits)):
        styles[0, j, :len(st)] = st
        logits[0, j, :len(lg)] = lg
    pairs = np.zeros((1, len(F.GENCO_PAIRS), S, S)) if pair_tables is None else pair_tables[None]
    return np.array([base]), logits, styles, pairs.reshape(1, -1)


def test_combination_logit_hand_computed():
    # title: 2 candidates (styles 0, 1), image: 1 (style 2), the others absent.
    pairs = np.zeros((len(F.GENCO_PAIRS), S, S))
    pairs[0, 1, 2] = 0.5  # (title, image): title style 1 with image style 2
    pairs[1, 2, 0] = 9.0  # (image, marketing): never counts, marketing is absent
    args = _row([[0, 1], [2], [], [], [], []], [[0.1, -0.2], [0.3], [], [], [], []], pairs, base=-3.0)
    chosen = np.array([[1, 0, -1, -1, -1, -1]])
    assert T.combination_logit(*args, chosen)[0] == pytest.approx(-3.0 - 0.2 + 0.3 + 0.5)
    assert T.combination_logit(*args, np.array([[0, 0, -1, -1, -1, -1]]))[0] == pytest.approx(-3.0 + 0.1 + 0.3)
    assert T.combination_ctr(*args, chosen)[0] == pytest.approx(1 / (1 + np.exp(2.4)))


def test_the_best_combination_is_not_the_per_component_bests():
    """Alone, title 0 beats title 1 (0.1 > -0.2), but title 1 goes with the only image (+0.5)."""
    pairs = np.zeros((len(F.GENCO_PAIRS), S, S))
    pairs[0, 1, 2] = 0.5
    args = _row([[0, 1], [2], [], [], [], []], [[0.1, -0.2], [0.3], [], [], [], []], pairs)
    assert T.component_argmax(args[1], args[2]).tolist() == [[0, 0, -1, -1, -1, -1]]
    logit, best = T.best_combination(*args)
    assert best.tolist() == [[1, 0, -1, -1, -1, -1]] and logit[0] == pytest.approx(0.6)


def test_best_combination_equals_brute_force_over_every_combination():
    rng = np.random.default_rng(4)
    n = 60
    sizes = rng.integers(0, 5, (n, M))
    sizes[:, 0] = np.maximum(sizes[:, 0], 1)
    styles = np.where(np.arange(N) < sizes[..., None], rng.integers(0, S, (n, M, N)), -1)
    logits, base, pairs = rng.normal(size=(n, M, N)), rng.normal(size=n), rng.normal(size=(n, len(F.GENCO_PAIRS) * S * S))
    best_logit, best = T.best_combination(base, logits, styles, pairs)
    np.testing.assert_allclose(T.combination_logit(base, logits, styles, pairs, best), best_logit)
    for i in range(n):
        combos = np.array(list(itertools.product(*[range(s) if s else [-1] for s in sizes[i]])))
        rep = len(combos)
        values = T.combination_logit(np.repeat(base[i], rep), np.repeat(logits[i:i + 1], rep, 0),
                                     np.repeat(styles[i:i + 1], rep, 0), np.repeat(pairs[i:i + 1], rep, 0), combos)
        assert values.max() == pytest.approx(best_logit[i])


@pytest.mark.parametrize("chosen, message", [
    ([[2, 0, -1, -1, -1, -1]], "chosen\\[0\\] component 'title': expected the index of a candidate, got 2"),
    ([[0, -1, -1, -1, -1, -1]], "component 'image': expected the index of a candidate, got -1"),
    ([[0, 0, 0, -1, -1, -1]], "component 'marketing': expected -1 \\(the ad lacks the component\\), got 0"),
    ([[0, 0]], "shape \\(1, 2\\), expected \\(1, 6\\)"),
])
def test_a_bad_combination_is_named(chosen, message):
    args = _row([[0, 1], [2], [], [], [], []], [[0.1, -0.2], [0.3], [], [], [], []])
    with pytest.raises(ValueError, match=message):
        T.combination_logit(*args, np.array(chosen))


# ------------------------------------------------------------------------------------------------ world
def test_pools_follow_table_1():
    """Coverage and mean pool size per component as in Gu et al., 2025, Table 1 (pools capped at 15)."""
    world = build_world(CombinationConfig(num_ads=20_000, num_users=500, num_days=2, test_days=1), calibrate=False)
    for j, c in enumerate(F.GENCO_COMPONENTS):
        size = world.components[c].pool_size
        assert (size > 0).mean() == pytest.approx(PAPER_COVERAGE[j], abs=0.015), c
        assert size[size > 0].mean() == pytest.approx(PAPER_MEAN_CANDIDATES[j], rel=0.04), c
        assert size.max() <= N


def test_elements_churn_across_days():
    world = build_world(CombinationConfig(num_ads=3000, num_users=500, num_days=5, test_days=1,
                                          element_churn=0.2), calibrate=False)
    ads = np.arange(world.num_ads)
    day0, day4 = world.pools(0, ads), world.pools(4, ads)
    real = day0 >= 0
    assert np.array_equal(real, day4 >= 0)  # pool sizes stay, elements change
    changed = (day0 != day4)[real].mean()
    assert changed == pytest.approx(1 - 0.8 ** 4, abs=0.02)
    for j in range(M):  # element indices are per component; a new element is new, never a reused one
        assert len(np.unique(day4[:, j][real[:, j]])) == real[:, j].sum()


def test_importance_matches_the_docstring():
    omega = importance_table()
    assert omega[0].tolist() == pytest.approx([1.0, 1.6, 0.8, 1.12, 0.96, 0.96])  # phone
    assert omega[3].tolist() == pytest.approx([1.0, 2.24, 0.8, 0.7, 0.6, 0.6])  # clothing
    assert (omega.argmax(axis=1) == F.GENCO_COMPONENTS.index("image")).all()


@pytest.fixture(scope="module")
def world():
    return build_world(CombinationConfig(num_impressions=30_000, calibration_impressions=10_000, seed=3))


def test_uniform_logging_is_uniform_with_propensity_one_over_n(world):
    batch = traffic.draw_impressions(world, 7, np.random.default_rng(0), 20_000, traffic.UNIFORM)
    n = (batch.elements >= 0).sum(axis=2)
    np.testing.assert_allclose(batch.propensity, np.where(n > 0, 1.0 / np.maximum(n, 1), 1.0))
    image = F.GENCO_COMPONENTS.index("image")
    two = n[:, image] == 2
    assert (batch.exposed[two, image] == 0).mean() == pytest.approx(0.5, abs=0.03)
    assert ((batch.exposed >= 0) == (n > 0)).all() and (batch.exposed < np.maximum(n, 1)).all()


def test_production_logging_is_the_softmax_of_the_estimates(world):
    batch = traffic.draw_impressions(world, 2, np.random.default_rng(1), 3000, traffic.PRODUCTION)
    est = world.estimates(batch.elements) / world.config.production_temperature
    real = batch.elements >= 0
    probs = np.where(real, np.exp(est - np.where(real, est, -np.inf).max(axis=2, keepdims=True)), 0.0)
    probs /= np.maximum(probs.sum(axis=2, keepdims=True), 1e-300)
    has = batch.exposed >= 0
    expected = np.take_along_axis(probs, np.maximum(batch.exposed, 0)[..., None], axis=2)[..., 0]
    np.testing.assert_allclose(batch.propensity[has], expected[has], rtol=1e-9)


def test_the_bias_is_calibrated_to_the_target_ctr(world):
    batch = traffic.draw_impressions(world, 1, np.random.default_rng(2), 30_000, traffic.PRODUCTION)
    assert sigmoid(batch.exposed_logit).mean() == pytest.approx(world.config.target_ctr, rel=0.05)


@pytest.mark.parametrize("kwargs, option", [
    (dict(test_days=8), "test_days"),
    (dict(num_days=1), "num_days"),
    (dict(mean_candidates=(6.3, 3.4)), "mean_candidates"),
    (dict(mean_candidates=(6.3, 3.4, 2.2, 7.0, 2.3, 15.0)), r"mean_candidates\[structure_attribute\]"),
    (dict(coverage=(1.0, 1.0, 1.2, 1.0, 1.0, 1.0)), r"coverage\[marketing\]"),
    (dict(coverage=(0.5,) * 6), "coverage"),
    (dict(element_churn=1.0), "element_churn"),
    (dict(target_ctr=0.0), "target_ctr"),
    (dict(production_temperature=0.0), "production_temperature"),
    (dict(pair_scale=-1.0), "pair_scale"),
    (dict(seed=-1), "seed"),
])
def test_bad_options_are_named(kwargs, option):
    with pytest.raises(ValueError, match=rf"CombinationConfig\.{option}: "):
        CombinationConfig(**kwargs).validate()


# ------------------------------------------------------------------------------------------------ the log
@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("genco") / "data")
    summary = simulate_combinations(CombinationConfig(num_impressions=4000, num_days=4, test_days=1, seed=5,
                                                      calibration_impressions=2000, chunk_size=1000),
                                    out, progress=False)
    return out, summary


def _read(out, split):
    files = sorted(glob.glob(os.path.join(out, split, "*.tfrecord")))
    ds = tf.data.TFRecordDataset(files).batch(10_000)
    return {k: v for k, v in tf.io.parse_example(next(iter(ds)), F.genco_raw_feature_spec()).items()}


def test_the_log_has_every_column_and_its_truth_is_the_formula(log_dir):
    out, summary = log_dir
    cols = _read(out, F.EVAL_SPLIT)
    n = int(cols[F.CLICK].shape[0])
    assert n == summary[F.EVAL_SPLIT]["impressions"] == 1000
    assert set(cols) == set(F.GENCO_BY_NAME)

    def dense(name, dtype=np.int64):
        return tf.sparse.to_dense(cols[name], default_value=-1).numpy().astype(dtype)

    styles = np.full((n, M, N), -1)
    logits = np.zeros((n, M, N))
    exposed = np.stack([cols[F.GENCO_EXPOSED[c]].numpy() for c in F.GENCO_COMPONENTS], axis=1)
    for j, c in enumerate(F.GENCO_COMPONENTS):
        st = dense(F.GENCO_CAND_STYLES[c])
        styles[:, j, :st.shape[1]] = st
        logits[:, j, :st.shape[1]] = tf.sparse.to_dense(cols[F.GENCO_TRUTH_LOGITS[c]]).numpy()
        ids = dense(F.GENCO_CAND_IDS[c])
        assert ((ids >= 0) == (st >= 0)).all()
    base, pairs = cols[F.GENCO_TRUTH_BASE_LOGIT].numpy(), cols[F.GENCO_TRUTH_PAIR_LOGITS].numpy()
    np.testing.assert_allclose(T.combination_ctr(base, logits, styles, pairs, exposed),
                               cols[F.GENCO_TRUTH_CTR].numpy(), rtol=1e-5)
    oracle = sigmoid(T.best_combination(base, logits, styles, pairs)[0])
    np.testing.assert_allclose(oracle, cols[F.GENCO_TRUTH_ORACLE_CTR].numpy(), rtol=1e-5)
    # The test day is uniform-logged: the combination's propensity is the product of 1 / n per component.
    n_cands = (styles >= 0).sum(axis=2)
    np.testing.assert_allclose(cols[F.GENCO_PROPENSITY].numpy(),
                               np.prod(np.where(n_cands > 0, 1.0 / np.maximum(n_cands, 1), 1.0), axis=1), rtol=1e-5)
    assert (cols[F.DAY].numpy() == 3).all()


def test_the_summary_reports_table_1_statistics_and_the_oracle_gap(log_dir):
    out, summary = log_dir
    assert set(summary["pools"]) == set(F.GENCO_COMPONENTS)
    assert summary["pools"]["title"]["coverage"] == 1.0
    test = summary[F.EVAL_SPLIT]
    assert test["expected_ctr_oracle"] > test["expected_ctr_component_best"] > test["expected_ctr_logged"]
    assert 0.2 < test["oracle_differs_from_component_best"] < 1.0
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["files"][F.EVAL_SPLIT] == ["eval/data-00000-of-00001.tfrecord"]


def test_same_config_same_bytes_and_existing_output_is_kept(tmp_path, log_dir):
    out, _ = log_dir
    again = str(tmp_path / "again")
    config = CombinationConfig(num_impressions=4000, num_days=4, test_days=1, seed=5, calibration_impressions=2000,
                               chunk_size=1000)
    simulate_combinations(config, again, progress=False)
    for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT):
        for a, b in zip(sorted(glob.glob(os.path.join(out, split, "*"))),
                        sorted(glob.glob(os.path.join(again, split, "*")))):
            assert open(a, "rb").read() == open(b, "rb").read()
    with pytest.raises(OutputExistsError):
        simulate_combinations(config, again, progress=False)


def test_the_command_line_names_the_bad_flag(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--out", str(tmp_path / "x"), "--test-days", "9", "--quiet"])
    assert exit_.value.code == 2
    assert "--test-days (CombinationConfig.test_days: must leave at least one training day" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")
