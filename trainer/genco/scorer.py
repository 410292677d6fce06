r"""The shared context-aware scorer :math:`\phi` (Gu et al., 2025, eqs. 15, 18, 19).

One MLP scores both an element and a combination, from the context :math:`h_i` and a feature vector
:math:`f` (an element's :math:`f_e = (e, e_{C_j}, z)` or a combination's pooled :math:`f_c`):

.. math::
    \phi(h, f) = w^\top x^{(L)} + b, \qquad x^{(0)} = [h; f], \qquad
    x^{(l)} = \mathrm{ReLU}(W_l x^{(l-1)} + b_l)

(the paper's [64, 32, 8] hidden layers and a 1-unit output). The same weights score elements (eq. 19, the
logits :math:`p` of the generator's softmax) and combinations (eq. 18, the reward :math:`s`), which is what
makes element- and combination-level representations share one space.

Shapes: ``h [B, H]`` and ``f [B, ..., F]`` (any middle dimensions; ``h`` is broadcast over them) ->
``[B, ...]`` logits.
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from trainer.embeddings import prior_logit_initializer


class SharedScorer(keras.layers.Layer):
    """``(h [B, H], f [B, ..., F]) -> [B, ...]`` (see the module docstring).

    ``initial_ctr`` starts the output bias at its log-odds (``None``: 0).
    """

    def __init__(self, units: Sequence[int] = (64, 32, 8), initial_ctr: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.initial_ctr = initial_ctr
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"dense_{i}") for i, u in enumerate(self.units)]
        self.out = keras.layers.Dense(1, name="logit", bias_initializer=prior_logit_initializer(initial_ctr))

    def call(self, h: tf.Tensor, f: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(f)
        rows = tf.reshape(f, [shape[0], -1, f.shape[-1]])  # [B, R, F]
        context = tf.repeat(h[:, None, :], tf.shape(rows)[1], axis=1)  # [B, R, H]
        x = tf.concat([context, rows], axis=-1)
        for layer in self.hidden:
            x = layer(x)
        return tf.reshape(self.out(x), shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update(units=list(self.units), initial_ctr=self.initial_ctr)
        return config
