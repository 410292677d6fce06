"""Combination metrics: calibrated sCTR per component (Gu et al., 2025, Algorithm 1), lift by pool size, the
true CTR of chosen combinations; the NumPy references by hand, and their TFMA metrics through a real TFMA run."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants

import features as F
from creative_metrics import combinations as CM
from creative_metrics import tfma_metrics as M
from creative_metrics.report import loader
from simulator.combinations import truth as T
from trainer.genco import data as D
from trainer.genco import testing as GT

m = len(F.GENCO_COMPONENTS)


def _cols(*columns):
    """Per-component columns [n] -> an [n, m] matrix (components not given: absent, -1 / size 0)."""
    n = len(columns[0])
    out = np.full((n, m), -1)
    for j, col in enumerate(columns):
        out[:, j] = col
    return out


def test_component_calibrated_sctr_by_hand():
    """Title (pools of 2, 2, 4): matches on rows 0 (n=2, click) and 2 (n=4, no click) -> 2*1 / (2+4).
    Image (pools of 1, 3, 3): matches on rows 0 (n=1, click) and 1 (n=3, no click), not on row 2 -> 1 / 4.
    Marketing: only row 1 has it, without a match -> NaN; the others no row has -> NaN."""
    ads, clicks = np.array([1, 2, 3]), np.array([1, 0, 0])
    sizes = np.zeros((3, m), np.int64)
    sizes[:, 0], sizes[:, 1], sizes[1, 2] = [2, 2, 4], [1, 3, 3], 2
    logged, chosen = np.full((3, m), -1), np.full((3, m), -1)
    logged[:, 0], chosen[:, 0] = [1, 0, 3], [1, 1, 3]
    logged[:, 1], chosen[:, 1] = [0, 2, 1], [0, 2, 0]
    logged[1, 2], chosen[1, 2] = 0, 1
    est = CM.component_calibrated_sctr(ads, logged, chosen, clicks, sizes)
    assert est["title"].value == pytest.approx(2 / 6) and est["title"].denominator == 6
    assert est["image"].value == pytest.approx(1 / 4)
    assert math.isnan(est["marketing"].value) and math.isnan(est["highlight"].value)
    assert CM.components_mean(est) == pytest.approx((2 / 6 + 1 / 4) / 2)


@pytest.mark.parametrize("field, value, message", [
    ("chosen", 5, "chosen component 'title': index 5 at row 0 is not in \\[0, 2\\)"),
    ("logged", -1, "logged component 'title': index -1 at row 0 is not in \\[0, 2\\)"),
    ("absent", 0, "chosen component 'image': row 0 has no pool, expected -1, got 0"),
])
def test_bad_combinations_are_named(field, value, message):
    sizes, logged, chosen = np.zeros((1, m), np.int64), np.full((1, m), -1), np.full((1, m), -1)
    sizes[0, 0], logged[0, 0], chosen[0, 0] = 2, 0, 0
    if field == "absent":
        chosen[0, 1] = value
    else:
        {"chosen": chosen, "logged": logged}[field][0, 0] = value
    with pytest.raises(ValueError, match=message):
        CM.component_calibrated_sctr([1], logged, chosen, [1], sizes)


def test_lift_by_pool_size_by_hand():
    sizes = np.zeros((4, m), np.int64)
    sizes[:, 0] = [2, 4, 6, 4]  # title buckets: <3, 3-5, >5, 3-5
    sizes[:, 3] = [3, 9, 0, 5]  # highlight buckets: <4, >8, (absent), 4-8
    policy, reference = np.array([0.2, 0.3, 0.1, 0.5]), np.array([0.1, 0.2, 0.2, 0.2])
    lift = CM.lift_by_pool_size(policy, reference, sizes)
    assert lift["title"] == pytest.approx({"<3": 1.0, "3-5": 0.8 / 0.4 - 1, ">5": -0.5})
    assert lift["highlight"] == pytest.approx({"<4": 1.0, "4-8": 1.5, ">8": 0.5})
    assert all(math.isnan(v) for v in lift["marketing"].values())


# ------------------------------------------------------------------------------------------- TFMA
@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    """The tiny log's test day, each row with two policies' choices as extra columns (materialized predictions):
    ``good`` (the oracle combination) and ``rand`` (a uniform one)."""
    test = GT.logs()[1]
    truth = {k: test[k] for k in D.TRUTH}
    _, oracle = T.best_combination(truth["base"], truth["element_logits"], truth["styles"], truth["pair_logits"])
    rng = np.random.default_rng(0)
    real = np.asarray(test["genco_pool_ids"]).reshape(-1, m, F.GENCO_MAX_CANDIDATES) >= 0
    rand = np.where(real.any(axis=2), ((rng.random(real.shape) + 1) * real).argmax(axis=2), -1)
    files = sorted(tf.io.gfile.glob(os.path.join(GT.log_dir(), F.EVAL_SPLIT, "*")))
    path = str(tmp_path_factory.mktemp("tfma") / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i, record in enumerate(tf.data.TFRecordDataset(files).as_numpy_iterator()):
            ex = tf.train.Example.FromString(record)
            for name, picks in (("good", oracle), ("rand", rand)):
                for j, c in enumerate(F.GENCO_COMPONENTS):
                    ex.features.feature[f"{name}__{F.GENCO_CHOSEN_INDEX[c]}"].int64_list.value.append(int(picks[i, j]))
            writer.write(ex.SerializeToString())
    return path, test, {"good": oracle, "rand": rand}


def test_tfma_metrics_equal_the_numpy_references(materialized, tmp_path):
    path, test, picks = materialized
    specs = [tfma.ModelSpec(name=name, label_key=F.LABEL, is_baseline=name == "rand",
                            prediction_keys={F.GENCO_CHOSEN_INDEX[c]: f"{name}__{F.GENCO_CHOSEN_INDEX[c]}"
                                             for c in F.GENCO_COMPONENTS}) for name in picks]
    config = tfma.EvalConfig(model_specs=specs, slicing_specs=[tfma.SlicingSpec()], metrics_specs=[tfma.MetricsSpec(
        metrics=[M.metric_config("GenCOCalibratedSCTR"), M.metric_config("GenCOTrueCTR")])])
    shared = [tfma.types.EvalSharedModel(model_name=n, model_type=constants.MATERIALIZED_PREDICTION) for n in picks]
    tfma.run_model_analysis(eval_shared_model=shared, eval_config=config, data_location=path,
                            output_path=str(tmp_path))
    sizes = D.pool_sizes(test)
    truth = {k: test[k] for k in D.TRUTH}
    for name, chosen in picks.items():
        result = tfma.load_eval_result(str(tmp_path), model_name=name)
        got = loader.flatten_metrics(next(v for k, v in result.slicing_metrics if k == ()))
        got = {k.split("/")[-1]: v for k, v in got.items()}
        est = CM.component_calibrated_sctr(test[F.AD_ID], test["genco_logged"], chosen, test["click_xf"], sizes)
        assert got["genco_calibrated_sctr"] == pytest.approx(CM.components_mean(est), rel=1e-6)
        for c in F.GENCO_COMPONENTS:
            if math.isfinite(est[c].value):
                assert got[f"genco_calibrated_sctr_{c}"] == pytest.approx(est[c].value, rel=1e-6), c
        assert got["genco_true_ctr"] == pytest.approx(CM.true_ctrs(truth, chosen).mean(), rel=1e-5)
        assert got["genco_true_ctr_logged"] == pytest.approx(test[F.GENCO_TRUTH_CTR].mean(), rel=1e-5)
        assert got["genco_true_ctr_oracle"] == pytest.approx(test[F.GENCO_TRUTH_ORACLE_CTR].mean(), rel=1e-5)
    good = {k.split("/")[-1]: v for k, v in loader.flatten_metrics(next(
        v for k, v in tfma.load_eval_result(str(tmp_path), model_name="good").slicing_metrics if k == ())).items()}
    assert good["genco_true_ctr_lift_share"] == pytest.approx(1.0, rel=1e-5)
