"""DSSM, the two-tower creative ranker: JAC's Post-CR / Pre-CR baseline (Yang et al., AAAI 2024, Table 1).

The two towers of Huang et al. (CIKM 2013) as used for creative selection: one over the user (the simple CR
user features), one over the ad and its creative. Their only interaction is a cosine, so the creative
vectors can be computed ahead of a request and a request costs one user-tower pass plus a dot product per
creative -- the reason a serving system would choose it over CR's MLP.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from transform import names as N
from trainer.embeddings import CategoricalEmbeddings, prior_logit_initializer

USER_INPUTS = N.CR_USER_CATEGORICAL
CREATIVE_CATEGORICAL = N.CR_AD_CATEGORICAL + N.CR_CREATIVE_CATEGORICAL
CREATIVE_INPUTS = CREATIVE_CATEGORICAL + N.CR_DENSE


def _tower(hidden_units: Sequence[int], output_dim: int, name: str):
    layers = [keras.layers.Dense(u, activation="relu", name=f"{name}_hidden_{i}") for i, u in enumerate(hidden_units)]
    return layers + [keras.layers.Dense(output_dim, name=f"{name}_out")]


class TwoTowerCRModel(keras.Model):
    """User tower x ad-creative tower, scored by a scaled cosine.

    .. math::

        u &= \\frac{f_u([E_{u_1}; \\dots; E_{u_5}])}{\\lVert f_u(\\cdot) \\rVert}, \\qquad
        c = \\frac{f_c([E_{ad}; E_{creative}; v])}{\\lVert f_c(\\cdot) \\rVert} \\\\
        \\mathrm{logit} &= s \\, u^\\top c + b, \\qquad pctr_c = \\sigma(\\mathrm{logit})

    :math:`f_u, f_c` are ReLU MLPs (``hidden_units``) with a linear ``output_dim`` layer; :math:`E` are
    dimension-``embedding_dim`` embeddings of the CR user codes (user tower) and of the ad features, the
    creative id and its attributes (creative tower), :math:`v` the content embedding. The scale :math:`s`
    (from ``initial_scale``) and the bias :math:`b` (from the log-odds of ``initial_ctr``) are learned: the
    cosine alone lies in [-1, 1]. The model ignores the pctr input the other CRs read.

    Shapes: ``user_vectors(features)`` ``[n, d]`` (``n`` = the user inputs' batch, 1 for a request's single
    user); ``creative_vectors(features)`` ``[B, d]``; ``call(features, pctr=None)`` the logit ``[B]``, the
    user vectors broadcast over the rows.
    """

    feature_names = USER_INPUTS + CREATIVE_INPUTS

    def __init__(self, cardinalities: Mapping[str, int], embedding_dim: int = 8,
                 hidden_units: Sequence[int] = (32,), output_dim: int = 16, initial_scale: float = 5.0,
                 initial_ctr: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        self.cardinalities = {n: int(cardinalities[n]) for n in USER_INPUTS + CREATIVE_CATEGORICAL}
        self.embedding_dim = int(embedding_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.output_dim = int(output_dim)
        self.initial_scale = float(initial_scale)
        self.initial_ctr = initial_ctr
        self.user_embeddings = CategoricalEmbeddings(self.cardinalities, USER_INPUTS, self.embedding_dim,
                                                     name="user_embeddings")
        self.creative_embeddings = CategoricalEmbeddings(self.cardinalities, CREATIVE_CATEGORICAL,
                                                         self.embedding_dim, name="creative_embeddings")
        self.user_tower = _tower(self.hidden_units, self.output_dim, "user")
        self.creative_tower = _tower(self.hidden_units, self.output_dim, "creative")
        self.scale = self.add_weight(name="logit_scale", shape=(),
                                     initializer=keras.initializers.Constant(self.initial_scale))
        self.bias = self.add_weight(name="logit_bias", shape=(), initializer=prior_logit_initializer(initial_ctr))

    @staticmethod
    def _run(layers, x):
        for layer in layers:
            x = layer(x)
        return tf.math.l2_normalize(x, axis=1)

    def user_vectors(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        return self._run(self.user_tower, self.user_embeddings(features))

    def creative_vectors(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        dense = [tf.cast(features[n], tf.float32) for n in N.CR_DENSE]
        return self._run(self.creative_tower, tf.concat([self.creative_embeddings(features)] + dense, axis=1))

    def logit(self, user: tf.Tensor, creative: tf.Tensor) -> tf.Tensor:
        """``s * <u, c> + b`` for unit vectors ``user`` ``[1 or B, d]`` and ``creative`` ``[B, d]``."""
        return self.scale * tf.reduce_sum(user * creative, axis=1) + self.bias

    def call(self, features: Mapping[str, tf.Tensor], pctr: Optional[tf.Tensor] = None, training=None) -> tf.Tensor:
        return self.logit(self.user_vectors(features), self.creative_vectors(features))

    def get_config(self):
        return {"cardinalities": dict(self.cardinalities), "embedding_dim": self.embedding_dim,
                "hidden_units": list(self.hidden_units), "output_dim": self.output_dim,
                "initial_scale": self.initial_scale, "initial_ctr": self.initial_ctr, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
