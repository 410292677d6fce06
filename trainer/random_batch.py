"""Random batches of transformed features, for shape tests and training-speed benchmarks."""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

import features as F
from transform import names as N

# Vocabulary sizes (without OOV buckets) for models built without a Transform output.
SMALL_VOCAB_SIZES = {name: 50 for name in N.ID_VOCABULARIES}


def small_cardinalities(vocab_sizes: Optional[Mapping[str, int]] = None) -> Dict[str, int]:
    return N.cardinalities_from_vocab_sizes(vocab_sizes or SMALL_VOCAB_SIZES)


def random_transformed_batch(cardinalities: Mapping[str, int], batch_size: int, seed: int = 0,
                             click_rate: float = 0.1, request_rows: int = 1) -> Dict[str, tf.Tensor]:
    """A dict of every AR/CR model input (and the label) with valid random values.

    ``request_rows`` > 1: consecutive runs of that many rows are one request's, sharing every user-level input
    (the user's features and behaviour sequence), as a batch of the block-shuffled training input holds them.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name in N.AR_CATEGORICAL + N.CR_CATEGORICAL:
        out[name] = rng.integers(0, cardinalities[name], batch_size)
    # Only the inputs the selected feature spec has (no sequence group: no sequence inputs, and so on).
    for name in (N.AD_HIST_CTR_Z, N.AD_HIST_IMPS_LOG_Z):
        if name:
            out[name] = rng.normal(size=batch_size).astype(np.float32)
    if N.SEQ_CATEGORY_SHARE:
        out[N.SEQ_CATEGORY_SHARE] = rng.uniform(0.0, 1.0, batch_size).astype(np.float32)
    if N.AD_HIST_CTR_CLIPPED:
        out[N.AD_HIST_CTR_CLIPPED] = rng.uniform(0.0, 0.2, batch_size).astype(np.float32)
    if N.HAS_SEQUENCE:
        lengths = rng.integers(0, N.SEQUENCE_LENGTH + 1, batch_size)
        mask = (np.arange(N.SEQUENCE_LENGTH)[None, :] < lengths[:, None]).astype(np.float32)
        out[N.SEQ_MASK] = mask
        out[N.SEQ_LENGTH_FRACTION] = (np.minimum(lengths, N.SEQUENCE_LENGTH) / N.SEQUENCE_LENGTH).astype(np.float32)
        for name, table in N.SEQUENCE_TABLE_OF.items():
            out[name] = rng.integers(0, cardinalities[table], mask.shape) * mask.astype(np.int64)
    for name, width in N.DENSE_WIDTHS.items():
        out[name] = rng.normal(size=(batch_size, width)).astype(np.float32)
    out[N.LABEL_KEY] = (rng.uniform(size=batch_size) < click_rate).astype(np.int64)
    if request_rows > 1:
        first_row = np.arange(batch_size) // request_rows * request_rows  # each row's request's first row
        for name in out:
            if N.SOURCES.get(name) and set(N.SOURCES[name]) <= set(F.BROADCASTABLE_INPUTS):
                out[name] = out[name][first_row]
    return {k: tf.constant(v) for k, v in out.items()}
