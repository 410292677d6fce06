"""Offline metrics for creative ranking: NSCTR, sCTR, calibrated sCTR, GAUC and ground truth.

* :mod:`creative_metrics.estimators` -- NumPy reference implementations (no TensorFlow needed).
* :mod:`creative_metrics.ground_truth` -- true CTR of a creative policy from the simulator's truth.
* :mod:`creative_metrics.tfma_metrics` -- the same measures as ``tfma.metrics.Metric`` classes.
* :mod:`creative_metrics.report` -- static HTML report from the Evaluator's output.

Only the NumPy modules are imported here, so ``import creative_metrics`` stays light.
"""

from creative_metrics.estimators import (
    GaucEstimate,
    PolicyEstimate,
    calibrated_sctr,
    calibrated_sctr_estimate,
    gauc,
    gauc_estimate,
    nsctr,
    nsctr_estimate,
    sctr,
    sctr_estimate,
)
from creative_metrics.ground_truth import TruePolicyValue, lift_share, true_policy_value

__all__ = [
    "GaucEstimate",
    "PolicyEstimate",
    "TruePolicyValue",
    "calibrated_sctr",
    "calibrated_sctr_estimate",
    "gauc",
    "gauc_estimate",
    "lift_share",
    "nsctr",
    "nsctr_estimate",
    "sctr",
    "sctr_estimate",
    "true_policy_value",
]
