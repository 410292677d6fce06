"""CR, the creative ranker: few user and ad features, rich creative features, the quantized pctr_ad."""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from transform import names as N
from trainer.embeddings import CategoricalEmbeddings, prior_logit_initializer
from trainer.quantizer import PctrQuantizer


class CRModel(keras.Model):
    """Creative-level CTR model (the right half of Fig. 3 of Yang et al., AAAI 2024).

    .. math::

        x &= [E_{\\text{user}}; E_{\\text{ad}}; E_{\\text{creative}}; v; Q(p)] \\\\
        h &= \\mathrm{ReLU\\,MLP}_{128,64,32}(x), \\qquad
        \\mathrm{logit} = w^\\top h + b, \\qquad pctr_c = \\sigma(\\mathrm{logit})

    :math:`E` are dimension-``embedding_dim`` embeddings of :data:`transform.names.CR_CATEGORICAL` (the
    simple user codes, the ad features, the creative id and its attributes), :math:`v` the dense creative
    content embedding and :math:`Q(p)` the :class:`~trainer.quantizer.PctrQuantizer` code embedding of the
    pctr input :math:`p`: AR's pctr_ad when trained jointly, the ad's historical CTR otherwise and online.

    Args:
      cardinalities: rows of every categorical table.
      embedding_dim: CR embedding size (4 in JAC).
      hidden_units: the MLP.
      quantizer_buckets, quantizer_dim, quantizer_r, quantizer_slope_window: the pctr quantizer (K, D, r, h).
      seed: quantizer initializer seed.
      initial_ctr: the output bias starts at its log-odds (``None``: at 0).
      embedding_rows: rows of the one embedding table of every categorical input (``None``: one per id).

    Shapes: ``call(features, pctr)`` takes a dict holding :data:`transform.names.CR_CATEGORICAL` ``[B]`` and
    :data:`transform.names.CR_DENSE` ``[B, 8]``, and ``pctr`` ``[B]``; returns the logit ``[B]``.
    :meth:`first_layer_blocks` names the row blocks of the first kernel, for the fused serving scorer.
    """

    feature_names = N.CR_CATEGORICAL + N.CR_DENSE

    def __init__(self, cardinalities: Mapping[str, int], embedding_dim: int = 4,
                 hidden_units: Sequence[int] = (128, 64, 32), quantizer_buckets: int = 8192,
                 quantizer_dim: int = 128, quantizer_r: float = 100.0, quantizer_slope_window: int = 16,
                 seed: Optional[int] = 0, initial_ctr: Optional[float] = None,
                 embedding_rows: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.cardinalities = {n: int(cardinalities[n]) for n in N.CR_CATEGORICAL}
        self.embedding_dim = int(embedding_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.seed = seed
        self.initial_ctr = initial_ctr
        self.embedding_rows = embedding_rows
        self.embeddings = CategoricalEmbeddings(self.cardinalities, N.CR_CATEGORICAL, self.embedding_dim,
                                                rows=embedding_rows, name="embeddings")
        self.quantizer = PctrQuantizer(quantizer_buckets, quantizer_dim, quantizer_r,
                                       slope_window=quantizer_slope_window, seed=seed, name="pctr_quantizer")
        self.hidden_layers = [keras.layers.Dense(u, activation="relu", name=f"hidden_{i}")
                              for i, u in enumerate(self.hidden_units)]
        self.logit_layer = keras.layers.Dense(1, bias_initializer=prior_logit_initializer(initial_ctr), name="logit")

    def dense_inputs(self, features: Mapping[str, tf.Tensor]) -> List[tf.Tensor]:
        """The dense ``[B, width]`` inputs: the content embedding, or none when the feature spec has none."""
        return [tf.cast(features[n], tf.float32) for n in N.CR_DENSE]

    def call(self, features: Mapping[str, tf.Tensor], pctr: tf.Tensor, training=None) -> tf.Tensor:
        x = tf.concat([self.embeddings(features)] + self.dense_inputs(features) + [self.quantizer(pctr)], axis=1)
        for layer in self.hidden_layers:
            x = layer(x)
        return tf.squeeze(self.logit_layer(x), axis=1)

    def first_layer_blocks(self) -> List[Tuple[str, int, int]]:
        """``(block, start, stop)`` row ranges of the first hidden kernel, in input order.

        Blocks: one per categorical feature (its name), ``N.CREATIVE_EMBEDDING`` (the dense embedding) and
        ``"pctr"`` (the quantizer embedding).
        """
        blocks, start = [], 0
        for name in N.CR_CATEGORICAL:
            blocks.append((name, start, start + self.embedding_dim))
            start += self.embedding_dim
        for name in N.CR_DENSE:
            blocks.append((name, start, start + N.DENSE_WIDTHS[name]))
            start = blocks[-1][2]
        blocks.append(("pctr", start, start + self.quantizer.dim))
        return blocks

    def get_config(self):
        return {
            "cardinalities": dict(self.cardinalities), "embedding_dim": self.embedding_dim,
            "hidden_units": list(self.hidden_units), "quantizer_buckets": self.quantizer.buckets,
            "quantizer_dim": self.quantizer.dim, "quantizer_r": self.quantizer.r,
            "quantizer_slope_window": self.quantizer.slope_window, "seed": self.seed,
            "initial_ctr": self.initial_ctr, "embedding_rows": self.embedding_rows, "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
