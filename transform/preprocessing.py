"""tf.Transform ``preprocessing_fn`` for the joint ad & creative ranker.

Outputs (names and groups in :mod:`transform.names`):

* ids (user, ad, advertiser, brand, creative): indices into bounded vocabularies
  (``top_k`` / ``frequency_threshold``) plus OOV buckets (id mod buckets). The behaviour sequence's ad ids use the
  ad-id vocabulary and every candidate creative id the creative-id vocabulary, so a sequence item or a
  candidate shares its embedding row with the same id seen as the impression's ad / creative.
* small codes: passed through when inside their known domain ``[0, d)``; anything else becomes ``d``.
* ``ad_hist_ctr``: z-scored for AR, clipped to ``[0, 1]`` for CR's quantizer (eq. 5 of Yang et al., AAAI 2024).
  ``ad_hist_imps``: ``log1p`` then z-scored.
* sequence: the newest :data:`~transform.names.SEQUENCE_LENGTH` items, newest first, zero-padded,
  with a float 0/1 mask.
* AR user x ad crosses: exact products of small codes, and the number (a code) and share (a number) of
  sequence items in the ad's category; the sequence length as a fraction of the window.
* candidate lists: kept as sparse (ragged) lists, mapped like the exposed creative.
* the click label, under :data:`~transform.names.LABEL_KEY`.

Every output depends only on the raw features listed in :data:`transform.names.SOURCES`; in particular AR
inputs never read creative features and CR inputs never read AR-only user features, so each serving model
can apply this one graph to its own raw inputs.
"""

from __future__ import annotations

from typing import Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft

import feature_specs
import features as F
from transform import names as N


def _scalar(x) -> tf.Tensor:
    """[B], [B, 1] or a sparse one-value-per-row feature -> dense [B].

    The raw schema may declare a scalar as ``FixedLen []``, ``FixedLen [1]`` (SchemaGen's inferred shape) or
    ``VarLen`` (ragged inputs arrive here as sparse); the graph accepts all of them.
    """
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x)[:, :1]
    return tf.reshape(x, [-1])


def _fixed(x, length: int) -> tf.Tensor:
    """[B, length] dense from a dense or sparse fixed-length list."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x)
    return tf.reshape(x, [-1, length])


def _sparse(x) -> tf.SparseTensor:
    """A list feature as a [B, ?] SparseTensor (dense inputs keep every value, zeros included)."""
    if isinstance(x, tf.SparseTensor):
        return x
    return tf.RaggedTensor.from_tensor(tf.reshape(x, [tf.shape(x)[0], -1])).to_sparse()


def _code(x: tf.Tensor, raw_name: str) -> tf.Tensor:
    """Small code -> itself inside its domain, else the out-of-domain code ``domain``."""
    domain = F.BY_NAME[raw_name].domain
    x = tf.cast(x, tf.int64)
    return tf.where((x >= 0) & (x < domain), x, tf.constant(domain, tf.int64))


def _sparse_code(sp: tf.SparseTensor, raw_name: str) -> tf.SparseTensor:
    return tf.SparseTensor(sp.indices, _code(sp.values, raw_name), sp.dense_shape)


def _bounded_ids(x, vocab_file, vocab: N.IdVocabulary):
    """Ids -> their vocabulary index, or ``size + id mod num_oov_buckets`` for ids outside it.

    ``tft.apply_vocabulary(num_oov_buckets=...)`` fingerprints the decimal string of *every* id, found or
    not: ~1 ms per 10,000 ids and feature, a quarter of CR's serving time for a 1,000 x 10 request. The
    ids are non-negative integers, so a modulus spreads the unseen ones just as well for a fraction of it.
    """
    found = tft.apply_vocabulary(x, vocab_file, default_value=-1)
    size = tft.experimental.get_vocabulary_size_by_name(vocab.filename)
    values, index = (x.values, found.values) if isinstance(x, tf.SparseTensor) else (x, found)
    oov = size + tf.math.floormod(tf.cast(values, tf.int64), vocab.num_oov_buckets)
    index = tf.where(index >= 0, index, oov)
    return tf.SparseTensor(found.indices, index, found.dense_shape) if isinstance(x, tf.SparseTensor) else index


def _newest_first(sp: tf.SparseTensor, length: int, pad) -> tf.Tensor:
    """[B, ?] sparse list (newest last) -> [B, length] dense, newest first, right-padded with ``pad``."""
    rt = tf.RaggedTensor.from_sparse(sp)
    rt = tf.reverse(rt, axis=[1])[:, :length]
    return rt.to_tensor(default_value=tf.cast(pad, sp.dtype), shape=[None, length])


def _sequence_mask(sp: tf.SparseTensor, length: int) -> tf.Tensor:
    lengths = tf.minimum(tf.RaggedTensor.from_sparse(sp).row_lengths(), length)
    return tf.sequence_mask(lengths, length, dtype=tf.float32)


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Optional[dict] = None) -> Dict[str, tf.Tensor]:
    """Maps raw impression features (``features.FEATURES``) to the transformed features of ``names``.

    ``custom_config`` (the Transform component's) records the pipeline's feature spec; a process that loaded
    another one stops here, naming both (see :func:`feature_specs.check_same_spec`).
    """
    feature_specs.check_same_spec(custom_config, F.SPEC, "Transform's preprocessing_fn")
    inputs = {name: x.to_sparse() if isinstance(x, tf.RaggedTensor) else x for name, x in inputs.items()}
    inputs = {
        name: _scalar(x) if F.BY_NAME[name].kind == F.SCALAR
        else _fixed(x, F.BY_NAME[name].length) if F.BY_NAME[name].kind == F.FIXED
        else _sparse(x)
        for name, x in inputs.items() if name in F.BY_NAME
    }
    out: Dict[str, tf.Tensor] = {}

    # --- bounded id vocabularies (analyzer output deferred, so lists can reuse it) ---
    vocab_files = {}
    for name, v in N.ID_VOCABULARIES.items():
        vocab_files[name] = tft.vocabulary(
            inputs[name], top_k=v.top_k, vocab_filename=v.filename,
            frequency_threshold=v.frequency_threshold if v.frequency_threshold > 1 else None
        )

    def lookup(x, id_name):
        return _bounded_ids(x, vocab_files[id_name], N.ID_VOCABULARIES[id_name])

    for name in N.ID_VOCABULARIES:
        out[N.xf(name)] = lookup(inputs[name], name)

    # --- small codes ---
    for name in N.CODE_FEATURES:
        out[N.xf(name)] = _code(inputs[name], name)

    # --- AR crosses: exact index a * card(b) + b over the mapped codes ---
    for a, b in N.CROSSES:
        out[N.cross_name(a, b)] = _code(inputs[a], a) * N.code_cardinality(b) + _code(inputs[b], b)

    # --- numerics (each optional: the spec's ad-history group may lack either) ---
    if F.AD_HIST_CTR:
        ctr = tf.cast(inputs[F.AD_HIST_CTR], tf.float32)
        out[N.AD_HIST_CTR_Z] = tft.scale_to_z_score(ctr)
        out[N.AD_HIST_CTR_CLIPPED] = tf.clip_by_value(ctr, 0.0, 1.0)
    if F.AD_HIST_IMPS:
        imps = tf.maximum(tf.cast(inputs[F.AD_HIST_IMPS], tf.float32), 0.0)
        out[N.AD_HIST_IMPS_LOG_Z] = tft.scale_to_z_score(tf.math.log1p(imps))

    if N.HAS_SEQUENCE:
        out.update(_sequence(inputs, lookup))
    if N.HAS_CREATIVE_EMBEDDING:
        out[N.CREATIVE_EMBEDDING] = tf.cast(inputs[F.CREATIVE_EMBEDDING], tf.float32)

    # --- candidate lists (evaluation only): mapped like the exposed creative, kept sparse ---
    out[N.xf(F.CAND_CREATIVE_IDS)] = lookup(inputs[F.CAND_CREATIVE_IDS], F.CREATIVE_ID)
    for attr in F.CREATIVE_ATTRIBUTES:
        cand = F.CANDIDATE_OF[attr]
        out[N.xf(cand)] = _sparse_code(inputs[cand], attr)
    if N.CANDIDATE_EMBEDDINGS:
        out[N.CANDIDATE_EMBEDDINGS] = inputs[F.CAND_EMBEDDINGS]

    # --- label (training only; never a model input) ---
    out[N.LABEL_KEY] = tf.cast(inputs[F.LABEL], tf.int64)
    return out


def _sequence(inputs, lookup) -> Dict[str, tf.Tensor]:
    """The behaviour sequence: same ad-id vocabulary and category mapping as the candidate ad."""
    out: Dict[str, tf.Tensor] = {}
    seq_ids = inputs[F.SEQ_AD_IDS]
    seq_cats = _sparse_code(inputs[F.SEQ_AD_CATEGORIES], F.AD_CATEGORY)
    out[N.SEQ_AD_IDS] = _newest_first(lookup(seq_ids, F.AD_ID), N.SEQUENCE_LENGTH, 0)
    out[N.SEQ_MASK] = _sequence_mask(seq_ids, N.SEQUENCE_LENGTH)
    cats = _newest_first(seq_cats, N.SEQUENCE_LENGTH, -1)  # -1: never equals a mapped category
    out[N.SEQ_AD_CATEGORIES] = tf.maximum(cats, 0)
    ad_cat = _code(inputs[F.AD_CATEGORY], F.AD_CATEGORY)
    matches = tf.reduce_sum(tf.cast(tf.equal(cats, ad_cat[:, None]), tf.int64), axis=1)
    out[N.SEQ_CATEGORY_MATCHES] = matches
    length = tf.reduce_sum(out[N.SEQ_MASK], axis=1)
    out[N.SEQ_CATEGORY_SHARE] = tf.cast(matches, tf.float32) / tf.maximum(length, 1.0)
    out[N.SEQ_LENGTH_FRACTION] = length / N.SEQUENCE_LENGTH
    return out
