"""Reproducible randomness for the bandit CRs' Thompson samples, and carrying a posterior to the next run.

A served bandit draws a fresh sample per request, yet a replayed request must get the same answer (to debug
it, or to re-score a logged request). :func:`request_seed` derives the stateless-RNG seed from the request's
own content, so the sample is a pure function of the request; :func:`salted` gives each draw of one request
its own stream.

The posteriors are stored per transformed id (one table row per vocabulary index); :func:`carry_over` maps a
previous run's rows onto this run's vocabulary by raw id, so a daily update starts from yesterday's posterior.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf


def request_seed(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """int64 ``[2]`` seed: the fingerprint of the values of ``tensors`` (ints, floats or strings, any shapes).

    Equal inputs give equal seeds; any changed value changes the seed.
    """
    parts = []
    for t in tensors:
        t = tf.convert_to_tensor(t)
        if t.dtype == tf.string:
            t = tf.strings.to_hash_bucket_fast(tf.reshape(t, [-1]), 2 ** 62)
        elif t.dtype.is_floating:
            t = tf.cast(tf.bitcast(tf.cast(t, tf.float32), tf.int32), tf.int64)
        parts.append(tf.reshape(tf.cast(t, tf.int64), [-1]))
    fingerprint = tf.fingerprint(tf.reshape(tf.concat(parts, axis=0), [1, -1]))  # uint8 [1, 8]
    return tf.cast(tf.bitcast(tf.reshape(fingerprint, [2, 4]), tf.int32), tf.int64)


def salted(seed: tf.Tensor, salt: int) -> tf.Tensor:
    """A different seed for each ``salt`` (each independent draw of one request)."""
    return seed + tf.constant([0, salt], tf.int64)


def inverse_gamma(shape, seed: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """:math:`\\sigma^2 \\sim \\mathrm{InvGamma}(a, b)`, i.e. :math:`b / G` with :math:`G \\sim \\mathrm{Gamma}(a, 1)`."""
    return b / tf.random.stateless_gamma(shape, seed, alpha=a)


def carry_over(old_keys: np.ndarray, old_rows: np.ndarray, new_keys: np.ndarray, default) -> np.ndarray:
    """Rows of ``old_rows`` (indexed like ``old_keys``) for each of ``new_keys``; ``default`` where a new key is
    -1 (an OOV bucket) or was not in the old table. Keys are raw ids, -1 marking rows that are not one id."""
    old_keys, new_keys = np.asarray(old_keys), np.asarray(new_keys)
    out = np.broadcast_to(np.asarray(default, old_rows.dtype), (len(new_keys),) + old_rows.shape[1:]).copy()
    valid = old_keys >= 0
    order = np.argsort(old_keys[valid], kind="stable")
    sorted_keys, sorted_rows = old_keys[valid][order], np.flatnonzero(valid)[order]
    pos = np.clip(np.searchsorted(sorted_keys, new_keys), 0, max(len(sorted_keys) - 1, 0))
    found = (new_keys >= 0) & (len(sorted_keys) > 0)
    if len(sorted_keys):
        found &= sorted_keys[pos] == new_keys
    out[found] = old_rows[sorted_rows[pos[found]]]
    return out
