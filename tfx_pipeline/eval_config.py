"""The Evaluator's TFMA configuration: what is measured, on which slices, and what blesses a model.

The evaluated model is the Trainer's top-level eval model: for each eval impression it outputs AR's
``pctr_ad``, CR's ``pctr_c`` for the exposed creative and CR's top-1 candidate creative
(``selected_creative_id``).

* AR (output ``pctr_ad``): AUC, GAUC per user, calibration (mean prediction / mean label, calibration plot).
* CR (output ``pctr_c``): AUC; and on the top-1 candidate creatives the replay estimates NSCTR (the
  blessing metric), sCTR, calibrated sCTR, the off-policy estimators, plus the ground-truth policy CTR the
  simulator makes possible (only when the feature spec has truth columns: real logs have none).
* Slices: overall, by number of candidate creatives (the buckets of Gu et al., 2025, Table 4:
  :mod:`creative_metrics.candidate_buckets`) and by user gender.
* Blessing: NSCTR above an absolute floor and not worse than the baseline (the latest blessed model) by more
  than a tolerance (without a baseline comparison, ``compare_with_baseline`` off: the floors only); AR's AUC
  above a floor; each on the overall slice. An unblessed model is never pushed.
  The report lists these thresholds from the stored EvalConfig, with the ones that failed.
"""

from __future__ import annotations

import json
from typing import Optional

import tensorflow_model_analysis as tfma

import feature_specs
import features as F
from creative_metrics import candidate_buckets
from creative_metrics import tfma_metrics as metrics_lib
from tfx_pipeline import config as config_lib
from trainer.config import JACConfig

# TFMA's names of the two models it compares (a "candidate" here is TFMA's model under evaluation, not a
# candidate creative).
CANDIDATE_MODEL = "candidate"
BASELINE_MODEL = "baseline"


def has_truth(spec: feature_specs.FeatureSpec) -> bool:
    """Whether the logs carry the true CTRs of the exposed creative and of every candidate (a simulator's)."""
    return spec.role("truth_ctr") is not None and spec.role("truth_cand_ctrs") is not None


def build_eval_config(cfg: Optional[config_lib.PipelineConfig] = None,
                      spec: Optional[feature_specs.FeatureSpec] = None) -> tfma.EvalConfig:
    """The Evaluator's config for ``cfg`` on logs of ``spec`` (default: ``features.SPEC``).

    Metrics and slices follow the spec's optional groups: without truth columns no ground-truth metric
    (the estimators from clicks only), without a logging propensity no off-policy estimator, without a
    candidate count no candidate-bucket slices, without the user gender column no gender slices.
    """
    cfg = cfg or config_lib.PipelineConfig()
    spec = spec or F.SPEC
    nsctr_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.nsctr_floor}))
    if cfg.compare_with_baseline:
        nsctr_threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -cfg.nsctr_change_tolerance}))
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.auc_floor}))

    ar_metrics = tfma.MetricsSpec(
        output_names=[F.PCTR_AD],
        metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="AUC",
                              per_slice_thresholds=metrics_lib.overall_slice_only(auc_threshold)),
            tfma.MetricConfig(class_name="MeanLabel"),
            tfma.MetricConfig(class_name="MeanPrediction"),
            tfma.MetricConfig(class_name="Calibration"),
            tfma.MetricConfig(class_name="CalibrationPlot", config=json.dumps({"num_buckets": 1000})),
            metrics_lib.metric_config("GAUC", prediction_key=F.PCTR_AD),
        ])
    cr_metrics = tfma.MetricsSpec(
        output_names=[F.PCTR_C],
        metrics=[tfma.MetricConfig(class_name="AUC"), tfma.MetricConfig(class_name="Calibration")])
    creative_metrics = tfma.MetricsSpec(
        metrics=metrics_lib.metric_configs(nsctr_threshold=nsctr_threshold, include_gauc=False,
                                           include_truth=has_truth(spec),
                                           include_off_policy=spec.role("propensity") is not None))
    # The eval model has the variant's heads only ('ar': pctr_ad; 'cr': pctr_c + top-1; the others both), and
    # every variant's heads are measured alike: the comparison systems get JAC's metrics and blessing.
    model = JACConfig.from_dict(cfg.model_config)
    specs = ([ar_metrics] if model.has_ar else []) + ([cr_metrics, creative_metrics] if model.has_cr else [])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name=CANDIDATE_MODEL, signature_name=F.SERVING_SIGNATURE, label_key=F.LABEL)]
        + ([tfma.ModelSpec(name=BASELINE_MODEL, signature_name=F.SERVING_SIGNATURE, label_key=F.LABEL,
                           is_baseline=True)] if cfg.compare_with_baseline else []),
        slicing_specs=[tfma.SlicingSpec()]
        + ([tfma.SlicingSpec(slice_keys_sql=candidate_buckets.slice_sql())]
           if spec.role("num_candidates") else [])
        + ([tfma.SlicingSpec(feature_keys=[F.USER_GENDER])] if F.USER_GENDER in spec.by_name else []),
        metrics_specs=specs,
    )
