"""NumPy reference estimators (NSCTR, sCTR, calibrated sCTR, GAUC), their input checks, the ground truth."""

import math
import pickle
import re

import numpy as np
import pytest

from creative_metrics import ground_truth as GT
from creative_metrics import group_auc as G
from creative_metrics import replay as E
from creative_metrics import validation as V
from creative_metrics.keyed_counters import KeyedCounters


# ------------------------------------------------------------ worked example of Yang et al., AAAI 2024
def _worked_example():
    """The JAC paper's example (Yang et al., AAAI 2024): Ad1 (2 creatives, CTR 0.2) and Ad2 (3 creatives,
    CTR 0.3), equal traffic, creatives shown and selected uniformly: Ad1 60 imps / 30 matched / 6 matched
    clicks, Ad2 60 imps / 20 matched / 6 matched clicks."""
    ad = np.r_[np.full(60, 1), np.full(60, 2)]
    exposed = np.r_[np.tile([10, 11], 30), np.tile([20, 21, 22], 20)]
    # The offline policy's choice cycles too, so it agrees with the exposed creative 1/2 and 1/3 of the time.
    selected = np.r_[np.tile([10, 10, 11, 11], 15),
                     np.tile([20, 20, 20, 21, 21, 21, 22, 22, 22], 7)[:60]]
    clicks = np.zeros(120)
    for a, ctr in ((1, 0.2), (2, 0.3)):
        matched = np.flatnonzero((ad == a) & (exposed == selected))
        unmatched = np.flatnonzero((ad == a) & (exposed != selected))
        clicks[matched[:round(ctr * len(matched))]] = 1
        clicks[unmatched[:round(ctr * len(unmatched))]] = 1
    cands = np.where(ad == 1, 2, 3)
    return ad, exposed, clicks, selected, cands


def test_worked_example_counts_follow_the_expected_proportions():
    ad, exposed, clicks, selected, _ = _worked_example()
    match = exposed == selected
    assert [int(match[ad == a].sum()) for a in (1, 2)] == [30, 20]
    assert [int(clicks[(ad == a) & match].sum()) for a in (1, 2)] == [6, 6]
    assert [clicks[ad == a].mean() for a in (1, 2)] == [0.2, 0.3]


def test_worked_example_sctr_is_0_24_and_nsctr_is_0_25():
    ad, exposed, clicks, selected, cands = _worked_example()
    assert E.sctr(ad, exposed, clicks, selected) == 0.24
    assert E.nsctr(ad, exposed, clicks, selected) == 0.25
    # (2 * 6 + 3 * 6) / (2 * 30 + 3 * 20): the candidate-count weights also undo the bias here.
    assert E.calibrated_sctr(ad, exposed, clicks, selected, cands) == 0.25


def test_worked_example_estimate_details():
    ad, exposed, clicks, selected, _ = _worked_example()
    r = E.nsctr_estimate(ad, exposed, clicks, selected)
    assert r == E.PolicyEstimate(value=0.25, coverage=1.0, impressions=120.0, matched_impressions=50.0,
                                 ads=2, covered_ads=2, denominator=120.0, logged_ctr=0.25)


# ------------------------------------------------------------------------------------ hand-computed
def _three_ads():
    """Ad 7: 4 imps, 2 matched (1 click); ad 8: 6 imps, none matched (3 clicks);
    ad 9: 10 imps, 4 matched (1 click) + 1 unmatched click."""
    ad = np.r_[[7] * 4, [8] * 6, [9] * 10]
    exposed = np.r_[[1, 1, 2, 2], [5] * 6, [3] * 4 + [4] * 6]
    selected = np.r_[[1, 1, 1, 1], [6] * 6, [3] * 10]
    clicks = np.r_[[1, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0, 0, 0]]
    cands = np.r_[[2] * 4, [3] * 6, [5] * 10]
    return ad, exposed, clicks, selected, cands


def test_nsctr_hand_computed_excludes_ads_without_a_match():
    ad, exposed, clicks, selected, _ = _three_ads()
    r = E.nsctr_estimate(ad, exposed, clicks, selected)
    # (1 * 4 / 2 + 1 * 10 / 4) / (4 + 10); ad 8 has Imp^s = 0 and is left out.
    assert r.value == pytest.approx(4.5 / 14, rel=1e-15)
    assert r.coverage == pytest.approx(14 / 20)
    assert (r.ads, r.covered_ads, r.matched_impressions) == (3, 2, 6.0)
    assert r.logged_ctr == pytest.approx(3 / 14)  # clicks of ads 7 and 9 over their impressions
    assert E.nsctr(ad, exposed, clicks, selected) == r.value


def test_sctr_hand_computed():
    ad, exposed, clicks, selected, _ = _three_ads()
    assert E.sctr(ad, exposed, clicks, selected) == pytest.approx(2 / 6, rel=1e-15)


def test_calibrated_sctr_hand_computed():
    ad, exposed, clicks, selected, cands = _three_ads()
    # matches: ad 7 (n=2) x2 with 1 click, ad 9 (n=5) x4 with 1 click -> (2 + 5) / (2*2 + 5*4)
    assert E.calibrated_sctr(ad, exposed, clicks, selected, cands) == pytest.approx(7 / 24, rel=1e-15)
    assert E.calibrated_sctr_estimate(ad, exposed, clicks, selected, cands).denominator == 24.0


def test_no_match_gives_nan_and_zero_coverage():
    ad = np.array([1, 1, 2])
    r = E.nsctr_estimate(ad, np.array([1, 2, 3]), np.array([1, 0, 1]), np.array([9, 9, 9]))
    assert math.isnan(r.value) and r.coverage == 0.0 and r.covered_ads == 0
    assert math.isnan(E.sctr(ad, np.array([1, 2, 3]), np.array([1, 0, 1]), np.array([9, 9, 9])))


def test_arbitrary_int64_ids_and_float_ids_give_the_same_result():
    ad, exposed, clicks, selected, _ = _three_ads()
    big = np.int64(2) ** 62
    remap = {7: -big, 8: big + 5, 9: -3}
    ad_big = np.array([remap[a] for a in ad], dtype=np.int64)
    assert E.nsctr(ad_big, exposed * big, clicks, selected * big) == E.nsctr(ad, exposed, clicks, selected)
    assert E.nsctr(ad.astype(float), exposed.astype(float), clicks, selected.astype(float)) == \
        E.nsctr(ad, exposed, clicks, selected)


def _random_log(n=5000, ads=300, seed=0):
    rng = np.random.default_rng(seed)
    ad = rng.integers(0, ads, n) * 1_000_003 - 10**12
    cands = (np.abs(ad) % 7) + 1
    exposed = ad * 100 + rng.integers(0, cands)
    selected = ad * 100 + rng.integers(0, cands)
    clicks = (rng.random(n) < 0.1).astype(np.int64)
    return ad, exposed, clicks, selected, cands


def test_chunked_processing_equals_one_chunk():
    args = _random_log()
    whole = E.nsctr_estimate(*args[:4], chunk_size=10**9)
    assert E.nsctr_estimate(*args[:4], chunk_size=7) == whole
    assert E.calibrated_sctr_estimate(*args, chunk_size=13) == \
        E.calibrated_sctr_estimate(*args, chunk_size=10**9)


def test_nsctr_equals_a_plain_python_reference():
    ad, exposed, clicks, selected, _ = _random_log(n=2000, ads=50)
    per_ad = {}
    for a, e, y, s in zip(ad, exposed, clicks, selected):
        imp, imp_s, clk_s = per_ad.get(a, (0, 0, 0))
        per_ad[a] = (imp + 1, imp_s + (e == s), clk_s + y * (e == s))
    num = sum(c * i / m for i, m, c in per_ad.values() if m > 0)
    den = sum(i for i, m, _ in per_ad.values() if m > 0)
    assert E.nsctr(ad, exposed, clicks, selected) == pytest.approx(num / den, rel=1e-12)


def test_accumulators_merge_and_pickle_like_the_whole():
    ad, exposed, clicks, selected, cands = _random_log()
    whole = E.CreativeMatchAccumulator().update(ad, exposed, clicks, selected, cands)
    a = E.CreativeMatchAccumulator().update(ad[:1234], exposed[:1234], clicks[:1234], selected[:1234],
                                            cands[:1234])
    b = E.CreativeMatchAccumulator().update(ad[1234:], exposed[1234:], clicks[1234:], selected[1234:],
                                            cands[1234:])
    merged = pickle.loads(pickle.dumps(a)).merge(pickle.loads(pickle.dumps(b)))
    assert merged.nsctr() == whole.nsctr()
    assert merged.calibrated_sctr() == whole.calibrated_sctr()
    assert merged.num_ads == len(np.unique(ad))


def test_weights_equal_duplicated_rows():
    ad, exposed, clicks, selected, cands = _three_ads()
    w = np.r_[[2] * 10, [1] * 10]
    weighted = E.CreativeMatchAccumulator().update(ad, exposed, clicks, selected, cands, weights=w)
    rep = np.repeat(np.arange(len(ad)), w)
    dup = E.CreativeMatchAccumulator().update(ad[rep], exposed[rep], clicks[rep], selected[rep], cands[rep])
    assert weighted.nsctr() == dup.nsctr()
    assert weighted.calibrated_sctr() == dup.calibrated_sctr()


def test_calibrated_sctr_needs_num_candidates_on_every_update():
    ad, exposed, clicks, selected, cands = _three_ads()
    acc = E.CreativeMatchAccumulator().update(ad, exposed, clicks, selected, cands)
    acc.update(ad, exposed, clicks, selected)
    with pytest.raises(ValueError, match="num_candidates"):
        acc.calibrated_sctr()


def test_keyed_counters_two_column_keys_and_consolidation():
    kc = KeyedCounters(1, key_width=2)
    keys = np.array([[1, 2], [1, 1], [1, 2], [0, 5]] * 50_000)
    for part in np.array_split(np.arange(len(keys)), 9):
        kc.add(keys[part], np.ones((len(part), 1)))
    k, s = kc.table()
    assert k.tolist() == [[0, 5], [1, 1], [1, 2]]
    assert s[:, 0].tolist() == [50_000, 50_000, 100_000]


# ------------------------------------------------------------------------------------------------ GAUC
def _pairwise_gauc(users, labels, preds):
    num = den = 0.0
    for u in np.unique(users):
        m = users == u
        pos, neg = preds[m & (labels == 1)], preds[m & (labels == 0)]
        if len(pos) and len(neg):
            auc = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
            num += m.sum() * auc
            den += m.sum()
    return num / den


def test_gauc_hand_computed_with_ties_and_a_one_class_user():
    users = np.array([1, 1, 1, 1, 2, 2, 3, 3, 3])
    labels = np.array([1, 0, 1, 0, 1, 0, 0, 0, 0])
    preds = np.array([0.9, 0.5, 0.5, 0.1, 0.2, 0.8, 0.3, 0.4, 0.7])
    # user 1: (1 + 1 + 0.5 + 1) / 4 = 0.875 over 4 imps; user 2: 0 over 2 imps; user 3 has no click.
    r = G.gauc_estimate(users, labels, preds)
    assert r.value == pytest.approx((4 * 0.875 + 2 * 0.0) / 6, rel=1e-15)
    assert r.coverage == pytest.approx(6 / 9)
    assert (r.users, r.scored_users, r.max_abs_error) == (3, 2, 0.0)
    assert G.gauc(users, labels, preds) == r.value


def test_gauc_equals_pairwise_definition_on_random_data_with_ties():
    rng = np.random.default_rng(3)
    users = rng.integers(0, 40, 800)
    labels = (rng.random(800) < 0.3).astype(int)
    preds = rng.integers(0, 6, 800) / 10 + 0.05 * labels * rng.integers(0, 2, 800)
    assert G.gauc(users, labels, preds) == pytest.approx(_pairwise_gauc(users, labels, preds), rel=1e-12)


def test_gauc_of_a_perfect_and_a_reversed_ranker():
    users = np.array([1, 1, 2, 2])
    labels = np.array([1, 0, 1, 0])
    assert G.gauc(users, labels, np.array([0.9, 0.1, 0.6, 0.2])) == 1.0
    assert G.gauc(users, labels, np.array([0.1, 0.9, 0.2, 0.6])) == 0.0
    assert math.isnan(G.gauc(users, np.zeros(4), np.array([0.1, 0.9, 0.2, 0.6])))


def test_bucketed_gauc_is_exact_for_well_separated_scores_and_bounded_otherwise():
    rng = np.random.default_rng(4)
    users = rng.integers(0, 100, 5000)
    labels = (rng.random(5000) < 0.2).astype(int)
    coarse = np.round(rng.random(5000) * 0.5 + 0.2 * labels, 2)  # exact ties, otherwise far apart
    exact = G.gauc_estimate(users, labels, coarse)
    bucketed = G.gauc_bucketed_estimate(users, labels, coarse, chunk_size=777)
    assert bucketed.value == pytest.approx(exact.value, rel=1e-12)
    fine = rng.random(5000) * 0.5 + 0.2 * labels  # continuous: near neighbours share a bucket
    exact = G.gauc_estimate(users, labels, fine)
    for buckets in (50, 10_000):
        approx = G.gauc_bucketed_estimate(users, labels, fine, num_buckets=buckets)
        assert abs(approx.value - exact.value) <= approx.max_abs_error + 1e-12
    assert G.gauc_bucketed_estimate(users, labels, fine, num_buckets=50).max_abs_error > 1e-3
    assert G.gauc_bucketed_estimate(users, labels, fine).max_abs_error < 1e-3


def test_gauc_accumulator_rejects_non_probabilities():
    with pytest.raises(ValueError, match="predictions"):
        G.GaucAccumulator().update([1, 1], [0, 1], [0.5, 1.5])


# ------------------------------------------------------------------------------------------ bad input
_GOOD = dict(ad_ids=[1, 1, 2], exposed_creatives=[1, 2, 3], clicks=[0, 1, 1], selected_creatives=[1, 1, 3])


def _call(fn, **override):
    args = dict(_GOOD, **override)
    if fn is E.calibrated_sctr:
        args.setdefault("num_candidates", [2, 2, 1])
    return fn(**args)


@pytest.mark.parametrize("fn", [E.nsctr, E.sctr, E.calibrated_sctr])
@pytest.mark.parametrize("field,value,match", [
    ("clicks", [0, 1], "length mismatch"),
    ("ad_ids", [1, 1, 2, 3], "length mismatch"),
    ("clicks", [0, 2, 1], "clicks must be 0 or 1"),
    ("clicks", [0, -1, 1], "clicks must be 0 or 1"),
    ("clicks", [0, 0.5, 1], "clicks must be 0 or 1"),
    ("clicks", [0, np.nan, 1], "clicks must not be NaN"),
    ("ad_ids", [1.0, np.nan, 2.0], "ad_ids must not be NaN"),
    ("ad_ids", [1.5, 1.0, 2.0], "ad_ids must hold integer ids"),
    ("selected_creatives", [1, np.nan, 3], "selected_creatives must not be NaN"),
    ("exposed_creatives", [[1, 2, 3]], "exposed_creatives must be a 1-D array"),
    ("ad_ids", ["a", "b", "c"], "ad_ids must be numeric"),
])
def test_bad_input_names_the_argument(fn, field, value, match):
    with pytest.raises(ValueError, match=match):
        _call(fn, **{field: value})


@pytest.mark.parametrize("fn", [E.nsctr, E.sctr, E.calibrated_sctr])
def test_empty_input(fn):
    empty = {k: [] for k in _GOOD}
    if fn is E.calibrated_sctr:
        empty["num_candidates"] = []
    with pytest.raises(ValueError, match="ad_ids is empty"):
        fn(**empty)


@pytest.mark.parametrize("value,match", [([2, 0, 1], "num_candidates must be >= 1"),
                                         ([2, np.nan, 1], "num_candidates must not be NaN"),
                                         ([2, 2], "length mismatch")])
def test_bad_num_candidates(value, match):
    with pytest.raises(ValueError, match=match):
        _call(E.calibrated_sctr, num_candidates=value)


@pytest.mark.parametrize("users,labels,preds,match", [
    ([1, 2], [0, 1], [0.1], "length mismatch"),
    ([], [], [], "user_ids is empty"),
    ([1, 2], [0, 3], [0.1, 0.2], "labels must be 0 or 1"),
    ([1, 2], [0, np.nan], [0.1, 0.2], "labels must not be NaN"),
    ([1, 2], [0, 1], [0.1, np.nan], "predictions must not be NaN"),
    ([1, 2], [0, 1], [0.1, np.inf], "predictions must be finite"),
    ([1.5, 2], [0, 1], [0.1, 0.2], "user_ids must hold integer ids"),
])
def test_gauc_bad_input(users, labels, preds, match):
    with pytest.raises(ValueError, match=match):
        G.gauc(users, labels, preds)


def test_error_index_counts_from_the_start_of_the_log_across_chunks():
    ad, exposed, clicks, selected, _ = _random_log(n=100)
    clicks = clicks.astype(float)
    clicks[57] = 3
    with pytest.raises(ValueError, match="at index 57"):
        E.nsctr_estimate(ad, exposed, clicks, selected, chunk_size=10)


def _gauc_log(n=100, seed=5):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 10, n).astype(float), (rng.random(n) < 0.3).astype(float),
            rng.uniform(0.01, 0.99, n))


@pytest.mark.parametrize("field,value,match", [
    (1, 1.5, "predictions must be probabilities in [0, 1], found 1.5 at index 57"),
    (1, np.nan, "predictions must not be NaN, found nan at index 57"),
    (0, 3.0, "labels must be 0 or 1, found 3.0 at index 57"),
    (None, 2.5, "user_ids must hold integer ids, found 2.5 at index 57"),
])
def test_bucketed_gauc_errors_name_the_row_of_the_log_not_of_the_chunk(field, value, match):
    users, labels, preds = _gauc_log()
    target = {None: users, 0: labels, 1: preds}[field]
    target[57] = value
    with pytest.raises(ValueError, match=re.escape(match)):
        G.gauc_bucketed_estimate(users, labels, preds, chunk_size=10)


def test_bucketed_gauc_validates_each_row_once(monkeypatch):
    calls, original = [], V.binary

    def counted(name, arr, offset=0):
        calls.append(len(arr))
        return original(name, arr, offset)

    monkeypatch.setattr(V, "binary", counted)
    G.gauc_bucketed_estimate(*_gauc_log(n=100), chunk_size=10)
    assert calls == [10] * 10  # one check of each chunk's labels, none of the whole log on top


def test_reject_first_names_field_requirement_value_and_row():
    V.reject_first(np.array([False, False]), "x", np.array([1.0, 2.0]), "must be whole")  # nothing bad
    with pytest.raises(ValueError, match=r"^x must be whole, found 2\.5 at index 11$"):
        V.reject_first(np.array([False, True, True]), "x", np.array([1.0, 2.5, 3.5]), "must be whole", 10)


# ---------------------------------------------------------------------------------------- ground truth
_CANDS = [[0.1, 0.3], [0.2, 0.2, 0.5], [0.4, 0.0]]


def test_true_policy_value_hand_computed():
    r = GT.true_policy_value(_CANDS, [1, 0, 0], logged_ctr=[0.1, 0.5, 0.4])
    assert r.selected == pytest.approx(0.9 / 3)
    assert r.random == pytest.approx((0.2 + 0.3 + 0.2) / 3)
    assert r.oracle == pytest.approx(1.2 / 3)
    assert r.lift_share == pytest.approx(0.2 / 0.5)
    assert r.logged == pytest.approx(1.0 / 3)
    assert r.impressions == 3


def test_true_policy_value_oracle_and_flat_input():
    oracle = GT.true_policy_value(_CANDS, [1, 2, 0])
    assert oracle.lift_share == pytest.approx(1.0) and math.isnan(oracle.logged)
    flat = GT.true_policy_value(np.concatenate(_CANDS), [1, 2, 0], row_lengths=[2, 3, 2])
    assert flat == oracle


def test_lift_share_is_nan_when_the_oracle_is_no_better_than_random():
    assert math.isnan(GT.true_policy_value([[0.1, 0.1], [0.3]], [0, 0]).lift_share)
    assert math.isnan(GT.lift_share(0.1, 0.1, 0.1))


@pytest.mark.parametrize("cands,index,kwargs,match", [
    (_CANDS, [1, 3, 0], {}, "selected_index 3 out of range"),
    (_CANDS, [1, 0, -1], {}, "selected_index -1 out of range"),
    (_CANDS, [1, 0], {}, "length mismatch"),
    ([[0.1], []], [0, 0], {}, "cand_ctrs needs at least one candidate .*, found 0 at impression 1"),
    ([[0.1, np.nan]], [0], {}, "cand_ctrs must not be NaN, found nan at flat index 1"),
    ([[0.1, 1.2]], [0], {}, r"cand_ctrs must be CTRs in \[0, 1\]"),
    ([], [], {}, "is empty"),
    (_CANDS, [1, 0, 0], {"logged_ctr": [0.1, 0.2]}, "length mismatch"),
    ([0.1, 0.2, 0.3], [0, 0], {"row_lengths": [1, 1]}, "row_lengths sum to 2"),
])
def test_true_policy_value_bad_input(cands, index, kwargs, match):
    with pytest.raises(ValueError, match=match):
        GT.true_policy_value(cands, index, **kwargs)


def test_reference_modules_import_without_tensorflow():
    import subprocess
    import sys

    code = ("import sys, creative_metrics, creative_metrics.replay, creative_metrics.group_auc, "
            "creative_metrics.ground_truth, creative_metrics.candidate_buckets, creative_metrics.report; "
            "heavy = {'tensorflow', 'apache_beam', 'tensorflow_model_analysis'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
