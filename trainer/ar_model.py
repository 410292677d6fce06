"""AR, the ad ranker: rich user, ad and user x ad features, a behaviour-sequence transformer, and DCN."""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

import features as F
from transform import names as N
from trainer.embeddings import CategoricalEmbeddings, prior_logit_initializer
from trainer.sequence import BehaviorSequenceEncoder
from trainer.unique_sequences import unique_sequences

# The candidate ad's id: it sets the batch (one row per ad; user features may come once per request).
AD_ID_XF = N.xf(F.AD_ID)


class ARModel(keras.Model):
    """Ad-level CTR model (the left half of Fig. 3 of Yang et al., AAAI 2024).

    .. math::

        x_0 &= [E_{\\text{user}}; E_{\\text{ad}}; E_{\\text{cross}}; z; \\mathrm{Seq}(S, m, t)] \\\\
        x_{l+1} &= x_0 \\odot (U_l V_l x_l + b_l) + x_l \\qquad (l = 0..L_c-1,\\ \\text{DCN-v2 cross}) \\\\
        h &= \\mathrm{ReLU\\,MLP}_{512,512,256,128}(x_0) \\\\
        \\mathrm{logit} &= w^\\top [x_{L_c}; h] + b, \\qquad pctr_{ad} = \\sigma(\\mathrm{logit})

    :math:`E` are dimension-``embedding_dim`` embeddings of every categorical input in
    :data:`transform.names.AR_CATEGORICAL` (ids, small codes, user x ad crosses, the sequence/category match
    count), :math:`z` the z-scored numerics (if any), and :math:`\\mathrm{Seq}` (only when the feature spec
    has a sequence group) the
    :class:`~trainer.sequence.BehaviorSequenceEncoder` over the behaviour sequence whose items
    :math:`S_l = [E^{ad}_{id_l}; E^{cat}_{c_l}]` share the candidate ad's id and category tables, read out
    with the candidate :math:`t = [E^{ad}_{id}; E^{cat}_{c}]` as query.

    Args:
      cardinalities: rows of every categorical table (:func:`transform.names.cardinalities`).
      embedding_dim: AR embedding size (16 in JAC).
      transformer_layers, transformer_heads, transformer_ff_dim: the sequence transformer.
      num_cross_layers: cross layers :math:`L_c` (0 disables the cross network).
      cross_projection_dim: rank of :math:`U_l V_l`; ``None`` for a full-rank kernel.
      hidden_units: the deep tower.
      sequence_length: L of the padded sequence inputs.
      initial_ctr: the output bias starts at its log-odds (the training CTR), so early steps learn features
        rather than the base rate; ``None`` starts it at 0.
      embedding_rows: rows of the one embedding table of every categorical input (``None``: one per id; see
        :class:`~trainer.embeddings.CategoricalEmbeddings`).

    Shapes: ``call(features)`` takes a dict holding :data:`transform.names.AR_INPUTS` (categoricals and
    numerics ``[B]``, sequences and mask ``[B, L]``) and returns the logit ``[B]``. User features and the
    sequence may instead have batch 1 (one user, B candidate ads). Either way the sequence's self-attention
    runs once per distinct sequence of the batch (:mod:`trainer.unique_sequences`: once per request when a
    request's rows come together) and only the target attention runs per ad.
    """

    feature_names = N.AR_INPUTS

    def __init__(self, cardinalities: Mapping[str, int], embedding_dim: int = 16, transformer_layers: int = 2,
                 transformer_heads: int = 2, transformer_ff_dim: int = 64, num_cross_layers: int = 3,
                 cross_projection_dim: Optional[int] = 64,
                 hidden_units: Sequence[int] = (512, 512, 256, 128),
                 sequence_length: int = N.SEQUENCE_LENGTH, initial_ctr: Optional[float] = None,
                 embedding_rows: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.cardinalities = {n: int(cardinalities[n]) for n in N.AR_CATEGORICAL}
        self.embedding_dim = int(embedding_dim)
        self.transformer_layers = int(transformer_layers)
        self.transformer_heads = int(transformer_heads)
        self.transformer_ff_dim = int(transformer_ff_dim)
        self.num_cross_layers = int(num_cross_layers)
        self.cross_projection_dim = cross_projection_dim
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.sequence_length = int(sequence_length)
        self.initial_ctr = initial_ctr
        self.embedding_rows = embedding_rows

        self.embeddings = CategoricalEmbeddings(self.cardinalities, N.AR_CATEGORICAL, self.embedding_dim,
                                                rows=embedding_rows, name="embeddings")
        # Logs without a behaviour sequence (the feature spec's sequence group empty): no transformer.
        self.sequence_encoder = BehaviorSequenceEncoder(
            self.transformer_layers, self.transformer_heads, self.transformer_ff_dim, self.sequence_length,
            name="sequence_encoder") if N.HAS_SEQUENCE else None
        self.cross_layers = [
            tfrs.layers.dcn.Cross(projection_dim=cross_projection_dim, kernel_initializer="glorot_uniform",
                                  name=f"cross_{i}")
            for i in range(self.num_cross_layers)]
        self.deep_layers = [keras.layers.Dense(u, activation="relu", name=f"deep_{i}")
                            for i, u in enumerate(self.hidden_units)]
        self.logit_layer = keras.layers.Dense(1, bias_initializer=prior_logit_initializer(initial_ctr), name="logit")

    def _sequence_items(self, ids: tf.Tensor, categories: tf.Tensor) -> tf.Tensor:
        id_table, cat_table = (N.SEQUENCE_TABLE_OF[N.SEQ_AD_IDS], N.SEQUENCE_TABLE_OF[N.SEQ_AD_CATEGORIES])
        return tf.concat([self.embeddings.lookup(id_table, ids), self.embeddings.lookup(cat_table, categories)],
                         axis=-1)

    def call(self, features: Mapping[str, tf.Tensor], training=None) -> tf.Tensor:
        # Ad features define the batch; user and sequence features may come once (batch 1) per request.
        batch = tf.shape(features[AD_ID_XF])[0]
        blocks = [self.embeddings(features, batch_size=batch)]
        if N.AR_NUMERIC:
            blocks.append(tf.stack([tf.broadcast_to(tf.reshape(tf.cast(features[n], tf.float32), [-1]), [batch])
                                    for n in N.AR_NUMERIC], axis=1))
        if self.sequence_encoder is not None:
            target = self._sequence_items(tf.reshape(features[N.SEQUENCE_TABLE_OF[N.SEQ_AD_IDS]], [-1]),
                                          tf.reshape(features[N.SEQUENCE_TABLE_OF[N.SEQ_AD_CATEGORIES]], [-1]))
            # The transformer runs once per distinct sequence: a request's rows all carry its user's.
            (ids, categories, mask), index = unique_sequences(
                features[N.SEQ_AD_IDS], features[N.SEQ_AD_CATEGORIES], features[N.SEQ_MASK])
            items = self._sequence_items(ids, categories)
            blocks.append(self.sequence_encoder(items, tf.cast(mask, tf.float32), target, index=index))

        x0 = tf.concat(blocks + self.extra_inputs(features), axis=1)
        cross = x0
        for layer in self.cross_layers:
            cross = layer(x0, cross)
        deep = x0
        for layer in self.deep_layers:
            deep = layer(deep)
        return tf.squeeze(self.logit_layer(tf.concat([cross, deep], axis=1)), axis=1)

    def extra_inputs(self, features: Mapping[str, tf.Tensor]) -> List[tf.Tensor]:
        """Further ``[B, k]`` blocks of :math:`x_0`: none here (the creative-aware AR adds the creative's)."""
        return []

    def get_config(self):
        return {
            "cardinalities": dict(self.cardinalities), "embedding_dim": self.embedding_dim,
            "transformer_layers": self.transformer_layers, "transformer_heads": self.transformer_heads,
            "transformer_ff_dim": self.transformer_ff_dim, "num_cross_layers": self.num_cross_layers,
            "cross_projection_dim": self.cross_projection_dim, "hidden_units": list(self.hidden_units),
            "sequence_length": self.sequence_length, "initial_ctr": self.initial_ctr,
            "embedding_rows": self.embedding_rows, "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
