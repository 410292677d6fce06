"""Every threshold the Evaluator applied, and which failed: from its EvalConfig and ValidationResult.

The Evaluator blesses a model when every threshold of its ``EvalConfig`` holds (here: NSCTR's floor and
change against the baseline, and AR's AUC floor). TFMA's ``ValidationResult`` lists only the failures, per
slice and metric key; this module lists the thresholds themselves -- through TFMA's own
``metric_thresholds_from_metrics_specs``, the function its validator uses -- and marks each one passed or
failed, so the report can show the whole rule next to the verdict.

A check is plain data (JSON-able) for the report::

    {"metric": "pctr_ad/auc", "model": "candidate", "kind": "value", "slice": "overall",
     "rule": ">= 0.53", "status": "failed", "value": 0.512, "message": ""}

``kind`` is ``"value"`` (the metric itself) or ``"change"`` (the metric minus the baseline's, TFMA's
``*_diff`` key, which ``metric`` then names); ``status`` is ``"passed"``, ``"failed"`` or
``"not evaluated"`` (no validation result).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from tensorflow_model_analysis.metrics import metric_specs, metric_types
from tensorflow_model_analysis.proto import config_pb2, validation_result_pb2
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.utils import model_util

__all__ = ["blessing_checks", "unmatched_failures", "has_baseline", "metric_name", "rule_text", "slice_text"]

PASSED, FAILED, NOT_EVALUATED = "passed", "failed", "not evaluated"

_Threshold = Any  # config_pb2.GenericValueThreshold | config_pb2.GenericChangeThreshold


def metric_name(key: metric_types.MetricKey) -> str:
    """The report data's name of a metric key: ``[<output>/]<name>[_diff]``."""
    name = f"{key.name}_diff" if key.is_diff else key.name
    return f"{key.output_name}/{name}" if key.output_name else name


def _number(x: float) -> str:
    return f"{x:g}"


def rule_text(threshold: _Threshold) -> str:
    """A threshold as the rule it enforces, e.g. ``>= 0.53`` or ``>= baseline - 0.002``."""
    if isinstance(threshold, config_pb2.GenericValueThreshold):
        low = threshold.lower_bound.value if threshold.HasField("lower_bound") else None
        high = threshold.upper_bound.value if threshold.HasField("upper_bound") else None
        if low is not None and high is not None:
            return f"in [{_number(low)}, {_number(high)}]"
        if low is not None:
            return f">= {_number(low)}"
        return f"<= {_number(high)}" if high is not None else "any value"
    higher = threshold.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
    op = ">=" if higher else "<="
    parts = []
    if threshold.HasField("absolute"):
        a = threshold.absolute.value
        parts.append(f"{op} baseline {'-' if a < 0 else '+'} {_number(abs(a))}")
    if threshold.HasField("relative"):
        parts.append(f"(value - baseline) / baseline {op} {_number(threshold.relative.value)}")
    return " and ".join(parts) or "any change"


def slice_text(spec) -> str:
    """``overall``, ``<column> = <value>``, ``by <column>``, ``SQL slice`` or ``cross slice``."""
    if spec is None:
        return "overall"
    if isinstance(spec, config_pb2.CrossSlicingSpec):
        return "cross slice"
    if spec.slice_keys_sql:
        return "SQL slice"
    parts = [f"{k} = {v}" for k, v in sorted(spec.feature_values.items())]
    parts += [f"by {k}" for k in spec.feature_keys]
    return ", ".join(parts) or "overall"


def has_baseline(eval_config: config_pb2.EvalConfig,
                 result: Optional[validation_result_pb2.ValidationResult] = None) -> bool:
    """Whether a baseline was compared with: without one (a first model) no change threshold applies --
    TFX's Evaluator then drops them from the config it runs (or TFMA rubber-stamps them)."""
    rubber_stamped = result is not None and result.rubber_stamp
    return model_util.get_baseline_model_spec(eval_config) is not None and not rubber_stamped


def _same_threshold(failed: config_pb2.MetricThreshold, threshold: _Threshold) -> bool:
    field = ("value_threshold" if isinstance(threshold, config_pb2.GenericValueThreshold)
             else "change_threshold")
    return failed.HasField(field) and getattr(failed, field) == threshold


def _applies(spec, per_slice: validation_result_pb2.MetricsValidationForSlice) -> bool:
    if isinstance(spec, config_pb2.CrossSlicingSpec):
        return per_slice.HasField("cross_slice_key")
    if per_slice.HasField("cross_slice_key"):
        return False
    key = slicer_lib.deserialize_slice_key(per_slice.slice_key)
    return spec is None or slicer_lib.SingleSliceSpec(spec=spec).is_slice_applicable(key)


def _failures(result: Optional[validation_result_pb2.ValidationResult]):
    if result is None:
        return []
    return [(metric_types.MetricKey.from_proto(f.metric_key), f, per_slice)
            for per_slice in result.metric_validations_per_slice for f in per_slice.failures]


def blessing_checks(eval_config: config_pb2.EvalConfig,
                    result: Optional[validation_result_pb2.ValidationResult] = None,
                    overall_metrics: Optional[Mapping[str, Mapping[str, float]]] = None
                    ) -> List[Dict[str, Any]]:
    """One check per threshold the Evaluator applied to a model under evaluation.

    Args:
      eval_config: the EvalConfig the Evaluator ran (the one stored beside its output, which TFMA has
        completed with model names).
      result: its ValidationResult; ``None`` marks every check "not evaluated".
      overall_metrics: optional ``{TFMA model name: {metric name: value}}`` of the overall slice, for the
        observed value of a passed overall-slice check (a failure carries its own value).
    """
    baseline = model_util.get_baseline_model_spec(eval_config)
    baseline_name = baseline.name if baseline else None
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(eval_config.metrics_specs,
                                                                   eval_config=eval_config)
    failures = _failures(result)
    checks = []
    for key, pairs in thresholds.items():
        if baseline_name is not None and key.model_name == baseline_name:
            continue  # TFMA does not gate the baseline itself
        name = metric_name(key)
        for spec, threshold in pairs:
            failed = [(f, s) for k, f, s in failures
                      if k == key and _same_threshold(f.metric_threshold, threshold) and _applies(spec, s)]
            value = None
            if failed and failed[0][0].HasField("metric_value"):
                value = failed[0][0].metric_value.double_value.value
            elif slice_text(spec) == "overall":
                value = (overall_metrics or {}).get(key.model_name, {}).get(name)
            checks.append({
                "metric": name,
                "model": key.model_name,
                "kind": "change" if key.is_diff else "value",
                "slice": slice_text(spec),
                "rule": rule_text(threshold),
                "status": NOT_EVALUATED if result is None else FAILED if failed else PASSED,
                "value": value,
                "message": "; ".join(f.message.strip() for f, _ in failed if f.message.strip()),
            })
    return checks


def unmatched_failures(eval_config: config_pb2.EvalConfig,
                       result: validation_result_pb2.ValidationResult) -> List[str]:
    """Failures of ``result`` that no check of :func:`blessing_checks` shows (shown verbatim)."""
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(eval_config.metrics_specs,
                                                                   eval_config=eval_config)
    out = []
    for key, failure, per_slice in _failures(result):
        if not any(_same_threshold(failure.metric_threshold, t) and _applies(s, per_slice)
                   for s, t in thresholds.get(key, ())):
            message = failure.message.strip() or "failed"
            out.append(f"{key.model_name or 'model'} {metric_name(key)}: {message}")
    # A threshold on a slice the evaluation did not have fails the validation too.
    out += [f"no slice {slice_text(spec)} in the evaluation" for spec in result.missing_slices]
    return out
