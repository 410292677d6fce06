"""GenCOCalibratedSCTR and GenCOTrueCTR: the combination metrics of :mod:`creative_metrics.combinations` in TFMA.

Both read, per impression, the GenCO log's features (``features.GENCO_FEATURES``) and the evaluated model's
``features.GENCO_CHOSEN_INDEX`` outputs (one per component); pools longer than ``features.GENCO_MAX_CANDIDATES``
are cut to it, as the model reads them, and a component whose logged element was cut away does not count.

=====================  ========================================================================================
GenCOCalibratedSCTR    ``genco_calibrated_sctr`` (the mean over components: the blessing key),
                       ``genco_calibrated_sctr_<component>`` (Gu et al., 2025, Algorithm 1, per component)
GenCOTrueCTR           ``genco_true_ctr`` (the chosen combinations), ``_oracle``, ``_logged``, ``_lift_share``,
                       ``_impressions`` (from the simulator's truth columns)
=====================  ========================================================================================
"""

from __future__ import annotations

import types
from typing import Dict

import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

import features as F
from creative_metrics import combinations as CM
from creative_metrics.tfma_metrics import buffered as B
from creative_metrics.tfma_metrics import extracts as X

GENCO_CALIBRATED_SCTR_NAME = "genco_calibrated_sctr"
GENCO_TRUE_CTR_NAME = "genco_true_ctr"
_N = F.GENCO_MAX_CANDIDATES
_SCTR_OUTPUTS = {f"_{c}": c for c in F.GENCO_COMPONENTS}
_TRUTH_OUTPUTS = {"_oracle": "oracle", "_logged": "logged", "_lift_share": "lift_share",
                  "_impressions": "impressions"}


def _chosen(element, model_name: str, name: str) -> tuple:
    return tuple(int(X.one(X.prediction(element, model_name, F.GENCO_CHOSEN_INDEX[c], name),
                           f"prediction {F.GENCO_CHOSEN_INDEX[c]!r}", name)) for c in F.GENCO_COMPONENTS)


class _SCTRCombiner(B.BufferedCombiner):
    """Per component and ad: matches, candidate-weighted exposures and clicks."""

    def create_accumulator(self) -> B.RowBuffer:
        return B.RowBuffer(CM.ComponentSCTRAccumulator(), (np.int64, np.int64, np.int64, None, np.int64, None))

    def add_input(self, acc: B.RowBuffer, element) -> B.RowBuffer:
        name = self._name
        ad = X.one(X.feature(element, F.AD_ID, name), F.AD_ID, name)
        chosen = _chosen(element, self._model_name, name)
        logged, sizes, picks = [], [], []
        for c, pick in zip(F.GENCO_COMPONENTS, chosen):
            size = min(X.feature(element, F.GENCO_CAND_IDS[c], name).size, _N)
            exposed = int(X.one(X.feature(element, F.GENCO_EXPOSED[c], name), F.GENCO_EXPOSED[c], name))
            evaluable = size > 0 and 0 <= exposed < size
            logged.append(exposed if evaluable else -1)
            sizes.append(size if evaluable else 0)
            picks.append(pick if evaluable else -1)
        click = X.label(element, self._model_name, F.LABEL, name)
        acc.add((ad, tuple(logged), tuple(picks), click, tuple(sizes), self._example_weight(element)))
        return acc

    def _result(self, counters: CM.ComponentSCTRAccumulator):
        estimates = counters.result()
        return types.SimpleNamespace(value=CM.components_mean(estimates),
                                     **{c: e.value for c, e in estimates.items()})


class _TruthCombiner(B.BufferedCombiner):
    """Sums of the true CTR of the chosen, logged and best combinations."""

    def create_accumulator(self) -> B.RowBuffer:
        return B.RowBuffer(CM.CombinationTruthAccumulator(), (None,) * 8)

    def add_input(self, acc: B.RowBuffer, element) -> B.RowBuffer:
        name = self._name
        m = len(F.GENCO_COMPONENTS)
        logits, styles = np.zeros((m, _N)), np.full((m, _N), F.GENCO_PAD, np.int64)
        for j, c in enumerate(F.GENCO_COMPONENTS):
            lg = X.feature(element, F.GENCO_TRUTH_LOGITS[c], name)[:_N]
            st = X.feature(element, F.GENCO_CAND_STYLES[c], name)[:_N]
            logits[j, :len(lg)], styles[j, :len(st)] = lg, st
        scalar = {k: float(X.one(X.feature(element, k, name), k, name))
                  for k in (F.GENCO_TRUTH_BASE_LOGIT, F.GENCO_TRUTH_CTR, F.GENCO_TRUTH_ORACLE_CTR)}
        acc.add((scalar[F.GENCO_TRUTH_BASE_LOGIT], logits, styles, X.feature(element, F.GENCO_TRUTH_PAIR_LOGITS, name),
                 np.array(_chosen(element, self._model_name, name)), scalar[F.GENCO_TRUTH_CTR],
                 scalar[F.GENCO_TRUTH_ORACLE_CTR], self._example_weight(element)))
        return acc

    def _result(self, counters: CM.CombinationTruthAccumulator):
        r = counters.result()
        return types.SimpleNamespace(value=r.selected, oracle=r.oracle, logged=r.logged, lift_share=r.lift_share,
                                     impressions=r.impressions)


_SCTR_FEATURES = [F.AD_ID, F.LABEL] + [F.GENCO_CAND_IDS[c] for c in F.GENCO_COMPONENTS] + \
    [F.GENCO_EXPOSED[c] for c in F.GENCO_COMPONENTS]
_TRUTH_FEATURES = [F.GENCO_TRUTH_BASE_LOGIT, F.GENCO_TRUTH_PAIR_LOGITS, F.GENCO_TRUTH_CTR, F.GENCO_TRUTH_ORACLE_CTR] + \
    [F.GENCO_TRUTH_LOGITS[c] for c in F.GENCO_COMPONENTS] + [F.GENCO_CAND_STYLES[c] for c in F.GENCO_COMPONENTS]


def _computations(outputs: Dict[str, str], feature_keys, combiner_cls, default_name: str):
    def computations(name: str = default_name, model_name: str = "", output_name: str = "", sub_key=None,
                     example_weighted: bool = False, query_key=None) -> metric_types.MetricComputations:
        X.check_unsupported(name, sub_key, query_key)
        return B.computation(name, outputs, model_name, output_name, example_weighted, feature_keys,
                             lambda keys: combiner_cls(keys, outputs, model_name, example_weighted))

    return computations


class GenCOCalibratedSCTR(metric_types.Metric):
    r"""Calibrated sCTR per component of the model's chosen combinations (Gu et al., 2025, Algorithm 1).

    For component :math:`j`, over the impressions whose ad has it:
    :math:`\sum_r n_{r,j} y_r [\hat c_{r,j} = c_{r,j}] / \sum_r n_{r,j} [\hat c_{r,j} = c_{r,j}]`
    (:func:`creative_metrics.combinations.component_calibrated_sctr`); ``<name>`` is their mean over the
    components, ``<name>_<component>`` each one. Value and change thresholds apply to ``<name>``.
    """

    def __init__(self, name: str = GENCO_CALIBRATED_SCTR_NAME):
        super().__init__(metric_util.merge_per_key_computations(
            _computations(_SCTR_OUTPUTS, _SCTR_FEATURES, _SCTRCombiner, GENCO_CALIBRATED_SCTR_NAME)), name=name)


class GenCOTrueCTR(metric_types.Metric):
    r"""The true CTR of the model's chosen combinations, from the simulator's truth columns.

    ``<name>``: the chosen combinations' mean true CTR (:func:`simulator.combinations.truth.combination_ctr`);
    ``_oracle``: the best combinations'; ``_logged``: the logged ones' (on uniform-logged test days, the uniform
    policy's); ``_lift_share``: (chosen - logged) / (oracle - logged). Only meaningful on simulated data.
    """

    def __init__(self, name: str = GENCO_TRUE_CTR_NAME):
        super().__init__(metric_util.merge_per_key_computations(
            _computations(_TRUTH_OUTPUTS, _TRUTH_FEATURES, _TruthCombiner, GENCO_TRUE_CTR_NAME)), name=name)
