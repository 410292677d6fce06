"""TruePolicyCTR: the true CTR of the model's creative choice, from the simulator's truth columns."""

from __future__ import annotations

import math
from typing import Dict, Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

import features as F
from creative_metrics import ground_truth as gt
from creative_metrics.tfma_metrics import extracts as X
from creative_metrics.tfma_metrics.names import (LIFT_SHARE, TRUE_CTR_IMPRESSIONS, TRUE_CTR_LOGGED,
                                                 TRUE_CTR_ORACLE, TRUE_CTR_RANDOM, TRUE_CTR_SELECTED,
                                                 TRUE_POLICY_CTR_NAME)


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
        cands = X.feature(element, self._cand_ctrs_key, name).astype(np.float64)
        if cands.size == 0:
            raise ValueError(f"{name}: {self._cand_ctrs_key!r} is empty for an impression")
        index = int(X.one(X.prediction(element, self._model_name, self._selected_index_key, name),
                          f"prediction {self._selected_index_key!r}", name))
        if not 0 <= index < cands.size:
            raise ValueError(f"{name}: {self._selected_index_key} {index} out of range for "
                             f"{cands.size} candidates")
        logged = float(X.one(X.feature(element, self._logged_ctr_key, name), self._logged_ctr_key, name))
        weight = X.weight(element, self._model_name, self._example_weighted, name)
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
    X.check_unsupported(name, sub_key, query_key)
    names = {"selected": TRUE_CTR_SELECTED, "random": TRUE_CTR_RANDOM, "oracle": TRUE_CTR_ORACLE,
             "logged": TRUE_CTR_LOGGED, "lift_share": LIFT_SHARE, "impressions": TRUE_CTR_IMPRESSIONS}
    keys = {role: X.metric_key(key_prefix + n, model_name, output_name, example_weighted)
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
