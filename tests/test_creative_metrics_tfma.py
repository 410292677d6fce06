"""TFMA metrics (NSCTR, SCTR, CalibratedSCTR, IPW, SNIPW, DoublyRobust, GAUC, TruePolicyCTR) through real TFMA
evaluations.

The evaluated "models" are materialized predictions: each model's outputs are stored as columns of the
examples and mapped with ``ModelSpec.prediction_keys`` -- the same predictions dict a multi-output eval
model gives the Evaluator. Every TFMA value is compared with the NumPy reference on the same rows.
"""

import json
import math
import os
import pathlib
import re
import shutil

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tfma = pytest.importorskip("tensorflow_model_analysis")

import features as F  # noqa: E402
from creative_metrics import ground_truth as GT  # noqa: E402
from creative_metrics import group_auc as G  # noqa: E402
from creative_metrics import off_policy as O  # noqa: E402
from creative_metrics import replay as E  # noqa: E402
from creative_metrics import report as R  # noqa: E402
from creative_metrics import tfma_metrics as M  # noqa: E402
from creative_metrics.report import loader  # noqa: E402
from tensorflow_model_analysis import constants  # noqa: E402
from tensorflow_model_analysis.metrics import metric_types  # noqa: E402

MODULE = "creative_metrics.tfma_metrics"
REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[1])
PREDICTION_KEYS = (F.SELECTED_CREATIVE_ID, F.SELECTED_INDEX, F.PCTR_AD)
N = 240


def _column(model, key):
    return f"{model}__{key}"


def _make_log(seed=7):
    """A small log: 12 ads with 1..12 candidates, 30 users, uniform logging; two creative rankers (and
    "mixed": the good one's creative choice with the bad one's pctr_ad)."""
    rng = np.random.default_rng(seed)
    ads = 10**12 + np.arange(12) * 7919  # large int64 ids
    n_cands = np.arange(1, 13)
    truth = [rng.uniform(0.05, 0.6, k) for k in n_cands]
    a = rng.integers(0, 12, N)
    user = rng.integers(0, 30, N)
    k = n_cands[a]
    exposed_idx = rng.integers(0, k)
    click = (rng.random(N) < np.array([truth[i][e] for i, e in zip(a, exposed_idx)])).astype(np.int64)
    # "good" picks the exposed creative when it was clicked, "bad" when it was not.
    good_idx = np.where(click == 1, exposed_idx, (exposed_idx + 1) % k)
    bad_idx = np.where(click == 0, exposed_idx, (exposed_idx + 1) % k)
    log = {
        F.AD_ID: ads[a], F.USER_ID: user, F.USER_GENDER: user % 3, F.NUM_CANDIDATES: k,
        F.EXPOSED_INDEX: exposed_idx, F.CREATIVE_ID: ads[a] * 100 + exposed_idx, F.CLICK: click,
        F.PROPENSITY: (1.0 / k).astype(np.float32),
        F.TRUTH_CAND_CTRS: [truth[i].astype(np.float32) for i in a],
        F.TRUTH_CTR: np.array([truth[i][e] for i, e in zip(a, exposed_idx)], dtype=np.float32),
    }
    for model, idx in (("good", good_idx), ("bad", bad_idx)):
        log[_column(model, F.SELECTED_INDEX)] = idx
        log[_column(model, F.SELECTED_CREATIVE_ID)] = ads[a] * 100 + idx
        log[_column(model, F.PCTR_AD)] = np.clip(
            0.1 + 0.5 * click * (model == "good") + rng.random(N) * 0.4, 0, 1).astype(np.float32)
    for key in (F.SELECTED_INDEX, F.SELECTED_CREATIVE_ID):  # "mixed": good creatives, bad pctr_ad
        log[_column("mixed", key)] = log[_column("good", key)]
    log[_column("mixed", F.PCTR_AD)] = log[_column("bad", F.PCTR_AD)]
    return log


def _write_tfrecord(log, path):
    def feature(v):
        v = np.atleast_1d(v)
        if v.dtype.kind == "f":
            return tf.train.Feature(float_list=tf.train.FloatList(value=v))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=v))

    with tf.io.TFRecordWriter(path) as w:
        for i in range(N):
            ex = tf.train.Example(features=tf.train.Features(
                feature={k: feature(v[i]) for k, v in log.items()}))
            w.write(ex.SerializeToString())


def _evaluate(data_path, out_dir, models, metrics_specs, slicing_specs=None, pipeline_options=None):
    """``models``: [(name, column prefix, is_baseline)]."""
    specs = [tfma.ModelSpec(name=name, is_baseline=base, label_key=F.LABEL,
                            prediction_keys={k: _column(prefix, k) for k in PREDICTION_KEYS})
             for name, prefix, base in models]
    shared = [tfma.types.EvalSharedModel(model_name=name, model_type=constants.MATERIALIZED_PREDICTION)
              for name, _, _ in models]
    config = tfma.EvalConfig(model_specs=specs, metrics_specs=metrics_specs,
                             slicing_specs=slicing_specs or [tfma.SlicingSpec()])
    tfma.run_model_analysis(eval_shared_model=shared if len(shared) > 1 else shared[0], eval_config=config,
                            data_location=data_path, output_path=out_dir, pipeline_options=pipeline_options)
    return out_dir


def _metrics(out_dir, model, slice_key=()):
    result = tfma.load_eval_result(out_dir, model_name=model)
    for key, by_output in result.slicing_metrics:
        if key == slice_key:
            return loader.flatten_metrics(by_output)
    raise KeyError(slice_key)


def _nsctr_threshold(change=True, lower_bound=0.0):
    t = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}))
    if change:
        t.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -0.002}))
    return t


@pytest.fixture(scope="module")
def log():
    return _make_log()


@pytest.fixture(scope="module")
def data_path(log, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data") / "eval.tfrecord")
    _write_tfrecord(log, path)
    return path


@pytest.fixture(scope="module")
def evaluation(data_path, tmp_path_factory):
    """candidate = good ranker, baseline = bad ranker; every metric; three slicings."""
    names = ["candidate", "baseline"]
    specs = [
        tfma.MetricsSpec(model_names=names, output_names=[F.PCTR_AD], metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="CalibrationPlot", config=json.dumps({"num_buckets": 100})),
            tfma.MetricConfig(class_name="GAUC", module=MODULE,
                              config=json.dumps({"prediction_key": F.PCTR_AD})),
        ]),
        tfma.MetricsSpec(model_names=names, metrics=[
            tfma.MetricConfig(class_name="NSCTR", module=MODULE, threshold=_nsctr_threshold()),
            tfma.MetricConfig(class_name="SCTR", module=MODULE),
            tfma.MetricConfig(class_name="CalibratedSCTR", module=MODULE),
            tfma.MetricConfig(class_name="TruePolicyCTR", module=MODULE),
            tfma.MetricConfig(class_name="IPW", module=MODULE),
            tfma.MetricConfig(class_name="SNIPW", module=MODULE),
            tfma.MetricConfig(class_name="DoublyRobust", module=MODULE),
            # Config kwargs reach the metric: matching on candidate indices must equal matching on ids.
            tfma.MetricConfig(class_name="NSCTR", module=MODULE, config=json.dumps({
                "name": "nsctr_by_index", "exposed_creative_key": F.EXPOSED_INDEX,
                "selected_creative_key": F.SELECTED_INDEX})),
        ]),
    ]
    slicing = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[F.NUM_CANDIDATES]),
               tfma.SlicingSpec(feature_keys=[F.USER_GENDER])]
    out = str(tmp_path_factory.mktemp("eval") / "out")
    return _evaluate(data_path, out, [("candidate", "good", False), ("baseline", "bad", True)], specs,
                     slicing)


def _reference(log, prefix, rows):
    sel = log[_column(prefix, F.SELECTED_CREATIVE_ID)][rows]
    args = (log[F.AD_ID][rows], log[F.CREATIVE_ID][rows], log[F.CLICK][rows], sel)
    ns = E.nsctr_estimate(*args)
    truth = GT.true_policy_value([log[F.TRUTH_CAND_CTRS][i] for i in np.flatnonzero(rows)],
                                 log[_column(prefix, F.SELECTED_INDEX)][rows],
                                 logged_ctr=log[F.TRUTH_CTR][rows])
    mu = log[F.PROPENSITY][rows].astype(np.float64)
    ipw, dr = O.ipw_estimate(*args, mu), O.dr_estimate(*args, mu)
    gauc_args = (log[F.USER_ID][rows], log[F.CLICK][rows],
                 log[_column(prefix, F.PCTR_AD)][rows].astype(np.float64))
    return {
        "nsctr": ns.value, "nsctr_coverage": ns.coverage, "nsctr_impressions": ns.impressions,
        "nsctr_logged_ctr": ns.logged_ctr, "sctr": E.sctr(*args),
        "sctr_matched_impressions": ns.matched_impressions,
        "calibrated_sctr": E.calibrated_sctr(*args, log[F.NUM_CANDIDATES][rows]),
        "calibrated_sctr_exposure": E.calibrated_sctr_estimate(*args, log[F.NUM_CANDIDATES][rows]).denominator,
        "true_ctr_selected": truth.selected, "true_ctr_random": truth.random,
        "true_ctr_oracle": truth.oracle, "true_ctr_logged": truth.logged, "lift_share": truth.lift_share,
        "true_ctr_impressions": truth.impressions,
        "ipw": ipw.value, "ipw_mean_weight": ipw.mean_weight, "ipw_effective_sample_size": ipw.effective_sample_size,
        "snipw": O.snipw(*args, mu), "snipw_matched_impressions": ipw.matched_impressions,
        "dr": dr.value, "dr_direct": dr.direct,
        f"{F.PCTR_AD}/gauc": G.gauc_bucketed_estimate(*gauc_args).value,
        "_exact_gauc": G.gauc(*gauc_args),
    }


def _assert_matches_reference(got, want):
    for name, value in want.items():
        if name.startswith("_"):
            continue
        if math.isnan(value):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_precondition_candidate_beats_baseline(log):
    rows = np.ones(N, dtype=bool)
    assert _reference(log, "good", rows)["nsctr"] > _reference(log, "bad", rows)["nsctr"] + 0.01


@pytest.mark.parametrize("model,prefix", [("candidate", "good"), ("baseline", "bad")])
def test_overall_metrics_equal_the_reference(evaluation, log, model, prefix):
    got = _metrics(evaluation, model)
    want = _reference(log, prefix, np.ones(N, dtype=bool))
    _assert_matches_reference(got, want)
    assert got["nsctr_by_index"] == pytest.approx(want["nsctr"], rel=1e-12)
    assert got[f"{F.PCTR_AD}/gauc"] == pytest.approx(want["_exact_gauc"],
                                                      abs=got[f"{F.PCTR_AD}/gauc_max_abs_error"] + 1e-12)
    assert got[f"{F.PCTR_AD}/example_count"] == N


@pytest.mark.parametrize("column,values", [(F.NUM_CANDIDATES, [1, 4, 12]), (F.USER_GENDER, [0, 1, 2])])
def test_sliced_metrics_equal_the_reference_on_the_slice(evaluation, log, column, values):
    for value in values:
        rows = log[column] == value
        got = _metrics(evaluation, "candidate", ((column, value),))
        _assert_matches_reference(got, _reference(log, "good", rows))


def test_single_candidate_ads_always_match(evaluation):
    got = _metrics(evaluation, "baseline", ((F.NUM_CANDIDATES, 1),))
    assert got["nsctr_coverage"] == 1.0 and got["sctr"] == got["nsctr"]


def test_diff_keys_are_candidate_minus_baseline(evaluation):
    cand, base = _metrics(evaluation, "candidate"), _metrics(evaluation, "baseline")
    assert cand["nsctr_diff"] == pytest.approx(cand["nsctr"] - base["nsctr"], rel=1e-9)
    assert cand["true_ctr_selected_diff"] == pytest.approx(
        cand["true_ctr_selected"] - base["true_ctr_selected"], rel=1e-9)


def test_better_candidate_is_blessed(evaluation):
    assert tfma.load_validation_result(evaluation).validation_ok


def test_worse_candidate_fails_the_change_threshold(data_path, tmp_path):
    specs = [tfma.MetricsSpec(model_names=["candidate", "baseline"], metrics=[
        tfma.MetricConfig(class_name="NSCTR", module=MODULE, threshold=_nsctr_threshold())])]
    out = _evaluate(data_path, str(tmp_path / "out"),
                    [("candidate", "bad", False), ("baseline", "good", True)], specs)
    result = tfma.load_validation_result(out)
    assert not result.validation_ok
    failed = {(f.metric_key.name, f.metric_key.is_diff)
              for s in result.metric_validations_per_slice for f in s.failures}
    assert failed == {("nsctr", True)}  # the value threshold (>= 0) still holds
    validation = R.report_data_from_eval_dir(out)["validation"]
    assert _statuses(validation) == {("nsctr", "value"): "passed", ("nsctr_diff", "change"): "failed"}
    assert validation["failures"] == []  # every failure is shown on its check


def test_a_model_failing_only_the_auc_floor_shows_auc_failed_and_nsctr_passed(data_path, log, tmp_path):
    """Defect: the report showed "Not blessed" beside an NSCTR-only rule the model passed."""
    auc_floor = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.7}))
    names = ["candidate", "baseline"]
    specs = [tfma.MetricsSpec(model_names=names, output_names=[F.PCTR_AD], metrics=[
                 tfma.MetricConfig(class_name="AUC", per_slice_thresholds=M.overall_slice_only(auc_floor))]),
             tfma.MetricsSpec(model_names=names, metrics=[M.metric_config("NSCTR", _nsctr_threshold())])]
    out = _evaluate(data_path, str(tmp_path / "out"),
                    [("candidate", "mixed", False), ("baseline", "bad", True)], specs)
    data = R.report_data_from_eval_dir(out)
    assert data["blessed"] is False
    assert _statuses(data["validation"]) == {
        (f"{F.PCTR_AD}/auc", "value"): "failed", ("nsctr", "value"): "passed",
        ("nsctr_diff", "change"): "passed"}
    got = _metrics(out, "candidate")
    observed = {c["metric"]: c["value"] for c in data["validation"]["checks"]}
    assert observed == pytest.approx({f"{F.PCTR_AD}/auc": got[f"{F.PCTR_AD}/auc"], "nsctr": got["nsctr"],
                                      "nsctr_diff": got["nsctr_diff"]})
    text = R.render_report(data)
    rows = dict((label, status) for status, label in
                re.findall(r'<tr class="check (\w+)"><td>([^<]*)</td>', text))
    assert rows == {"AUC (pctr_ad)": "failed", "NSCTR": "passed", "NSCTR vs baseline": "passed"}
    assert "Not blessed" in text and "&ge; 0.7" in text and "&ge; baseline - 0.002" in text


def test_value_threshold_under_beam_multi_processing(data_path, log, tmp_path, monkeypatch):
    """Workers import the metric module by name: it must be importable there (PYTHONPATH here)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    want = _reference(log, "good", np.ones(N, dtype=bool))
    specs = [tfma.MetricsSpec(metrics=[
        tfma.MetricConfig(class_name="NSCTR", module=MODULE, threshold=_nsctr_threshold(
            change=False, lower_bound=want["nsctr"] + 0.05)),
        tfma.MetricConfig(class_name="GAUC", module=MODULE, config=json.dumps({"num_buckets": 100})),
    ])]
    options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    out = _evaluate(data_path, str(tmp_path / "out"), [("candidate", "good", False)], specs,
                    pipeline_options=options)
    got = _metrics(out, None)  # a single model's metrics carry no model name
    assert got["nsctr"] == pytest.approx(want["nsctr"], rel=1e-9)
    gauc_args = (log[F.USER_ID], log[F.CLICK], log[_column("good", F.PCTR_AD)].astype(np.float64))
    assert got["gauc"] == pytest.approx(G.gauc_bucketed_estimate(*gauc_args, num_buckets=100).value, rel=1e-9)
    result = tfma.load_validation_result(out)
    assert not result.validation_ok
    assert [f.metric_key.name for s in result.metric_validations_per_slice for f in s.failures] == ["nsctr"]
    # One model: TFMA names it "" in the keys; the report still shows it as the model under evaluation.
    validation = R.report_data_from_eval_dir(out)["validation"]
    assert [(c["metric"], c["model"], c["status"]) for c in validation["checks"]] == [
        ("nsctr", "candidate", "failed")]
    assert validation["no_baseline"] is True  # a first model: nothing compared against a baseline


def _statuses(validation):
    return {(c["metric"], c["kind"]): c["status"] for c in validation["checks"]}


def test_report_from_the_evaluation(evaluation, log, tmp_path):
    path = R.write_report_from_eval_dir(evaluation, str(tmp_path / "r" / "report.html"))
    text = open(path, encoding="utf-8").read()
    want = _reference(log, "good", np.ones(N, dtype=bool))
    assert f"{want['nsctr']:.5f}" in text and f"{want['true_ctr_selected']:.5f}" in text
    assert "Blessed" in text and "Not blessed" not in text
    assert "female" in text and ">&lt;4<" in text and ">4-8<" in text and ">&gt;8<" in text
    assert text.count("<svg") == 3  # lift by bucket, estimates vs truth, calibration
    validation = R.report_data_from_eval_dir(evaluation)["validation"]
    assert _statuses(validation) == {("nsctr", "value"): "passed", ("nsctr_diff", "change"): "passed"}
    assert validation["no_baseline"] is False and "No baseline" not in text


def test_a_corrupt_validation_file_is_reported_as_unreadable_with_its_path(evaluation, tmp_path):
    """Defect: a bare ``except`` turned a corrupt validation file into "Blessing not evaluated"."""
    corrupt = str(tmp_path / "eval")
    shutil.copytree(evaluation, corrupt)
    (path,) = [os.path.join(corrupt, f) for f in os.listdir(corrupt) if f.startswith("validations")]
    with open(path, "wb") as f:
        f.write(b"\x00not a tfrecord of a ValidationResult\xff" * 4)
    data = R.report_data_from_eval_dir(corrupt)
    assert data["blessed"] is None
    assert f"The validation result {path} is unreadable" in data["validation"]["error"]
    assert {c["status"] for c in data["validation"]["checks"]} == {"unknown"}
    text = R.render_report(data)
    assert "Blessing unknown" in text and "Blessing not evaluated" not in text and path in text
    # In the pipeline the verdict comes from the blessing artifact; the report still names the bad file.
    text = open(R.write_report_from_eval_dir(corrupt, str(tmp_path / "r.html"), blessed=True)).read()
    assert "Blessed" in text and f"{path} is unreadable" in text


def test_report_from_eval_result_objects(evaluation, tmp_path):
    cand = tfma.load_eval_result(evaluation, model_name="candidate")
    base = tfma.load_eval_result(evaluation, model_name="baseline")
    path = R.write_report(cand, str(tmp_path / "objects.html"), baseline=base, blessed=True)
    text = open(path, encoding="utf-8").read()
    nsctr = {m: _metrics(evaluation, m)["nsctr"] for m in ("candidate", "baseline")}
    assert f"{nsctr['candidate']:.5f}" in text and f"{nsctr['baseline']:.5f}" in text
    assert f"{nsctr['candidate'] - nsctr['baseline']:+.5f}" in text


def test_report_cli(evaluation, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert R.main(["--eval-dir", evaluation, "--out", str(out), "--title", "Nightly run"]) == 0
    assert "<title>Nightly run</title>" in out.read_text()
    assert R.main(["--eval-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "no TFMA evaluation" in capsys.readouterr().err


# ------------------------------------------------------------------------------- combiners, no Beam
def _inputs(**features):
    preds = {F.SELECTED_CREATIVE_ID: np.array([features.pop("sel", 11)]),
             F.SELECTED_INDEX: np.array([features.pop("idx", 1)]), F.PCTR_AD: np.array([0.3])}
    label = np.array([features.pop("label", 1)])
    base = {F.AD_ID: np.array([1]), F.CREATIVE_ID: np.array([11]), F.USER_ID: np.array([5]),
            F.NUM_CANDIDATES: np.array([3]), F.TRUTH_CAND_CTRS: np.array([0.1, 0.2, 0.3]),
            F.TRUTH_CTR: np.array([0.2])}
    base.update(features)
    return metric_types.StandardMetricInputs(features=base, labels=label, predictions=preds)


def _combiner(metric):
    (computation,) = metric.computations(model_names=[""])
    return computation.combiner


def test_combiner_accumulates_per_ad_and_survives_pickling():
    import pickle

    ad, exposed, clicks, selected, _ = (np.array(v) for v in (
        [1, 1, 2, 2, 2], [11, 12, 21, 22, 21], [1, 0, 1, 1, 0], [11, 11, 21, 21, 21], None))
    combiner = _combiner(M.NSCTR())
    accs = [combiner.create_accumulator(), combiner.create_accumulator()]
    for i in range(5):
        x = _inputs(**{F.AD_ID: np.array([ad[i]]), F.CREATIVE_ID: np.array([exposed[i]])},
                    sel=selected[i], label=clicks[i])
        combiner.add_input(accs[i % 2], x)
    merged = combiner.merge_accumulators([pickle.loads(pickle.dumps(combiner.compact(a))) for a in accs])
    out = {k.name: v for k, v in combiner.extract_output(merged).items()}
    assert out["nsctr"] == pytest.approx(E.nsctr(ad, exposed, clicks, selected))
    assert out["nsctr_impressions"] == 5


def test_combiner_errors_name_the_missing_feature_and_output():
    combiner = _combiner(M.CalibratedSCTR())
    acc = combiner.create_accumulator()
    x = _inputs()
    del x.features[F.NUM_CANDIDATES]
    with pytest.raises(ValueError, match=F.NUM_CANDIDATES):
        combiner.add_input(acc, x)
    gauc = _combiner(M.GAUC(prediction_key="no_such_output"))
    with pytest.raises(ValueError, match="no output 'no_such_output'"):
        gauc.add_input(gauc.create_accumulator(), _inputs())


def test_true_policy_combiner_checks_the_selected_index():
    combiner = _combiner(M.TruePolicyCTR())
    acc = combiner.add_input(combiner.create_accumulator(), _inputs(idx=2))
    out = {k.name: v for k, v in combiner.extract_output(acc).items()}
    assert out["true_ctr_selected"] == pytest.approx(0.3) and out["lift_share"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="out of range"):
        combiner.add_input(acc, _inputs(idx=3))


def test_empty_slice_gives_nan():
    combiner = _combiner(M.NSCTR())
    assert all(math.isnan(v) for v in combiner.extract_output(combiner.create_accumulator()).values())


def test_unsupported_options_are_rejected():
    with pytest.raises(ValueError, match="query_key"):
        M.NSCTR().computations(query_key="request_id")


def test_metric_configs_build_every_metric():
    from tensorflow_model_analysis.metrics import metric_specs

    configs = M.metric_configs(nsctr_threshold=_nsctr_threshold())
    names = [metric_specs.metric_instance(c).name for c in configs]
    assert names == ["nsctr", "sctr", "calibrated_sctr", "ipw", "snipw", "dr", "gauc", "true_policy_ctr"]
    # The one builder gates the overall slice only, never every slice.
    assert not configs[0].HasField("threshold")
    (gate,) = configs[0].per_slice_thresholds
    assert list(gate.slicing_specs) == [tfma.SlicingSpec()]
    assert gate.threshold.change_threshold.absolute.value == -0.002
    assert not any(c.per_slice_thresholds for c in configs[1:])
    assert [c.class_name for c in M.metric_configs(include_gauc=False, include_truth=False)] == [
        "NSCTR", "SCTR", "CalibratedSCTR", "IPW", "SNIPW", "DoublyRobust"]
    assert [c.class_name for c in M.metric_configs(include_gauc=False, include_truth=False,
                                                   include_off_policy=False)] == ["NSCTR", "SCTR", "CalibratedSCTR"]
