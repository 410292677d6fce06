"""TFMA metrics for creative ranking: NSCTR, SCTR, CalibratedSCTR, GAUC and TruePolicyCTR.

Each metric is a ``tfma.metrics.Metric`` whose ``beam.CombineFn`` keeps only per-ad (or per-user)
counters -- the accumulators of :mod:`creative_metrics.replay` and :mod:`creative_metrics.group_auc` --
so its state grows with ads, not impressions, and merges across Beam workers. They read, per impression:

* features: ``features.AD_ID``, ``features.CREATIVE_ID`` (exposed creative), ``features.USER_ID``,
  ``features.NUM_CANDIDATES``, ``features.TRUTH_CAND_CTRS``, ``features.TRUTH_CTR``;
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
GAUC             ``gauc``, ``gauc_coverage``, ``gauc_max_abs_error`` (bound of the bucketing error)
TruePolicyCTR    ``true_ctr_selected``, ``true_ctr_random``, ``true_ctr_oracle``, ``true_ctr_logged``,
                 ``lift_share``, ``true_ctr_impressions``
===============  =====================================================================================

The auxiliary counts let a report merge slices that partition the ads (e.g. ``num_candidates``, a
property of the ad) into buckets exactly; see :mod:`creative_metrics.report`.
"""

from __future__ import annotations

import json
import math
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

import features as F
from creative_metrics import ground_truth as gt
from creative_metrics import group_auc, replay

NSCTR_NAME = "nsctr"
SCTR_NAME = "sctr"
CALIBRATED_SCTR_NAME = "calibrated_sctr"
GAUC_NAME = "gauc"
TRUE_POLICY_CTR_NAME = "true_policy_ctr"

# Suffixes of the auxiliary keys, appended to the metric's name.
COVERAGE = "_coverage"
IMPRESSIONS = "_impressions"
MATCHED_IMPRESSIONS = "_matched_impressions"
EXPOSURE = "_exposure"
LOGGED_CTR = "_logged_ctr"
MAX_ABS_ERROR = "_max_abs_error"

# TruePolicyCTR key names (prefixed with its ``key_prefix``).
TRUE_CTR_SELECTED = "true_ctr_selected"
TRUE_CTR_RANDOM = "true_ctr_random"
TRUE_CTR_ORACLE = "true_ctr_oracle"
TRUE_CTR_LOGGED = "true_ctr_logged"
LIFT_SHARE = "lift_share"
TRUE_CTR_IMPRESSIONS = "true_ctr_impressions"

# Impressions buffered in a combiner before they are reduced into the per-key counters.
_BUFFER_SIZE = 4096


# ------------------------------------------------------------------------------------- extract access
def _feature(element: metric_types.StandardMetricInputs, key: str, metric: str) -> np.ndarray:
    features = element.features or {}
    if key not in features:
        raise ValueError(
            f"{metric}: feature {key!r} is missing from the extracts (available: {sorted(features)}); "
            f"it must be in the evaluated examples")
    return np.asarray(features[key]).reshape(-1)


def _one(values: np.ndarray, what: str, metric: str):
    if values.size != 1:
        raise ValueError(f"{metric}: expected one value of {what} per impression, got {values.size}")
    return values[0]


def _prediction(element, model_name: str, key: str, metric: str) -> np.ndarray:
    predictions = element.get_predictions(model_name=model_name or None)
    if predictions is None:
        raise ValueError(f"{metric}: no predictions for model {model_name!r}")
    if isinstance(predictions, Mapping):
        if key not in predictions:
            raise ValueError(
                f"{metric}: predictions of model {model_name!r} have no output {key!r} "
                f"(outputs: {sorted(predictions)}); set the metric's prediction key")
        predictions = predictions[key]
    return np.asarray(predictions).reshape(-1)


def _label(element, model_name: str, key: str, metric: str) -> float:
    labels = element.get_labels(model_name=model_name or None)
    if isinstance(labels, Mapping):
        labels = labels.get(key)
    if labels is None:  # no label_key in the ModelSpec: read the click column itself
        labels = _feature(element, key, metric)
    return float(_one(np.asarray(labels).reshape(-1), f"label {key!r}", metric))


def _weight(element, model_name: str, example_weighted: bool, metric: str) -> float:
    if not example_weighted:
        return 1.0
    weights = element.get_example_weights(model_name=model_name or None)
    if weights is None:
        return 1.0
    if isinstance(weights, Mapping):
        raise ValueError(f"{metric}: per-output example weights are not supported")
    return float(_one(np.asarray(weights).reshape(-1), "example weight", metric))


def _key(name, model_name, output_name, example_weighted) -> metric_types.MetricKey:
    return metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                  example_weighted=example_weighted)


def _check_unsupported(metric: str, sub_key, query_key) -> None:
    if sub_key is not None:
        raise ValueError(f"{metric} does not support sub keys (binarize / top_k), got {sub_key}")
    if query_key:
        raise ValueError(f"{metric} does not support query_key, got {query_key!r}")


# --------------------------------------------------------------------------------- buffered combiners
class _RowBuffer:
    """Combiner state: a short buffer of impressions in front of an accumulator's per-key counters."""

    __slots__ = ("rows", "counters", "dtypes")

    def __init__(self, counters, dtypes: Tuple[Optional[type], ...]):
        self.rows: List[tuple] = []
        self.counters = counters
        self.dtypes = dtypes  # of the columns handed to ``counters.update`` (None: NumPy's choice)

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= _BUFFER_SIZE:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.counters.update(*(np.asarray(column, dtype)
                                   for column, dtype in zip(zip(*self.rows), self.dtypes)))
            self.rows = []


class _BufferedCombiner(beam.CombineFn):
    """A combiner whose accumulator is a :class:`_RowBuffer`; outputs a result's value and fields.

    ``keys`` maps a key suffix to its ``MetricKey`` (``""``: the metric's value); ``outputs`` maps every
    other suffix to the field of the accumulator's result it reports.
    """

    def __init__(self, keys: Dict[str, metric_types.MetricKey], outputs: Mapping[str, str],
                 model_name: str, example_weighted: bool):
        self._keys = keys
        self._outputs = dict(outputs)
        self._model_name = model_name
        self._example_weighted = example_weighted

    @property
    def _name(self) -> str:
        return self._keys[""].name

    def _weight(self, element) -> float:
        return _weight(element, self._model_name, self._example_weighted, self._name)

    def merge_accumulators(self, accumulators: Iterable[_RowBuffer]) -> _RowBuffer:
        accumulators = iter(accumulators)
        result = next(accumulators)
        result.flush()
        for acc in accumulators:
            acc.flush()
            result.counters.merge(acc.counters)
        return result

    def compact(self, acc: _RowBuffer) -> _RowBuffer:
        acc.flush()  # ship counters, not raw rows, between workers
        return acc

    def _result(self, counters):
        raise NotImplementedError

    def extract_output(self, acc: _RowBuffer) -> Dict[metric_types.MetricKey, float]:
        acc.flush()
        if acc.counters.empty:
            return {key: math.nan for key in self._keys.values()}
        result = self._result(acc.counters)
        out = {self._keys[""]: result.value}
        out.update({self._keys[suffix]: getattr(result, field) for suffix, field in self._outputs.items()})
        return out


def _computation(name: str, outputs: Mapping[str, str], model_name: str, output_name: str,
                 example_weighted: bool, feature_keys: List[str], make_combiner):
    """The one ``MetricComputation`` of a buffered metric: its keys, features and combiner."""
    keys = {suffix: _key(name + suffix, model_name, output_name, example_weighted)
            for suffix in ("",) + tuple(outputs)}
    return [metric_types.MetricComputation(
        keys=list(keys.values()),
        preprocessors=[metric_types.FeaturePreprocessor(feature_keys=feature_keys)],
        combiner=make_combiner(keys),
    )]


# ------------------------------------------------------------------------------------ replay metrics
# Each replay estimator (a method of CreativeMatchAccumulator, named as the metric) and its outputs
# besides the value: key suffix -> PolicyEstimate field.
_REPLAY_OUTPUTS: Dict[str, Dict[str, str]] = {
    NSCTR_NAME: {COVERAGE: "coverage", IMPRESSIONS: "impressions", LOGGED_CTR: "logged_ctr"},
    SCTR_NAME: {MATCHED_IMPRESSIONS: "matched_impressions"},
    CALIBRATED_SCTR_NAME: {EXPOSURE: "denominator"},
}
_READS_NUM_CANDIDATES = {CALIBRATED_SCTR_NAME}
_MATCH_DTYPES = (np.int64, np.int64, None, np.int64, np.int64, None)  # ad, exposed, click, selected, n, w


class _ReplayCombiner(_BufferedCombiner):
    """Per-ad impressions / matches / clicks -> one replay estimator."""

    def __init__(self, estimator: str, keys, model_name: str, example_weighted: bool, ad_key: str,
                 exposed_creative_key: str, selected_creative_key: str, num_candidates_key: str,
                 label_key: str):
        super().__init__(keys, _REPLAY_OUTPUTS[estimator], model_name, example_weighted)
        self._estimator = estimator
        self._ad_key = ad_key
        self._exposed_key = exposed_creative_key
        self._selected_key = selected_creative_key
        self._num_candidates_key = num_candidates_key if estimator in _READS_NUM_CANDIDATES else None
        self._label_key = label_key

    def create_accumulator(self) -> _RowBuffer:
        return _RowBuffer(replay.CreativeMatchAccumulator(), _MATCH_DTYPES)

    def add_input(self, acc: _RowBuffer, element: metric_types.StandardMetricInputs) -> _RowBuffer:
        name = self._name
        ad = _one(_feature(element, self._ad_key, name), self._ad_key, name)
        exposed = _one(_feature(element, self._exposed_key, name), self._exposed_key, name)
        selected = _one(_prediction(element, self._model_name, self._selected_key, name),
                        f"prediction {self._selected_key!r}", name)
        cands = (1 if self._num_candidates_key is None else _one(
            _feature(element, self._num_candidates_key, name), self._num_candidates_key, name))
        click = _label(element, self._model_name, self._label_key, name)
        acc.add((ad, exposed, click, selected, cands, self._weight(element)))
        return acc

    def _result(self, counters: replay.CreativeMatchAccumulator) -> replay.PolicyEstimate:
        return getattr(counters, self._estimator)()


def _replay_computations_fn(estimator: str):
    """The ``create_computations_fn`` of one replay metric (TFMA reads its argument names)."""

    def computations(name: str = estimator, ad_key: str = F.AD_ID,
                     exposed_creative_key: str = F.CREATIVE_ID,
                     selected_creative_key: str = F.SELECTED_CREATIVE_ID,
                     num_candidates_key: str = F.NUM_CANDIDATES, label_key: str = F.LABEL,
                     model_name: str = "", output_name: str = "", sub_key=None,
                     example_weighted: bool = False, query_key=None) -> metric_types.MetricComputations:
        _check_unsupported(name, sub_key, query_key)
        feature_keys = [ad_key, exposed_creative_key, label_key]
        if estimator in _READS_NUM_CANDIDATES:
            feature_keys.append(num_candidates_key)
        return _computation(
            name, _REPLAY_OUTPUTS[estimator], model_name, output_name, example_weighted, feature_keys,
            lambda keys: _ReplayCombiner(estimator, keys, model_name, example_weighted, ad_key,
                                         exposed_creative_key, selected_creative_key,
                                         num_candidates_key, label_key))

    return computations


class _ReplayMetric(metric_types.Metric):
    """A replay estimator of the evaluated model's top-1 creative; subclasses name it in ``ESTIMATOR``."""

    ESTIMATOR = ""

    def __init__(self, name: str = "", ad_key: str = F.AD_ID, exposed_creative_key: str = F.CREATIVE_ID,
                 selected_creative_key: str = F.SELECTED_CREATIVE_ID,
                 num_candidates_key: str = F.NUM_CANDIDATES, label_key: str = F.LABEL):
        """Initializes the metric.

        Args:
          name: metric name (and prefix of the auxiliary keys); defaults to the estimator's.
          ad_key: feature with the ad id.
          exposed_creative_key: feature with the creative shown online.
          selected_creative_key: prediction output with the model's top-1 creative id.
          num_candidates_key: feature with the ad's number of candidate creatives (read by
            :class:`CalibratedSCTR` only).
          label_key: click label (used when the ModelSpec sets no label_key).
        """
        super().__init__(metric_util.merge_per_key_computations(_replay_computations_fn(self.ESTIMATOR)),
                         name=name or self.ESTIMATOR, ad_key=ad_key,
                         exposed_creative_key=exposed_creative_key,
                         selected_creative_key=selected_creative_key,
                         num_candidates_key=num_candidates_key, label_key=label_key)


class NSCTR(_ReplayMetric):
    r"""Normalized simulated CTR of the evaluated model's creative choice (Yang et al., AAAI 2024, Alg. 1).

    Per ad :math:`m`: impressions :math:`Imp_m`, matched impressions :math:`Imp^s_m` (model's top-1
    creative = exposed creative) and matched clicks :math:`Clk^s_m`;

    .. math:: \mathrm{NSCTR} = \sum_m Clk^s_m Imp_m / Imp^s_m \Big/ \sum_m Imp_m

    over the ads with :math:`Imp^s_m > 0` (see :func:`creative_metrics.replay.nsctr`). Also emits
    ``<name>_coverage``, ``<name>_impressions`` and ``<name>_logged_ctr`` (the logging policy's CTR on
    the covered ads). Value and change thresholds apply to ``<name>``.
    """

    ESTIMATOR = NSCTR_NAME


class SCTR(_ReplayMetric):
    r"""Simulated CTR (Wang et al., WWW 2021): clicks / impressions over the matched impressions.

    See :func:`creative_metrics.replay.sctr`. Also emits ``<name>_matched_impressions``.
    """

    ESTIMATOR = SCTR_NAME


class CalibratedSCTR(_ReplayMetric):
    r"""Calibrated sCTR (Gu et al., 2025, Alg. 1): each match adds :math:`n` exposures and :math:`n y` clicks.

    See :func:`creative_metrics.replay.calibrated_sctr`. Also emits ``<name>_exposure``.
    """

    ESTIMATOR = CALIBRATED_SCTR_NAME


# ----------------------------------------------------------------------------------------------- GAUC
_GAUC_OUTPUTS = {COVERAGE: "coverage", MAX_ABS_ERROR: "max_abs_error"}
_GAUC_DTYPES = (np.int64, None, None, None)  # user, label, prediction, weight


class _GaucCombiner(_BufferedCombiner):
    """Per-(user, prediction bucket) click / non-click counts -> GAUC."""

    def __init__(self, keys, model_name: str, example_weighted: bool, user_key: str,
                 prediction_key: str, label_key: str, num_buckets: int):
        super().__init__(keys, _GAUC_OUTPUTS, model_name, example_weighted)
        self._user_key = user_key
        self._prediction_key = prediction_key
        self._label_key = label_key
        self._num_buckets = num_buckets

    def create_accumulator(self) -> _RowBuffer:
        return _RowBuffer(group_auc.GaucAccumulator(num_buckets=self._num_buckets), _GAUC_DTYPES)

    def add_input(self, acc: _RowBuffer, element: metric_types.StandardMetricInputs) -> _RowBuffer:
        name = self._name
        user = _one(_feature(element, self._user_key, name), self._user_key, name)
        pred = _one(_prediction(element, self._model_name, self._prediction_key, name),
                    f"prediction {self._prediction_key!r}", name)
        label = _label(element, self._model_name, self._label_key, name)
        acc.add((user, label, float(pred), self._weight(element)))
        return acc

    def _result(self, counters: group_auc.GaucAccumulator) -> group_auc.GaucEstimate:
        return counters.result()


def _gauc(name: str = GAUC_NAME, prediction_key: str = F.PCTR_AD, user_key: str = F.USER_ID,
          label_key: str = F.LABEL, num_buckets: int = 10_000, model_name: str = "",
          output_name: str = "", sub_key=None, example_weighted: bool = False,
          query_key=None) -> metric_types.MetricComputations:
    _check_unsupported(name, sub_key, query_key)
    return _computation(
        name, _GAUC_OUTPUTS, model_name, output_name, example_weighted, [user_key, label_key],
        lambda keys: _GaucCombiner(keys, model_name, example_weighted, user_key, prediction_key,
                                   label_key, num_buckets))


class GAUC(metric_types.Metric):
    r"""Group AUC: impression-weighted mean of per-user AUC over users with both classes.

    Streams per-(user, prediction bucket) counts (:class:`creative_metrics.group_auc.GaucAccumulator`:
    10,000 buckets uniform in logit space by default), so state grows with users x buckets at most,
    never with impressions. Pairs of one user sharing a bucket count as ties; ``<name>_max_abs_error``
    bounds the resulting deviation from the exact :func:`creative_metrics.group_auc.gauc` (exact ties
    are exact). Predictions must be probabilities. Also emits ``<name>_coverage``.
    """

    def __init__(self, name: str = GAUC_NAME, prediction_key: str = F.PCTR_AD,
                 user_key: str = F.USER_ID, label_key: str = F.LABEL, num_buckets: int = 10_000):
        """Initializes GAUC.

        Args:
          name: metric name.
          prediction_key: prediction output holding the probability (default AR's ``pctr_ad``).
          user_key: feature with the user id.
          label_key: click label (used when the ModelSpec sets no label_key).
          num_buckets: logit-space buckets of the predictions.
        """
        super().__init__(metric_util.merge_per_key_computations(_gauc), name=name,
                         prediction_key=prediction_key, user_key=user_key, label_key=label_key,
                         num_buckets=num_buckets)


# ---------------------------------------------------------------------------------------- ground truth
class _TruePolicyCombiner(beam.CombineFn):
    """Sums of the true CTR of the selected, a random, the best and the logged creative."""

    def __init__(self, keys: Dict[str, metric_types.MetricKey], model_name: str,
                 example_weighted: bool, cand_ctrs_key: str, logged_ctr_key: str,
                 selected_index_key: str):
        self._keys = keys
        self._model_name = model_name
        self._example_weighted = example_weighted
        self._cand_ctrs_key = cand_ctrs_key
        self._logged_ctr_key = logged_ctr_key
        self._selected_index_key = selected_index_key

    def create_accumulator(self) -> gt.TruePolicyAccumulator:
        return gt.TruePolicyAccumulator()

    def add_input(self, acc: gt.TruePolicyAccumulator,
                  element: metric_types.StandardMetricInputs) -> gt.TruePolicyAccumulator:
        name = self._keys["selected"].name
        cands = _feature(element, self._cand_ctrs_key, name).astype(np.float64)
        if cands.size == 0:
            raise ValueError(f"{name}: {self._cand_ctrs_key!r} is empty for an impression")
        index = int(_one(_prediction(element, self._model_name, self._selected_index_key, name),
                         f"prediction {self._selected_index_key!r}", name))
        if not 0 <= index < cands.size:
            raise ValueError(f"{name}: {self._selected_index_key} {index} out of range for "
                             f"{cands.size} candidates")
        logged = float(_one(_feature(element, self._logged_ctr_key, name), self._logged_ctr_key, name))
        weight = _weight(element, self._model_name, self._example_weighted, name)
        acc.add_one(cands[index], cands.mean(), cands.max(), logged, weight)
        return acc

    def merge_accumulators(self, accumulators: Iterable[gt.TruePolicyAccumulator]):
        accumulators = iter(accumulators)
        result = next(accumulators)
        for acc in accumulators:
            result.merge(acc)
        return result

    def extract_output(self, acc: gt.TruePolicyAccumulator) -> Dict[metric_types.MetricKey, float]:
        if acc.sums[0] <= 0:
            return {key: math.nan for key in self._keys.values()}
        r = acc.result()
        return {self._keys["selected"]: r.selected, self._keys["random"]: r.random,
                self._keys["oracle"]: r.oracle, self._keys["logged"]: r.logged,
                self._keys["lift_share"]: r.lift_share, self._keys["impressions"]: r.impressions}


def _true_policy_ctr(name: str = TRUE_POLICY_CTR_NAME, key_prefix: str = "",
                     cand_ctrs_key: str = F.TRUTH_CAND_CTRS, logged_ctr_key: str = F.TRUTH_CTR,
                     selected_index_key: str = F.SELECTED_INDEX, model_name: str = "",
                     output_name: str = "", sub_key=None, example_weighted: bool = False,
                     query_key=None) -> metric_types.MetricComputations:
    _check_unsupported(name, sub_key, query_key)
    names = {"selected": TRUE_CTR_SELECTED, "random": TRUE_CTR_RANDOM, "oracle": TRUE_CTR_ORACLE,
             "logged": TRUE_CTR_LOGGED, "lift_share": LIFT_SHARE, "impressions": TRUE_CTR_IMPRESSIONS}
    keys = {role: _key(key_prefix + n, model_name, output_name, example_weighted)
            for role, n in names.items()}
    return [metric_types.MetricComputation(
        keys=list(keys.values()),
        preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[cand_ctrs_key, logged_ctr_key])],
        combiner=_TruePolicyCombiner(keys, model_name, example_weighted, cand_ctrs_key,
                                     logged_ctr_key, selected_index_key),
    )]


class TruePolicyCTR(metric_types.Metric):
    r"""The true CTR of the model's creative choice, from the simulator's truth columns.

    Emits ``true_ctr_selected`` (mean true CTR of the selected candidates), ``true_ctr_random`` (mean
    over candidates), ``true_ctr_oracle`` (max), ``true_ctr_logged`` (the exposed creative),
    ``lift_share`` :math:`= (V_\pi - V_{rand}) / (V_{orc} - V_{rand})` and ``true_ctr_impressions``,
    all prefixed with ``key_prefix``. See :mod:`creative_metrics.ground_truth`. Only meaningful on
    simulated data; it has no threshold key.
    """

    def __init__(self, name: str = TRUE_POLICY_CTR_NAME, key_prefix: str = "",
                 cand_ctrs_key: str = F.TRUTH_CAND_CTRS, logged_ctr_key: str = F.TRUTH_CTR,
                 selected_index_key: str = F.SELECTED_INDEX):
        """Initializes TruePolicyCTR.

        Args:
          name: metric name (identifies the metric; the emitted keys are listed above).
          key_prefix: prefix of every emitted key (to run it twice, e.g. for two selectors).
          cand_ctrs_key: feature with every candidate's true CTR, in candidate order.
          logged_ctr_key: feature with the exposed creative's true CTR.
          selected_index_key: prediction output with the selected candidate's index.
        """
        super().__init__(metric_util.merge_per_key_computations(_true_policy_ctr), name=name,
                         key_prefix=key_prefix, cand_ctrs_key=cand_ctrs_key,
                         logged_ctr_key=logged_ctr_key, selected_index_key=selected_index_key)


for _cls in (NSCTR, SCTR, CalibratedSCTR, GAUC, TruePolicyCTR):
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
                   include_truth: bool = True) -> List[config_pb2.MetricConfig]:
    """The ``tfma.MetricConfig`` list of the metrics here, ready for a ``tfma.MetricsSpec``.

    Args:
      nsctr_threshold: optional value / change threshold on NSCTR (for blessing), overall slice only.
      include_gauc: add :class:`GAUC` (leave it out to place it in a spec of AR's output instead).
      gauc_prediction_key: prediction output GAUC scores.
      include_truth: add :class:`TruePolicyCTR` (needs the simulator's truth columns).
    """
    configs = [metric_config("NSCTR", nsctr_threshold), metric_config("SCTR"),
               metric_config("CalibratedSCTR")]
    if include_gauc:
        configs.append(metric_config("GAUC", prediction_key=gauc_prediction_key))
    if include_truth:
        configs.append(metric_config("TruePolicyCTR"))
    return configs


__all__ = [
    "NSCTR", "SCTR", "CalibratedSCTR", "GAUC", "TruePolicyCTR", "metric_config", "metric_configs",
    "overall_slice_only",
    "NSCTR_NAME", "SCTR_NAME", "CALIBRATED_SCTR_NAME", "GAUC_NAME", "TRUE_POLICY_CTR_NAME",
    "TRUE_CTR_SELECTED", "TRUE_CTR_RANDOM", "TRUE_CTR_ORACLE", "TRUE_CTR_LOGGED", "LIFT_SHARE",
    "TRUE_CTR_IMPRESSIONS",
]
