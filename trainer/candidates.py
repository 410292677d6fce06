"""Scoring every candidate creative of every impression with one CR call (offline evaluation)."""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Tuple

import tensorflow as tf

import features as F
from transform import names as N


def candidate_rows(transformed: Mapping[str, object]) -> Tuple[Dict[str, tf.Tensor], tf.Tensor, tf.Tensor, tf.Tensor]:
    """Flattens the transformed candidate lists into CR input rows.

    Row ``j`` pairs candidate ``position[j]`` of impression ``impression[j]`` with that impression's user
    and ad features. Returns ``(cr_features, pctr, impression, position)``: CR inputs with ``N`` rows (the
    candidates of the whole batch), the impression's historical ad CTR per row, and the two int64 ``[N]``
    indices. The parallel lists must have equal lengths per impression (the embedding list
    ``CREATIVE_EMBEDDING_DIM`` times that); a violation raises an error naming the list.
    """
    ids = transformed[N.xf(F.CAND_CREATIVE_IDS)]
    impression, position = ids.indices[:, 0], ids.indices[:, 1]
    batch = tf.shape(transformed[N.AD_HIST_CTR_CLIPPED], out_type=tf.int64)[0]

    def lengths(sp):
        return tf.math.unsorted_segment_sum(tf.ones_like(sp.indices[:, 0]), sp.indices[:, 0], batch)

    count = lengths(ids)
    checks = []
    for cand in N.CANDIDATE_INPUTS:
        width = N.DENSE_WIDTHS.get(N.CANDIDATE_INPUTS[cand], 1)
        checks.append(tf.debugging.Assert(
            tf.reduce_all(tf.equal(lengths(transformed[cand]), count * width)),
            [f"candidate list {cand[:-len(N.SUFFIX)]} is not parallel to {F.CAND_CREATIVE_IDS}"]))
    with tf.control_dependencies(checks):
        impression = tf.identity(impression)

    rows: Dict[str, tf.Tensor] = {}
    for name in N.CR_USER_CATEGORICAL + N.CR_AD_CATEGORICAL:
        rows[name] = tf.gather(transformed[name], impression)
    for cand, creative in N.CANDIDATE_INPUTS.items():
        values = transformed[cand].values
        rows[creative] = tf.reshape(values, [-1, N.DENSE_WIDTHS[creative]]) if creative in N.DENSE_WIDTHS else values
    return rows, tf.gather(transformed[N.AD_HIST_CTR_CLIPPED], impression), impression, position


def segment_argmax(scores: tf.Tensor, segment: tf.Tensor, position: tf.Tensor, num_segments) -> tf.Tensor:
    """Per segment, the ``position`` of its highest score (first one on ties); -1 for empty segments.

    Shapes: ``scores``, ``segment``, ``position`` ``[N]``; output int64 ``[num_segments]``.
    """
    best = tf.math.unsorted_segment_max(scores, segment, num_segments)
    is_best = scores >= tf.gather(best, segment)
    none = tf.constant(tf.int64.max, tf.int64)
    first = tf.math.unsorted_segment_min(tf.where(is_best, tf.cast(position, tf.int64), none), segment, num_segments)
    return tf.where(tf.equal(first, none), tf.constant(-1, tf.int64), first)


def select_creatives(score_fn: Callable[[Mapping[str, tf.Tensor], tf.Tensor], tf.Tensor],
                     transformed: Mapping[str, object], raw_candidate_ids) -> Dict[str, tf.Tensor]:
    """Scores all candidates with ``score_fn(cr_features, pctr)`` in one call; returns the top-1 per impression.

    Returns ``{features.SELECTED_INDEX: int64 [B], features.SELECTED_CREATIVE_ID: int64 [B]}``: the index of
    the best-scored candidate in the impression's list and its raw creative id (-1 without candidates).
    """
    rows, pctr, impression, position = candidate_rows(transformed)
    batch = tf.shape(transformed[N.AD_HIST_CTR_CLIPPED], out_type=tf.int64)[0]
    index = segment_argmax(tf.reshape(score_fn(rows, pctr), [-1]), impression, position, batch)
    if isinstance(raw_candidate_ids, tf.SparseTensor):
        raw_candidate_ids = tf.sparse.to_dense(raw_candidate_ids, default_value=-1)
    raw_candidate_ids = tf.reshape(raw_candidate_ids, [batch, -1])
    width = tf.shape(raw_candidate_ids, out_type=tf.int64)[1]
    safe = tf.clip_by_value(index, 0, tf.maximum(width - 1, 0))
    picked = tf.gather(tf.pad(raw_candidate_ids, [[0, 0], [0, 1]], constant_values=-1), safe, batch_dims=1)
    return {F.SELECTED_INDEX: index, F.SELECTED_CREATIVE_ID: tf.where(index < 0, tf.constant(-1, tf.int64), picked)}


def candidate_lists(values: tf.Tensor, impression: tf.Tensor, position: tf.Tensor,
                    num_lists) -> Tuple[tf.Tensor, tf.Tensor]:
    """Per-row values ``[N]`` (rows of :func:`candidate_rows`) as padded lists ``[num_lists, K]`` and their mask.

    ``K`` is the longest list; slot ``(impression[j], position[j])`` holds ``values[j]``, the others 0 with
    mask false (e.g. for the list-wise distillation of ``trainer.listwise_distillation``).
    """
    index = tf.stack([tf.cast(impression, tf.int64), tf.cast(position, tf.int64)], axis=1)
    width = tf.reduce_max(tf.concat([tf.cast(position, tf.int64) + 1, tf.zeros([1], tf.int64)], axis=0))
    shape = tf.stack([tf.cast(num_lists, tf.int64), width])
    dense = tf.scatter_nd(index, tf.reshape(values, [-1]), shape)
    mask = tf.scatter_nd(index, tf.ones_like(impression, tf.float32), shape) > 0
    return dense, mask
