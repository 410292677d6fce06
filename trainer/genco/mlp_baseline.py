r"""The MLP baseline of Gu et al., 2025 (Table 2, "+MLP"): an MLP predicts the CTR of a whole combination.

.. math::
    \hat y(c) = \sigma\big(\mathrm{MLP}([x_i;\ e_{1,c_1};\ \dots;\ e_{m,c_m}])\big)

with :math:`x_i` the :class:`~trainer.genco.context_features.ContextFeatures` and :math:`e_{j,c_j}` the chosen
element's :class:`~trainer.genco.element_embedding.ElementEmbedding` (zeros for a component the ad lacks), the
same inputs GenCO reads; trained with cross-entropy on the logged combinations. To select, it scores
candidate combinations and returns the best: **every** combination where the ad's space has at most
``max_combinations`` of them, ``max_combinations`` uniformly drawn ones where it is larger
(:func:`trainer.genco.sampling.enumerate_or_sample`); :meth:`CombinationMLP.select` reports which rows were
exhaustive.
"""

from __future__ import annotations

from typing import Dict, Mapping

import tensorflow as tf
import tf_keras as keras

import features as F
from transform import genco as G
from trainer.genco import sampling
from trainer.genco.config import GenCOConfig
from trainer.genco.context_features import ContextFeatures
from trainer.genco.element_embedding import M, ElementEmbedding, pools
from trainer.embeddings import prior_logit_initializer
from trainer.genco.losses import combination_loss


class CombinationMLP(keras.Model):
    """The MLP combination scorer (see the module docstring).

    Args:
      config: a :class:`~trainer.genco.config.GenCOConfig`: its ``embedding_dim``, ``scorer_units`` (hidden
        layers, ReLU) and training settings.
      hash_sizes: as :class:`~trainer.genco.model.GenCOModel`'s.
      max_combinations: the largest combination space scored exhaustively (and the samples of larger ones).
    """

    def __init__(self, config: GenCOConfig, hash_sizes: Mapping[str, int], max_combinations: int = 256, **kwargs):
        kwargs.setdefault("name", "mlp")
        super().__init__(**kwargs)
        self.config = config
        self.hash_sizes = {k: int(hash_sizes[k]) for k in G.HASHED}
        self.max_combinations = int(max_combinations)
        self.context_features = ContextFeatures(self.hash_sizes, config.embedding_dim, name="context_features")
        self.element_embedding = ElementEmbedding(self.hash_sizes, config.embedding_dim, name="element_embedding")
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"dense_{i}")
                       for i, u in enumerate(config.scorer_units)]
        self.out = keras.layers.Dense(1, name="logit", bias_initializer=prior_logit_initializer(config.initial_ctr))
        self._loss = keras.metrics.Mean(name="loss")
        self._auc = keras.metrics.AUC(name="auc", num_thresholds=1000)

    def logits(self, features: Mapping[str, tf.Tensor], combinations: tf.Tensor) -> tf.Tensor:
        """[B, K] logits of ``combinations [B, K, m]``."""
        _, _, mask = pools(features[G.POOL_IDS], features[G.POOL_STYLES])
        e = self.element_embedding(features[G.POOL_IDS], features[G.POOL_STYLES])  # [B, m, N, d]
        index = tf.transpose(tf.maximum(combinations, 0), [0, 2, 1])
        chosen = tf.transpose(tf.gather(e, index, axis=2, batch_dims=2), [0, 2, 1, 3])  # [B, K, m, d]
        chosen = chosen * tf.cast(combinations >= 0, tf.float32)[..., None]
        k = tf.shape(combinations)[1]
        chosen = tf.reshape(chosen, [-1, k, M * e.shape[-1]])
        context = tf.repeat(self.context_features(features, mask)[:, None, :], k, axis=1)
        x = tf.concat([context, chosen], axis=-1)
        for layer in self.hidden:
            x = layer(x)
        return tf.squeeze(self.out(x), axis=-1)

    def call(self, features, training=None):
        return self.logits(features, tf.cast(features[G.LOGGED], tf.int64)[:, None, :])[:, 0]

    def select(self, features: Mapping[str, tf.Tensor], seed=None) -> Dict[str, tf.Tensor]:
        """``{"chosen": [B, m], "score": [B], "exhaustive": [B] bool}`` (see the module docstring)."""
        _, _, mask = pools(features[G.POOL_IDS], features[G.POOL_STYLES])
        if seed is None:
            seed = sampling.seed_of(features[F.USER_ID], features[F.AD_ID], base=self.config.seed)
        candidates, exhaustive = sampling.enumerate_or_sample(mask, self.max_combinations, seed)
        s = self.logits(features, candidates)
        best = tf.argmax(s, axis=1, output_type=tf.int64)
        return {"chosen": tf.gather(candidates, best, axis=1, batch_dims=1),
                "score": tf.sigmoid(tf.gather(s, best, axis=1, batch_dims=1)), "exhaustive": exhaustive}

    @property
    def metrics(self):
        return [self._loss, self._auc]

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        features, labels = data
        with tf.GradientTape() as tape:
            logits = self(features, training=True)
            loss = combination_loss(labels, logits)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.trainable_variables), self.trainable_variables))
        self._loss.update_state(loss)
        self._auc.update_state(tf.reshape(labels, [-1]), tf.sigmoid(logits))
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {"config": self.config.to_dict(), "hash_sizes": dict(self.hash_sizes),
                "max_combinations": self.max_combinations, "name": self.name}
