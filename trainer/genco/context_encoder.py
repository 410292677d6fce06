r"""The context encoder :math:`h_i = \mathrm{Enc}(A_i, q, \{\mathrm{stat}(S_{i,j})\})` (Gu et al., 2025, eq. 14).

An MLP over the concatenated request, user and ad embeddings and the candidate-pool statistics, each layer a
dense layer, batch normalisation and ReLU (the paper's [32, 16, 8]):

.. math::
    x^{(0)} = x, \qquad x^{(l)} = \mathrm{ReLU}\big(\mathrm{BN}(W_l x^{(l-1)} + b_l)\big), \qquad h = x^{(L)}

with :math:`\mathrm{BN}(y) = \gamma (y - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta`, :math:`\mu, \sigma^2` the
batch's statistics in training and their moving averages in inference.

Shapes: input ``[B, D]``; output ``[B, units[-1]]``.
"""

from __future__ import annotations

from typing import Sequence

import tf_keras as keras


class ContextEncoder(keras.layers.Layer):
    """``[B, D]`` -> ``[B, units[-1]]``: Dense -> BatchNorm -> ReLU per entry of ``units``."""

    def __init__(self, units: Sequence[int] = (32, 16, 8), **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        if not self.units:
            raise ValueError("ContextEncoder units: must be non-empty")
        self.dense = [keras.layers.Dense(u, name=f"dense_{i}") for i, u in enumerate(self.units)]
        self.norms = [keras.layers.BatchNormalization(name=f"batch_norm_{i}") for i in range(len(self.units))]

    def call(self, x, training=None):
        for dense, norm in zip(self.dense, self.norms):
            x = keras.activations.relu(norm(dense(x), training=training))
        return x

    def get_config(self):
        config = super().get_config()
        config.update(units=list(self.units))
        return config
