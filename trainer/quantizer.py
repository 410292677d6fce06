"""Log-scale quantization of pctr_ad into a learned code embedding, with a straight-through gradient.

Eq. (5) of JAC (Yang et al., AAAI 2024) maps a CTR :math:`p \\in [0, 1]` to one of :math:`K` codes

.. math::

    c(p) = \\min\\left(K - 1, \\left\\lfloor K \\log_{1+r}(1 + r p) \\right\\rfloor\\right),

fine where CTRs are dense (small :math:`p`) and coarse near 1; :math:`r > 0` sets the curvature (large
:math:`r`: close to a log scale, :math:`r \\to 0`: uniform). The code selects a row of a learned table
:math:`E \\in \\mathbb{R}^{K \\times D}`; CR concatenates that row with its other inputs.

Codes are computed against the bucket edges :math:`t_k = ((1+r)^{k/K} - 1) / r`, :math:`k = 1..K-1`
(the exact preimages of the integers under the log map): :math:`c(p) = \\#\\{k : t_k \\le p\\}`. This is eq.
(5) evaluated without rounding surprises at the edges, and costs a binary search per value.

The floor has zero gradient, so training copies CR's gradient through it (straight-through, as in
VQ-VAE). CR's upstream gradient :math:`g = \\partial L / \\partial e` is :math:`D`-dimensional while
:math:`p` is a scalar; we map it with the chain rule through the piecewise-linear interpolation of the table
along the continuous code :math:`u(p) = K \\log_{1+r}(1 + r p)`:

.. math::

    \\frac{\\partial L}{\\partial p} \\approx g \\cdot \\frac{E_{c_+} - E_{c_-}}{c_+ - c_-}
        \\cdot \\frac{du}{dp},
    \\qquad \\frac{du}{dp} = \\frac{K r}{(1 + r p) \\ln(1 + r)},

with :math:`c_\\pm = \\mathrm{clip}(c \\pm h, 0, K-1)`: a secant over :math:`\\pm h` neighbouring rows
(:math:`h` = ``slope_window``; :math:`h = 1` is the central difference). A wider secant averages out the
row-to-row noise of a table whose rows are updated separately. The forward value is the exact row
:math:`E_c`; the table itself receives the ordinary gather gradient :math:`g` in row :math:`c`.

Inputs are cleaned before coding (:func:`clean_pctr`): NaN counts as 0 and values are clipped to
:math:`[0, 1]`. A NaN row gets the code of 0 and a zero straight-through gradient (its pctr carries no
information to move).

The table starts as a linear ramp :math:`E_c = A + \\frac{c}{K-1}(B - A)` between two random rows, so at
initialisation the embedding is a linear function of :math:`u/K` and the straight-through gradient is the
exact derivative of that function; training then shapes each row freely.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras


def bucket_edges(r: float, buckets: int) -> np.ndarray:
    """The ``buckets - 1`` code edges :math:`t_k = ((1+r)^{k/K} - 1)/r` as float32, increasing."""
    if not r > 0:
        raise ValueError(f"r must be positive, got {r!r}")
    if buckets < 2:
        raise ValueError(f"buckets must be at least 2, got {buckets!r}")
    k = np.arange(1, buckets, dtype=np.float64)
    return (np.expm1(k / buckets * math.log1p(r)) / r).astype(np.float32)


def quantize(pctr, r: float, buckets: int) -> np.ndarray:
    """NumPy reference of the codes of eq. (5): int64 codes in ``[0, buckets - 1]``.

    Values are clipped to ``[0, 1]`` (NaN counts as 0) before coding.
    """
    p = np.nan_to_num(np.clip(np.asarray(pctr, np.float32), 0.0, 1.0), nan=0.0)
    return np.searchsorted(bucket_edges(r, buckets), p, side="right").astype(np.int64)


def clean_pctr(pctr) -> tf.Tensor:
    """pctr as float32 ``[B]`` with NaN -> 0 and values clipped to ``[0, 1]`` (what eq. (5) codes)."""
    p = tf.reshape(tf.cast(pctr, tf.float32), [-1])
    return tf.clip_by_value(tf.where(tf.math.is_nan(p), tf.zeros_like(p), p), 0.0, 1.0)


def lookup_codes(pctr, edges) -> tf.Tensor:
    """int64 codes ``[B]`` of eq. (5): a binary search of :func:`clean_pctr` over ``edges`` (:func:`bucket_edges`).

    The TF counterpart of :func:`quantize`; :class:`PctrQuantizer` and the serving-time
    :class:`~trainer.cr_scorer.FusedCRScorer` both code through it.
    """
    edges = tf.reshape(tf.convert_to_tensor(edges, tf.float32), [1, -1])
    return tf.searchsorted(edges, clean_pctr(pctr)[None, :], side="right", out_type=tf.int64)[0]


def code_slope(pctr, r: float, buckets: int):
    """:math:`du/dp = K r / ((1 + r p) \\ln(1 + r))`, the derivative of the continuous code (TF)."""
    return buckets * r / ((1.0 + r * pctr) * math.log1p(r))


class RampInitializer(keras.initializers.Initializer):
    """``[K, D]`` table :math:`E_c = A + \\frac{c}{K-1}(B - A)`, :math:`A, B \\sim N(0, \\sigma^2 I_D)`."""

    def __init__(self, stddev: float = 0.05, seed: Optional[int] = None):
        self.stddev = stddev
        self.seed = seed

    def __call__(self, shape, dtype=None, **kwargs):
        dtype = dtype or tf.float32
        rows, dim = shape
        ends = tf.random.stateless_normal([2, dim], seed=[self.seed or 0, 17], stddev=self.stddev, dtype=dtype)
        t = tf.linspace(tf.constant(0.0, dtype), tf.constant(1.0, dtype), rows)[:, None]
        return ends[0] + t * (ends[1] - ends[0])

    def get_config(self):
        return {"stddev": self.stddev, "seed": self.seed}


@tf.custom_gradient
def _straight_through(pctr: tf.Tensor, rows: tf.Tensor, slope: tf.Tensor):
    """Forward: ``rows``. Backward: ``g`` to ``rows``; ``sum(g * slope, -1)`` to ``pctr`` (see module doc)."""

    def grad(g):
        return tf.reduce_sum(g * slope, axis=-1), g, tf.zeros_like(slope)

    return tf.identity(rows), grad


class PctrQuantizer(keras.layers.Layer):
    """pctr ``[B]`` -> code embedding ``[B, D]`` (eq. 5), straight-through gradient to pctr.

    .. math::

        e(p) = E_{c(p)}, \\qquad c(p) = \\min(K-1, \\lfloor K \\log_{1+r}(1 + r p) \\rfloor)

    See the module docstring for the backward formula.

    Args:
      buckets: K, the number of codes.
      dim: D, the embedding dimension.
      r: curvature of the log map (positive).
      slope_window: h, the half-width (in codes) of the secant used by the straight-through gradient.
      seed: initializer seed.

    Shapes: input ``[B]`` float (values outside ``[0, 1]`` are clipped, NaN counts as 0 and gets no
    gradient); output ``[B, D]``. :attr:`edges` holds the ``K - 1`` bucket edges the codes are looked up in.
    """

    def __init__(self, buckets: int, dim: int, r: float, slope_window: int = 16,
                 seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)

        def require(name, value, ok, what):
            if not ok:
                raise ValueError(f"PctrQuantizer {name}: must be {what}, got {value!r}")

        def integer(value, minimum):
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum

        if isinstance(r, str):
            require("r", r, False, "a number (resolve 'auto' with trainer.info_gain.choose_r first)")
        number = isinstance(r, (int, float, np.number)) and not isinstance(r, bool)
        require("r", r, number and math.isfinite(r) and r > 0, "a finite positive number")
        require("buckets", buckets, integer(buckets, 2), "an integer >= 2")
        require("dim", dim, integer(dim, 1), "an integer >= 1")
        require("slope_window", slope_window, integer(slope_window, 1), "an integer >= 1")
        self.buckets = int(buckets)
        self.dim = int(dim)
        self.r = float(r)
        self.slope_window = int(slope_window)
        self.seed = seed
        self.edges = bucket_edges(self.r, self.buckets)

    def build(self, input_shape=None):
        self.table = self.add_weight(
            name="code_embedding", shape=(self.buckets, self.dim),
            initializer=RampInitializer(seed=self.seed), trainable=True)
        super().build(input_shape)

    def codes(self, pctr: tf.Tensor) -> tf.Tensor:
        """int64 codes ``[B]`` of eq. (5) (:func:`lookup_codes` over :attr:`edges`)."""
        return lookup_codes(pctr, self.edges)

    def call(self, pctr: tf.Tensor) -> tf.Tensor:
        p = tf.reshape(tf.cast(pctr, tf.float32), [-1])
        codes = self.codes(p)
        rows = tf.gather(self.table, codes)
        # Straight-through slope: secant of the table over +-h codes times du/dp (no gradient of its own).
        lo = tf.maximum(codes - self.slope_window, 0)
        hi = tf.minimum(codes + self.slope_window, self.buckets - 1)
        secant = (tf.gather(self.table, hi) - tf.gather(self.table, lo)) / tf.cast(hi - lo, tf.float32)[:, None]
        du_dp = code_slope(clean_pctr(p), self.r, self.buckets)
        # A NaN pctr is coded as 0 but must not pass a gradient (g * slope would be finite yet meaningless).
        du_dp = tf.where(tf.math.is_nan(p), tf.zeros_like(du_dp), du_dp)
        slope = tf.stop_gradient(secant * du_dp[:, None])
        return _straight_through(p, rows, slope)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self.dim])

    def get_config(self):
        config = super().get_config()
        config.update(buckets=self.buckets, dim=self.dim, r=self.r, slope_window=self.slope_window, seed=self.seed)
        return config
