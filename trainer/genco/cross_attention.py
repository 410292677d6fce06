r"""Cross-component attention (Gu et al., 2025, eq. 13): each candidate attends over the other components' pools.

For candidate :math:`k` of component :math:`j` (embedding :math:`e_{j,k}`), the keys and values are its own
embedding and the embeddings of every real candidate of every *other* component:

.. math::
    \mathcal{K}_{j,k} = \{(j, k)\} \cup \{(j', l) : j' \ne j,\ l \le n_{i,j'}\}, \qquad
    a_{(j,k),(j',l)} = \frac{(W_q e_{j,k})^\top (W_k e_{j',l})}{\sqrt{h}},

.. math::
    z_{j,k} = \sum_{(j',l) \in \mathcal{K}_{j,k}} \mathrm{softmax}_{\mathcal{K}_{j,k}}(a_{(j,k),\cdot})_{(j',l)}\,
              W_v e_{j',l},

one head of hidden size :math:`h` (the paper's masked attention with hidden dimension 4). Padding is never a
key; a padded query still has itself as key, so its row stays finite (and is masked by the caller).

Shapes: embeddings ``[B, m, N, d]`` and mask ``[B, m, N]`` (1 = real candidate) -> z ``[B, m, N, h]``.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras


class CrossComponentAttention(keras.layers.Layer):
    """``(e [B, m, N, d], mask [B, m, N]) -> z [B, m, N, h]`` (see the module docstring)."""

    def __init__(self, hidden_dim: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.query = keras.layers.Dense(self.hidden_dim, use_bias=False, name="query")
        self.key = keras.layers.Dense(self.hidden_dim, use_bias=False, name="key")
        self.value = keras.layers.Dense(self.hidden_dim, use_bias=False, name="value")

    @staticmethod
    def allowed(mask: tf.Tensor) -> tf.Tensor:
        """[B, m*N, m*N] bool: query ``q`` may attend to key ``k`` (real key of another component, or itself)."""
        shape = tf.shape(mask)
        m, n = shape[1], shape[2]
        flat = tf.reshape(tf.cast(mask, tf.bool), [shape[0], 1, m * n])
        component = tf.repeat(tf.range(m), n)
        other = tf.not_equal(component[:, None], component[None, :])
        itself = tf.eye(m * n, dtype=tf.bool)
        return tf.logical_or(tf.logical_and(other[None], flat), itself[None])

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(embeddings)
        b, m, n = shape[0], shape[1], shape[2]
        flat = tf.reshape(embeddings, [b, m * n, embeddings.shape[-1]])
        q, k, v = self.query(flat), self.key(flat), self.value(flat)
        logits = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.hidden_dim)
        logits = tf.where(self.allowed(mask), logits, tf.constant(-1e9, logits.dtype))
        z = tf.matmul(tf.nn.softmax(logits, axis=-1), v)
        return tf.reshape(z, [b, m, n, self.hidden_dim])

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim)
        return config
