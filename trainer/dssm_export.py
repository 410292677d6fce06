"""The two-tower CR's SavedModel: the CR contract, and each tower alone.

Signatures (beside ``serving_default``):

* ``features.RAW_SIGNATURE``: ``features.CR_SERVING_INPUTS`` -> ``pctr_c`` ``[B]``, like every CR (the router
  calls it; the model ignores ``ad_hist_ctr``). The user tower runs on the user rows sent (1 per request);
* ``features.CREATIVE_TOWER_SIGNATURE``: raw ad + creative features ``[B]`` -> ``creative_vector`` ``[B, d]``,
  unit length: a serving system can compute these when a creative is uploaded;
* ``features.USER_TOWER_SIGNATURE``: raw CR user features -> ``user_vector`` ``[n, d]``;
* ``features.CREATIVE_VECTORS_SIGNATURE``: raw CR user features ``[1]`` (or ``[B]``) and ``creative_vector``
  ``[B, d]`` -> ``pctr_c`` ``[B]``: the request path of a serving system that keeps the creative tower's
  vectors (computed when a creative is uploaded, per model version; ``serving.creative_vectors``). A request
  then costs one user-tower pass and ``B`` dot products instead of Transform + tower over ``B`` raw rows;

so that :math:`pctr_c = \\sigma(s\\,u^\\top c + b)` with the scalars ``logit_scale`` and ``logit_bias`` the
module also holds (restored SavedModel attributes).

The creative tower is served by :class:`CreativeTowerScorer`, its first layer folded into the embedding
tables (as ``trainer.cr_scorer`` does for CR's MLP): the tower's input is a concatenation of embeddings, so

.. math::

    W_1^\\top [E^{(1)}_{i_1}; \\dots; E^{(F)}_{i_F}; v] = \\sum_f (E^{(f)} W_1^{(f)})_{i_f} + W_1^{(v)\\top} v,

and with the projected tables :math:`E^{(f)} W_1^{(f)}` stacked into one, a row costs one gather of F rows
instead of F gathers and a matrix product.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

import features as F
from transform import names as N
from trainer.dssm_model import CREATIVE_CATEGORICAL
from trainer.serving_inputs import CREATIVE_TOWER, USER_TOWER
from trainer.serving_module import OnlineModule, Untracked
from trainer.signatures import check_batch, raw_input_signature, to_transform_inputs


class CreativeTowerScorer(tf.Module):
    """Frozen creative tower of a trained ``TwoTowerCRModel``; ``__call__(features)`` -> unit vectors ``[B, d]``."""

    def __init__(self, cr, name: str = "creative_tower"):
        super().__init__(name=name)
        first, d = cr.creative_tower[0], cr.embedding_dim
        kernel = first.kernel
        tables, offsets, start = [], [], 0
        for i, feature in enumerate(CREATIVE_CATEGORICAL):
            table = cr.creative_embeddings.table(feature)
            tables.append(tf.matmul(table, kernel[i * d:(i + 1) * d]))
            offsets.append(start)
            start += int(table.shape[0])
        const = lambda t, n: tf.Variable(tf.identity(t), trainable=False, name=n)  # noqa: E731
        self.table = const(tf.concat(tables, axis=0), "projected_tables")
        self.offsets = tf.constant(np.asarray(offsets, np.int64))
        self.dense_kernel = const(kernel[len(CREATIVE_CATEGORICAL) * d:], "dense_kernel")
        self.bias = const(first.bias, "bias")
        self._first_activation = first.activation
        self.layers = [(const(layer.kernel, f"kernel_{i}"), const(layer.bias, f"bias_{i}"), layer.activation)
                       for i, layer in enumerate(cr.creative_tower[1:], start=1)]

    def __call__(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        ids = tf.stack([tf.reshape(features[n], [-1]) for n in CREATIVE_CATEGORICAL], axis=1) + self.offsets
        h = tf.reduce_sum(tf.gather(self.table, ids), axis=1) + self.bias
        if N.CR_DENSE:  # no dense part without a content embedding
            dense = tf.concat([tf.cast(features[n], tf.float32) for n in N.CR_DENSE], axis=1)
            h += tf.matmul(dense, self.dense_kernel)
        h = self._first_activation(h)
        for kernel, bias, activation in self.layers:
            h = activation(tf.matmul(h, kernel) + bias)
        return tf.math.l2_normalize(h, axis=1)


class TwoTowerCRServingModule(OnlineModule):
    """Online two-tower CR (``trainer.dssm_model.TwoTowerCRModel``) with its tower signatures."""

    def __init__(self, model, tft_output):
        super().__init__(tft_output, name=F.CR_MODEL_NAME)
        cr = Untracked(model.cr)
        self.model_variables = list(model.cr.user_embeddings.variables) + [
            v for layer in model.cr.user_tower for v in layer.variables]
        self.creative_tower = CreativeTowerScorer(model.cr)
        self.logit_scale = tf.Variable(tf.identity(model.cr.scale), trainable=False, name="logit_scale")
        self.logit_bias = tf.Variable(tf.identity(model.cr.bias), trainable=False, name="logit_bias")

        def pctr(xf, seed):
            logit = self.logit_scale * tf.reduce_sum(cr.value.user_vectors(xf) * self.creative_tower(xf), axis=1)
            return {F.PCTR_C: tf.sigmoid(logit + self.logit_bias)}

        self._add_signatures(pctr, first_user=F.CR_USER_FEATURES[0])
        self.extra_signatures = {
            F.USER_TOWER_SIGNATURE: self.raw_signature(
                USER_TOWER, lambda xf, seed: {F.USER_VECTOR: cr.value.user_vectors(xf)}),
            F.CREATIVE_TOWER_SIGNATURE: self.raw_signature(
                CREATIVE_TOWER, lambda xf, seed: {F.CREATIVE_VECTOR: self.creative_tower(xf)}),
            F.CREATIVE_VECTORS_SIGNATURE: self._from_creative_vectors(cr, int(model.cr.output_dim)),
        }

    def _from_creative_vectors(self, cr: Untracked, dim: int):
        raw_spec = self._raw_spec
        spec = dict(raw_input_signature(USER_TOWER),
                    **{F.CREATIVE_VECTOR: tf.TensorSpec([None, dim], tf.float32, name=F.CREATIVE_VECTOR)})

        @tf.function(input_signature=[spec])
        def from_creative_vectors(inputs):
            user, _ = check_batch(USER_TOWER, {n: inputs[n] for n in F.CR_USER_FEATURES})
            creative = inputs[F.CREATIVE_VECTOR]
            n_user = tf.shape(user[F.CR_USER_FEATURES[0]], out_type=tf.int64)[0]
            n_rows = tf.shape(creative, out_type=tf.int64)[0]
            check = tf.debugging.Assert(  # the user tower's rows broadcast over the creatives: 1 or B of them
                tf.logical_or(tf.equal(n_user, 1), tf.equal(n_user, n_rows)),
                [f"serving input {F.CR_USER_FEATURES[0]} must have batch size 1 or that of {F.CREATIVE_VECTOR};"
                 " got", n_user, "vs", n_rows])
            with tf.control_dependencies([check]):
                xf = self._transform(to_transform_inputs(user, raw_spec), first=F.CR_USER_FEATURES[0])
                logit = self.logit_scale * tf.reduce_sum(cr.value.user_vectors(xf) * creative, axis=1)
            return {F.PCTR_C: tf.sigmoid(logit + self.logit_bias)}

        return from_creative_vectors
