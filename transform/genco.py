"""GenCO's model inputs from its log (``features.GENCO_FEATURES``): pools padded to a fixed width, and the
tf.Transform ``preprocessing_fn`` of the GenCO pipeline.

The model reads dense tensors (:func:`dense_inputs`):

* :data:`POOL_IDS`, :data:`POOL_STYLES`: int64 ``[B, m, N]`` -- every component's pool (``m`` =
  ``len(features.GENCO_COMPONENTS)``, ``N`` = ``features.GENCO_MAX_CANDIDATES``), truncated to its first N
  candidates and right-padded with ``features.GENCO_PAD``; a row of pads is a component the ad lacks;
* :data:`LOGGED`: int64 ``[B, m]``, the logged element's index in its pool (-1: the ad lacks the component, or
  the logged element was truncated away), and :data:`LOGGED_PROPENSITY` float32 ``[B, m]``, the logging
  policy's probability of it;
* ``features.GENCO_USER_FEATURES`` and ``features.GENCO_AD_FEATURES``: int64 ``[B]``, small codes (and the
  styles) mapped into their domain (anything else to the extra code ``domain``), ids as they are (the model
  hashes them);
* :data:`LABEL_KEY`: the click.

The Transform output stores the pools flattened (``[B, m * N]``) and records, with a vocabulary per id
feature, the number of distinct ids of the training data: the sizes of the hash embeddings
(:func:`hash_sizes`, Gu et al., 2025: "the sparse hash size ... is the number of its distinct ids").
"""

from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import tensorflow as tf

import features as F
from transform.names import LABEL_KEY as _TRAINER_LABEL_KEY
from transform.preprocessing import _code, _scalar

M = len(F.GENCO_COMPONENTS)
N = F.GENCO_MAX_CANDIDATES
POOL_IDS = "genco_pool_ids"
POOL_STYLES = "genco_pool_styles"
LOGGED = "genco_logged"
LOGGED_PROPENSITY = "genco_logged_propensity"
LABEL_KEY = _TRAINER_LABEL_KEY  # the click, under the name the trainer input (trainer.data) reads
CONTEXT_CODES = (F.USER_GENDER, F.USER_AGE_BUCKET, F.AD_CATEGORY)
CONTEXT_IDS = (F.USER_ID, F.AD_ID)
# Keys of the hash embedding sizes: the two context ids and every component's element ids.
HASHED = CONTEXT_IDS + F.GENCO_COMPONENTS
MODEL_INPUTS = CONTEXT_IDS + CONTEXT_CODES + (POOL_IDS, POOL_STYLES)


def vocabulary_name(key: str) -> str:
    return f"genco_vocab_{key}"


def pool_matrix(x, width: int = N, dtype=tf.int64) -> tf.Tensor:
    """A list feature (Sparse or Ragged, ``[B, ?]``) -> dense ``[B, width]`` of ``dtype``: its first ``width``
    values, right-padded with ``features.GENCO_PAD``."""
    ragged = tf.RaggedTensor.from_sparse(x) if isinstance(x, tf.SparseTensor) else x
    return tf.cast(ragged[:, :width], dtype).to_tensor(default_value=tf.cast(F.GENCO_PAD, dtype), shape=[None, width])


def dense_inputs(raw: Mapping[str, object]) -> Dict[str, tf.Tensor]:
    """Parsed raw GenCO features (``features.genco_raw_feature_spec``) -> the model's dense inputs (and the
    label, when ``raw`` has it). Styles outside their domain count as the out-of-domain code, like other codes."""
    ids = tf.stack([pool_matrix(raw[F.GENCO_CAND_IDS[c]]) for c in F.GENCO_COMPONENTS], axis=1)
    styles = tf.stack([pool_matrix(raw[F.GENCO_CAND_STYLES[c]]) for c in F.GENCO_COMPONENTS], axis=1)
    real = ids >= 0
    in_domain = (styles >= 0) & (styles < F.GENCO_NUM_STYLES)
    styles = tf.where(in_domain, styles, tf.constant(F.GENCO_NUM_STYLES, tf.int64))
    out = {POOL_IDS: ids, POOL_STYLES: tf.where(real, styles, tf.constant(F.GENCO_PAD, tf.int64))}
    for name in CONTEXT_IDS:
        out[name] = tf.cast(_scalar(raw[name]), tf.int64)
    for name in CONTEXT_CODES:
        out[name] = _code(_scalar(raw[name]), name)
    if F.GENCO_EXPOSED[F.GENCO_COMPONENTS[0]] in raw:
        logged = tf.stack([tf.cast(_scalar(raw[F.GENCO_EXPOSED[c]]), tf.int64) for c in F.GENCO_COMPONENTS], axis=1)
        # An index past the padding (a longer pool, truncated) or into no real candidate is not a logged element.
        inside = tf.gather(real, tf.clip_by_value(logged, 0, N - 1), axis=2, batch_dims=2)
        out[LOGGED] = tf.where((logged >= 0) & (logged < N) & inside, logged, tf.constant(-1, tf.int64))
        out[LOGGED_PROPENSITY] = tf.stack([tf.cast(_scalar(raw[F.GENCO_COMPONENT_PROPENSITY[c]]), tf.float32)
                                           for c in F.GENCO_COMPONENTS], axis=1)
    if F.LABEL in raw:
        out[LABEL_KEY] = tf.cast(_scalar(raw[F.LABEL]), tf.int64)
    return out


def parse_examples(serialized: tf.Tensor, names=None) -> Dict[str, tf.Tensor]:
    """Serialized GenCO tf.Examples -> :func:`dense_inputs` (``names``: the raw columns to parse)."""
    return dense_inputs(tf.io.parse_example(serialized, F.genco_raw_feature_spec(names)))


def preprocessing_fn(inputs: Dict[str, object]) -> Dict[str, tf.Tensor]:
    """The Transform component's user code for the GenCO log: :func:`dense_inputs`, pools flattened, and a
    vocabulary per hashed id (its size is the hash embedding's, see :func:`hash_sizes`)."""
    import tensorflow_transform as tft

    inputs = {k: v.to_sparse() if isinstance(v, tf.RaggedTensor) else v for k, v in inputs.items()}
    out = dense_inputs(inputs)
    for key in HASHED:
        if key in CONTEXT_IDS:
            values = tf.strings.as_string(out[key])
        else:
            ids = inputs[F.GENCO_CAND_IDS[key]]
            values = tf.SparseTensor(ids.indices, tf.strings.as_string(ids.values), ids.dense_shape)
        tft.vocabulary(values, vocab_filename=vocabulary_name(key))
    out[POOL_IDS] = tf.reshape(out[POOL_IDS], [-1, M * N])
    out[POOL_STYLES] = tf.reshape(out[POOL_STYLES], [-1, M * N])
    return out


def hash_sizes(tft_output) -> Dict[str, int]:
    """Hash embedding rows per key of :data:`HASHED`: the distinct ids of the training data (at least 1), from
    the Transform output."""
    return {key: max(1, int(tft_output.vocabulary_size_by_name(vocabulary_name(key)))) for key in HASHED}


def hash_sizes_of(train: Mapping[str, np.ndarray]) -> Dict[str, int]:
    """:func:`hash_sizes` from dense training inputs in memory (NumPy arrays of :func:`dense_inputs`)."""
    out = {key: max(1, len(np.unique(train[key]))) for key in CONTEXT_IDS}
    ids = np.asarray(train[POOL_IDS]).reshape(-1, M, N)
    for j, c in enumerate(F.GENCO_COMPONENTS):
        values = ids[:, j].ravel()
        out[c] = max(1, len(np.unique(values[values >= 0])))
    return out
