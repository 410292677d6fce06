"""NSCTR, SCTR and CalibratedSCTR: the replay estimators of :mod:`creative_metrics.replay` as TFMA metrics.

One combiner and one computation factory serve the three; :data:`_REPLAY_OUTPUTS` says what each emits.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

import features as F
from creative_metrics import replay
from creative_metrics.tfma_metrics import buffered as B
from creative_metrics.tfma_metrics import extracts as X
from creative_metrics.tfma_metrics.names import (CALIBRATED_SCTR_NAME, COVERAGE, EXPOSURE, IMPRESSIONS,
                                                 LOGGED_CTR, MATCHED_IMPRESSIONS, NSCTR_NAME, SCTR_NAME)

# Each replay estimator (a method of CreativeMatchAccumulator, named as the metric) and its outputs
# besides the value: key suffix -> PolicyEstimate field.
_REPLAY_OUTPUTS: Dict[str, Dict[str, str]] = {
    NSCTR_NAME: {COVERAGE: "coverage", IMPRESSIONS: "impressions", LOGGED_CTR: "logged_ctr"},
    SCTR_NAME: {MATCHED_IMPRESSIONS: "matched_impressions"},
    CALIBRATED_SCTR_NAME: {EXPOSURE: "denominator"},
}
_READS_NUM_CANDIDATES = {CALIBRATED_SCTR_NAME}
_MATCH_DTYPES = (np.int64, np.int64, None, np.int64, np.int64, None)  # ad, exposed, click, selected, n, w


class _ReplayCombiner(B.BufferedCombiner):
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

    def create_accumulator(self) -> B.RowBuffer:
        return B.RowBuffer(replay.CreativeMatchAccumulator(), _MATCH_DTYPES)

    def add_input(self, acc: B.RowBuffer, element: metric_types.StandardMetricInputs) -> B.RowBuffer:
        name = self._name
        ad = X.one(X.feature(element, self._ad_key, name), self._ad_key, name)
        exposed = X.one(X.feature(element, self._exposed_key, name), self._exposed_key, name)
        selected = X.one(X.prediction(element, self._model_name, self._selected_key, name),
                         f"prediction {self._selected_key!r}", name)
        cands = (1 if self._num_candidates_key is None else X.one(
            X.feature(element, self._num_candidates_key, name), self._num_candidates_key, name))
        click = X.label(element, self._model_name, self._label_key, name)
        acc.add((ad, exposed, click, selected, cands, self._example_weight(element)))
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
        X.check_unsupported(name, sub_key, query_key)
        feature_keys = [ad_key, exposed_creative_key, label_key]
        if estimator in _READS_NUM_CANDIDATES:
            feature_keys.append(num_candidates_key)
        return B.computation(
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
