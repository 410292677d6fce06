"""One embedding table shared by a model's categorical features, each feature a block of its rows."""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from trainer import distribute


class CategoricalEmbeddings(keras.layers.Layer):
    """Looks up every categorical feature in one table and concatenates the rows.

    .. math::

        x = [E_{r_1(i_1)}; E_{r_2(i_2)}; \\dots; E_{r_F(i_F)}], \\qquad
        r_f(i) = (o_f + i) \\bmod R, \\qquad o_f = \\textstyle\\sum_{g < f} V_g, \\qquad E \\in \\mathbb{R}^{R \\times d}

    Feature :math:`f`'s indices :math:`[0, V_f)` (a Transform vocabulary plus its hashed OOV buckets, or a
    small code) are laid end to end, so with the default :math:`R = \\sum_f V_f` rows every index has its own
    row: the same model as one table per feature, in one variable (one gather and one sparse optimizer update
    per step instead of one per feature), as JAC keeps every feature in one table (Yang et al., AAAI 2024).
    ``rows`` sets :math:`R` independently of the vocabularies: fewer rows fold the indices onto each other
    (the hashing trick, collisions :math:`i \\equiv j \\pmod R`), more leave spare rows.

    Under parameter-server training the table is created inside :func:`trainer.distribute.sharded_tables`,
    so the strategy's partitioner splits it by rows across the ps tasks (a ``ShardedVariable``); lookups go
    through ``tf.nn.embedding_lookup``, which gathers each shard's rows on its own task.

    Args:
      cardinalities: feature name -> number of indices :math:`V_f` (indices must lie in ``[0, V_f)``).
      names: the features to embed, in output order.
      dim: embedding size :math:`d`.
      rows: table rows :math:`R`; ``None``: :math:`\\sum_f V_f`.

    Shapes: input a dict of int ``[B]`` tensors (extra keys are ignored); output ``[B, F * d]``. With
    ``batch_size=B`` given, inputs of batch 1 are broadcast to ``B`` rows. :meth:`lookup` embeds one
    feature's ids of any shape (the behaviour sequence reuses the ad-id and category blocks);
    :meth:`table` is feature ``f``'s ``[V_f, d]`` view, for serving code that keeps per-feature tables.
    """

    def __init__(self, cardinalities: Mapping[str, int], names: Sequence[str], dim: int,
                 rows: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        missing = [n for n in names if n not in cardinalities]
        if missing:
            raise ValueError(f"no cardinality for {missing}")
        self.names = tuple(names)
        self.cardinalities = {n: int(cardinalities[n]) for n in self.names}
        self.dim = int(dim)
        self.offsets: Dict[str, int] = {}
        total = 0
        for name in self.names:
            self.offsets[name] = total
            total += self.cardinalities[name]
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 1):
            raise ValueError(f"rows must be a positive integer or None, got {rows!r}")
        self.rows = total if rows is None else rows
        self._fold = self.rows < total  # indices past the last row wrap around
        self._rows_arg = rows
        self.embeddings = None

    def build(self, input_shape=None):
        blocks = [self.cardinalities[n] for n in self.names] if not self._fold else []
        blocks += [self.rows - sum(blocks)] if self.rows > sum(blocks) else []
        with distribute.sharded_tables():
            self.embeddings = self.add_weight(name="table", shape=(self.rows, self.dim), trainable=True,
                                              initializer=BlockUniform(blocks, -0.05, 0.05))
        super().build(input_shape)

    def _rows_of(self, name: str, ids: tf.Tensor) -> tf.Tensor:
        rows = tf.cast(ids, tf.int64) + self.offsets[name]
        return tf.math.floormod(rows, self.rows) if self._fold else rows

    def _gather(self, rows: tf.Tensor) -> tf.Tensor:
        if not self.built:
            self.build()
        return tf.nn.embedding_lookup(self.embeddings, rows)

    def lookup(self, name: str, ids: tf.Tensor) -> tf.Tensor:
        """Rows of feature ``name`` for ``ids`` of any shape: ``ids.shape + [d]``."""
        return self._gather(self._rows_of(name, ids))

    def table(self, name: str) -> tf.Tensor:
        """Feature ``name``'s ``[V_f, d]`` rows (row ``i`` embeds index ``i``), as a tensor."""
        return self.lookup(name, tf.range(self.cardinalities[name], dtype=tf.int64))

    def call(self, features: Mapping[str, tf.Tensor], batch_size=None) -> tf.Tensor:
        ids = [tf.reshape(features[n], [-1]) for n in self.names]
        if batch_size is not None:  # features sent once per request (batch 1) are repeated to every row
            ids = [tf.broadcast_to(i, [batch_size]) for i in ids]
        rows = tf.stack([self._rows_of(n, i) for n, i in zip(self.names, ids)], axis=1)  # [B, F]
        return tf.reshape(self._gather(rows), [-1, len(self.names) * self.dim])

    @property
    def output_dim(self) -> int:
        return len(self.names) * self.dim

    def get_config(self):
        config = super().get_config()
        config.update(cardinalities=dict(self.cardinalities), names=list(self.names), dim=self.dim,
                      rows=self._rows_arg)
        return config


class BlockUniform(keras.initializers.Initializer):
    """``U(minval, maxval)`` rows drawn block by block: ``blocks`` row counts, one draw each, stacked.

    One table per feature used to be drawn as one ``RandomUniform`` call per feature; drawing the blocks of
    the shared table the same way gives it the very same initial values. A partition of the table (one
    parameter-server shard) is drawn in one call, as Keras draws any partitioned variable.
    """

    def __init__(self, blocks: Sequence[int], minval: float, maxval: float):
        self.blocks = [int(b) for b in blocks]
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None, **kwargs):
        draw = lambda s: keras.initializers.RandomUniform(self.minval, self.maxval)(s, dtype, **kwargs)  # noqa: E731
        if kwargs or sum(self.blocks) != shape[0]:
            return draw(shape)
        return tf.concat([draw((rows,) + tuple(shape[1:])) for rows in self.blocks], axis=0)

    def get_config(self):
        return {"blocks": self.blocks, "minval": self.minval, "maxval": self.maxval}


def prior_logit_initializer(ctr: Optional[float]) -> keras.initializers.Initializer:
    """Output-bias initializer :math:`\\log(p / (1 - p))` for a base click rate ``ctr`` (zeros for ``None``).

    With clicks at a few percent, a zero bias starts every prediction at 0.5 and the first steps are spent
    learning the base rate through every weight; starting at the prior avoids that.
    """
    if ctr is None:
        return keras.initializers.Zeros()
    if not 0.0 < ctr < 1.0:
        raise ValueError(f"initial_ctr must lie in (0, 1), got {ctr!r}")
    return keras.initializers.Constant(math.log(ctr / (1.0 - ctr)))
