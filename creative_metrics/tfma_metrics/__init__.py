"""TFMA metrics for creative ranking: NSCTR, SCTR, CalibratedSCTR, IPW, SNIPW, DoublyRobust, GAUC, TruePolicyCTR.

Each metric is a ``tfma.metrics.Metric`` whose ``beam.CombineFn`` keeps only per-ad (or per-user)
counters -- the accumulators of :mod:`creative_metrics.replay` and :mod:`creative_metrics.group_auc` --
so its state grows with ads, not impressions, and merges across Beam workers. They read, per impression:

* features: ``features.AD_ID``, ``features.CREATIVE_ID`` (exposed creative), ``features.USER_ID``,
  ``features.NUM_CANDIDATES``, ``features.PROPENSITY`` (the off-policy estimators),
  ``features.TRUTH_CAND_CTRS``, ``features.TRUTH_CTR``;
* label: ``features.CLICK`` (the ModelSpec's ``label_key``; read from the features if no label is set);
* predictions: a dict with ``features.SELECTED_CREATIVE_ID`` / ``features.SELECTED_INDEX`` (the CR
  model's top-1 candidate) and ``features.PCTR_AD`` (AR's pCTR). Leave ``ModelSpec.prediction_key``
  unset so the whole dict reaches the metrics; every key is configurable.

Configure them in an ``EvalConfig`` (the module must be importable on every Beam worker) through
:func:`metric_configs` / :func:`metric_config`, which put a threshold on the overall slice only::

    tfma.MetricsSpec(metrics=metric_configs(nsctr_threshold=tfma.MetricThreshold(change_threshold=...)))
    tfma.MetricsSpec(output_names=['pctr_ad'], metrics=[metric_config('GAUC', prediction_key='pctr_ad')])

Metric keys (default names; thresholds apply to the first key of each metric):

===============  =====================================================================================
NSCTR            ``nsctr``, ``nsctr_coverage`` (share of impressions whose ad had a match),
                 ``nsctr_impressions``, ``nsctr_logged_ctr`` (logged CTR of the covered ads)
SCTR             ``sctr``, ``sctr_matched_impressions``
CalibratedSCTR   ``calibrated_sctr``, ``calibrated_sctr_exposure`` (sum of ``n`` over matches)
IPW              ``ipw``, ``ipw_mean_weight`` (about 1 when the propensities are right),
                 ``ipw_effective_sample_size``
SNIPW            ``snipw``, ``snipw_matched_impressions``
DoublyRobust     ``dr``, ``dr_direct`` (the reward model's term alone)
GAUC             ``gauc``, ``gauc_coverage``, ``gauc_max_abs_error`` (bound of the bucketing error)
TruePolicyCTR    ``true_ctr_selected``, ``true_ctr_random``, ``true_ctr_oracle``, ``true_ctr_logged``,
                 ``lift_share``, ``true_ctr_impressions``
===============  =====================================================================================

The auxiliary counts let a report merge slices that partition the ads (e.g. ``num_candidates``, a
property of the ad) into buckets exactly; see :mod:`creative_metrics.report`.

Modules: ``replay_metrics`` (NSCTR, SCTR, CalibratedSCTR: one factory), ``off_policy_metrics`` (IPW, SNIPW,
DoublyRobust: one factory), ``gauc_metric``, ``true_policy_metric``, ``combination_metrics`` (GenCO's
GenCOCalibratedSCTR and GenCOTrueCTR over combinations of elements); ``buffered`` (the combiner base they
share), ``extracts`` (reading one impression),
``names`` (metric and key names). This package registers the metrics and builds their configs.
"""

from __future__ import annotations

import json
from typing import List, Optional

from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2

import features as F
from creative_metrics.tfma_metrics.combination_metrics import GenCOCalibratedSCTR, GenCOTrueCTR
from creative_metrics.tfma_metrics.gauc_metric import GAUC
from creative_metrics.tfma_metrics.names import (CALIBRATED_SCTR_NAME, DR_NAME, GAUC_NAME, IPW_NAME, LIFT_SHARE,
                                                 NSCTR_NAME, SCTR_NAME, SNIPW_NAME, TRUE_CTR_IMPRESSIONS,
                                                 TRUE_CTR_LOGGED, TRUE_CTR_ORACLE, TRUE_CTR_RANDOM,
                                                 TRUE_CTR_SELECTED, TRUE_POLICY_CTR_NAME)
from creative_metrics.tfma_metrics.off_policy_metrics import IPW, SNIPW, DoublyRobust
from creative_metrics.tfma_metrics.replay_metrics import NSCTR, SCTR, CalibratedSCTR
from creative_metrics.tfma_metrics.true_policy_metric import TruePolicyCTR

for _cls in (NSCTR, SCTR, CalibratedSCTR, IPW, SNIPW, DoublyRobust, GAUC, TruePolicyCTR, GenCOCalibratedSCTR,
             GenCOTrueCTR):
    metric_types.register_metric(_cls)


def overall_slice_only(threshold: config_pb2.MetricThreshold) -> List[config_pb2.PerSliceMetricThreshold]:
    """``threshold`` on the overall slice only: small slices (a candidate bucket, a gender) are too noisy
    to gate a model on."""
    return [config_pb2.PerSliceMetricThreshold(slicing_specs=[config_pb2.SlicingSpec()],
                                               threshold=threshold)]


def metric_config(class_name: str, threshold: Optional[config_pb2.MetricThreshold] = None,
                  **kwargs) -> config_pb2.MetricConfig:
    """The ``tfma.MetricConfig`` of one metric here; ``kwargs`` go to its constructor, ``threshold``
    gates the overall slice (:func:`overall_slice_only`)."""
    config = config_pb2.MetricConfig(class_name=class_name, module=__name__,
                                     config=json.dumps(kwargs) if kwargs else "")
    if threshold is not None:
        config.per_slice_thresholds.extend(overall_slice_only(threshold))
    return config


def metric_configs(*, nsctr_threshold: Optional[config_pb2.MetricThreshold] = None,
                   include_gauc: bool = True, gauc_prediction_key: str = F.PCTR_AD,
                   include_truth: bool = True, include_off_policy: bool = True) -> List[config_pb2.MetricConfig]:
    """The ``tfma.MetricConfig`` list of the metrics here, ready for a ``tfma.MetricsSpec``.

    Args:
      nsctr_threshold: optional value / change threshold on NSCTR (for blessing), overall slice only.
      include_gauc: add :class:`GAUC` (leave it out to place it in a spec of AR's output instead).
      gauc_prediction_key: prediction output GAUC scores.
      include_truth: add :class:`TruePolicyCTR` (needs the simulator's truth columns).
      include_off_policy: add :class:`IPW`, :class:`SNIPW` and :class:`DoublyRobust` (need the logged
        propensity, ``features.PROPENSITY``).
    """
    configs = [metric_config("NSCTR", nsctr_threshold), metric_config("SCTR"),
               metric_config("CalibratedSCTR")]
    if include_off_policy:
        configs += [metric_config("IPW"), metric_config("SNIPW"), metric_config("DoublyRobust")]
    if include_gauc:
        configs.append(metric_config("GAUC", prediction_key=gauc_prediction_key))
    if include_truth:
        configs.append(metric_config("TruePolicyCTR"))
    return configs


__all__ = [
    "NSCTR", "SCTR", "CalibratedSCTR", "IPW", "SNIPW", "DoublyRobust", "GAUC", "TruePolicyCTR",
    "GenCOCalibratedSCTR", "GenCOTrueCTR",
    "metric_config", "metric_configs", "overall_slice_only",
    "NSCTR_NAME", "SCTR_NAME", "CALIBRATED_SCTR_NAME", "IPW_NAME", "SNIPW_NAME", "DR_NAME", "GAUC_NAME",
    "TRUE_POLICY_CTR_NAME",
    "TRUE_CTR_SELECTED", "TRUE_CTR_RANDOM", "TRUE_CTR_ORACLE", "TRUE_CTR_LOGGED", "LIFT_SHARE",
    "TRUE_CTR_IMPRESSIONS",
]
