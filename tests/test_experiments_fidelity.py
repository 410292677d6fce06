"""The fidelity study: lifts and correlations by hand, the metrics of a ranker's picks on a hand-made log, the
ladder of rankers on a small simulated log, the study's results.json entry and its plots."""

import math

import numpy as np
import pytest

import features as F
from creative_metrics import nsctr
from experiments import fidelity, report
from experiments.config import FidelityCondition, FidelityStudy


# ------------------------------------------------------------------------------------ by hand
def test_lifts_are_relative_to_the_predecessor():
    values = [{"a": 0.02, "b": 0.5}, {"a": 0.03, "b": 0.5}, {"a": 0.015, "b": 0.0}]
    got = fidelity.lifts(values)
    assert got[0] == pytest.approx({"a": 0.5, "b": 0.0}) and got[1] == pytest.approx({"a": -0.5, "b": -1.0})
    assert fidelity.lifts([{"a": 0.0}, {"a": 0.1}])[0]["a"] != fidelity.lifts([{"a": 0.0}, {"a": 0.1}])[0]["a"]  # NaN


def _seed(truth, **metrics):
    return [{"true_ctr": t, **{m: (metrics.get(m, [math.nan] * len(truth)))[k] for m in fidelity.METRICS}}
            for k, t in enumerate(truth)]


def test_correlations_by_hand():
    truth = [0.1, -0.05, 0.02, 0.3, -0.2]
    seed = _seed(truth, nsctr=[2 * t + 0.01 for t in truth], sctr=[-t for t in truth],
                 auc=[t ** 3 for t in truth], gauc=[0.0] * 5)
    got = fidelity.correlations([seed], replicates=200, seed=0)
    assert got["pearson"]["nsctr"]["mean"] == pytest.approx(1.0)
    assert got["pearson"]["nsctr"]["ci_low"] == pytest.approx(1.0)  # every resample is exactly linear
    assert got["pearson"]["sctr"]["mean"] == pytest.approx(-1.0)
    assert got["spearman"]["auc"]["mean"] == pytest.approx(1.0)  # monotone, not linear
    assert got["pearson"]["auc"]["mean"] < 0.99
    assert got["pearson"]["gauc"] is None and got["pearson"]["dr"] is None  # constant / missing: no correlation
    assert got["pearson"]["nsctr"]["n_seeds"] == 1
    expected = float(np.corrcoef(np.array(truth) ** 3, truth)[0, 1])
    assert got["pearson"]["auc"]["mean"] == pytest.approx(expected)
    two = fidelity.correlations([seed, _seed(truth, nsctr=[-t for t in truth])], replicates=50, seed=0)
    assert two["pearson"]["nsctr"]["mean"] == pytest.approx(0.0) and two["pearson"]["nsctr"]["n_seeds"] == 2


def _split(ads, exposed_index, clicks, cand_ids, cand_truth, propensity, pctr_users=None):
    n = len(ads)
    lengths = np.array([len(c) for c in cand_ids])
    imp = {F.AD_ID: np.array(ads), F.CLICK: np.array(clicks), F.NUM_CANDIDATES: lengths,
           F.PROPENSITY: np.array(propensity, np.float32), F.USER_ID: np.array(pctr_users or [1] * n),
           F.CREATIVE_ID: np.array([c[e] for c, e in zip(cand_ids, exposed_index)])}
    cand = {F.CAND_CREATIVE_IDS: np.concatenate(cand_ids), F.TRUTH_CAND_CTRS: np.concatenate(cand_truth)}
    return fidelity.Split(imp, cand, np.concatenate([[0], np.cumsum(lengths)]))


def test_evaluate_by_hand():
    # Ad 1 has creatives 10, 11 (true CTR 0.1, 0.3); ad 2 has 20 alone (0.2). Four uniform-logged impressions.
    split = _split(ads=[1, 1, 1, 2], exposed_index=[0, 1, 1, 0], clicks=[0, 1, 0, 1],
                   cand_ids=[[10, 11]] * 3 + [[20]], cand_truth=[[0.1, 0.3]] * 3 + [[0.2]],
                   propensity=[0.5, 0.5, 0.5, 1.0], pctr_users=[1, 1, 2, 2])
    scores = np.array([0.0, 1.0] * 3 + [0.5])  # always picks 11, then 20
    got = fidelity.evaluate(split, scores, pctr_exposed=np.array([0.1, 0.9, 0.2, 0.8]))
    assert got["true_ctr"] == pytest.approx((0.3 * 3 + 0.2) / 4)
    assert got["sctr"] == pytest.approx(2 / 3)  # matched: impressions 2, 3, 4
    assert got["nsctr"] == pytest.approx(nsctr([1, 1, 1, 2], [10, 11, 11, 20], [0, 1, 0, 1], [11, 11, 11, 20]))
    assert got["ipw"] == pytest.approx((1 / 0.5 + 1 / 1.0) / 4)
    assert got["snipw"] == pytest.approx((2 * 1 + 1) / (2 + 2 + 1))
    assert got["auc"] == pytest.approx(1.0)  # both clicked impressions score above both others
    assert got["gauc"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ on a simulated log
@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from simulator import SimulatorConfig, simulate

    out = str(tmp_path_factory.mktemp("fidelity") / "log")
    simulate(SimulatorConfig(num_impressions=12_000, num_days=3, seed=4, write_world=False), out, progress=False)
    return out


def test_every_ranker_of_the_ladder_gives_finite_metrics(simulated):
    values = fidelity.study_world(simulated, seed=0)
    assert len(values) == len(fidelity.UPGRADES) >= 9  # at least eight upgrades
    assert [u.name for u in fidelity.UPGRADES][:3] == ["random", "beta_ts", "hbm"]
    for v in values:
        assert set(v) == set(fidelity.METRICS) | {"true_ctr"}
        assert all(math.isfinite(x) for x in v.values()), v
        assert 0 < v["true_ctr"] < 0.2
    assert values[0]["auc"] == 0.5 and values[0]["gauc"] == pytest.approx(0.5)  # random: a constant pctr_c
    # A ranker that learned from the log beats random on the truth (the logistic CR on content + context).
    assert max(v["true_ctr"] for v in values[3:]) > values[0]["true_ctr"]


def test_the_study_entry_and_its_plots(tmp_path):
    study = FidelityStudy({"num_impressions": 8000, "num_days": 3},
                          (FidelityCondition("uniform", {}),
                           FidelityCondition("e-g, kappa=0", {"logging_policy": "epsilon_greedy",
                                                              "creative_count_quality": 0.0})), seeds=(0,),
                          bootstrap_replicates=30)
    lines, commands = [], []
    got = fidelity.run(study, str(tmp_path), lines.append, commands)
    assert got["headline_condition"] == "uniform" and set(got["conditions"]) == {"uniform", "e-g, kappa=0"}
    assert len(got["upgrades"]) == len(fidelity.UPGRADES) - 1
    first = got["upgrades"][0]
    assert (first["from"], first["name"]) == ("random", "beta_ts")
    assert first["lifts"]["true_ctr"]["mean"] == pytest.approx(
        first["values"]["true_ctr"]["mean"] / got["conditions"]["uniform"]["random"]["true_ctr"]["mean"] - 1)
    for kind in ("pearson", "spearman"):
        assert set(got[kind]) == set(fidelity.METRICS)
        for metric in got[kind].values():
            assert set(metric) == {"mean", "ci_low", "ci_high", "n_seeds"} and -1 <= metric["mean"] <= 1
    assert len(lines) == 2 and lines[1].startswith("==> fidelity e-g, kappa=0: 8 upgrades x 1 seeds; Pearson nsctr")
    assert len(commands) == 2 and "--policy epsilon_greedy --creative-count-quality 0.0" in commands[1]
    assert (tmp_path / "e-g-kappa-0-seed-0" / "eval").is_dir()  # a directory name without spaces
    html = "".join(report.fidelity_html(got))
    assert html.count("<svg") == 2 and "Pearson" in html
    md = "\n".join(report.fidelity_markdown(got))
    assert "| random -> beta_ts |" in md and "| e-g, kappa=0 | spearman |" in md


@pytest.mark.parametrize("make,match", [
    (lambda: FidelityStudy({}, (), seeds=(0,)), "needs at least one condition"),
    (lambda: FidelityStudy({}, (FidelityCondition("a", {}),) * 2, seeds=(0,)), "condition names must be unique"),
    (lambda: FidelityStudy({}, (FidelityCondition("a", {"logging_policy": "psychic"}),), seeds=(0,)),
     "logging_policy"),
])
def test_bad_studies_name_the_problem(make, match):
    with pytest.raises(ValueError, match=match):
        make()
