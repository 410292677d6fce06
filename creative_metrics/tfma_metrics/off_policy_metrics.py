"""IPW, SNIPW and DoublyRobust: the off-policy estimators of :mod:`creative_metrics.off_policy` as TFMA metrics.

One combiner and one computation factory serve the three (as :mod:`.replay_metrics` does for the replay
estimators); :data:`_OFF_POLICY_OUTPUTS` says what each emits. They read the logged propensity of the exposed
creative (``features.PROPENSITY``) besides the replay metrics' ad, exposed creative, selected creative and click.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

import features as F
from creative_metrics import off_policy
from creative_metrics.tfma_metrics import buffered as B
from creative_metrics.tfma_metrics import extracts as X
from creative_metrics.tfma_metrics.names import (DIRECT, DR_NAME, EFFECTIVE_SAMPLE_SIZE, IPW_NAME,
                                                 MATCHED_IMPRESSIONS, MEAN_WEIGHT, SNIPW_NAME)

# Each estimator (a method of OffPolicyAccumulator, named as the metric) and its outputs besides the value:
# key suffix -> OffPolicyEstimate field.
_OFF_POLICY_OUTPUTS: Dict[str, Dict[str, str]] = {
    IPW_NAME: {MEAN_WEIGHT: "mean_weight", EFFECTIVE_SAMPLE_SIZE: "effective_sample_size"},
    SNIPW_NAME: {MATCHED_IMPRESSIONS: "matched_impressions"},
    DR_NAME: {DIRECT: "direct"},
}
# ad, exposed, click, selected, propensity, weight[, reward of the selected, reward of the exposed]
_DTYPES = (np.int64, np.int64, None, np.int64, np.float64, None, np.float64, np.float64)


class _OffPolicyCombiner(B.BufferedCombiner):
    """Per-(ad, creative) weighted counts -> one off-policy estimator."""

    def __init__(self, estimator: str, keys, model_name: str, example_weighted: bool, ad_key: str,
                 exposed_creative_key: str, selected_creative_key: str, propensity_key: str, label_key: str,
                 reward_selected_key: Optional[str], reward_exposed_key: Optional[str],
                 ad_prior_strength: float, creative_prior_strength: float):
        super().__init__(keys, _OFF_POLICY_OUTPUTS[estimator], model_name, example_weighted)
        self._estimator = estimator
        self._feature_keys = (ad_key, exposed_creative_key, propensity_key)
        self._selected_key, self._label_key = selected_creative_key, label_key
        self._reward_keys = (reward_selected_key, reward_exposed_key) if reward_selected_key else None
        self._priors = (ad_prior_strength, creative_prior_strength)

    def create_accumulator(self) -> B.RowBuffer:
        return B.RowBuffer(off_policy.OffPolicyAccumulator(), _DTYPES)

    def _prediction(self, element, key: str):
        return X.one(X.prediction(element, self._model_name, key, self._name), f"prediction {key!r}", self._name)

    def add_input(self, acc: B.RowBuffer, element: metric_types.StandardMetricInputs) -> B.RowBuffer:
        name = self._name
        ad, exposed, propensity = (X.one(X.feature(element, key, name), key, name) for key in self._feature_keys)
        row = (ad, exposed, X.label(element, self._model_name, self._label_key, name),
               self._prediction(element, self._selected_key), propensity, self._example_weight(element))
        if self._reward_keys:
            row += tuple(self._prediction(element, key) for key in self._reward_keys)
        acc.add(row)
        return acc

    def _result(self, counters: off_policy.OffPolicyAccumulator) -> off_policy.OffPolicyEstimate:
        if self._estimator == DR_NAME:
            return counters.dr(*self._priors)
        return getattr(counters, self._estimator)()


def _off_policy_computations_fn(estimator: str):
    """The ``create_computations_fn`` of one off-policy metric (TFMA reads its argument names)."""

    def computations(name: str = estimator, ad_key: str = F.AD_ID, exposed_creative_key: str = F.CREATIVE_ID,
                     selected_creative_key: str = F.SELECTED_CREATIVE_ID, propensity_key: str = F.PROPENSITY,
                     label_key: str = F.LABEL, reward_selected_key: Optional[str] = None,
                     reward_exposed_key: Optional[str] = None,
                     ad_prior_strength: float = off_policy.DEFAULT_AD_PRIOR_STRENGTH,
                     creative_prior_strength: float = off_policy.DEFAULT_CREATIVE_PRIOR_STRENGTH,
                     model_name: str = "", output_name: str = "", sub_key=None, example_weighted: bool = False,
                     query_key=None) -> metric_types.MetricComputations:
        X.check_unsupported(name, sub_key, query_key)
        if (reward_selected_key is None) != (reward_exposed_key is None):
            raise ValueError(f"{name}: reward_selected_key and reward_exposed_key go together")
        return B.computation(
            name, _OFF_POLICY_OUTPUTS[estimator], model_name, output_name, example_weighted,
            [ad_key, exposed_creative_key, propensity_key, label_key],
            lambda keys: _OffPolicyCombiner(estimator, keys, model_name, example_weighted, ad_key,
                                            exposed_creative_key, selected_creative_key, propensity_key,
                                            label_key, reward_selected_key, reward_exposed_key,
                                            ad_prior_strength, creative_prior_strength))

    return computations


class _OffPolicyMetric(metric_types.Metric):
    """An off-policy estimator of the evaluated model's top-1 creative; subclasses name it in ``ESTIMATOR``."""

    ESTIMATOR = ""

    def __init__(self, name: str = "", ad_key: str = F.AD_ID, exposed_creative_key: str = F.CREATIVE_ID,
                 selected_creative_key: str = F.SELECTED_CREATIVE_ID, propensity_key: str = F.PROPENSITY,
                 label_key: str = F.LABEL, **estimator_kwargs):
        """Initializes the metric.

        Args:
          name: metric name (and prefix of the auxiliary keys); defaults to the estimator's.
          ad_key: feature with the ad id.
          exposed_creative_key: feature with the creative shown online.
          selected_creative_key: prediction output with the model's top-1 creative id.
          propensity_key: feature with the logging policy's propensity of the exposed creative.
          label_key: click label (used when the ModelSpec sets no label_key).
          **estimator_kwargs: the estimator's own options (:class:`DoublyRobust`'s reward model).
        """
        super().__init__(metric_util.merge_per_key_computations(_off_policy_computations_fn(self.ESTIMATOR)),
                         name=name or self.ESTIMATOR, ad_key=ad_key, exposed_creative_key=exposed_creative_key,
                         selected_creative_key=selected_creative_key, propensity_key=propensity_key,
                         label_key=label_key, **estimator_kwargs)


class IPW(_OffPolicyMetric):
    r"""Inverse probability weighting of the evaluated model's creative choice (Open Bandit Pipeline's IPW).

    .. math:: \hat V_{IPW} = \frac1n \sum_i \frac{[\hat c_i = c_i]}{\mu_i} y_i

    See :func:`creative_metrics.off_policy.ipw`. Also emits ``<name>_mean_weight`` (about 1 when the
    logged propensities are right) and ``<name>_effective_sample_size``.
    """

    ESTIMATOR = IPW_NAME


class SNIPW(_OffPolicyMetric):
    r"""Self-normalised IPW: :math:`\sum_i w_i y_i / \sum_i w_i`, :math:`w_i = [\hat c_i = c_i] / \mu_i`.

    See :func:`creative_metrics.off_policy.snipw`. Also emits ``<name>_matched_impressions``.
    """

    ESTIMATOR = SNIPW_NAME


class DoublyRobust(_OffPolicyMetric):
    r"""Doubly robust estimate of the evaluated model's creative choice (Open Bandit Pipeline's DR).

    .. math:: \hat V_{DR} = \frac1n \sum_i \big[\hat q(x_i, \hat c_i) + w_i (y_i - \hat q(x_i, c_i))\big]

    The reward model :math:`\hat q` is the empirical one of :mod:`creative_metrics.off_policy` (each
    creative's logged CTR, shrunk to its ad's), or, with ``reward_selected_key`` and ``reward_exposed_key``,
    two prediction outputs of the evaluated model: its pCTR of the selected and of the exposed creative.
    Also emits ``<name>_direct`` (the reward model's term alone).
    """

    ESTIMATOR = DR_NAME

    def __init__(self, name: str = DR_NAME, reward_selected_key: Optional[str] = None,
                 reward_exposed_key: Optional[str] = None,
                 ad_prior_strength: float = off_policy.DEFAULT_AD_PRIOR_STRENGTH,
                 creative_prior_strength: float = off_policy.DEFAULT_CREATIVE_PRIOR_STRENGTH, **kwargs):
        """Initializes DoublyRobust; other arguments as :class:`IPW`.

        Args:
          reward_selected_key, reward_exposed_key: prediction outputs with the reward model's estimate for
            the selected and the exposed creative (both or neither; neither: the empirical reward model).
          ad_prior_strength, creative_prior_strength: the empirical reward model's prior strengths.
        """
        super().__init__(name=name, reward_selected_key=reward_selected_key,
                         reward_exposed_key=reward_exposed_key, ad_prior_strength=ad_prior_strength,
                         creative_prior_strength=creative_prior_strength, **kwargs)
