"""The HTML report: pure rendering from plain report data, slice pooling, and a headless-browser check."""

import math
import re

import numpy as np
import pytest

import features as F
from creative_metrics import candidate_buckets as CB
from creative_metrics import ground_truth as GT
from creative_metrics import replay as E
from creative_metrics import report as R
from creative_metrics.report import headless


def _slice_metrics(ad, exposed, clicks, selected, cands, truth_rows, selected_index):
    ns = E.nsctr_estimate(ad, exposed, clicks, selected)
    sc = E.sctr_estimate(ad, exposed, clicks, selected)
    cal = E.calibrated_sctr_estimate(ad, exposed, clicks, selected, cands)
    t = GT.true_policy_value(truth_rows, selected_index)
    return {
        "example_count": float(len(ad)), "nsctr": ns.value, "nsctr_coverage": ns.coverage,
        "nsctr_impressions": ns.impressions, "nsctr_logged_ctr": ns.logged_ctr,
        "sctr": sc.value, "sctr_matched_impressions": sc.denominator,
        "calibrated_sctr": cal.value, "calibrated_sctr_exposure": cal.denominator,
        "true_ctr_selected": t.selected, "true_ctr_random": t.random, "true_ctr_oracle": t.oracle,
        "true_ctr_logged": t.selected, "lift_share": t.lift_share, "true_ctr_impressions": t.impressions,
    }


def _log(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    n_ads = 60
    ad_cands = rng.integers(1, 13, n_ads)
    truth = [rng.uniform(0.02, 0.1, k) for k in ad_cands]
    a = rng.integers(0, n_ads, n)
    k = ad_cands[a]
    exposed = rng.integers(0, k)
    clicks = (rng.random(n) < np.array([truth[i][e] for i, e in zip(a, exposed)])).astype(int)
    selected = np.array([int(np.argmax(truth[i] + rng.normal(0, 0.01, len(truth[i])))) for i in a])
    rows = [truth[i] for i in a]
    return a, a * 100 + exposed, clicks, a * 100 + selected, k, rows, selected, rng.integers(0, 3, n)


def _data_from_log(log, role="candidate"):
    ad, exposed, clicks, selected, k, rows, sel_idx, gender = log

    def metrics(mask):
        idx = np.flatnonzero(mask)
        return _slice_metrics(ad[idx], exposed[idx], clicks[idx], selected[idx], k[idx],
                              [rows[i] for i in idx], sel_idx[idx])

    slices = [{"slice": [], "metrics": dict(metrics(np.ones(len(ad), bool)),
                                             **{f"{F.PCTR_AD}/gauc": 0.6123, f"{F.PCTR_AD}/auc": 0.7012})}]
    slices += [{"slice": [[F.NUM_CANDIDATES, int(v)]], "metrics": metrics(k == v)} for v in np.unique(k)]
    slices += [{"slice": [[F.USER_GENDER, int(g)]], "metrics": metrics(gender == g)} for g in range(3)]
    calibration = [{"count": 100.0, "label_sum": 2.0 + i, "prediction_sum": 2.5 + i} for i in range(20)]
    return {"role": role, "slices": slices, "calibration": calibration}


@pytest.fixture(scope="module")
def data():
    return {
        "title": "Nightly <evaluation>",
        "blessed": False,
        "validation": {"ok": False, "failures": ["candidate nsctr_diff: below baseline"], "checks": [
            {"metric": "pctr_ad/auc", "model": "candidate", "kind": "value", "slice": "overall",
             "rule": ">= 0.53", "status": "failed", "value": 0.5123, "message": ""},
            {"metric": "nsctr", "model": "candidate", "kind": "value", "slice": "overall",
             "rule": ">= 0", "status": "passed", "value": 0.0312, "message": ""},
            {"metric": "nsctr_diff", "model": "candidate", "kind": "change", "slice": "overall",
             "rule": ">= baseline - 0.002", "status": "passed", "value": -0.0011, "message": ""}]},
        "models": {"baseline": _data_from_log(_log(1), "baseline"), "candidate": _data_from_log(_log(0))},
    }


def test_pooled_buckets_equal_the_estimators_on_the_union():
    log = _log(0)
    ad, exposed, clicks, selected, k, rows, sel_idx, _ = log
    slices = _data_from_log(log)["slices"]
    pooled = dict(R.pool_num_candidates_buckets(slices))
    assert list(pooled) == list(CB.LABELS) == ["<4", "4-8", ">8"]
    for label, (low, high) in {"<4": (1, 3), "4-8": (4, 8), ">8": (9, 12)}.items():
        idx = np.flatnonzero((k >= low) & (k <= high))
        want = _slice_metrics(ad[idx], exposed[idx], clicks[idx], selected[idx], k[idx],
                              [rows[i] for i in idx], sel_idx[idx])
        for name in ("nsctr", "nsctr_coverage", "nsctr_logged_ctr", "sctr", "calibrated_sctr",
                     "true_ctr_selected", "true_ctr_random", "true_ctr_oracle", "lift_share", "example_count"):
            assert pooled[label][name] == pytest.approx(want[name], rel=1e-12), (label, name)


def test_pooling_hand_computed_and_nan_slices():
    slices = [
        {"slice": [[F.NUM_CANDIDATES, 2]], "metrics": {"nsctr": 0.1, "nsctr_coverage": 0.5,
                                                       "nsctr_impressions": 100.0, "nsctr_logged_ctr": 0.2}},
        {"slice": [[F.NUM_CANDIDATES, 3]], "metrics": {"nsctr": 0.2, "nsctr_coverage": 1.0,
                                                       "nsctr_impressions": 50.0, "nsctr_logged_ctr": 0.1}},
        {"slice": [[F.NUM_CANDIDATES, 5]], "metrics": {"nsctr": float("nan"), "nsctr_coverage": 0.0,
                                                       "nsctr_impressions": 40.0}},
    ]
    pooled = dict(R.pool_num_candidates_buckets(slices))
    assert pooled["<4"]["nsctr"] == pytest.approx((0.1 * 50 + 0.2 * 50) / 100)
    assert pooled["<4"]["nsctr_coverage"] == pytest.approx(100 / 150)
    assert pooled["<4"]["nsctr_logged_ctr"] == pytest.approx((0.2 * 50 + 0.1 * 50) / 100)
    assert math.isnan(pooled["4-8"]["nsctr"]) and pooled["4-8"]["nsctr_coverage"] == 0.0
    assert ">8" not in pooled


def test_render_contains_headline_numbers_slices_and_plots(data):
    text = R.render_report(data)
    cand = data["models"]["candidate"]["slices"][0]["metrics"]
    base = data["models"]["baseline"]["slices"][0]["metrics"]
    for value in (cand["nsctr"], base["nsctr"], cand["sctr"], cand["true_ctr_selected"]):
        assert f"{value:.5f}" in text
    assert f"{cand['lift_share']:.1%}" in text and "0.6123" in text and "0.7012" in text
    assert "<title>Nightly &lt;evaluation&gt;</title>" in text  # escaped
    assert "Not blessed" in text and "below baseline" in text
    # the model under evaluation comes first whatever the dict order; TFMA's role names are not shown
    assert text.index("<th>model under evaluation</th>") < text.index("<th>baseline (latest blessed)</th>")
    assert "<th>candidate</th>" not in text
    assert all(name in text for name in ("female", "male", "unknown"))
    assert text.count("<svg") == 3 and "<script" not in text
    assert re.search(r"""(src|href)=["']?(https?:|//)""", text) is None  # self-contained


def test_render_uses_sql_bucket_slices_when_present(data):
    model = {"role": "candidate", "slices": [
        {"slice": [], "metrics": {"nsctr": 0.05}},
        {"slice": [[CB.NUM_CANDIDATES_BUCKET, ">8"]], "metrics": {"nsctr": 0.07, "true_ctr_selected": 0.08,
                                                                 "true_ctr_random": 0.05}},
        {"slice": [[CB.NUM_CANDIDATES_BUCKET, "<4"]], "metrics": {"nsctr": 0.04}},
    ]}
    text = R.render_report({"models": {"candidate": model}})
    assert text.index(">&lt;4<") < text.index(">&gt;8<")  # in bucket order, not in the order of the data
    assert "+60.00%" in text  # true lift vs random: 0.08 / 0.05 - 1
    assert "Blessing not evaluated" in text


def _check_row(text, label):
    """The status cell of the blessing check ``label`` (e.g. "AUC (pctr_ad)")."""
    rows = re.findall(r'<tr class="check (\w+)"><td>([^<]*)</td>.*?</tr>', text)
    return dict((lbl, status) for status, lbl in rows)[label]


def test_render_lists_every_threshold_with_its_status(data):
    text = R.render_report(data)
    assert _check_row(text, "AUC (pctr_ad)") == "failed"
    assert _check_row(text, "NSCTR") == "passed"
    assert _check_row(text, "NSCTR vs baseline") == "passed"
    assert "&ge; 0.53" in text and "&ge; baseline - 0.002" in text
    assert "0.5123" in text and "-0.00110" in text  # the observed AUC and NSCTR change
    assert "rule:" not in text  # no hand-written rule beside the verdict


def test_render_says_when_the_validation_result_is_unreadable():
    error = "The validation result /x/validations.tfrecord is unreadable (DataLossError: corrupted record)"
    text = R.render_report({"models": {"candidate": {"role": "candidate", "slices": []}},
                            "validation": {"ok": None, "error": error}})
    assert "Blessing unknown" in text and "Blessing not evaluated" not in text
    assert "/x/validations.tfrecord is unreadable" in text


@pytest.mark.parametrize("bad,match", [({}, "no models"), ({"models": {}}, "no models"),
                                       ({"models": {"m": {"role": "candidate"}}}, "no 'slices'")])
def test_render_rejects_bad_data(bad, match):
    with pytest.raises(ValueError, match=match):
        R.render_report(bad)


def test_write_report_replaces_the_file_atomically(data, tmp_path):
    out = tmp_path / "deep" / "dir" / "report.html"
    assert R.write_report(data, str(out)) == str(out)
    first = out.read_text()
    with pytest.raises(ValueError):
        R.write_report({"models": {}}, str(out))
    assert out.read_text() == first  # a failed render leaves the previous report in place
    assert not list(out.parent.glob("*.tmp"))
    with pytest.raises(ValueError, match="source must be"):
        R.write_report(42, str(out))


@pytest.mark.skipif(headless.chromium() is None, reason="needs a headless Chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(data, tmp_path):
    from matplotlib import image

    html_path = tmp_path / "report.html"
    R.write_report(data, str(html_path))
    dom = headless.dump_dom(html_path.as_uri(), str(tmp_path / "profile"))
    nsctr = data["models"]["candidate"]["slices"][0]["metrics"]["nsctr"]
    assert "Headline metrics" in dom and f"{nsctr:.5f}" in dom and dom.count("<svg") == 3
    png = headless.screenshot(html_path.as_uri(), str(tmp_path / "report.png"), str(tmp_path / "profile"))
    pixels = image.imread(png)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    # The candidate's bars (#1f6feb) were drawn: the inline SVG plots rendered.
    blue = np.all(np.abs(pixels - np.array([0x1F, 0x6F, 0xEB]) / 255) < 0.02, axis=-1)
    assert blue.sum() > 500
