"""The A/B ladder (experiments.ab_ladder): hand-computed lifts and correlations, profile checks, rendering."""

import math

import pytest

from experiments import ab_ladder, report, results, stats
from experiments.config import Arm, LadderStep, ModelRef, Profile, Training
from serving.router.request import NO_CR, POST

STEPS = (LadderStep("A", "a", "arm-a"), LadderStep("B", "b", "arm-b"), LadderStep("C", "c", "arm-c"),
         LadderStep("D", "d", "arm-d"))
# Online expected CTR 1.0 -> 1.1 -> 1.32 -> 1.32: lifts +0.1, +0.2, 0. NSCTR moves alike (r = 1); sCTR
# 1 -> 0.9 -> 1.08 -> 1.08: lifts -0.1, +0.2, 0, so r = 0.02 / sqrt(0.02 * 0.046667) = 0.6547.
ONLINE = (1.0, 1.1, 1.32, 1.32)
NSCTR = (2.0, 2.2, 2.64, 2.64)
SCTR = (1.0, 0.9, 1.08, 1.08)


def _record(online=ONLINE):
    offline = {s.training: {"nsctr": n, "sctr": c, "calibrated_sctr": c, "pctr_c/auc": 0.6}
               for s, n, c in zip(STEPS, NSCTR, SCTR)}
    arms = {s.arm: {"metrics": {name: {"value": v, "ci_low": v, "ci_high": v}
                                for name in tuple(stats.RATIOS) + tuple(stats.PERCENTILES)}}
            for s, v in zip(STEPS, online)}
    return {"offline": offline, "arms": arms}


def test_lifts_and_correlations_by_hand():
    out = ab_ladder.build(STEPS, [_record(), _record()], replicates=50)
    assert [(u["from"], u["name"]) for u in out["upgrades"]] == [("A", "B"), ("B", "C"), ("C", "D")]
    assert [u["lifts"]["true_ctr"]["mean"] for u in out["upgrades"]] == pytest.approx([0.1, 0.2, 0.0])
    assert [u["lifts"]["sctr"]["mean"] for u in out["upgrades"]] == pytest.approx([-0.1, 0.2, 0.0])
    first = out["upgrades"][0]["lifts"]["nsctr"]
    assert first["n_seeds"] == 2 and first["ci_low"] == pytest.approx(first["ci_high"])  # equal seeds
    assert out["pearson"]["nsctr"]["mean"] == pytest.approx(1.0)
    assert out["pearson"]["sctr"]["mean"] == pytest.approx(0.02 / math.sqrt(0.02 * 0.046667), abs=1e-4)
    assert out["spearman"]["nsctr"]["mean"] == pytest.approx(1.0)
    assert out["pearson"]["auc"] is None  # no AUC lift: nothing to correlate
    assert out["pearson"]["ipw"] is None and "gauc" not in out["pearson"]  # not reported / not an Evaluator metric
    assert out["n_seeds"] == 2 and out["online"] == "expected_ctr"
    assert ab_ladder.build((), [_record()], replicates=10) is None


def test_a_record_without_a_steps_arm_is_named():
    record = _record()
    del record["arms"]["arm-c"]
    with pytest.raises(ValueError, match="ladder step 'C': the seed's record has no arm 'arm-c'"):
        ab_ladder.build(STEPS, [record], replicates=10)


def _profile(**changes):
    arms = (Arm("arm-a", NO_CR, ModelRef(path="/m/ar"), ModelRef(path="/m/a")),) + tuple(
        Arm(s.arm, POST, ModelRef(path="/m/ar"), ModelRef(path=f"/m/{s.training}")) for s in STEPS[1:])
    base = dict(name="p", simulator={"num_impressions": 5000, "num_days": 3, "live_days": 1}, seeds=(0,),
                trainings=tuple(Training(s.training) for s in STEPS), arms=arms, control="arm-a",
                requests_per_day=10, train_steps=1, eval_steps=1, ab_ladder=STEPS)
    return Profile(**{**base, **changes})


@pytest.mark.parametrize("ladder,match", [
    (STEPS[:2], "ab_ladder needs at least 3 steps"),
    (STEPS[:3] + (LadderStep("E", "e", "arm-a"),), "step 'E' names training 'e', which the profile does not train"),
    (STEPS[:3] + (LadderStep("E", "a", "arm-e"),), "step 'E' names arm 'arm-e', which is not an arm"),
])
def test_bad_ladders_name_the_problem(ladder, match):
    with pytest.raises(ValueError, match=match):
        _profile(ab_ladder=ladder)


def test_results_carry_the_ladder_and_the_report_renders_it(tmp_path):
    profile = _profile()
    record = {**_record(), "harness": {}, "world": {"overall": dict.fromkeys(
        ("ctr", "expected_ctr_logged", "expected_ctr_oracle", "expected_ctr_random", "rpm"), 0.02)}}
    for label, arm in record["arms"].items():
        arm.update(mode="post", requests=1, users=1, impressions=1, failed=0, degraded=0,
                   lifts={other: {} for other in record["arms"] if other != label})
    out = results.build(profile, [record], ["python -m x"], {"total": 1.0})
    assert out["fidelity"]["ab_ladder"]["pearson"]["nsctr"]["mean"] == pytest.approx(1.0)
    paths = report.write(out, str(tmp_path))
    md = open(paths["results.md"]).read()
    assert "### A/B ladder: the trained variants, 3 upgrades x 1 seed(s)" in md
    assert "| A -> B |" in md
    assert "A/B ladder" in open(paths["report.html"]).read()
    assert "ab_ladder" not in results.build(_profile(ab_ladder=()), [record], [], {})["fidelity"]
