"""Combiners that buffer impressions in front of an accumulator's per-key counters.

A combiner reads one impression per ``add_input``; reducing rows into per-key counters one at a time would be
slow, so :class:`RowBuffer` keeps up to :data:`BUFFER_SIZE` rows and hands them to the accumulator's
``update`` in one NumPy call. Counters (not rows) are what is merged and shipped between Beam workers.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types

from creative_metrics.tfma_metrics import extracts as X

# Impressions buffered in a combiner before they are reduced into the per-key counters.
BUFFER_SIZE = 4096


class RowBuffer:
    """Combiner state: a short buffer of impressions in front of an accumulator's per-key counters."""

    __slots__ = ("rows", "counters", "dtypes")

    def __init__(self, counters, dtypes: Tuple[Optional[type], ...]):
        self.rows: List[tuple] = []
        self.counters = counters
        self.dtypes = dtypes  # of the columns handed to ``counters.update`` (None: NumPy's choice)

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= BUFFER_SIZE:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.counters.update(*(np.asarray(column, dtype)
                                   for column, dtype in zip(zip(*self.rows), self.dtypes)))
            self.rows = []


class BufferedCombiner(beam.CombineFn):
    """A combiner whose accumulator is a :class:`RowBuffer`; outputs a result's value and fields.

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

    def _example_weight(self, element) -> float:
        return X.weight(element, self._model_name, self._example_weighted, self._name)

    def merge_accumulators(self, accumulators: Iterable[RowBuffer]) -> RowBuffer:
        accumulators = iter(accumulators)
        result = next(accumulators)
        result.flush()
        for acc in accumulators:
            acc.flush()
            result.counters.merge(acc.counters)
        return result

    def compact(self, acc: RowBuffer) -> RowBuffer:
        acc.flush()  # ship counters, not raw rows, between workers
        return acc

    def _result(self, counters):
        raise NotImplementedError

    def extract_output(self, acc: RowBuffer) -> Dict[metric_types.MetricKey, float]:
        acc.flush()
        if acc.counters.empty:
            return {key: math.nan for key in self._keys.values()}
        result = self._result(acc.counters)
        out = {self._keys[""]: result.value}
        out.update({self._keys[suffix]: getattr(result, field) for suffix, field in self._outputs.items()})
        return out


def computation(name: str, outputs: Mapping[str, str], model_name: str, output_name: str,
                example_weighted: bool, feature_keys: List[str], make_combiner):
    """The one ``MetricComputation`` of a buffered metric: its keys, features and combiner."""
    keys = {suffix: X.metric_key(name + suffix, model_name, output_name, example_weighted)
            for suffix in ("",) + tuple(outputs)}
    return [metric_types.MetricComputation(
        keys=list(keys.values()),
        preprocessors=[metric_types.FeaturePreprocessor(feature_keys=feature_keys)],
        combiner=make_combiner(keys),
    )]
