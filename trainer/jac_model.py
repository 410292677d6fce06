"""JAC: AR and CR trained jointly, CR reading AR's quantized pctr_ad; its ablations and comparison systems."""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple, Union

import tensorflow as tf
import tf_keras as keras

import features as F
from transform import names as N
from trainer.ar_model import ARModel
from trainer.config import JACConfig
from trainer.cr_model import CRModel


def build_ar(config: JACConfig, cardinalities: Mapping[str, int]) -> ARModel:
    return ARModel(cardinalities, embedding_dim=config.ar_embedding_dim,
                   transformer_layers=config.transformer_layers, transformer_heads=config.transformer_heads,
                   transformer_ff_dim=config.transformer_ff_dim, num_cross_layers=config.num_cross_layers,
                   cross_projection_dim=config.cross_projection_dim, hidden_units=config.ar_hidden_units,
                   initial_ctr=config.initial_ctr, embedding_rows=config.ar_embedding_rows, name="ar")


def build_cr(config: JACConfig, cardinalities: Mapping[str, int]) -> CRModel:
    if isinstance(config.quantizer_r, str):
        raise ValueError("JACConfig.quantizer_r is 'auto': choose r (trainer.info_gain.choose_r) before "
                         "building CR, e.g. config.replace(quantizer_r=r)")
    return CRModel(cardinalities, embedding_dim=config.cr_embedding_dim, hidden_units=config.cr_hidden_units,
                   quantizer_buckets=config.quantizer_buckets, quantizer_dim=config.quantizer_dim,
                   quantizer_r=config.quantizer_r, quantizer_slope_window=config.quantizer_slope_window,
                   seed=config.seed, initial_ctr=config.initial_ctr, embedding_rows=config.cr_embedding_rows,
                   name="cr")


class JACModel(keras.Model):
    """The offline joint model: an ad-ranker head and a creative-ranker head, selected by ``config.variant``.

    .. math::

        \\hat p_{ad} = \\sigma(\\mathrm{AR}(x)), \\qquad
        \\hat p_c = \\sigma(\\mathrm{CR}(x_c, Q(\\pi))), \\qquad
        L = \\mathrm{BCE}(y, \\hat p_{ad}) + \\mathrm{BCE}(y, \\hat p_c)

    * ``"jac"``: :math:`\\pi = \\hat p_{ad}`; CR's gradient reaches AR through the quantizer's
      straight-through estimator, so CR's loss also trains AR;
    * ``"ar"``: AR alone, :math:`L = \\mathrm{BCE}(y, \\hat p_{ad})`;
    * ``"cr"``: CR alone with :math:`\\pi` = the ad's historical CTR, :math:`L = \\mathrm{BCE}(y, \\hat p_c)`;
    * the comparison systems (``trainer.variants``) put other heads in the same places: ``"acr"`` a
      creative-aware AR (trained with CR as in ``"jac"``), ``"dssm"`` / ``"hbm"`` / ``"beta_ts"`` a CR that
      reads no :math:`\\pi`, so the two heads train independently (``"cacs"``: the dual-tower selector with its
      distillation term) (the bandit heads' posteriors are set in
      closed form before ``fit``, which then trains AR and only reports their loss).

    Online, CR always reads the historical CTR (the exported CR, see ``trainer.export``).

    Args:
      config: the variant and its hyperparameters.
      cardinalities: rows of every categorical table.
      heads: ``(ar, cr)`` sub-models (``None`` for a head the variant lacks), as ``trainer.variants.build_model``
        builds them; omitted, the heads of ``"jac"``, ``"ar"`` and ``"cr"`` are built here.

    ``call(features)`` returns ``{features.PCTR_AD: [B], features.PCTR_C: [B]}`` (the heads of the variant).
    Training logs ``loss``, and per head ``ar_loss`` / ``ar_auc`` / ``cr_loss`` / ``cr_auc`` (the click losses,
    unweighted) and a head's own terms (``"cacs"``: ``cr_distillation_loss``, see ``trainer.cacs_model``).
    """

    def __init__(self, config: Union[JACConfig, Mapping], cardinalities: Mapping[str, int],
                 heads: Optional[Tuple[Optional[keras.Model], Optional[keras.Model]]] = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config if isinstance(config, JACConfig) else JACConfig.from_dict(config)
        self.cardinalities = dict(cardinalities)
        if heads is None:
            if self.config.variant not in ("jac", "ar", "cr"):
                raise ValueError(f"JACModel: variant {self.config.variant!r} has its own heads; build it with "
                                 "trainer.variants.build_model(config, cardinalities)")
            heads = (build_ar(self.config, cardinalities) if self.config.has_ar else None,
                     build_cr(self.config, cardinalities) if self.config.has_cr else None)
        self.ar, self.cr = heads
        self._trackers = {}
        for head in self.heads:
            self._trackers[f"{head}_loss"] = keras.metrics.Mean(name=f"{head}_loss")
            self._trackers[f"{head}_auc"] = keras.metrics.AUC(name=f"{head}_auc", num_thresholds=1000)
            for term in getattr(getattr(self, head), "auxiliary_loss_names", ()):
                self._trackers[f"{head}_{term}_loss"] = keras.metrics.Mean(name=f"{head}_{term}_loss")
        self._loss_tracker = keras.metrics.Mean(name="loss")

    # ------------------------------------------------------------------------------------------ heads
    @property
    def heads(self) -> Tuple[str, ...]:
        return tuple(h for h, sub in (("ar", self.ar), ("cr", self.cr)) if sub is not None)

    @property
    def cr_reads_pctr(self) -> bool:
        """CR has a pctr input (the quantized pctr_ad of eq. 5)."""
        return isinstance(self.cr, CRModel)

    @property
    def feature_names(self) -> Tuple[str, ...]:
        """Transformed features the model reads during training."""
        names = ()
        if self.ar is not None:
            names += self.ar.feature_names
        if self.cr is not None:
            names += self.cr.feature_names
            if self.cr_reads_pctr and self.ar is None:
                names += (N.AD_HIST_CTR_CLIPPED,)
        return tuple(dict.fromkeys(names))

    def logits(self, features: Mapping[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        out = {}
        if self.ar is not None:
            out["ar"] = self.ar(features, training=training)
        if self.cr is not None:
            pctr = None
            if self.cr_reads_pctr:
                pctr = tf.sigmoid(out["ar"]) if self.ar is not None else features[N.AD_HIST_CTR_CLIPPED]
            out["cr"] = self.cr(features, pctr, training=training)
        return out

    def call(self, features: Mapping[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        names = {"ar": F.PCTR_AD, "cr": F.PCTR_C}
        return {names[h]: tf.sigmoid(logit) for h, logit in self.logits(features, training).items()}

    # --------------------------------------------------------------------------------------- training
    @property
    def metrics(self):
        return [self._loss_tracker] + list(self._trackers.values())

    def _forward_losses(self, features, labels, training):
        """Runs the heads; returns (total loss, per-head losses, per-head logits, labels as float [B]).

        A head may weight its click loss (``click_weight``) and add terms of its own
        (``auxiliary_losses(features, training)`` -> ``{term: scalar}``, tracked as ``<head>_<term>_loss``).
        """
        labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
        logits = self.logits(features, training=training)
        losses = {h: tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, l)) for h, l in logits.items()}
        terms = [getattr(getattr(self, h), "click_weight", 1.0) * loss for h, loss in losses.items()]
        for head in list(losses):
            extra = getattr(getattr(self, head), "auxiliary_losses", None)
            for term, value in (extra(features, training=training) if extra else {}).items():
                losses[f"{head}_{term}"] = value
                terms.append(value)
        total = tf.add_n(terms)
        return total, losses, logits, labels

    def _update_metrics(self, total, losses, logits, labels):
        self._loss_tracker.update_state(total)
        for name, value in losses.items():
            self._trackers[f"{name}_loss"].update_state(value)
        for head, logit in logits.items():
            self._trackers[f"{head}_auc"].update_state(labels, tf.sigmoid(logit))
        return {m.name: m.result() for m in self.metrics}

    # The steps hold no data-dependent Python control flow: traced as plain Python, not converted by
    # AutoGraph, whose source-to-source conversion of every Keras call took ~2/3 of the first step's time.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        features, labels = data
        with tf.GradientTape() as tape:
            total, losses, logits, labels = self._forward_losses(features, labels, training=True)
            # Synchronous replicas sum their gradients: each contributes its share of the mean loss.
            scaled = total / self.distribute_strategy.num_replicas_in_sync
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self._update_metrics(total, losses, logits, labels)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        features, labels = data
        total, losses, logits, labels = self._forward_losses(features, labels, training=False)
        return self._update_metrics(total, losses, logits, labels)

    def get_config(self):
        """The config, the cardinalities and each head's class and own config (which carries what was fitted
        into the head's constructor arguments, e.g. a bandit's prior), as JSON-friendly values."""
        heads = {h: None if sub is None else {"class": type(sub).__name__, "config": sub.get_config()}
                 for h, sub in (("ar", self.ar), ("cr", self.cr))}
        return {"config": self.config.to_dict(), "cardinalities": dict(self.cardinalities), "name": self.name,
                "heads": heads}

    @classmethod
    def from_config(cls, config):
        """A new, unbuilt model of every variant (under a cluster the chief exports such a copy)."""
        from trainer.variants import head_from_config, share_heads  # trainer.variants imports this module

        config = dict(config)
        heads = config.pop("heads", None)
        if heads is not None:
            config["heads"] = share_heads(*(head_from_config(heads.get(h)) for h in ("ar", "cr")))
        return cls(**config)


def make_optimizer(config: JACConfig) -> keras.optimizers.Optimizer:
    """Adagrad at ``config.learning_rate`` (Yang et al., AAAI 2024: 0.05)."""
    return keras.optimizers.Adagrad(learning_rate=config.learning_rate,
                                    initial_accumulator_value=config.adagrad_initial_accumulator)
