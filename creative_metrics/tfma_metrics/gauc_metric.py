"""GAUC as a TFMA metric, from per-(user, prediction bucket) counts (:mod:`creative_metrics.group_auc`)."""

from __future__ import annotations

import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

import features as F
from creative_metrics import group_auc
from creative_metrics.tfma_metrics import buffered as B
from creative_metrics.tfma_metrics import extracts as X
from creative_metrics.tfma_metrics.names import COVERAGE, GAUC_NAME, MAX_ABS_ERROR

_GAUC_OUTPUTS = {COVERAGE: "coverage", MAX_ABS_ERROR: "max_abs_error"}
_GAUC_DTYPES = (np.int64, None, None, None)  # user, label, prediction, weight


class _GaucCombiner(B.BufferedCombiner):
    """Per-(user, prediction bucket) click / non-click counts -> GAUC."""

    def __init__(self, keys, model_name: str, example_weighted: bool, user_key: str,
                 prediction_key: str, label_key: str, num_buckets: int):
        super().__init__(keys, _GAUC_OUTPUTS, model_name, example_weighted)
        self._user_key = user_key
        self._prediction_key = prediction_key
        self._label_key = label_key
        self._num_buckets = num_buckets

    def create_accumulator(self) -> B.RowBuffer:
        return B.RowBuffer(group_auc.GaucAccumulator(num_buckets=self._num_buckets), _GAUC_DTYPES)

    def add_input(self, acc: B.RowBuffer, element: metric_types.StandardMetricInputs) -> B.RowBuffer:
        name = self._name
        user = X.one(X.feature(element, self._user_key, name), self._user_key, name)
        pred = X.one(X.prediction(element, self._model_name, self._prediction_key, name),
                     f"prediction {self._prediction_key!r}", name)
        label = X.label(element, self._model_name, self._label_key, name)
        acc.add((user, label, float(pred), self._example_weight(element)))
        return acc

    def _result(self, counters: group_auc.GaucAccumulator) -> group_auc.GaucEstimate:
        return counters.result()


def _gauc(name: str = GAUC_NAME, prediction_key: str = F.PCTR_AD, user_key: str = F.USER_ID,
          label_key: str = F.LABEL, num_buckets: int = 10_000, model_name: str = "",
          output_name: str = "", sub_key=None, example_weighted: bool = False,
          query_key=None) -> metric_types.MetricComputations:
    X.check_unsupported(name, sub_key, query_key)
    return B.computation(
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
