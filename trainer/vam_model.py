"""VAM, the visual prior of the hybrid bandit (Wang et al., WWW 2021): a creative's content -> z and a score.

Following the authors' code (github.com/alimama-creative/A_Hybrid_Bandit_Model_with_Visual_Priors_for_Creative_Ranking,
``CreativeRanking/VAM``): the network's last layer has ``dim`` = 10 outputs z, the score is their mean, and
it is trained list-wise over each ad's creatives (ListNet) with a point-wise auxiliary term:

.. math::

    \\mathrm{sCTR}_k = \\frac{c_k + \\alpha}{n_k + \\alpha + \\beta}, \\qquad
    p_k = \\mathrm{softmax}_k(1000\\,\\mathrm{sCTR}), \\qquad
    L = -\\sum_k p_k \\log \\mathrm{softmax}_k(s) + \\tfrac12 \\,\\mathrm{mean}_k (s_k - 100\\,\\mathrm{sCTR}_k)^2

Differences from the authors: their network is a ResNet-18 over the image; ours an MLP over the simulator's
stand-in for it (the four creative attribute codes and the content embedding). They sample lists of 3
creatives per ad, ads weighted by log(impressions); we train on every ad's whole list (padded, masked,
ads uniform). Their MSE also counts the zero-padded list slots; ours only real creatives. Creatives with fewer
than ``min_impressions`` impressions are left out (theirs: 60): on the default simulation (~6 impressions a
creative, CTR ~2.4%) a creative needs ~40 impressions for one expected click, and 60 would leave 73 ads with
two creatives; 10 keeps ~600 ads (3,200 creatives, 62% of the impressions) while dropping the creatives whose
smoothed CTR is the prior shrunk by their impression count alone.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from transform import names as N
from trainer.creative_log import ATTRIBUTES, CreativeLog
from trainer.embeddings import CategoricalEmbeddings

INPUTS = ATTRIBUTES + N.CR_DENSE
RANK_TEMPERATURE = 1000.0  # labels softmax(1000 sCTR)
POINT_SCALE = 100.0  # the point-wise target 100 sCTR, and z / 100 as the bandit's regression features
POINT_WEIGHT = 0.5


class VisualPriorModel(keras.Model):
    """z = MLP([E_style; E_tone; E_price_tag; E_text; v]) in R^dim; score = mean(z).

    Shapes: ``call(features)`` takes :data:`INPUTS` (codes ``[B]``, embedding ``[B, 8]``) and returns z ``[B, dim]``;
    :meth:`score` maps z to ``[B]``. Trained by :func:`fit_visual_prior` (``train_step`` reads padded lists).
    """

    feature_names = INPUTS

    def __init__(self, cardinalities: Mapping[str, int], dim: int = 10, embedding_dim: int = 4,
                 hidden_units: Sequence[int] = (32,), **kwargs):
        super().__init__(**kwargs)
        self.cardinalities = {n: int(cardinalities[n]) for n in ATTRIBUTES}
        self.dim = int(dim)
        self.embedding_dim = int(embedding_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.embeddings = CategoricalEmbeddings(self.cardinalities, ATTRIBUTES, self.embedding_dim, name="embeddings")
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"hidden_{i}")
                       for i, u in enumerate(self.hidden_units)]
        self.out = keras.layers.Dense(self.dim, name="z")

    def call(self, features: Mapping[str, tf.Tensor], training=None) -> tf.Tensor:
        x = tf.concat([self.embeddings(features)] + [tf.cast(features[n], tf.float32) for n in N.CR_DENSE], axis=1)
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)

    @staticmethod
    def score(z: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(z, axis=-1)

    def train_step(self, lists):
        shape = tf.shape(lists["mask"])
        flat = {n: tf.reshape(lists[n], [-1]) for n in ATTRIBUTES}
        for n in N.CR_DENSE:
            flat[n] = tf.reshape(lists[n], [-1, lists[n].shape[-1]])
        with tf.GradientTape() as tape:
            scores = tf.reshape(self.score(self(flat, training=True)), shape)
            rank, point = listwise_losses(scores, lists["sctr"], lists["mask"])
            loss = rank + POINT_WEIGHT * point
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss, "rank_loss": rank, "point_loss": point}

    def get_config(self):
        return {"cardinalities": dict(self.cardinalities), "dim": self.dim, "embedding_dim": self.embedding_dim,
                "hidden_units": list(self.hidden_units), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def listwise_losses(scores: tf.Tensor, sctr: tf.Tensor, mask: tf.Tensor):
    """(rank loss, point loss) of ``[A, L]`` scores against smoothed CTRs over the real (``mask`` = 1) slots.

    rank: :math:`-\\frac1A \\sum_a \\sum_k p_{ak} \\log \\mathrm{softmax}(s_a)_k` with
    :math:`p_a = \\mathrm{softmax}(1000\\,\\mathrm{sCTR}_a)` over the real slots; point: the mean over real
    slots of :math:`(s - 100\\,\\mathrm{sCTR})^2`.
    """
    mask = tf.cast(mask, tf.float32)
    neg = tf.fill(tf.shape(scores), -1e9)
    real = mask > 0
    labels = tf.nn.softmax(tf.where(real, RANK_TEMPERATURE * sctr, neg), axis=1) * mask
    log_probs = tf.nn.log_softmax(tf.where(real, scores, neg), axis=1)
    rank = -tf.reduce_mean(tf.reduce_sum(labels * tf.where(real, log_probs, 0.0), axis=1))
    point = tf.reduce_sum(tf.square(scores - POINT_SCALE * sctr) * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
    return rank, point


@dataclasses.dataclass(frozen=True)
class CreativeLists:
    """Each ad's creatives as one padded list: attributes ``[A, L, 4]``, embedding ``[A, L, 8]``, sCTR and mask ``[A, L]``."""

    attributes: np.ndarray
    embedding: np.ndarray
    sctr: np.ndarray
    mask: np.ndarray

    def __len__(self):
        return len(self.mask)


def creative_lists(log: CreativeLog, alpha: float, beta: float, min_impressions: int) -> CreativeLists:
    """The visual prior's training lists: per ad, its known creatives with ``min_impressions`` or more
    impressions, ads with at least two of them; labels smoothed as (clicks + alpha) / (impressions + alpha + beta)."""
    keep = log.known_creative & (log.impressions >= min_impressions)
    ads, counts = np.unique(log.ad[keep], return_counts=True)
    ads = ads[counts >= 2]
    rows = np.flatnonzero(keep & np.isin(log.ad, ads))
    rows = rows[np.argsort(log.ad[rows], kind="stable")]
    _, starts, lengths = np.unique(log.ad[rows], return_index=True, return_counts=True)
    width = int(lengths.max()) if len(lengths) else 0
    slot = np.arange(len(rows)) - np.repeat(starts, lengths)
    which = np.repeat(np.arange(len(starts)), lengths)
    attrs = np.zeros((len(starts), width, len(ATTRIBUTES)), np.int64)
    emb = np.zeros((len(starts), width, log.embedding.shape[1]), np.float32)
    sctr = np.zeros((len(starts), width), np.float32)
    mask = np.zeros((len(starts), width), np.float32)
    attrs[which, slot] = log.attributes[rows]
    emb[which, slot] = log.embedding[rows]
    sctr[which, slot] = (log.clicks[rows] + alpha) / (log.impressions[rows] + alpha + beta)
    mask[which, slot] = 1.0
    return CreativeLists(attrs, emb, sctr, mask)


def fit_visual_prior(model: VisualPriorModel, lists: CreativeLists, steps: int, batch_ads: int,
                     learning_rate: float, seed: Optional[int] = 0) -> dict:
    """Trains ``model`` list-wise for ``steps`` batches of ``batch_ads`` lists (Adam); returns the last losses.

    Raises ``ValueError`` when there are no lists (no ad has two creatives above the impression threshold).
    """
    if not len(lists):
        raise ValueError("the visual prior has no training lists: no ad has two known creatives with enough "
                         "impressions (lower JACConfig.vam_min_impressions)")
    data = {n: lists.attributes[:, :, i] for i, n in enumerate(ATTRIBUTES)}
    data.update({n: lists.embedding for n in N.CR_DENSE})
    data.update({"sctr": lists.sctr, "mask": lists.mask})
    ds = (tf.data.Dataset.from_tensor_slices(data).shuffle(len(lists), seed=seed).repeat()
          .batch(min(batch_ads, len(lists))))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    history = model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return {k: float(v[-1]) for k, v in history.history.items()}
