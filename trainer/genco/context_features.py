r"""The context features of an impression: what the context encoder (and the MLP baseline) reads.

.. math::
    x_i = \big[E^{user}_{u \bmod H_u};\ T^{gender}_{g};\ T^{age}_{a};\ E^{ad}_{ad \bmod H_a};\ T^{cat}_{k};\
          n_{i,1}/N, \dots, n_{i,m}/N;\ [1 \in J_i], \dots, [m \in J_i]\big]

the user's hashed id, gender and age bucket, the ad's hashed id and category (request features of Gu et al.,
2025, without the query, which the simulated world does not have) and the candidate-pool statistics
:math:`\mathrm{stat}(S_{i,j})`: each pool's size relative to the padding and whether the ad has the component.

Shapes: ``features`` with the context ids and codes ``[B]`` (user features may have batch 1: broadcast) and
the pool mask ``[B, m, N]`` -> ``[B, 5 d + 2 m]``.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras as keras

import features as F
from transform import genco as G
from trainer.genco.hash_embedding import HashEmbedding


class ContextFeatures(keras.layers.Layer):
    """``(features, mask [B, m, N]) -> [B, 5 d + 2 m]`` (see the module docstring)."""

    def __init__(self, hash_sizes: Mapping[str, int], dim: int, **kwargs):
        super().__init__(**kwargs)
        self.hash_sizes = {k: int(hash_sizes[k]) for k in G.CONTEXT_IDS}
        self.dim = int(dim)
        self.ids = {k: HashEmbedding(self.hash_sizes[k], self.dim, name=k) for k in G.CONTEXT_IDS}
        self.codes = {k: keras.layers.Embedding(F.BY_NAME[k].domain + 1, self.dim, name=k) for k in G.CONTEXT_CODES}

    def call(self, features: Mapping[str, tf.Tensor], mask: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(mask)[0]
        parts = [self.ids[k](tf.reshape(features[k], [-1])) for k in G.CONTEXT_IDS]
        parts += [self.codes[k](tf.reshape(features[k], [-1])) for k in G.CONTEXT_CODES]
        parts = [tf.broadcast_to(x, [batch, self.dim]) for x in parts]  # user features sent once per request
        counts = tf.reduce_sum(tf.cast(mask, tf.float32), axis=-1)
        return tf.concat(parts + [counts / mask.shape[-1], tf.cast(counts > 0, tf.float32)], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(hash_sizes=dict(self.hash_sizes), dim=self.dim)
        return config
