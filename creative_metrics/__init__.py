"""Offline metrics for creative ranking: NSCTR, sCTR, calibrated sCTR, GAUC and ground truth.

* :mod:`creative_metrics.replay` -- NSCTR, sCTR and calibrated sCTR replayed on logged impressions.
* :mod:`creative_metrics.off_policy` -- IPW, self-normalised IPW and doubly robust estimates from the logged
  propensities (Open Bandit Pipeline's definitions).
* :mod:`creative_metrics.group_auc` -- GAUC, exact and streaming.
* :mod:`creative_metrics.ground_truth` -- true CTR of a creative policy from the simulator's truth.
* :mod:`creative_metrics.validation` -- the input checks they share; :mod:`creative_metrics.keyed_counters`
  -- the per-key sums behind their bounded memory.
* :mod:`creative_metrics.candidate_buckets` -- the candidate-count buckets of the slices.
* :mod:`creative_metrics.tfma_metrics` -- the same measures as ``tfma.metrics.Metric`` classes.
* :mod:`creative_metrics.report` -- static HTML report from the Evaluator's output.

Only the NumPy modules are imported here, so ``import creative_metrics`` stays light.
"""

from creative_metrics.ground_truth import TruePolicyValue, lift_share, true_policy_value
from creative_metrics.group_auc import GaucEstimate, gauc, gauc_bucketed_estimate, gauc_estimate
from creative_metrics.off_policy import OffPolicyEstimate, dr, dr_estimate, ipw, ipw_estimate, snipw, snipw_estimate
from creative_metrics.replay import (
    PolicyEstimate,
    calibrated_sctr,
    calibrated_sctr_estimate,
    nsctr,
    nsctr_estimate,
    sctr,
    sctr_estimate,
)

__all__ = [
    "GaucEstimate",
    "OffPolicyEstimate",
    "PolicyEstimate",
    "TruePolicyValue",
    "calibrated_sctr",
    "calibrated_sctr_estimate",
    "dr",
    "dr_estimate",
    "gauc",
    "gauc_bucketed_estimate",
    "gauc_estimate",
    "ipw",
    "ipw_estimate",
    "lift_share",
    "nsctr",
    "nsctr_estimate",
    "sctr",
    "sctr_estimate",
    "snipw",
    "snipw_estimate",
    "true_policy_value",
]
