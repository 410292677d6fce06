r"""GenCO (Gu et al., 2025): a non-autoregressive generator of element combinations and a multi-instance
reward model sharing one scorer, trained with :math:`\mathcal L_{MIL} + \lambda \mathcal L_{RL}`.

Per impression :math:`i` (``m`` components, pools padded to ``N``):

* element embeddings :math:`e_{j,k}` (:class:`~trainer.genco.element_embedding.ElementEmbedding`: hashed id
  plus style) and component embeddings :math:`e_{C_j}`;
* context :math:`h_i` = :class:`~trainer.genco.context_encoder.ContextEncoder` over
  :class:`~trainer.genco.context_features.ContextFeatures` (user and ad, pool statistics);
* :math:`z_{j,k}` = :class:`~trainer.genco.cross_attention.CrossComponentAttention` (eq. 13);
* element features :math:`f_{e} = (e_{j,k}, e_{C_j}, z_{j,k})` (eq. 16) and logits
  :math:`p_{j,k} = \phi(h_i, f_e)` (eq. 19), softmaxed per component into the policy :math:`\pi` (eq. 15,
  :mod:`trainer.genco.sampling`);
* a combination's logit :math:`s = \phi(h_i, f_c)`, :math:`f_c = \sum_j w_{i,j} f_{e_{c_j}}`
  (:class:`~trainer.genco.mil_pooling.MILPooling`, eqs. 17-18).

Training (:mod:`trainer.genco.losses`): on each logged impression :math:`\mathcal L_{comb} + \mathcal L_{ele}
+ \lambda \mathcal L_{RL}`. Serving (eqs. 24-25, :meth:`GenCOModel.select`): K combinations drawn from
:math:`\pi`, scored by :math:`s`, the best returned. Two selection rules of the same network are the paper's
Table 2 rows "+f_ele" (the generator alone: every component's most likely element) and "+f_comb" (the reward
model alone: the best of K uniformly drawn combinations).

Ablations (Table 3, :data:`trainer.genco.config.ABLATIONS`): ``use_mil=False`` scores the mean of the element
features with a scorer of its own; ``rl_weight=0`` drops :math:`\mathcal L_{RL}`; ``use_context=False`` drops
:math:`z`.

Inputs (``features`` dicts, :mod:`transform.genco`): ``POOL_IDS`` / ``POOL_STYLES`` ``[B, m, N]`` (or flattened
``[B, m*N]``), the context ids and codes ``[B]`` (the user's may be ``[1]``: broadcast), and for training
``LOGGED [B, m]``, ``LOGGED_PROPENSITY [B, m]`` and the label.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Union

import tensorflow as tf
import tf_keras as keras

import features as F
from transform import genco as G
from trainer.genco import losses, sampling
from trainer.genco.config import GenCOConfig
from trainer.genco.context_encoder import ContextEncoder
from trainer.genco.cross_attention import CrossComponentAttention
from trainer.genco.context_features import ContextFeatures
from trainer.genco.element_embedding import ElementEmbedding, pools
from trainer.genco.mil_pooling import MILPooling
from trainer.genco.scorer import SharedScorer

M, N = G.M, G.N
# Selection rules (Gu et al., 2025, Table 2): the two-stage model and each stage alone.
GENCO, F_ELE, F_COMB = "genco", "f_ele", "f_comb"
POLICIES = (GENCO, F_ELE, F_COMB)


@dataclasses.dataclass
class Encoding:
    """One batch encoded: context, element features and logits, and the pool masks."""

    h: tf.Tensor  # [B, H]
    f: tf.Tensor  # [B, m, N, F] element features
    logits: tf.Tensor  # [B, m, N] p (not masked)
    mask: tf.Tensor  # [B, m, N] bool, real candidates
    pool_mean: tf.Tensor  # [B, m, F]

    @property
    def present(self) -> tf.Tensor:
        return sampling.present(self.mask)


class GenCOModel(keras.Model):
    """The GenCO network (see the module docstring).

    Args:
      config: a :class:`~trainer.genco.config.GenCOConfig` (or its dict).
      hash_sizes: hash embedding rows per key of :data:`transform.genco.HASHED` (user and ad ids, every
        component's element ids): the distinct ids of the training data.
    """

    def __init__(self, config: Union[GenCOConfig, Mapping], hash_sizes: Mapping[str, int], **kwargs):
        kwargs.setdefault("name", F.GENCO_MODEL_NAME)
        super().__init__(**kwargs)
        self.config = config if isinstance(config, GenCOConfig) else GenCOConfig.from_dict(config)
        missing = sorted(set(G.HASHED) - set(hash_sizes))
        if missing:
            raise ValueError(f"GenCOModel: hash_sizes lacks {missing}")
        self.hash_sizes = {k: int(hash_sizes[k]) for k in G.HASHED}
        cfg, d = self.config, self.config.embedding_dim
        self.context_features = ContextFeatures(self.hash_sizes, d, name="context_features")
        self.element_embedding = ElementEmbedding(self.hash_sizes, d, name="element_embedding")
        self.component_embedding = keras.layers.Embedding(M, d, name="component_embedding")
        self.context_encoder = ContextEncoder(cfg.context_units, name="context_encoder")
        self.attention = CrossComponentAttention(cfg.attention_dim, name="cross_attention") if cfg.use_context else None
        self.scorer = SharedScorer(cfg.scorer_units, cfg.initial_ctr, name="scorer")
        self.pooling = MILPooling(cfg.pooling_units, name="mil_pooling") if cfg.use_mil else None
        self.combination_scorer = None if cfg.use_mil else SharedScorer(cfg.scorer_units, cfg.initial_ctr,
                                                                        name="combination_scorer")
        self._trackers = {n: keras.metrics.Mean(name=n) for n in ("loss", "comb_loss", "ele_loss", "rl_loss")}
        self._auc = keras.metrics.AUC(name="comb_auc", num_thresholds=1000)

    # ------------------------------------------------------------------------------------------ encoding
    def encode(self, features: Mapping[str, tf.Tensor], training=None) -> Encoding:
        _, _, mask = pools(features[G.POOL_IDS], features[G.POOL_STYLES])
        e = self.element_embedding(features[G.POOL_IDS], features[G.POOL_STYLES])
        h = self.context_encoder(self.context_features(features, mask), training=training)
        parts = [e, tf.broadcast_to(self.component_embedding(tf.range(M))[None, :, None, :], tf.shape(e))]
        if self.attention is not None:
            parts.append(self.attention(e, mask))
        f = tf.concat(parts, axis=-1)
        logits = self.scorer(h, f)
        weight = tf.cast(mask, tf.float32)[..., None]
        pool_mean = tf.reduce_sum(f * weight, axis=2) / tf.maximum(tf.reduce_sum(weight, axis=2), 1.0)
        return Encoding(h, f, logits, mask, pool_mean)

    def combination_logits(self, enc: Encoding, combinations: tf.Tensor):
        """``combinations [B, K, m]`` -> (logits ``s [B, K]``, instance weights ``w [B, K, m]``)."""
        index = tf.transpose(tf.maximum(combinations, 0), [0, 2, 1])  # [B, m, K]
        chosen = tf.transpose(tf.gather(enc.f, index, axis=2, batch_dims=2), [0, 2, 1, 3])  # [B, K, m, F]
        shown = tf.cast(combinations >= 0, tf.float32)
        chosen = chosen * shown[..., None]
        if self.pooling is not None:
            f_c, w = self.pooling(enc.h, chosen, enc.pool_mean, enc.present)
            return self.scorer(enc.h, f_c), w
        w = shown / tf.maximum(tf.reduce_sum(shown, axis=-1, keepdims=True), 1.0)
        return self.combination_scorer(enc.h, tf.reduce_sum(w[..., None] * chosen, axis=2)), w

    def call(self, features: Mapping[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        """``{"element_logits": [B, m, N] (padding at -1e9)}``, and with ``LOGGED`` in ``features`` the logged
        combination's ``"combination_logit" [B]`` and ``"weights" [B, m]``."""
        enc = self.encode(features, training=training)
        out = {"element_logits": sampling.masked_logits(enc.logits, enc.mask)}
        if G.LOGGED in features:
            s, w = self.combination_logits(enc, tf.cast(features[G.LOGGED], tf.int64)[:, None, :])
            out.update(combination_logit=s[:, 0], weights=w[:, 0])
        return out

    # ----------------------------------------------------------------------------------------- selection
    def select(self, features: Mapping[str, tf.Tensor], policy: str = GENCO, num_samples: Optional[int] = None,
               seed=None) -> Dict[str, tf.Tensor]:
        """Each row's combination by ``policy`` (:data:`POLICIES`).

        Returns ``{"chosen": [B, m] (-1 for absent components), "score": [B] (the reward model's CTR of the
        chosen combination)}``. ``seed`` (stateless, [2]) defaults to one derived from the user and ad ids.
        """
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        enc = self.encode(features, training=False)
        k = num_samples or self.config.num_samples
        if seed is None:
            seed = sampling.seed_of(features[F.USER_ID], features[F.AD_ID], base=self.config.seed)
        if policy == F_ELE:
            candidates = sampling.greedy(enc.logits, enc.mask)[:, None, :]
        elif policy == F_COMB:
            candidates = sampling.sample_uniform(enc.mask, k, seed)
        else:
            candidates = sampling.sample(enc.logits, enc.mask, k, seed)
        s, _ = self.combination_logits(enc, candidates)
        best = tf.argmax(s, axis=1, output_type=tf.int64)
        chosen = tf.gather(candidates, best, axis=1, batch_dims=1)
        return {"chosen": chosen, "score": tf.sigmoid(tf.gather(s, best, axis=1, batch_dims=1))}

    # ------------------------------------------------------------------------------------------ training
    def objective(self, features, labels, training=None) -> Dict[str, tf.Tensor]:
        """The losses of one batch (:mod:`trainer.genco.losses`) and the logged combinations' logits."""
        cfg = self.config
        enc = self.encode(features, training=training)
        logged = tf.cast(features[G.LOGGED], tf.int64)
        s, _ = self.combination_logits(enc, logged[:, None, :])
        out = {"comb_loss": losses.combination_loss(labels, s[:, 0]),
               "ele_loss": losses.element_loss(labels, enc.logits, logged),
               "rl_loss": losses.reinforce_loss(labels, enc.logits, enc.mask, logged, cfg.click_reward,
                                                cfg.no_click_reward, features.get(G.LOGGED_PROPENSITY),
                                                cfg.max_importance_ratio),
               "combination_logit": s[:, 0]}
        out["loss"] = out["comb_loss"] + out["ele_loss"] + cfg.rl_weight * out["rl_loss"]
        return out

    @property
    def metrics(self):
        return list(self._trackers.values()) + [self._auc]

    def _update(self, out, labels):
        for name, tracker in self._trackers.items():
            tracker.update_state(out[name])
        self._auc.update_state(tf.reshape(labels, [-1]), tf.sigmoid(out["combination_logit"]))
        return {m.name: m.result() for m in self.metrics}

    # No AutoGraph: the model has no data-dependent Python control flow, and converting every layer's call
    # made tracing the training step take a minute.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        features, labels = data
        with tf.GradientTape() as tape:
            out = self.objective(features, labels, training=True)
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(out["loss"], variables), variables))
        return self._update(out, labels)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        features, labels = data
        return self._update(self.objective(features, labels, training=False), labels)

    def get_config(self):
        return {"config": self.config.to_dict(), "hash_sizes": dict(self.hash_sizes), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def make_optimizer(config: GenCOConfig) -> keras.optimizers.Optimizer:
    """SGD (the paper's) or Adam at the config's fixed learning rate."""
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.learning_rate)
    return keras.optimizers.SGD(learning_rate=config.learning_rate)
