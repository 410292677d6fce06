r"""Non-autoregressive generation (Gu et al., 2025, eqs. 14-15 and 24): one categorical per component.

Given the element logits :math:`p_{j,k}` (padding masked out), the policy is a product of per-component
softmaxes

.. math::
    \pi(c) = \prod_{j \in J_i} \pi_j(c_j), \qquad \pi_j(k) = \frac{\exp p_{j,k}}{\sum_{l \le n_{i,j}} \exp p_{j,l}},

so the K combinations of eq. 24 are drawn in parallel, every component independently, by the Gumbel-max trick:
:math:`c_j = \arg\max_k (p_{j,k} + g_{j,k})`, :math:`g \sim \mathrm{Gumbel}(0, 1)` i.i.d., which samples
:math:`\pi_j` exactly. Padding gets :math:`-\infty` and is never drawn; a component the ad lacks gets index
:math:`-1`.

Shapes: logits and mask ``[B, m, N]``; combinations ``[B, K, m]`` (int64, -1 for absent components).
"""

from __future__ import annotations

import tensorflow as tf

_NEG = -1e9


def masked_logits(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``logits`` with the padding at :math:`-10^9` (so softmaxes and argmaxes ignore it)."""
    return tf.where(tf.cast(mask, tf.bool), logits, tf.constant(_NEG, logits.dtype))


def present(mask: tf.Tensor) -> tf.Tensor:
    """[B, m] bool: the ad has the component (at least one real candidate)."""
    return tf.reduce_any(tf.cast(mask, tf.bool), axis=-1)


def _argmax_or_absent(scores: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """argmax over the last axis of ``scores`` [B, K, m, N]; -1 where the component is absent."""
    index = tf.argmax(scores, axis=-1, output_type=tf.int64)
    return tf.where(present(mask)[:, None, :], index, tf.constant(-1, tf.int64))


def sample(logits: tf.Tensor, mask: tf.Tensor, num_samples: int, seed) -> tf.Tensor:
    """[B, K, m] combinations drawn from :math:`\\pi` (``seed``: a stateless seed, shape [2] int)."""
    shape = tf.concat([tf.shape(logits)[:1], [num_samples], tf.shape(logits)[1:]], axis=0)
    u = tf.random.stateless_uniform(shape, seed=seed, minval=1e-12, maxval=1.0, dtype=logits.dtype)
    gumbel = -tf.math.log(-tf.math.log(u))
    return _argmax_or_absent(masked_logits(logits, mask)[:, None] + gumbel, mask)


def sample_uniform(mask: tf.Tensor, num_samples: int, seed) -> tf.Tensor:
    """[B, K, m] combinations drawn uniformly from the pools (every real candidate equally likely)."""
    return sample(tf.zeros(tf.shape(mask), tf.float32), mask, num_samples, seed)


def greedy(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, m] each component's most likely element (the mode of :math:`\\pi`; -1 where absent)."""
    return _argmax_or_absent(masked_logits(logits, mask)[:, None], mask)[:, 0]


def log_probability(logits: tf.Tensor, mask: tf.Tensor, combination: tf.Tensor) -> tf.Tensor:
    """[B] :math:`\\log \\pi(c) = \\sum_{j \\in J_i} \\log \\pi_j(c_j)` of one combination [B, m] per row."""
    log_pi = tf.nn.log_softmax(masked_logits(logits, mask), axis=-1)
    picked = tf.gather(log_pi, tf.maximum(combination, 0), axis=2, batch_dims=2)
    return tf.reduce_sum(tf.where(combination >= 0, picked, tf.zeros_like(picked)), axis=-1)


def seed_of(*ids: tf.Tensor, base: int = 0) -> tf.Tensor:
    """A stateless seed [2] from a request's ids (the same request always draws the same samples)."""
    prime = 2_147_483_647
    mixed = tf.constant(base % prime, tf.int64)
    for x in ids:  # every term stays below 2^62: no int64 overflow
        total = tf.math.floormod(tf.reduce_sum(tf.math.floormod(tf.cast(x, tf.int64), prime)), prime)
        mixed = tf.math.floormod(mixed * 1_000_003 + total, prime)
    return tf.stack([mixed, tf.constant(base % prime, tf.int64)])


def enumerate_or_sample(mask: tf.Tensor, max_combinations: int, seed):
    """Candidate combinations for exhaustive scoring where the space is small, sampled where it is not.

    A row whose :math:`|C_i| = \\prod_{j \\in J_i} n_{i,j}` is at most ``max_combinations`` gets every
    combination (mixed-radix decoding of :math:`t = 0, 1, \\dots`: :math:`c_j = \\lfloor t / \\prod_{j'<j} n_{j'}
    \\rfloor \\bmod n_j`; slots past :math:`|C_i|` repeat combinations); a larger row gets ``max_combinations``
    uniform draws. Returns ``(combinations [B, K, m], exhaustive [B] bool)`` with K = ``max_combinations``.
    """
    counts = tf.reduce_sum(tf.cast(tf.cast(mask, tf.bool), tf.int64), axis=-1)  # [B, m]
    radix = tf.maximum(counts, 1)
    stride = tf.math.cumprod(radix, axis=1, exclusive=True)
    total = tf.reduce_prod(radix, axis=1)  # [B] (at most 15^6: no overflow)
    t = tf.range(max_combinations, dtype=tf.int64)[None, :] % total[:, None]  # [B, K]
    enumerated = (t[:, :, None] // stride[:, None, :]) % radix[:, None, :]
    enumerated = tf.where(counts[:, None, :] > 0, enumerated, tf.constant(-1, tf.int64))
    exhaustive = total <= max_combinations
    sampled = sample_uniform(mask, max_combinations, seed)
    return tf.where(exhaustive[:, None, None], enumerated, sampled), exhaustive
