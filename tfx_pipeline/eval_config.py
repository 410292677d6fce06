"""The Evaluator's TFMA configuration: what is measured, on which slices, and what blesses a model.

The evaluated model is the Trainer's top-level eval model: for each eval impression it outputs AR's
``pctr_ad``, CR's ``pctr_c`` for the exposed creative and CR's top-1 candidate (``selected_creative_id``).

* AR (output ``pctr_ad``): AUC, GAUC per user, calibration (mean prediction / mean label, calibration plot).
* CR (output ``pctr_c``): AUC; and on the top-1 candidates the replay estimates NSCTR (the blessing metric),
  sCTR, calibrated sCTR, plus the ground-truth policy CTR the simulator makes possible.
* Slices: overall, by number of candidate creatives (seed 002 Table 4 buckets) and by user gender.
* Blessing: NSCTR above an absolute floor and not worse than the baseline (the latest blessed model) by more
  than a tolerance; AR's AUC above a floor. An unblessed model is never pushed.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

import tensorflow_model_analysis as tfma

import features as F
from tfx_pipeline import config as config_lib

CANDIDATE = "candidate"
BASELINE = "baseline"

# seed 002, Table 4: candidate pools grouped as [<4, 4-8, >8].
NUM_CANDIDATES_BUCKETS = ((1, 3, "1-3"), (4, 8, "4-8"), (9, None, "9+"))
NUM_CANDIDATES_BUCKET = "num_candidates_bucket"


def num_candidates_slice_sql() -> str:
    """A TFMA SQL slice that buckets ``num_candidates`` without a derived column in the data."""
    cases = []
    for low, high, label in NUM_CANDIDATES_BUCKETS:
        if high is None:
            cases.append(f"ELSE '{label}'")
        else:
            cases.append(f"WHEN {F.NUM_CANDIDATES} <= {high} THEN '{label}'")
    return (f"SELECT STRUCT(CASE {' '.join(cases)} END AS {NUM_CANDIDATES_BUCKET}) "
            f"FROM example.{F.NUM_CANDIDATES}")


def _overall_only(threshold: tfma.MetricThreshold):
    # Gate on the overall slice only: small slices (a candidate bucket, a gender) are too noisy for a floor.
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]


def _custom(class_name: str, threshold=None, **kwargs: Any) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name=class_name, module=config_lib.METRICS_MODULE,
                               config=json.dumps(kwargs) if kwargs else "")
    if threshold is not None:
        metric.per_slice_thresholds.extend(_overall_only(threshold))
    return metric


def build_eval_config(cfg: Optional[config_lib.PipelineConfig] = None) -> tfma.EvalConfig:
    cfg = cfg or config_lib.PipelineConfig()
    nsctr_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.nsctr_floor}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -cfg.nsctr_change_tolerance}))
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.auc_floor}))

    ar_metrics = tfma.MetricsSpec(
        output_names=[F.PCTR_AD],
        metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="AUC", per_slice_thresholds=_overall_only(auc_threshold)),
            tfma.MetricConfig(class_name="MeanLabel"),
            tfma.MetricConfig(class_name="MeanPrediction"),
            tfma.MetricConfig(class_name="Calibration"),
            tfma.MetricConfig(class_name="CalibrationPlot", config=json.dumps({"num_buckets": 1000})),
            _custom("GAUC", prediction_key=F.PCTR_AD),
        ])
    cr_metrics = tfma.MetricsSpec(
        output_names=[F.PCTR_C],
        metrics=[tfma.MetricConfig(class_name="AUC"), tfma.MetricConfig(class_name="Calibration")])
    creative_metrics = tfma.MetricsSpec(metrics=[
        _custom("NSCTR", threshold=nsctr_threshold),
        _custom("SCTR"),
        _custom("CalibratedSCTR"),
        _custom("TruePolicyCTR"),
    ])
    # The ablation variants' eval models have only their own heads ('ar': pctr_ad; 'cr': pctr_c + top-1).
    variant = cfg.model_config.get("variant", "jac")
    specs = {"ar": [ar_metrics], "cr": [cr_metrics, creative_metrics]}.get(
        variant, [ar_metrics, cr_metrics, creative_metrics])
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(name=CANDIDATE, signature_name=F.SERVING_SIGNATURE, label_key=F.LABEL),
            tfma.ModelSpec(name=BASELINE, signature_name=F.SERVING_SIGNATURE, label_key=F.LABEL,
                           is_baseline=True),
        ],
        slicing_specs=[
            tfma.SlicingSpec(),
            tfma.SlicingSpec(slice_keys_sql=num_candidates_slice_sql()),
            tfma.SlicingSpec(feature_keys=[F.USER_GENDER]),
        ],
        metrics_specs=specs,
    )


def metric_thresholds_summary(cfg: config_lib.PipelineConfig) -> Dict[str, str]:
    """Human-readable blessing rules (printed in the run summary and the report)."""
    return {
        "NSCTR": f"> {cfg.nsctr_floor} and >= baseline - {cfg.nsctr_change_tolerance}",
        "AUC (pctr_ad)": f"> {cfg.auc_floor}",
    }
