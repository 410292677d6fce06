"""Report data from the Evaluator's output: TFMA's eval results per model, its EvalConfig and validation.

TensorFlow Model Analysis is imported inside the functions, so rendering report data needs no TensorFlow.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, List, Mapping, Optional

import features as F
from creative_metrics.report import models as roles
from creative_metrics.report.page import DEFAULT_TITLE
from creative_metrics.report.slices import overall

__all__ = ["flatten_metrics", "model_data", "validation_data", "report_data_from_eval_dir"]


def _metric_value(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Mapping):
        if "doubleValue" in value:
            return float(value["doubleValue"])
        bounded = value.get("boundedValue")
        if isinstance(bounded, Mapping) and "value" in bounded:
            return float(bounded["value"])
    return None  # arrays, confusion matrices, ...


def flatten_metrics(by_output: Mapping[str, Any]) -> Dict[str, float]:
    """One slice of ``EvalResult.slicing_metrics`` as ``{"[<output>/]<name>": value}`` (scalars only)."""
    out = {}
    for output, by_sub_key in (by_output or {}).items():
        for sub_key, by_name in by_sub_key.items():
            if sub_key:  # class / top-k sub keys: not shown
                continue
            for name, value in by_name.items():
                v = _metric_value(value)
                if v is not None:
                    out[f"{output}/{name}" if output else name] = v
    return out


def _calibration_buckets(plots) -> List[Dict[str, float]]:
    for slice_key, by_output in plots or []:
        if slice_key:
            continue
        for output in (F.PCTR_AD, ""):
            plot = ((by_output or {}).get(output) or {}).get("") or {}
            buckets = (plot.get("calibrationHistogramBuckets") or {}).get("buckets")
            if buckets:
                return [{"count": float(b.get("numWeightedExamples", 0.0)),
                         "label_sum": float(b.get("totalWeightedLabel", 0.0)),
                         "prediction_sum": float(b.get("totalWeightedRefinedPrediction", 0.0))}
                        for b in buckets]
    return []


def model_data(eval_result, role: str) -> Dict[str, Any]:
    """One model of the report data from a ``tfma.EvalResult``."""
    slices = []
    for slice_key, by_output in eval_result.slicing_metrics:
        if slice_key and not isinstance(slice_key[0], tuple):  # cross-slice keys: not shown
            continue
        slices.append({"slice": [[col, val] for col, val in slice_key],
                       "metrics": flatten_metrics(by_output)})
    return {"role": role, "slices": slices, "calibration": _calibration_buckets(eval_result.plots)}


def validation_data(eval_dir: str, eval_config,
                    models_by_spec: Mapping[str, Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The Evaluator's validation of ``eval_dir``: every threshold applied and which failed.

    Returns None when the evaluation wrote no validation result. An unreadable one does not pass for a
    missing one: the result says so, and where the file is, under ``"error"``.

    Args:
      eval_dir: the TFMA output directory.
      eval_config: the EvalConfig stored in it.
      models_by_spec: the report data's models keyed by TFMA model name (``""`` for a single model).
    """
    import tensorflow as tf
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis import constants

    from creative_metrics.report import thresholds

    paths = sorted(tf.io.gfile.glob(os.path.join(eval_dir, constants.VALIDATIONS_KEY + "*")))
    if not paths:
        return None
    overall_metrics = {name: overall(model) for name, model in models_by_spec.items()}
    try:
        result = tfma.load_validation_result(eval_dir)
    except Exception as e:  # corrupt, truncated or several records: TFMA raises assorted types
        checks = thresholds.blessing_checks(eval_config, None, overall_metrics)
        for check in checks:
            check["status"] = "unknown"
        return {"ok": None, "checks": checks, "failures": [],
                "error": f"The validation result {', '.join(paths)} is unreadable "
                         f"({type(e).__name__}: {str(e).strip() or 'no detail'}), so which thresholds "
                         f"passed is unknown."}
    checks = thresholds.blessing_checks(eval_config, result, overall_metrics)
    return {"ok": bool(result.validation_ok), "checks": checks,
            "failures": thresholds.unmatched_failures(eval_config, result),
            "no_baseline": not thresholds.has_baseline(eval_config, result)}


def report_data_from_eval_dir(eval_dir: str, baseline_eval_dir: Optional[str] = None, *,
                              blessed: Optional[bool] = None,
                              title: Optional[str] = None) -> Dict[str, Any]:
    """Loads the Evaluator's output into report data.

    Args:
      eval_dir: the TFMA output directory (a TFX ``ModelEvaluation`` artifact's uri). When it holds a
        model under evaluation and a baseline (``ModelSpec.is_baseline``), both are loaded.
      baseline_eval_dir: optional separate evaluation of a baseline model.
      blessed: the Evaluator's verdict; defaults to the validation result of ``eval_dir``.
      title: report title.

    Raises:
      FileNotFoundError: ``eval_dir`` holds no TFMA evaluation.
    """
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.writers import eval_config_writer

    eval_config, data_location, _, _ = eval_config_writer.load_eval_run(eval_dir)
    if eval_config is None:
        raise FileNotFoundError(f"no TFMA evaluation (eval_config.json) in {eval_dir}")
    models: Dict[str, Dict[str, Any]] = {}
    by_spec: Dict[str, Dict[str, Any]] = {}
    for spec in list(eval_config.model_specs) or [None]:
        name = spec.name if spec is not None else ""
        role = roles.BASELINE_MODEL if spec is not None and spec.is_baseline else roles.CANDIDATE_MODEL
        result = tfma.load_eval_result(eval_dir, model_name=name or None)
        models[name or roles.CANDIDATE_MODEL] = by_spec[name] = model_data(result, role)
    if baseline_eval_dir:
        result = tfma.load_eval_result(baseline_eval_dir)
        models.setdefault(roles.BASELINE_MODEL, model_data(result, roles.BASELINE_MODEL))
    validation = validation_data(eval_dir, eval_config, by_spec)
    if validation is not None:
        for check in validation["checks"]:  # a single model's keys carry no model name
            check["model"] = check["model"] or roles.CANDIDATE_MODEL
        if blessed is None:
            blessed = validation["ok"]
    return {
        "title": title or DEFAULT_TITLE,
        "subtitle": f"evaluation: {eval_dir}" + (f" | data: {data_location}" if data_location else ""),
        "blessed": blessed,
        "validation": validation,
        "models": models,
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
