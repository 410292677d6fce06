"""The fidelity study's A/B ladder: the TensorFlow variants' offline lifts against their lifts online.

:mod:`experiments.fidelity` fits stand-in rankers and takes the true lift on logged requests. The ladder
uses what a profile trains and serves: successive creative rankers (say VAM-HBM -> DSSM -> CACS -> CR ->
CR+), each a training whose Evaluator measured it on the logged eval day and an arm that served its CR
after the same AR, so the arms differ only in the creative shown. Upgrade :math:`k`'s lifts are

.. math::

    \\ell^{\\text{off}}_{k,m} = \\frac{m_k}{m_{k-1}} - 1, \\qquad
    \\ell^{\\text{on}}_k = \\frac{\\mathrm{eCTR}_k}{\\mathrm{eCTR}_{k-1}} - 1

with :math:`m` an offline metric of the two trainings (NSCTR, sCTR, calibrated sCTR, CR's AUC, IPW, SNIPW,
DR) and :math:`\\mathrm{eCTR}` the arm's expected CTR in the A/B test (the mean true click probability of
what it showed). Per seed, Pearson and Spearman over the upgrades of each metric's lift with the online
lift (:func:`experiments.fidelity.correlations`), mean over seeds, bootstrap CI over upgrades. GAUC of
``pctr_c`` is not an Evaluator metric: it is left out, not estimated.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from experiments import fidelity, stats
from experiments.config import LadderStep

# ladder metric -> the Evaluator's overall-slice key (tfx_pipeline.local_runner.overall_metrics)
OFFLINE_KEYS = {"nsctr": "nsctr", "sctr": "sctr", "calibrated_sctr": "calibrated_sctr", "auc": "pctr_c/auc",
                "ipw": "ipw", "snipw": "snipw", "dr": "dr"}
ONLINE = "expected_ctr"
NOTE = ("Each step's CR served in post after the same AR; online lift = relative lift of the arm's expected CTR "
        "(mean true click probability of what it showed) over the previous step's arm; offline lift = relative "
        "lift of the training's Evaluator metric on the logged eval day. GAUC of pctr_c is not an Evaluator "
        "metric and is left out.")


def _step_values(record: Mapping[str, Any], step: LadderStep) -> Dict[str, float]:
    offline = record["offline"].get(step.training)
    arm = record["arms"].get(step.arm)
    if offline is None or arm is None:
        raise ValueError(f"ladder step {step.name!r}: the seed's record has no "
                         + (f"training {step.training!r}" if offline is None else f"arm {step.arm!r}"))
    values = {m: float(offline.get(key, math.nan)) for m, key in OFFLINE_KEYS.items()}
    values["gauc"] = math.nan
    values["true_ctr"] = float(arm["metrics"][ONLINE]["value"])
    return values


def build(ladder: Sequence[LadderStep], records: Sequence[Mapping[str, Any]], replicates: int, seed: int = 0
          ) -> Optional[Dict[str, Any]]:
    """``{"steps", "upgrades": [{"name", "from", "lifts": {metric: over seeds}}], "pearson", "spearman",
    "n_seeds", "online", "note"}``; ``None`` without a ladder."""
    if not ladder:
        return None
    per_seed = [fidelity.lifts([_step_values(r, s) for s in ladder]) for r in records]
    upgrades: List[Dict[str, Any]] = []
    for k, (before, after) in enumerate(zip(ladder[:-1], ladder[1:])):
        upgrades.append({"name": after.name, "from": before.name, "lifts": {
            m: stats.over_seeds([{"value": s[k][m], "ci_low": math.nan, "ci_high": math.nan} for s in per_seed])
            for m in fidelity.METRICS + ("true_ctr",) if m != "gauc"}})
    corr = fidelity.correlations(per_seed, replicates, seed)
    return {"steps": [dataclasses.asdict(s) for s in ladder], "upgrades": upgrades,
            "pearson": {m: v for m, v in corr["pearson"].items() if m != "gauc"},
            "spearman": {m: v for m, v in corr["spearman"].items() if m != "gauc"},
            "n_seeds": len(records), "online": ONLINE, "note": NOTE}
