"""Beta-Bernoulli Thompson sampling per creative: the context-free bandit baseline beside VAM-HBM.

As the ``thompson`` strategy of Wang et al.'s code (WWW 2021; github.com/alimama-creative/
A_Hybrid_Bandit_Model_with_Visual_Priors_for_Creative_Ranking, ``CreativeRanking/HBM/bandit.py``), whose
prior Beta(3.43, 109.78) was fitted to their data; ours is fitted to the training log by maximum likelihood
(:func:`trainer.creative_log.fit_beta_prior`):

.. math::

    \\theta_k \\sim \\mathrm{Beta}(\\alpha_0, \\beta_0), \\qquad
    \\theta_k \\mid \\text{log} \\sim \\mathrm{Beta}(\\alpha_0 + c_k, \\beta_0 + n_k - c_k),

with :math:`n_k, c_k` creative :math:`k`'s impressions and clicks. A request is scored with one draw of
:math:`\\theta_k` per row (``thompson_pctr``) or the posterior mean :math:`\\alpha_k / (\\alpha_k + \\beta_k)`.
A creative never seen (or pooled in an OOV bucket) gets the prior: it knows nothing but the base rate.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer import thompson
from trainer.creative_log import CREATIVE_INDEX, CreativeLog, fit_beta_prior


class BetaThompsonCRModel(keras.Model):
    """Per-creative Beta posteriors ``alpha``, ``beta`` ``[V]`` (non-trainable weights, all at the prior first).

    Shapes: features hold the transformed creative id ``[B]``; ``mean_pctr`` / ``thompson_pctr(features, seed)``
    ``[B]``; ``call(features, pctr=None)`` the logit of the posterior mean.
    """

    feature_names = (CREATIVE_INDEX,)

    def __init__(self, cardinalities: Mapping[str, int], prior: Tuple[float, float] = (1.0, 40.0), **kwargs):
        super().__init__(**kwargs)
        self.rows = int(cardinalities[CREATIVE_INDEX])
        self.cardinalities = {CREATIVE_INDEX: self.rows}
        self.prior = (float(prior[0]), float(prior[1]))
        self.prior_weight = self.add_weight(name="prior", shape=(2,), trainable=False,
                                            initializer=keras.initializers.Constant(self.prior))
        self.alpha = self.add_weight(name="alpha", shape=(self.rows,), trainable=False,
                                     initializer=keras.initializers.Constant(self.prior[0]))
        self.beta = self.add_weight(name="beta", shape=(self.rows,), trainable=False,
                                    initializer=keras.initializers.Constant(self.prior[1]))

    def _rows(self, features):
        return tf.reshape(features[CREATIVE_INDEX], [-1])

    def mean_pctr(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        a, b = (tf.gather(v, self._rows(features)) for v in (self.alpha, self.beta))
        return a / (a + b)

    def thompson_pctr(self, features: Mapping[str, tf.Tensor], seed: tf.Tensor) -> tf.Tensor:
        """:math:`\\theta = G_a / (G_a + G_b)` with :math:`G_a \\sim \\Gamma(\\alpha_k)`, :math:`G_b \\sim \\Gamma(\\beta_k)`."""
        rows = self._rows(features)
        shape = tf.shape(rows)
        ga = tf.random.stateless_gamma(shape, thompson.salted(seed, 1), alpha=tf.gather(self.alpha, rows))
        gb = tf.random.stateless_gamma(shape, thompson.salted(seed, 2), alpha=tf.gather(self.beta, rows))
        return ga / (ga + gb)

    def call(self, features: Mapping[str, tf.Tensor], pctr=None, training=None) -> tf.Tensor:
        a, b = (tf.gather(v, self._rows(features)) for v in (self.alpha, self.beta))
        return tf.math.log(a) - tf.math.log(b)  # logit of a / (a + b)

    def posterior_variables(self) -> Dict[str, tf.Variable]:
        return {"alpha": self.alpha, "beta": self.beta, "prior": self.prior_weight}

    def get_config(self):
        return {"cardinalities": dict(self.cardinalities), "prior": list(self.prior), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def fit_beta_thompson(model: BetaThompsonCRModel, log: CreativeLog,
                      start: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Adds each known creative's clicks and non-clicks of ``log`` to ``start`` (default: the prior fitted to
    ``log``, which also becomes the model's prior for unseen creatives); assigns and returns (alpha, beta)."""
    known = log.known_creative
    clicks = np.bincount(log.creative[known], log.clicks[known], model.rows)
    impressions = np.bincount(log.creative[known], log.impressions[known], model.rows)
    if start is None:
        model.prior = fit_beta_prior(clicks[impressions > 0], impressions[impressions > 0])
        start = (np.full(model.rows, model.prior[0]), np.full(model.rows, model.prior[1]))
    alpha, beta = start[0] + clicks, start[1] + impressions - clicks
    model.prior_weight.assign(np.asarray(model.prior, np.float32))
    model.alpha.assign(alpha.astype(np.float32))
    model.beta.assign(beta.astype(np.float32))
    return alpha, beta


def carried_state(saved, model: BetaThompsonCRModel, creative_keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A previous run's (alpha, beta) on this run's creative table, by raw id (its prior for unseen ids); the
    model takes over the previous prior."""
    model.prior = tuple(float(v) for v in saved.state["prior"])
    return tuple(thompson.carry_over(saved.keys["creative"], saved.state[name], creative_keys, prior).astype(np.float64)
                 for name, prior in zip(("alpha", "beta"), model.prior))
