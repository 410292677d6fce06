r"""Hash embeddings of ids: a table of :math:`H` rows indexed by the id modulo :math:`H`.

Gu et al., 2025 map ad, query and element ids each to a hash embedding of dimension 4 whose size is the
number of distinct ids of the training data. Here

.. math::
    e(x) = \begin{cases} E_{x \bmod H} & x \ge 0 \\ 0 & x < 0 \text{ (padding)} \end{cases}, \qquad
    E \in \mathbb{R}^{H \times d},

so ids never seen in training (new elements, after churn) share the rows of older ones instead of failing,
and the padding (``features.GENCO_PAD``) embeds to zeros. The modulus is the hash: ids are arbitrary
non-negative int64 values, and consecutive ids (how the simulator numbers elements) never collide within
a window of :math:`H`.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


class HashEmbedding(keras.layers.Layer):
    """ids (int, any shape) -> ``ids.shape + [dim]`` (see the module docstring).

    Args:
      size: :math:`H`, the number of rows (>= 1).
      dim: :math:`d`, the embedding size.
    """

    def __init__(self, size: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"HashEmbedding size: must be an integer >= 1, got {size!r}")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"HashEmbedding dim: must be an integer >= 1, got {dim!r}")
        self.size = size
        self.dim = dim

    def build(self, input_shape=None):
        self.table = self.add_weight(name="table", shape=(self.size, self.dim),
                                     initializer=keras.initializers.RandomUniform(-0.05, 0.05), trainable=True)
        super().build(input_shape)

    def rows(self, ids) -> tf.Tensor:
        """The row of each id: ``ids mod H`` (padding -> row 0, zeroed by :meth:`call`)."""
        return tf.math.floormod(tf.maximum(tf.cast(ids, tf.int64), 0), self.size)

    def call(self, ids) -> tf.Tensor:
        ids = tf.cast(ids, tf.int64)
        rows = tf.gather(self.table, self.rows(ids))
        return rows * tf.cast(ids >= 0, rows.dtype)[..., None]

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, dim=self.dim)
        return config
