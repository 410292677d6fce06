"""Soft-label list-wise ranking distillation: the selector learns the teacher's order of an ad's creatives.

CACS (Lin et al., SIGIR 2022) trains its creative selector (the student) on the scores a strong ranking
teacher gives every candidate creative of an impression, not only on the sparse click of the one shown. Over
the :math:`K` candidates of one impression, with teacher logits :math:`t_k`, student logits :math:`s_k`, a
temperature :math:`T > 0` and the padding mask :math:`m_k \\in \\{0, 1\\}`:

.. math::

    p_k = \\frac{m_k e^{t_k / T}}{\\sum_j m_j e^{t_j / T}}, \\qquad
    \\log q_k = \\frac{s_k}{T} - \\log \\sum_j m_j e^{s_j / T}, \\qquad
    \\ell = -\\sum_k m_k \\, p_k \\log q_k .

:math:`\\ell = \\mathrm{KL}(p \\,\\|\\, q) + H(p)`: the teacher's entropy :math:`H(p)` does not depend on the
student, so the gradient is that of the KL divergence, :math:`\\partial \\ell / \\partial s_k = (q_k - p_k) / T`.
It vanishes when :math:`s = t + c` for any constant :math:`c` -- only the order and the gaps of the scores are
taught, not their level (the selector's level is set by the click loss beside it). A large :math:`T` (CACS and
Alibaba EasyRec's ``listwise_rank_loss`` with ``label_is_logits``: :math:`T \\approx 3`) softens :math:`p` so
the student also learns the order of the teacher's non-top creatives.

Unlike Hinton et al.'s distillation the loss is not multiplied by :math:`T^2`; the weight of the term
(``JACConfig.cacs_distillation_weight``) absorbs that scale. A list with a single valid candidate has
:math:`\\ell = 0` (nothing to order); a list with none is left out of the mean.

Shapes: ``student_logits``, ``teacher_logits`` and ``mask`` ``[B, K]`` (``B`` impressions, ``K`` candidate
slots, padded slots have ``mask = 0`` and any finite or non-finite score); per-list loss ``[B]``.
"""

from __future__ import annotations

import math
from typing import Optional

import tensorflow as tf

# A masked slot's logit: finite (so 0 * log q stays 0, not NaN) and far below any real score.
_MASKED_LOGIT = -1e9


def _check_temperature(temperature) -> float:
    number = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not (number and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"list-wise distillation temperature: must be a finite positive number, got {temperature!r}")
    return float(temperature)


def _masked_scaled(logits: tf.Tensor, mask: tf.Tensor, temperature: float) -> tf.Tensor:
    # tf.where (not logits * mask) so a padded slot's NaN/inf score reaches neither the value nor the gradient.
    return tf.where(mask, tf.cast(logits, tf.float32) / temperature, _MASKED_LOGIT)


def listwise_distillation(student_logits, teacher_logits, mask=None, temperature: float = 3.0) -> tf.Tensor:
    """Per-list loss :math:`\\ell = -\\sum_k m_k p_k \\log q_k` ``[B]`` (module docstring); no gradient to the teacher.

    Args:
      student_logits: ``[B, K]`` the selector's logits of each impression's candidates.
      teacher_logits: ``[B, K]`` the teacher's logits of the same candidates in the same order.
      mask: ``[B, K]`` bool or 0/1, true for real candidates; ``None``: all are real.
      temperature: :math:`T`.
    """
    temperature = _check_temperature(temperature)
    student = tf.convert_to_tensor(student_logits)
    teacher = tf.convert_to_tensor(teacher_logits)
    if student.shape.rank != 2:
        raise ValueError(f"list-wise distillation student_logits: must be [B, K], got shape {student.shape}")
    if not student.shape.is_compatible_with(teacher.shape):
        raise ValueError(f"list-wise distillation teacher_logits: shape {teacher.shape} does not match "
                         f"student_logits {student.shape} (one score per candidate, same order)")
    mask = tf.ones_like(student, tf.bool) if mask is None else tf.cast(mask, tf.bool)
    if not student.shape.is_compatible_with(mask.shape):
        raise ValueError(f"list-wise distillation mask: shape {mask.shape} does not match student_logits "
                         f"{student.shape}")
    weights = tf.cast(mask, tf.float32)
    teacher_probs = tf.stop_gradient(tf.nn.softmax(_masked_scaled(teacher, mask, temperature), axis=-1)) * weights
    student_log_probs = tf.nn.log_softmax(_masked_scaled(student, mask, temperature), axis=-1)
    return -tf.reduce_sum(teacher_probs * student_log_probs, axis=-1)


def mean_listwise_distillation(student_logits, teacher_logits, mask=None, temperature: float = 3.0) -> tf.Tensor:
    """Scalar mean of :func:`listwise_distillation` over the lists with at least one valid candidate."""
    per_list = listwise_distillation(student_logits, teacher_logits, mask, temperature)
    if mask is None:
        return tf.reduce_mean(per_list)
    has_candidates = tf.cast(tf.reduce_any(tf.cast(mask, tf.bool), axis=-1), tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_list * has_candidates), tf.reduce_sum(has_candidates))


class ListwiseDistillation:
    """The weighted distillation term of a training loss: ``weight * mean_listwise_distillation(...)``.

    Args:
      temperature: :math:`T` (``JACConfig.cacs_distillation_temperature``).
      weight: the term's weight (``JACConfig.cacs_distillation_weight``), non-negative.
    """

    def __init__(self, temperature: float = 3.0, weight: float = 1.0):
        self.temperature = _check_temperature(temperature)
        number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
        if not (number and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"list-wise distillation weight: must be a finite non-negative number, got {weight!r}")
        self.weight = float(weight)

    def __call__(self, student_logits, teacher_logits, mask: Optional[tf.Tensor] = None) -> tf.Tensor:
        return self.weight * mean_listwise_distillation(student_logits, teacher_logits, mask, self.temperature)

    def get_config(self):
        return {"temperature": self.temperature, "weight": self.weight}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
