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
key of a real candidate; a padded query (no real key at all) gets finite, meaningless values that the caller
masks.

Shapes: embeddings ``[B, m, N, d]`` and mask ``[B, m, N]`` (1 = real candidate) -> z ``[B, m, N, h]``.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras


_BLOCKED = -1e9


def _structure_bias(m, n) -> tf.Tensor:
    """[m*N, m*N]: 0 where key ``k`` is of another component than query ``q`` or is ``q`` itself, else -1e9."""
    component = tf.repeat(tf.range(m), n)
    allowed = tf.logical_or(tf.not_equal(component[:, None], component[None, :]), tf.eye(m * n, dtype=tf.bool))
    return tf.where(allowed, 0.0, _BLOCKED)


def _key_bias(mask) -> tf.Tensor:
    """[B, 1, m*N]: 0 for real keys, -1e9 for the padding."""
    shape = tf.shape(mask)
    return tf.where(tf.reshape(tf.cast(mask, tf.bool), [shape[0], 1, shape[1] * shape[2]]), 0.0, _BLOCKED)


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
        """[B, m*N, m*N] bool: query ``q`` may attend to key ``k`` (a real key of another component, or itself)."""
        return _structure_bias(tf.shape(mask)[1], tf.shape(mask)[2])[None] + _key_bias(mask) > -1.0

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(embeddings)
        b, m, n = shape[0], shape[1], shape[2]
        flat = tf.reshape(embeddings, [b, m * n, embeddings.shape[-1]])
        q, k, v = self.query(flat), self.key(flat), self.value(flat)
        # Additive masks (0 or -1e9): the component structure [mN, mN] and the padded keys [B, 1, mN] -- two
        # broadcast adds instead of a [B, mN, mN] boolean select (the attention's main cost at serving).
        logits = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.hidden_dim)
        logits = logits + _structure_bias(m, n)[None] + _key_bias(mask)
        z = tf.matmul(tf.nn.softmax(logits, axis=-1), v)
        return tf.reshape(z, [b, m, n, self.hidden_dim])

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim)
        return config
