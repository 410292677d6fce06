"""CACS's creative selector: a dual tower with ID dropout, trained on clicks and distilled from a ranking teacher.

CACS (Lin et al., SIGIR 2022) selects each ad's creative *before* ad ranking, so selection must be cheap over
all M x N candidates: a user(+query) tower and an ad-creative tower meet only in a vector product, and the
creative vectors can be computed ahead of a request. The towers are the DSSM two-tower CR's
(:class:`~trainer.dssm_model.TwoTowerCRModel`, JACConfig's ``dssm_*`` sizes); CACS adds two things to its
training:

* **adaptive ID dropout** (``trainer.id_dropout``) on the ad id and the creative id entering the creative
  tower, so the tower also learns from the attributes and content embedding that carry over to rare and new
  creatives; inactive at inference, so the exported towers are plain DSSM towers;
* **list-wise distillation** (``trainer.listwise_distillation``) from a teacher's logits over each training
  impression's candidate creatives (``trainer.cacs_teacher``), beside the click loss on the exposed creative:

.. math::

    L_{sel} = w_{click}\\, \\mathrm{BCE}(y, \\sigma(s_{exposed}))
        + w_{KD} \\cdot \\frac{1}{|B|} \\sum_{b} -\\sum_k p^{(b)}_k \\log q^{(b)}_k,
    \\qquad p^{(b)} = \\mathrm{softmax}(t^{(b)} / T),\\ q^{(b)} = \\mathrm{softmax}(s^{(b)} / T),

with :math:`s` the selector's logits :math:`s\\,u^\\top c + b` and :math:`t` the teacher's over the candidates
of impression :math:`b` (padded slots masked). ``JACModel`` adds :meth:`auxiliary_losses` to its total and
weights the click loss by :attr:`click_weight`.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

import features as F
from transform import names as N
from trainer.candidates import candidate_lists, candidate_rows
from trainer.cacs_teacher import Teacher
from trainer.dssm_model import TwoTowerCRModel
from trainer.id_dropout import AdaptiveIdDropout
from trainer.listwise_distillation import ListwiseDistillation

# The ids the selector drops in training (ad id, creative id); their vocabularies' OOV buckets take them.
DROPPED_IDS = {N.xf(F.AD_ID): F.AD_ID, N.xf(F.CREATIVE_ID): F.CREATIVE_ID}


class CACSSelectorModel(TwoTowerCRModel):
    """The dual-tower selector; :class:`~trainer.dssm_model.TwoTowerCRModel` plus CACS's training terms.

    Args: those of :class:`~trainer.dssm_model.TwoTowerCRModel`, and
      id_dropout_rate, id_dropout_half_count, id_dropout_schedule: the ID dropout's :math:`\\rho`,
        :math:`n_{1/2}` and schedule (``trainer.id_dropout``); the counts start at 0 (every id at rate
        :math:`\\rho`) until :meth:`set_id_counts` gives the training counts.
      distillation_temperature, distillation_weight: :math:`T` and :math:`w_{KD}`.
      click_weight: :math:`w_{click}`.
      teacher: a :class:`~trainer.cacs_teacher.Teacher`, or ``None`` (click loss only); fixed at construction
        (``JACModel`` sets up its loss trackers from :attr:`auxiliary_loss_names`) and not part of
        ``get_config`` (it is a model given to the run, not a part of this one).
      seed: seed of the dropout draws.

    Shapes: as :class:`~trainer.dssm_model.TwoTowerCRModel`; :meth:`auxiliary_losses` reads the transformed
    candidate lists of ``B`` impressions (``trainer.candidates.candidate_rows``).
    """

    def __init__(self, cardinalities: Mapping[str, int], id_dropout_rate: float = 0.5,
                 id_dropout_half_count: float = 20.0, id_dropout_schedule: str = "adaptive",
                 distillation_temperature: float = 3.0, distillation_weight: float = 1.0, click_weight: float = 1.0,
                 teacher: Optional[Teacher] = None, seed: Optional[int] = None, **kwargs):
        super().__init__(cardinalities, **kwargs)
        self.distillation = ListwiseDistillation(distillation_temperature, distillation_weight)
        self.click_weight = float(click_weight)
        self.seed = seed
        self.id_dropout = {}
        for i, (name, raw) in enumerate(DROPPED_IDS.items()):
            oov = N.ID_VOCABULARIES[raw].num_oov_buckets
            self.id_dropout[name] = AdaptiveIdDropout(
                np.zeros(self.cardinalities[name] - oov), oov, id_dropout_rate, id_dropout_half_count,
                id_dropout_schedule, seed=None if seed is None else seed + i, name=f"{raw}_dropout")
        self.teacher = teacher

    def set_id_counts(self, counts: Mapping[str, np.ndarray]) -> None:
        """Training impressions per in-vocabulary index of each dropped id (``{transformed name: [V]}``)."""
        for name, layer in self.id_dropout.items():
            layer.set_counts(counts[name])

    @property
    def feature_names(self):
        names = TwoTowerCRModel.feature_names
        if self.teacher is not None:  # the candidate lists the distillation scores
            names += tuple(N.CANDIDATE_INPUTS) + (N.AD_HIST_CTR_CLIPPED,)
        return names

    @property
    def auxiliary_loss_names(self):
        return ("distillation",) if self.teacher is not None else ()

    def call(self, features: Mapping[str, tf.Tensor], pctr: Optional[tf.Tensor] = None, training=None):
        if training:
            features = dict(features)
            for name, layer in self.id_dropout.items():
                features[name] = layer(features[name], training=True)
        return super().call(features, pctr, training=training)

    def auxiliary_losses(self, features: Mapping[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        """``{"distillation": w_KD * mean list loss}`` over the batch's candidate lists; ``{}`` without teacher."""
        if self.teacher is None:
            return {}
        rows, pctr, impression, position = candidate_rows(features)
        batch = tf.shape(features[N.AD_HIST_CTR_CLIPPED], out_type=tf.int64)[0]
        student, mask = candidate_lists(self(rows, training=training), impression, position, batch)
        teacher, _ = candidate_lists(self.teacher.candidate_logits(rows, pctr), impression, position, batch)
        return {"distillation": self.distillation(student, teacher, mask)}

    def get_config(self):
        config = super().get_config()
        dropout = next(iter(self.id_dropout.values()))
        config.update(id_dropout_rate=dropout.rate, id_dropout_half_count=dropout.half_count,
                      id_dropout_schedule=dropout.schedule, distillation_temperature=self.distillation.temperature,
                      distillation_weight=self.distillation.weight, click_weight=self.click_weight, seed=self.seed)
        return config


def id_counts(log) -> Dict[str, np.ndarray]:
    """Training impressions per in-vocabulary ad and creative index of a :class:`~trainer.creative_log.CreativeLog`."""
    out = {}
    for name, index, size in ((N.xf(F.AD_ID), log.ad, log.ad_vocab_size),
                              (N.xf(F.CREATIVE_ID), log.creative, log.creative_vocab_size)):
        known = index < size
        out[name] = np.bincount(index[known], weights=log.impressions[known], minlength=size)
    return out


def fit_id_counts(head: CACSSelectorModel, log, tft_output, config) -> Dict[str, object]:
    """Gives the selector's ID dropout the training counts (before ``fit``); a summary of the rates."""
    counts = id_counts(log)
    head.set_id_counts(counts)
    return {f"{name}_dropout": {"ids": int(c.size), "seen": int((c > 0).sum()), "median_count": float(np.median(c)),
                                "mean_rate": float(np.mean(head.id_dropout[name].rates.numpy()))}
            for name, c in counts.items()}
