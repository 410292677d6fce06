"""HBM, the hierarchical Bayesian model of the VAM-HBM hybrid bandit (Wang et al., WWW 2021).

Follows the authors' code (github.com/alimama-creative/A_Hybrid_Bandit_Model_with_Visual_Priors_for_Creative_Ranking,
``CreativeRanking/HBM/bandit.py``, ``hybrid_model``). Each impression of a creative with visual-prior vector
:math:`z` (``trainer.vam_model``) is a regression row :math:`x = z / 100`, :math:`y` = its click, in a
Bayesian linear regression with a Normal-Inverse-Gamma prior

.. math::

    y \\mid x, \\beta, \\sigma^2 \\sim N(x^\\top\\beta, \\sigma^2), \\qquad
    \\beta \\mid \\sigma^2 \\sim N(\\mu_0, \\sigma^2 \\Lambda_0^{-1}), \\qquad \\sigma^2 \\sim IG(a_0, b_0),

kept at two levels: one regression per creative (its own impressions) and one per ad ("item", pooling its
creatives). The textbook conjugate update after a batch :math:`(X, y)` of :math:`n` rows is

.. math::

    \\Lambda_n = \\Lambda_0 + X^\\top X, \\quad \\mu_n = \\Lambda_n^{-1}(\\Lambda_0\\mu_0 + X^\\top y), \\quad
    a_n = a_0 + \\tfrac n2, \\quad b_n = b_0 + \\tfrac12 (y^\\top y + \\mu_0^\\top\\Lambda_0\\mu_0 - \\mu_n^\\top\\Lambda_n\\mu_n),

and applying it day after day equals applying it once to all days (the posterior is the next day's prior).
A creative is scored by blending the levels, :math:`s = (1 - w)\\, x^\\top\\beta_{ad} + w\\, x^\\top\\beta_c` with
:math:`w = \\sigma((n_{ad} - 150) / 50)`, :math:`n_{ad}` the ad's impressions: new ads lean on the pooled
(and, through :math:`\\mu_0 = 0.1\\cdot 1`, on the visual prior's own score :math:`\\bar z / 100`), ads with
traffic on each creative's own data. Thompson sampling draws :math:`\\sigma^2 \\sim IG(a_n, b_n)`,
:math:`\\beta \\sim N(\\mu_n, \\sigma^2\\Lambda_n^{-1})`; the posterior mean uses :math:`\\mu_n`.

Where the authors' code differs from the textbook update (kept textbook here): its :math:`b_n` adds
:math:`\\mu_0^\\top \\Sigma_0 \\mu_0` with the prior *covariance* :math:`\\Sigma_0 = 4I` instead of the precision
:math:`\\Lambda_0 = 0.25 I`; it recomputes each day's posterior from the prior and all days so far (the same
thing, given conjugacy); its blend weight counts the ad's impressions of the current day as they accrue (ours:
up to the last update); and it draws one :math:`\\beta` vector per creative per impression, where we draw the
exact marginal :math:`x^\\top\\beta_c \\sim N(x^\\top\\mu_c, \\sigma^2 x^\\top\\Lambda_c^{-1}x)` per row (same
distribution) and one :math:`\\beta_{ad}` per ad per request (as theirs, shared by the ad's creatives).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer import thompson
from trainer.creative_log import AD_INDEX, ATTRIBUTES, CREATIVE_INDEX, CreativeLog
from trainer.vam_model import INPUTS as VAM_INPUTS
from trainer.vam_model import POINT_SCALE, VisualPriorModel

PCTR_FLOOR = 1e-6  # the blended score is a linear-probability CTR: clipped into (0, 1) for the log-loss


# ----------------------------------------------------------------------------------------- NIG algebra
@dataclasses.dataclass
class NIGPosterior:
    """Normal-Inverse-Gamma parameters of ``G`` independent regressions of dimension ``d``.

    ``mean`` ``[G, d]``, ``precision`` ``[G, d, d]``, ``a``, ``b`` ``[G]`` (float64).
    """

    mean: np.ndarray
    precision: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @classmethod
    def prior(cls, groups: int, dim: int, mean: float, precision: float, a: float, b: float) -> "NIGPosterior":
        """:math:`\\mu_0 = m\\,1`, :math:`\\Lambda_0 = \\lambda I`, :math:`a_0`, :math:`b_0` for every group."""
        return cls(np.full((groups, dim), mean, np.float64), np.tile(precision * np.eye(dim), (groups, 1, 1)),
                   np.full(groups, a, np.float64), np.full(groups, b, np.float64))

    def update(self, xtx: np.ndarray, xty: np.ndarray, yty: np.ndarray, n: np.ndarray) -> "NIGPosterior":
        """The textbook conjugate update with the batch statistics :math:`X^\\top X, X^\\top y, y^\\top y, n`."""
        precision = self.precision + xtx
        mean = np.linalg.solve(precision, (np.einsum("gij,gj->gi", self.precision, self.mean) + xty)[..., None])[..., 0]
        quad_prior = np.einsum("gi,gij,gj->g", self.mean, self.precision, self.mean)
        quad_post = np.einsum("gi,gij,gj->g", mean, precision, mean)
        return NIGPosterior(mean, precision, self.a + 0.5 * n, self.b + 0.5 * (yty + quad_prior - quad_post))

    def covariance_cholesky(self) -> np.ndarray:
        """``[G, d, d]`` lower-triangular :math:`L` with :math:`L L^\\top = \\Lambda^{-1}` (for sampling)."""
        return np.linalg.cholesky(np.linalg.inv(self.precision))


def regression_stats(x: np.ndarray, impressions: np.ndarray, clicks: np.ndarray, group: np.ndarray,
                     groups: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-group :math:`X^\\top X, X^\\top y, y^\\top y, n` of rows given as (x, impressions, clicks) aggregates.

    A creative group with features ``x`` shown ``n`` times with ``c`` clicks is ``n`` identical rows of which
    ``c`` have y = 1: it adds :math:`n\\,xx^\\top`, :math:`c\\,x`, :math:`c` (clicks are 0/1) and :math:`n`.
    """
    x = np.asarray(x, np.float64)
    n, c = np.asarray(impressions, np.float64), np.asarray(clicks, np.float64)
    xtx = np.zeros((groups, x.shape[1], x.shape[1]))
    np.add.at(xtx, group, n[:, None, None] * x[:, :, None] * x[:, None, :])
    xty = np.zeros((groups, x.shape[1]))
    np.add.at(xty, group, c[:, None] * x)
    return xtx, xty, np.bincount(group, c, groups), np.bincount(group, n, groups)


def blend_weight(item_impressions, center: float = 150.0, width: float = 50.0):
    """The creative level's weight :math:`w = \\sigma((n_{ad} - c) / s)`."""
    return tf.sigmoid((tf.cast(item_impressions, tf.float32) - center) / width)


# --------------------------------------------------------------------------------------- the CR model
class PosteriorTable(keras.layers.Layer):
    """One NIG posterior per row (a transformed id), as non-trainable weights, and its scores.

    Weights: ``mean`` ``[V, d]``, ``precision`` and ``cov_chol`` ``[V, d, d]``, ``a``, ``b`` ``[V]``; every row
    starts at the prior (rows never updated, e.g. the OOV buckets, stay there).
    """

    def __init__(self, rows: int, dim: int, prior: Mapping[str, float], **kwargs):
        super().__init__(**kwargs)
        self.rows, self.dim, self.prior = int(rows), int(dim), dict(prior)
        start = NIGPosterior.prior(1, self.dim, **self.prior)
        init = {"mean": start.mean[0], "precision": start.precision[0], "cov_chol": start.covariance_cholesky()[0],
                "a": start.a[0], "b": start.b[0]}
        self.state: Dict[str, tf.Variable] = {}
        for name, value in init.items():
            tiled = np.broadcast_to(value.astype(np.float32), (self.rows,) + value.shape)
            self.state[name] = self.add_weight(name=name, shape=tiled.shape, trainable=False,
                                               initializer=keras.initializers.Constant(tiled))

    def assign(self, posterior: NIGPosterior) -> None:
        values = {"mean": posterior.mean, "precision": posterior.precision,
                  "cov_chol": posterior.covariance_cholesky(), "a": posterior.a, "b": posterior.b}
        for name, value in values.items():
            self.state[name].assign(np.asarray(value, np.float32))

    def read(self) -> NIGPosterior:
        s = {k: v.numpy().astype(np.float64) for k, v in self.state.items()}
        return NIGPosterior(s["mean"], s["precision"], s["a"], s["b"])

    def mean_score(self, rows: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        """:math:`x^\\top \\mu` per row ``[B]``."""
        return tf.reduce_sum(x * tf.gather(self.state["mean"], rows), axis=1)

    def sampled_score(self, rows: tf.Tensor, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """A draw of :math:`x^\\top\\beta` per row, independent across rows (the exact marginal)."""
        batch = tf.shape(rows)
        s2 = thompson.inverse_gamma(batch, thompson.salted(seed, 1), tf.gather(self.state["a"], rows),
                                    tf.gather(self.state["b"], rows))
        lt_x = tf.einsum("bji,bj->bi", tf.gather(self.state["cov_chol"], rows), x)
        sd = tf.sqrt(s2 * tf.reduce_sum(tf.square(lt_x), axis=1))
        return self.mean_score(rows, x) + sd * tf.random.stateless_normal(batch, thompson.salted(seed, 2))

    def shared_sampled_score(self, rows: tf.Tensor, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """:math:`x^\\top\\beta` with one draw of :math:`\\beta` per distinct row id (shared by its rows)."""
        ids, where = tf.unique(rows)
        s2 = thompson.inverse_gamma(tf.shape(ids), thompson.salted(seed, 3), tf.gather(self.state["a"], ids),
                                    tf.gather(self.state["b"], ids))
        eps = tf.random.stateless_normal([tf.shape(ids)[0], self.dim], thompson.salted(seed, 4))
        beta = tf.gather(self.state["mean"], ids) + tf.sqrt(s2)[:, None] * tf.einsum(
            "uij,uj->ui", tf.gather(self.state["cov_chol"], ids), eps)
        return tf.reduce_sum(x * tf.gather(beta, where), axis=1)


class HybridBanditCRModel(keras.Model):
    """VAM-HBM as a creative ranker: visual prior z, creative- and ad-level NIG posteriors, their blend.

    Args:
      cardinalities: rows of the creative- and ad-id tables (the posteriors) and of the attribute codes.
      vam_dim, vam_embedding_dim, vam_hidden_units: the visual prior (``trainer.vam_model``).
      prior: ``{"mean", "precision", "a", "b"}`` of :meth:`NIGPosterior.prior`.
      blend_center, blend_width: :func:`blend_weight`.

    Shapes: features hold the transformed ad and creative ids ``[B]`` and :data:`trainer.vam_model.INPUTS`.
    ``mean_pctr(features)`` / ``thompson_pctr(features, seed)`` ``[B]``; ``call(features, pctr=None)`` the
    logit of the posterior mean (clipped to [1e-6, 1 - 1e-6]: the regression is a linear-probability model).
    The posteriors are set by :func:`fit_hybrid_bandit`, not by gradient steps.
    """

    feature_names = (AD_INDEX, CREATIVE_INDEX) + VAM_INPUTS

    def __init__(self, cardinalities: Mapping[str, int], vam_dim: int = 10, vam_embedding_dim: int = 4,
                 vam_hidden_units=(32,), prior: Optional[Mapping[str, float]] = None, blend_center: float = 150.0,
                 blend_width: float = 50.0, **kwargs):
        super().__init__(**kwargs)
        self.cardinalities = {n: int(cardinalities[n]) for n in (AD_INDEX, CREATIVE_INDEX) + ATTRIBUTES}
        self.prior = dict(prior or {"mean": 0.1, "precision": 0.25, "a": 60000.0, "b": 6.0})
        self.blend_center, self.blend_width = float(blend_center), float(blend_width)
        self.vam = VisualPriorModel(cardinalities, vam_dim, vam_embedding_dim, vam_hidden_units, name="vam")
        self.creative_posterior = PosteriorTable(self.cardinalities[CREATIVE_INDEX], vam_dim, self.prior,
                                                 name="creative_posterior")
        self.item_posterior = PosteriorTable(self.cardinalities[AD_INDEX], vam_dim, self.prior, name="item_posterior")
        self.item_impressions = self.add_weight(name="item_impressions", shape=(self.cardinalities[AD_INDEX],),
                                                initializer="zeros", trainable=False)

    def regression_features(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """x = z / 100 ``[B, d]`` (the authors' features: z is trained on 100 sCTR)."""
        return self.vam(features) / POINT_SCALE

    def _blend(self, features, item_score, creative_score):
        ads = tf.reshape(features[AD_INDEX], [-1])
        w = blend_weight(tf.gather(self.item_impressions, ads), self.blend_center, self.blend_width)
        return tf.clip_by_value((1.0 - w) * item_score + w * creative_score, PCTR_FLOOR, 1.0 - PCTR_FLOOR)

    def mean_pctr(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        x = self.regression_features(features)
        ads, creatives = (tf.reshape(features[k], [-1]) for k in (AD_INDEX, CREATIVE_INDEX))
        return self._blend(features, self.item_posterior.mean_score(ads, x),
                           self.creative_posterior.mean_score(creatives, x))

    def thompson_pctr(self, features: Mapping[str, tf.Tensor], seed: tf.Tensor) -> tf.Tensor:
        x = self.regression_features(features)
        ads, creatives = (tf.reshape(features[k], [-1]) for k in (AD_INDEX, CREATIVE_INDEX))
        return self._blend(features, self.item_posterior.shared_sampled_score(ads, x, seed),
                           self.creative_posterior.sampled_score(creatives, x, seed))

    def call(self, features: Mapping[str, tf.Tensor], pctr=None, training=None) -> tf.Tensor:
        p = self.mean_pctr(features)
        return tf.math.log(p) - tf.math.log1p(-p)

    def posterior_variables(self) -> Dict[str, tf.Variable]:
        """Every posterior weight by name (``creative_mean``, ..., ``item_b``, ``item_impressions``)."""
        out = {f"creative_{k}": v for k, v in self.creative_posterior.state.items()}
        out.update({f"item_{k}": v for k, v in self.item_posterior.state.items()})
        out["item_impressions"] = self.item_impressions
        return out

    def get_config(self):
        return {"cardinalities": dict(self.cardinalities), "vam_dim": self.vam.dim,
                "vam_embedding_dim": self.vam.embedding_dim, "vam_hidden_units": list(self.vam.hidden_units),
                "prior": dict(self.prior), "blend_center": self.blend_center, "blend_width": self.blend_width,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@dataclasses.dataclass
class HybridBanditState:
    """What a daily update carries to the next run: both posteriors and the ads' impression counts."""

    creative: NIGPosterior
    item: NIGPosterior
    item_impressions: np.ndarray


def fit_hybrid_bandit(model: HybridBanditCRModel, log: CreativeLog,
                      start: Optional[HybridBanditState] = None) -> HybridBanditState:
    """One batch update of both posteriors with the creative groups of ``log``, from ``start`` (default: the
    prior); the visual prior must already be trained (its z are the features). Assigns and returns the result.

    The creative level reads only groups of a known creative (an OOV bucket pools creatives and stays at the
    prior); the ad level reads every group of the ad.
    """
    dim = model.vam.dim
    if start is None:
        start = HybridBanditState(NIGPosterior.prior(model.creative_posterior.rows, dim, **model.prior),
                                  NIGPosterior.prior(model.item_posterior.rows, dim, **model.prior),
                                  np.zeros(model.item_posterior.rows))
    x = model.regression_features({k: tf.constant(v) for k, v in log.features().items()}).numpy()
    known = log.known_creative
    creative = start.creative.update(*regression_stats(x[known], log.impressions[known], log.clicks[known],
                                                       log.creative[known], model.creative_posterior.rows))
    item = start.item.update(*regression_stats(x, log.impressions, log.clicks, log.ad, model.item_posterior.rows))
    pv = start.item_impressions + np.bincount(log.ad, log.impressions, model.item_posterior.rows)
    model.creative_posterior.assign(creative)
    model.item_posterior.assign(item)
    model.item_impressions.assign(pv.astype(np.float32))
    return HybridBanditState(creative, item, pv)


def read_state(model: HybridBanditCRModel) -> HybridBanditState:
    return HybridBanditState(model.creative_posterior.read(), model.item_posterior.read(),
                             model.item_impressions.numpy().astype(np.float64))



def carried_state(saved, model: HybridBanditCRModel, creative_keys: np.ndarray, ad_keys: np.ndarray) -> HybridBanditState:
    """A previous run's posterior (``trainer.bandit_export.SavedPosterior``) on this run's tables, by raw id;
    ids it never saw start at the prior, and ads at zero impressions."""
    prior = NIGPosterior.prior(1, model.vam.dim, **model.prior)

    def table(prefix, old_keys, new_keys):
        rows = [thompson.carry_over(old_keys, saved.state[f"{prefix}_{field}"], new_keys, getattr(prior, field)[0])
                for field in ("mean", "precision", "a", "b")]
        return NIGPosterior(*(r.astype(np.float64) for r in rows))

    return HybridBanditState(
        table("creative", saved.keys["creative"], creative_keys), table("item", saved.keys["ad"], ad_keys),
        thompson.carry_over(saved.keys["ad"], saved.state["item_impressions"], ad_keys, 0.0).astype(np.float64))
