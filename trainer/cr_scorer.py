"""Serving-time CR with its first layer refactored for one request of many (ad, creative) rows.

CR's first hidden layer is linear in the concatenation of its inputs, so it splits into blocks:

.. math::

    a_1 = \\underbrace{W_u^\\top [E_{u_1}; \\dots]}_{\\text{user: once per request}}
        + \\underbrace{W_x^\\top [E_{ad}; E_{creative}; v]}_{\\text{per row}}
        + \\underbrace{T_{c(p)}}_{\\text{one gather}} + b_1,
    \\qquad T = Q\\,W_p \\in \\mathbb{R}^{K \\times H_1}

* the user block is computed on the request's user rows (usually 1: the user features are broadcastable)
  and broadcast by the addition, instead of once per (ad, creative) row;
* the pctr code embedding (D = 128 wide, the largest input block) times its kernel block is precomputed
  as one ``K x H_1`` table, so the per-row cost of the pctr input is a row gather instead of a
  ``D x H_1`` product.

Everything after the first layer is CR's own MLP. The scorer is numerically the same function as
:class:`~trainer.cr_model.CRModel` (up to float summation order).
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from transform import names as N
from trainer.cr_model import CRModel
from trainer.quantizer import lookup_codes


class FusedCRScorer(tf.Module):
    """Frozen copy of a trained :class:`CRModel` for serving.

    ``__call__(features, pctr)``: ``features`` holds :data:`transform.names.CR_CATEGORICAL` ids ``[n]`` and
    the dense embedding ``[n, 8]``, where the user features may have ``n = 1`` and all others ``n = B``;
    ``pctr`` is ``[B]`` (the ad's historical CTR online). Returns pctr_c ``[B]``.
    """

    def __init__(self, cr: CRModel, name: str = "fused_cr"):
        super().__init__(name=name)
        blocks = {b: (start, stop) for b, start, stop in cr.first_layer_blocks()}
        kernel = cr.hidden_layers[0].kernel
        rows = lambda names: tf.concat([kernel[blocks[n][0]:blocks[n][1]] for n in names], axis=0)  # noqa: E731

        self._user_names = N.CR_USER_CATEGORICAL
        self._item_names = N.CR_AD_CATEGORICAL + N.CR_CREATIVE_CATEGORICAL
        self._dense_names = N.CR_DENSE
        const = lambda t, n: tf.Variable(tf.identity(t), trainable=False, name=n)  # noqa: E731
        self.tables = {n: const(cr.embeddings.table(n), n) for n in N.CR_CATEGORICAL}
        self.user_kernel = const(rows(self._user_names), "user_kernel")
        self.item_kernel = const(rows(self._item_names + self._dense_names), "item_kernel")
        self.pctr_table = const(tf.matmul(cr.quantizer.table, kernel[blocks["pctr"][0]:blocks["pctr"][1]]),
                                "pctr_table")
        self.bias = const(cr.hidden_layers[0].bias, "bias")
        self.hidden = [(const(l.kernel, f"kernel_{i}"), const(l.bias, f"bias_{i}"))
                       for i, l in enumerate(cr.hidden_layers[1:], start=1)]
        self.logit = (const(cr.logit_layer.kernel, "logit_kernel"), const(cr.logit_layer.bias, "logit_bias"))
        self._edges = tf.constant(cr.quantizer.edges)

    def __call__(self, features: Mapping[str, tf.Tensor], pctr: tf.Tensor) -> tf.Tensor:
        def emb(n):
            return tf.gather(self.tables[n], tf.reshape(features[n], [-1]))

        user = [emb(n) for n in self._user_names]
        rows = tf.reduce_max(tf.stack([tf.shape(u)[0] for u in user]))
        user = tf.concat([tf.broadcast_to(u, [rows, tf.shape(u)[1]]) for u in user], axis=1)
        item = tf.concat([emb(n) for n in self._item_names]
                         + [tf.cast(features[n], tf.float32) for n in self._dense_names], axis=1)
        h = tf.matmul(item, self.item_kernel) + tf.gather(self.pctr_table, lookup_codes(pctr, self._edges))
        h = tf.nn.relu(h + (tf.matmul(user, self.user_kernel) + self.bias))
        for kernel, bias in self.hidden:
            h = tf.nn.relu(tf.matmul(h, kernel) + bias)
        return tf.sigmoid(tf.squeeze(tf.matmul(h, self.logit[0]) + self.logit[1], axis=1))
