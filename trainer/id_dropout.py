"""Adaptive ID dropout: hide an id from the model during training, rare ids more often than frequent ones.

CACS (Lin et al., SIGIR 2022) drops the ID features of its selector (creative id, ad id) during training so
that the model also learns the content features (attributes, image embedding) that carry over to rare and new
creatives, whose id embeddings are barely trained. A rare id's embedding is mostly noise, so it is dropped
more often; a frequent id's embedding is reliable and is kept more often. With :math:`n_i` the training
impressions of in-vocabulary id :math:`i`, a base rate :math:`\\rho \\in [0, 1]` and a half-count
:math:`n_{1/2} > 0`, the drop probability is

.. math::

    p_i = \\rho \\, \\frac{n_{1/2}}{n_{1/2} + n_i} \\quad (\\text{adaptive}), \\qquad
    p_i = \\rho \\quad (\\text{fixed, for comparison}).

So an id never seen is dropped with probability :math:`\\rho`, an id seen :math:`n_{1/2}` times with
:math:`\\rho / 2`, and :math:`p_i \\approx \\rho\\, n_{1/2} / n_i \\to 0` for frequent ids: the expected
number of training rows in which id :math:`i` is *visible*, :math:`n_i (1 - p_i)`, still grows with
:math:`n_i`, while the rows in which its content alone must explain the click grow like
:math:`\\rho\\, n_{1/2}\\, n_i / (n_{1/2} + n_i) \\le \\rho\\, n_{1/2}` -- about the same for every id that is
not rare, so content learning is not dominated by the head of the distribution.

*Dropping* replaces the index with an out-of-vocabulary index, :math:`\\mathrm{oov}_0 + (i \\bmod B)` for
``num_oov_buckets`` :math:`B` buckets starting at :math:`\\mathrm{oov}_0` (``transform.names.IdVocabulary``):
exactly what a new creative looks like at serving time, so the model learns to rank such rows from their
content. Indices already out of vocabulary (:math:`i \\ge \\mathrm{oov}_0`) are never dropped. The draws are
independent per row; at inference (``training`` false) the layer is the identity.

Shapes: input int ``[...]`` indices; output the same shape and dtype.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.config import ID_DROPOUT_SCHEDULES as SCHEDULES


def drop_rates(counts, rate: float, half_count: float = 1.0, schedule: str = "adaptive") -> np.ndarray:
    """Per-id drop probability ``[V]`` (float32) for training ``counts`` ``[V]`` (module docstring).

    The NumPy reference of :class:`AdaptiveIdDropout`'s table; also how a config's rates are inspected.
    """
    _check(rate, half_count, schedule)
    n = np.asarray(counts, np.float64)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"AdaptiveIdDropout counts: must be a non-empty 1-D sequence (one count per "
                         f"in-vocabulary id), got shape {n.shape}")
    bad = np.flatnonzero(~np.isfinite(n) | (n < 0))
    if bad.size:
        raise ValueError(f"AdaptiveIdDropout counts: must be finite and non-negative; id {bad[0]} has {n[bad[0]]!r}")
    if schedule == "fixed":
        return np.full(n.shape, rate, np.float32)
    return (rate * half_count / (half_count + n)).astype(np.float32)


def _check(rate, half_count, schedule):
    def number(x):
        return isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and math.isfinite(x)

    if not (number(rate) and 0.0 <= rate <= 1.0):
        raise ValueError(f"AdaptiveIdDropout rate: must be a number in [0, 1], got {rate!r}")
    if not (number(half_count) and half_count > 0):
        raise ValueError(f"AdaptiveIdDropout half_count: must be a finite positive number, got {half_count!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"AdaptiveIdDropout schedule: must be one of {SCHEDULES}, got {schedule!r}")


class AdaptiveIdDropout(keras.__internal__.layers.BaseRandomLayer):
    """Training-time replacement of in-vocabulary indices by an OOV index with probability :math:`p_i`.

    .. math::

        \\tilde\\imath = \\begin{cases} \\mathrm{oov}_0 + (i \\bmod B) & \\text{with probability } p_i
            \\ (\\text{training only}) \\\\ i & \\text{otherwise} \\end{cases}

    Args:
      counts: training impressions of each in-vocabulary index ``0 .. V-1`` (so :math:`\\mathrm{oov}_0 = V`).
      num_oov_buckets: :math:`B`, the OOV indices ``V .. V+B-1`` a dropped index maps into.
      rate: :math:`\\rho`, the drop probability of an unseen id (adaptive) or of every id (fixed).
      half_count: :math:`n_{1/2}`, the count at which the adaptive rate is :math:`\\rho / 2`.
      schedule: ``"adaptive"`` or ``"fixed"``.
      seed: seed of the draws.

    :attr:`rates` holds :func:`drop_rates` as a non-trainable weight (:meth:`set_counts` replaces it once the
    counts are known); ``get_config`` carries ``counts`` (one number per in-vocabulary id).
    """

    def __init__(self, counts: Sequence[float], num_oov_buckets: int, rate: float, half_count: float = 1.0,
                 schedule: str = "adaptive", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not (isinstance(num_oov_buckets, (int, np.integer)) and num_oov_buckets >= 1):
            raise ValueError(f"AdaptiveIdDropout num_oov_buckets: must be a positive integer, got {num_oov_buckets!r}")
        self.rate, self.half_count, self.schedule, self.seed = float(rate), float(half_count), schedule, seed
        self.num_oov_buckets = int(num_oov_buckets)
        self.counts = np.asarray(counts, np.float64)
        rates = drop_rates(self.counts, rate, half_count, schedule)
        self.rates = self.add_weight(name="drop_rates", shape=rates.shape, trainable=False,
                                     initializer=keras.initializers.Constant(rates))

    def set_counts(self, counts: Sequence[float]) -> None:
        """Replaces the training counts (same vocabulary size), e.g. once they are read from the training data."""
        counts = np.asarray(counts, np.float64)
        if counts.shape != self.counts.shape:
            raise ValueError(f"AdaptiveIdDropout counts: {self.name} has {self.counts.size} in-vocabulary ids, "
                             f"got {counts.shape} counts")
        self.rates.assign(drop_rates(counts, self.rate, self.half_count, self.schedule))
        self.counts = counts

    @property
    def oov_start(self) -> int:
        return int(self.counts.size)

    def call(self, ids, training=None):
        if not training or self.rate == 0.0:
            return ids
        index = tf.cast(ids, tf.int64)
        in_vocab = index < self.oov_start
        rate = tf.where(in_vocab, tf.gather(self.rates, tf.minimum(index, self.oov_start - 1)), 0.0)
        dropped = self._random_generator.random_uniform(tf.shape(index)) < rate
        oov = self.oov_start + tf.math.floormod(index, self.num_oov_buckets)
        return tf.cast(tf.where(dropped, oov, index), ids.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(counts=self.counts.tolist(), num_oov_buckets=self.num_oov_buckets, rate=self.rate,
                      half_count=self.half_count, schedule=self.schedule, seed=self.seed)
        return config
