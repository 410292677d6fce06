"""The GenCO experiment's tables: intervals over seeds, the aggregates of Tables 2-4 and Fig. 3, Markdown."""

import math

import numpy as np
import pytest

import features as F
from creative_metrics import candidate_buckets as CB
from experiments import genco as E
from experiments import genco_tables as tables

METHODS = ("uniform", "dco", "mlp", "f_ele", "f_comb", "genco", "no_mil", "no_rl", "no_context", "no_all",
           "oracle", "logged")


def test_interval_is_the_student_t_interval_of_the_seeds():
    iv = tables.interval([1.0, 2.0, 3.0, float("nan"), None])  # NaN, None skipped; sd 1, t_0.975(2) = 4.3027
    assert iv["mean"] == 2.0 and iv["n_seeds"] == 3
    assert iv["ci_high"] - 2.0 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6) == 2.0 - iv["ci_low"]
    assert tables.interval([0.5]) == {"mean": 0.5, "ci_low": None, "ci_high": None, "n_seeds": 1}
    assert tables.interval([]) is None and tables._cell(tables.interval([0.5])) == "+50.00%"


def _run(seed):
    rng = np.random.default_rng(seed)
    true_ctr = {m: 0.05 * (1 + 0.01 * i) for i, m in enumerate(METHODS)}
    true_ctr["dco"] += rng.normal(0, 1e-3)  # the only cell that varies across seeds
    sctr = {m: {c: 0.05 + 0.001 * j for j, c in enumerate(F.GENCO_COMPONENTS)} for m in METHODS[:-2]}
    sctr["no_rl"] = {c: v * 0.9 for c, v in sctr["genco"].items()}
    table4 = {c: {label: 0.02 for _, _, label in CB.COMPONENT_BUCKETS[c]} for c in F.GENCO_COMPONENTS}
    weights = np.full((len(F.GENCO_CATEGORY_GROUPS), len(F.GENCO_COMPONENTS)), 1 / 6).tolist()
    return {"true_ctr": true_ctr, "sctr": sctr, "table4": table4, "fig3_learned": weights,
            "fig3_truth": np.ones((5, 6)).tolist()}


def test_aggregate_and_markdown_in_the_papers_form():
    agg = tables.aggregate([_run(s) for s in range(3)])
    assert agg["lift"]["genco"]["mean"] == pytest.approx(0.05)  # index 5: +5 %
    assert agg["lift"]["dco"]["ci_high"] > agg["lift"]["dco"]["ci_low"]
    assert agg["lift"]["genco"]["ci_high"] - agg["lift"]["genco"]["ci_low"] == pytest.approx(0)
    assert agg["ablation_sctr_change"]["no_rl"]["title"]["mean"] == pytest.approx(-0.1)
    assert agg["table4"]["title"]["<3"]["mean"] == pytest.approx(0.02)
    md = tables.markdown(agg, {"profile": "test", "seeds": 3, "impressions": 1000, "train_days": 6, "test_days": 2})
    row = next(line for line in md.splitlines() if line.startswith("| +GenCO |"))
    assert row == "| +GenCO | +5.00% ± 0.00% | 0.0525 ± 0.0000 |"
    assert "| w/o RL | -10.0% ± 0.0% |" in md
    assert "| <3 (<4) | +2.00% ± 0.00% |" in md


def test_profiles_are_defined_with_enough_seeds_for_intervals():
    assert E.PROFILES["small"].seeds >= 3 and E.PROFILES["paper"].seeds >= 3
    assert E.PROFILES["paper"].impressions > E.PROFILES["small"].impressions
