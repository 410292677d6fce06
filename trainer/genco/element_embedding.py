r"""Element embeddings: an element's hashed id plus its style, one table of each per component.

.. math::
    e_{j,k} = E^{(j)}_{x_{j,k} \bmod H_j} + T_{j, s_{j,k}} \quad \text{(real candidates)}, \qquad
    e_{j,k} = 0 \quad \text{(padding)},

with :math:`E^{(j)}` component :math:`j`'s :class:`~trainer.genco.hash_embedding.HashEmbedding` (:math:`H_j`
its distinct training ids) and :math:`T` a table of ``m * (S + 1)`` style rows (the styles of every component
and an out-of-domain code each).

Shapes: ids and styles ``[B, m, N]`` (or flattened ``[B, m*N]``) -> ``[B, m, N, d]``.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras as keras

import features as F
from trainer.genco.hash_embedding import HashEmbedding

M, N = len(F.GENCO_COMPONENTS), F.GENCO_MAX_CANDIDATES
STYLE_CODES = F.GENCO_NUM_STYLES + 1  # the styles and the out-of-domain code


def pools(ids, styles):
    """``(ids, styles)`` as int64 ``[B, m, N]`` and the ``[B, m, N]`` bool mask of real candidates."""
    ids = tf.reshape(tf.cast(ids, tf.int64), [-1, M, N])
    return ids, tf.reshape(tf.cast(styles, tf.int64), [-1, M, N]), ids >= 0


class ElementEmbedding(keras.layers.Layer):
    """``(ids, styles) -> [B, m, N, d]`` (see the module docstring).

    Args:
      hash_sizes: rows of each component's id table, by ``features.GENCO_COMPONENTS`` name.
      dim: the embedding size.
    """

    def __init__(self, hash_sizes: Mapping[str, int], dim: int, **kwargs):
        super().__init__(**kwargs)
        self.hash_sizes = {c: int(hash_sizes[c]) for c in F.GENCO_COMPONENTS}
        self.dim = int(dim)
        self.ids = [HashEmbedding(self.hash_sizes[c], self.dim, name=f"{c}_ids") for c in F.GENCO_COMPONENTS]
        self.styles = keras.layers.Embedding(M * STYLE_CODES, self.dim, name="styles")

    def call(self, ids, styles):
        ids, styles, mask = pools(ids, styles)
        rows = tf.range(M, dtype=tf.int64)[None, :, None] * STYLE_CODES + tf.maximum(styles, 0)
        e = tf.stack([table(ids[:, j]) for j, table in enumerate(self.ids)], axis=1)
        return e + self.styles(rows) * tf.cast(mask, tf.float32)[..., None]

    def get_config(self):
        config = super().get_config()
        config.update(hash_sizes=dict(self.hash_sizes), dim=self.dim)
        return config
