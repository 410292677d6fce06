"""Behaviour-sequence modelling for AR: a small transformer, read out by the candidate ad.

Design: a stack of masked self-attention blocks (JAC's 2-layer, 2-head transformer; Yang et al., AAAI
2024) contextualises the user's recent ads, then **target attention** with the candidate ad as the query
pools the sequence into one vector. We use the candidate as query rather than a fixed pooling because the
relevant part of a history is ad-specific: a run of sneaker clicks matters to a sneaker ad and is noise to a sofa ad
(the DIN / BST observation). The self-attention stack sees only the user's own sequence, so its output is
shared by every candidate ad of a request; only the last, cheap, single-query attention is per ad. In
serving a request sends the sequence once; in training and evaluation the encoder runs over the batch's
distinct sequences only (:mod:`trainer.unique_sequences`).
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras


class TransformerBlock(keras.layers.Layer):
    """Post-norm transformer encoder block with masked multi-head self-attention.

    .. math::

        h = \\mathrm{LN}(x + \\mathrm{MHA}(x, x, x; m)), \\qquad
        y = \\mathrm{LN}(h + W_2\\,\\mathrm{ReLU}(W_1 h + b_1) + b_2)

    with :math:`\\mathrm{MHA}` exactly Keras' ``MultiHeadAttention(num_heads, key_dim=E / num_heads)``: its
    weights (``query``/``key``/``value`` kernels ``[E, H, E/H]`` and biases ``[H, E/H]``, ``attention_output``
    kernel ``[H, E/H, E]`` and bias ``[E]``, Glorot-uniform kernels, zero biases, created in that order) and
    its function (scores scaled by :math:`1/\\sqrt{E/H}`, masked keys at :math:`-10^9` before the softmax).
    It is computed with 2-D projections and ``[B, H, L, E/H]`` batched matmuls rather than Keras' 4-D
    einsums, which cost ~1.6x as much CPU time, forward and backward, at this size (L = 20, E = 32, H = 2).
    At that size a step is many small ops rather than arithmetic, so the block also keeps its activations
    2-D (``[B * L, E]``: plain matmuls with bias and ReLU fused, no reshapes around each dense layer) and
    projects query, key and value in one ``[E, 3E]`` matmul and one transpose, the query's
    :math:`1/\sqrt{E/H}` folded into its kernel and bias: the same function, in fewer ops.

    Args:
      num_heads: attention heads; must divide the item size.
      ff_dim: hidden size of the feed-forward network.

    Shapes: ``x`` ``[B, L, E]``, mask ``m`` ``[B, L]`` (1 = real item); output ``[B, L, E]``.
    Padded positions attend like real ones but are never attended to.
    """

    def __init__(self, num_heads: int, ff_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if dim % self.num_heads:
            raise ValueError(f"item size {dim} is not divisible by num_heads={self.num_heads}")
        heads, head_dim = self.num_heads, dim // self.num_heads

        def weight(name, shape, kernel):
            return self.add_weight(name=name, shape=shape, trainable=True, initializer=(
                keras.initializers.GlorotUniform() if kernel else keras.initializers.Zeros()))

        self.projections = {}
        for name in ("query", "key", "value"):
            self.projections[name] = (weight(f"{name}_kernel", (dim, heads, head_dim), True),
                                      weight(f"{name}_bias", (heads, head_dim), False))
        self.output_kernel = weight("attention_output_kernel", (heads, head_dim, dim), True)
        self.output_bias = weight("attention_output_bias", (dim,), False)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.ff_hidden = keras.layers.Dense(self.ff_dim, activation="relu")
        self.ff_out = keras.layers.Dense(dim)
        self.ff_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        super().build(input_shape)

    def _projections(self, x2d: tf.Tensor, shape: tf.Tensor):
        """``[B * L, E]`` -> query (already scaled by :math:`1/\\sqrt{E/H}`), key, value, each ``[B, H, L, E/H]``."""
        dim, heads = int(x2d.shape[-1]), self.num_heads
        scale = 1.0 / math.sqrt(dim // heads)
        (wq, bq), (wk, bk), (wv, bv) = (self.projections[n] for n in ("query", "key", "value"))
        kernel = tf.concat([tf.reshape(wq, [dim, dim]) * scale, tf.reshape(wk, [dim, dim]),
                            tf.reshape(wv, [dim, dim])], axis=1)  # [E, 3E]
        bias = tf.concat([tf.reshape(bq, [dim]) * scale, tf.reshape(bk, [dim]), tf.reshape(bv, [dim])], 0)
        y = tf.nn.bias_add(tf.matmul(x2d, kernel), bias)
        y = tf.reshape(y, tf.concat([shape[:2], [3, heads, dim // heads]], 0))  # [B, L, 3, H, E/H]
        return tf.unstack(tf.transpose(y, [2, 0, 3, 1, 4]), num=3)  # 3 x [B, H, L, E/H]

    def _attention2d(self, x2d: tf.Tensor, shape: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Self-attention of ``x2d`` ``[B * L, E]`` (``shape``: ``[B, L, E]``) -> ``[B * L, E]``."""
        dim = int(x2d.shape[-1])
        query, key, value = self._projections(x2d, shape)
        scores = tf.matmul(query, key, transpose_b=True)  # [B, H, L, L]
        scores += (1.0 - tf.cast(mask, scores.dtype))[:, None, None, :] * -1e9  # Keras' masked softmax
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), value)  # [B, H, L, E/H]
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, dim])
        return tf.nn.bias_add(tf.matmul(context, tf.reshape(self.output_kernel, [dim, dim])), self.output_bias)

    def attention(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """The multi-head self-attention of ``x`` ``[B, L, E]`` over its real items (``mask`` ``[B, L]``)."""
        shape = tf.shape(x)
        return tf.reshape(self._attention2d(tf.reshape(x, [-1, int(x.shape[-1])]), shape, mask), shape)

    def call(self, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)
        x2d = tf.reshape(x, [-1, int(x.shape[-1])])
        h = self.attention_norm(x2d + self._attention2d(x2d, shape, mask))
        return tf.reshape(self.ff_norm(h + self.ff_out(self.ff_hidden(h))), shape)

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, ff_dim=self.ff_dim)
        return config


class TargetAttention(keras.layers.Layer):
    """Single-query attention pooling of a sequence by the candidate item.

    .. math::

        a_l = \\frac{m_l \\exp(\\langle W_q t, W_k s_l \\rangle / \\sqrt{E})}
                   {\\sum_{j} m_j \\exp(\\langle W_q t, W_k s_j \\rangle / \\sqrt{E})}, \\qquad
        o = \\sum_l a_l W_v s_l

    An empty sequence (all :math:`m_l = 0`) pools to the zero vector.

    Shapes: sequence ``s`` ``[B, L, E]``, mask ``m`` ``[B, L]``, target ``t`` ``[B, E]``; output ``[B, E]``.
    The sequence and mask may have batch 1 (one user, B targets): they broadcast against the targets.
    """

    def build(self, input_shape):
        dim = int(input_shape[-1])  # Keras passes the first input's (the sequence's) shape
        self.query = keras.layers.Dense(dim, use_bias=False)
        self.key = keras.layers.Dense(dim, use_bias=False)
        self.value = keras.layers.Dense(dim, use_bias=False)
        for layer in (self.query, self.key, self.value):  # built here: call uses their kernels directly
            with tf.name_scope(layer.name):
                layer.build(tf.TensorShape([None, dim]))
        super().build(input_shape)

    def call(self, sequence: tf.Tensor, mask: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        # Computed as <W_k^T W_q t, s_l> and W_v (sum_l a_l s_l): the one query is projected instead of every
        # item's key, and the pooled item instead of every item's value (L times fewer products, same values).
        dim = int(sequence.shape[-1])
        mask = tf.cast(mask, sequence.dtype)
        query = tf.matmul(tf.matmul(target, self.query.kernel), self.key.kernel, transpose_b=True) / math.sqrt(dim)
        logits = tf.squeeze(tf.matmul(sequence, query[:, :, None]), axis=2)  # [B, L] (sequence may be [1, L, E])
        logits += (1.0 - mask) * -1e9
        weights = tf.nn.softmax(logits, axis=-1) * mask  # zero for empty sequences
        pooled = tf.squeeze(tf.matmul(weights[:, None, :], sequence), axis=1)  # [B, E]
        return tf.matmul(pooled, self.value.kernel)


class BehaviorSequenceEncoder(keras.layers.Layer):
    """Positional encoding, ``num_layers`` :class:`TransformerBlock` s, then :class:`TargetAttention`.

    .. math::

        S^{(0)} = X + P, \\quad S^{(n)} = \\mathrm{Block}_n(S^{(n-1)}, m), \\quad
        o = \\mathrm{TargetAttention}(S^{(N)}, m, t)

    Args:
      num_layers: transformer blocks.
      num_heads: attention heads per block.
      ff_dim: feed-forward size per block.
      max_length: sequence length L (size of the learned positional table P).

    Shapes: items ``X`` ``[B, L, E]``, mask ``m`` ``[B, L]``, target ``t`` ``[B, E]``; output ``[B, E]``.
    Items and mask may have batch 1: the blocks then run once and only the readout runs per target. Or they
    hold the U distinct sequences of the batch, ``[U, L, E]`` and ``[U, L]``, with ``index`` ``[B]`` naming
    each target's (:func:`trainer.unique_sequences.unique_sequences`): the blocks run U times, not B.
    """

    def __init__(self, num_layers: int, num_heads: int, ff_dim: int, max_length: int, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.max_length = int(max_length)
        self.blocks = [TransformerBlock(self.num_heads, self.ff_dim, name=f"block_{i}")
                       for i in range(self.num_layers)]
        self.readout = TargetAttention(name="target_attention")

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.positions = self.add_weight(
            name="positions", shape=(self.max_length, dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02), trainable=True)
        super().build(input_shape)

    def call(self, items: tf.Tensor, mask: tf.Tensor, target: tf.Tensor, index=None) -> tf.Tensor:
        x = items + self.positions[None, : tf.shape(items)[1], :]
        for block in self.blocks:
            x = block(x, mask)
        if index is not None:  # each target reads its own row's contextualised sequence
            x, mask = tf.gather(x, index), tf.gather(mask, index)
        return self.readout(x, mask, target)

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, num_heads=self.num_heads, ff_dim=self.ff_dim,
                      max_length=self.max_length)
        return config
