"""One embedding table per categorical feature."""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras as keras


class CategoricalEmbeddings(keras.layers.Layer):
    """Looks up every categorical feature in its own table and concatenates the rows.

    .. math::

        x = [E^{(1)}_{i_1}; E^{(2)}_{i_2}; \\dots; E^{(F)}_{i_F}], \\qquad E^{(f)} \\in \\mathbb{R}^{V_f \\times d}

    Args:
      cardinalities: feature name -> number of rows :math:`V_f` (indices must lie in ``[0, V_f)``).
      names: the features to embed, in output order.
      dim: embedding size :math:`d`.

    Shapes: input a dict of int ``[B]`` tensors (extra keys are ignored); output ``[B, F * d]``. With
    ``batch_size=B`` given, inputs of batch 1 are broadcast to ``B`` rows.
    :meth:`table` exposes each table so other layers can share it (e.g. the behaviour sequence reuses the
    ad-id table).
    """

    def __init__(self, cardinalities: Mapping[str, int], names: Sequence[str], dim: int, **kwargs):
        super().__init__(**kwargs)
        missing = [n for n in names if n not in cardinalities]
        if missing:
            raise ValueError(f"no cardinality for {missing}")
        self.names = tuple(names)
        self.cardinalities = {n: int(cardinalities[n]) for n in self.names}
        self.dim = int(dim)
        self._tables: Dict[str, tf.Variable] = {}

    def build(self, input_shape=None):
        for name in self.names:
            self._tables[name] = self.add_weight(
                name=f"{name}_embedding", shape=(self.cardinalities[name], self.dim),
                initializer=keras.initializers.RandomUniform(-0.05, 0.05), trainable=True)
        super().build(input_shape)

    def table(self, name: str) -> tf.Variable:
        if not self.built:
            self.build()
        return self._tables[name]

    def lookup(self, name: str, ids: tf.Tensor) -> tf.Tensor:
        """Rows of ``name``'s table for ``ids`` of any shape: ``ids.shape + [d]``."""
        return tf.gather(self.table(name), tf.cast(ids, tf.int64))

    def call(self, features: Mapping[str, tf.Tensor], batch_size=None) -> tf.Tensor:
        rows = [self.lookup(n, tf.reshape(features[n], [-1])) for n in self.names]
        if batch_size is not None:  # features sent once per request (batch 1) are repeated to every row
            rows = [tf.broadcast_to(r, [batch_size, self.dim]) for r in rows]
        return tf.concat(rows, axis=-1)

    @property
    def output_dim(self) -> int:
        return len(self.names) * self.dim

    def get_config(self):
        config = super().get_config()
        config.update(cardinalities=dict(self.cardinalities), names=list(self.names), dim=self.dim)
        return config


def prior_logit_initializer(ctr: Optional[float]) -> keras.initializers.Initializer:
    """Output-bias initializer :math:`\\log(p / (1 - p))` for a base click rate ``ctr`` (zeros for ``None``).

    With clicks at a few percent, a zero bias starts every prediction at 0.5 and the first steps are spent
    learning the base rate through every weight; starting at the prior avoids that.
    """
    if ctr is None:
        return keras.initializers.Zeros()
    if not 0.0 < ctr < 1.0:
        raise ValueError(f"initial_ctr must lie in (0, 1), got {ctr!r}")
    return keras.initializers.Constant(math.log(ctr / (1.0 - ctr)))
