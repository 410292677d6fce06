r"""Multi-instance pooling of a combination's element features (Gu et al., 2025, eqs. 16-17).

A combination is a *bag* whose *instances* are its elements, one per component the ad has. The bag's feature
is the attention-weighted sum of the instances' features

.. math::
    f_{c_i} = \sum_{j \in J_i} w_{i,j}\, f_{e_{i,j}}, \qquad
    w_{i,j} = \frac{\exp a_{i,j}}{\sum_{j' \in J_i} \exp a_{i,j'}}, \qquad
    a_{i,j} = u^\top \tanh\big(W [h_i; f_{e_{i,j}}; \bar f_{i,j}] + b\big),

where :math:`\bar f_{i,j}` is the mean feature of component :math:`j`'s whole pool, so the weight depends on
the context and on the candidates (the paper's :math:`w_{i,j}(h_i, \bigcup_j \{f_{e}\})`), and
:math:`w_{i,j} = 0` for a component the ad lacks (:math:`j \notin J_i`).

Shapes: ``h [B, H]``, ``f [B, K, m, F]`` (the elements of K combinations), ``pool_mean [B, m, F]``,
``present [B, m]`` -> ``(f_c [B, K, F], w [B, K, m])``.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


class MILPooling(keras.layers.Layer):
    """``(h, f, pool_mean, present) -> (f_c, w)`` (see the module docstring)."""

    def __init__(self, units: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.hidden = keras.layers.Dense(self.units, activation="tanh", name="hidden")
        self.score = keras.layers.Dense(1, use_bias=False, name="score")

    def weights_of(self, h, f, pool_mean, present) -> tf.Tensor:
        """[B, K, m] the weights :math:`w` (rows sum to 1 over the present components; 0 elsewhere)."""
        k, m = tf.shape(f)[1], tf.shape(f)[2]
        context = tf.broadcast_to(h[:, None, None, :], tf.concat([tf.shape(f)[:3], tf.shape(h)[1:]], axis=0))
        pools = tf.repeat(pool_mean[:, None], k, axis=1)
        x = tf.concat([context, f, pools], axis=-1)
        x = tf.reshape(x, [-1, h.shape[-1] + 2 * f.shape[-1]])
        logits = tf.reshape(self.score(self.hidden(x)), [-1, k, m])
        mask = tf.cast(present, tf.bool)[:, None, :]
        logits = tf.where(mask, logits, tf.constant(-1e9, logits.dtype))
        return tf.nn.softmax(logits, axis=-1) * tf.cast(mask, logits.dtype)

    def call(self, h, f, pool_mean, present):
        w = self.weights_of(h, f, pool_mean, present)
        return tf.reduce_sum(w[..., None] * f, axis=2), w

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config
