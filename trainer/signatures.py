"""TensorFlow side of the serving contract (see ``trainer.serving_inputs``): specs, checks, Transform inputs."""

from __future__ import annotations

from typing import Dict, Mapping, Sequence, Tuple

import tensorflow as tf

import features as F
from trainer.serving_inputs import SERVING_INPUTS, input_rank, reference_input


def _tf_dtype(name: str) -> tf.DType:
    return tf.int64 if F.BY_NAME[name].dtype == F.INT else tf.float32


def raw_input_signature(model_name: str) -> Dict[str, tf.TensorSpec]:
    """Named ``tf.TensorSpec`` s of ``features.RAW_SIGNATURE`` for ``model_name``."""
    specs = {}
    for name in SERVING_INPUTS[model_name]:
        if input_rank(name) == 1:
            shape = [None]
        elif name == F.CREATIVE_EMBEDDING:
            shape = [None, F.CREATIVE_EMBEDDING_DIM]
        else:
            shape = [None, None]
        specs[name] = tf.TensorSpec(shape, _tf_dtype(name), name=name)
    return specs


# Input of the serialized-tf.Example signatures (``features.SERVING_SIGNATURE``).
EXAMPLES_KEY = "examples"
EXAMPLES_SIGNATURE = {EXAMPLES_KEY: tf.TensorSpec([None], tf.string, name=EXAMPLES_KEY)}


def check_batch(model_name: str, inputs: Mapping[str, tf.Tensor]) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
    """Asserts the batch sizes of a raw request; returns the inputs (gated on the checks) and B.

    B is the batch size of the first non-broadcastable input; every other non-broadcastable input must have
    B rows, broadcastable ones 1 or B, and the parallel sequences the same shape. A violation raises
    ``InvalidArgumentError`` whose message names the feature (unquoted: TensorFlow escapes quotes in
    assertion messages).
    """
    ref = reference_input(model_name)
    batch = tf.shape(inputs[ref], out_type=tf.int64)[0]
    checks = []
    for name in SERVING_INPUTS[model_name]:
        n = tf.shape(inputs[name], out_type=tf.int64)[0]
        if name in F.BROADCASTABLE_INPUTS:
            checks.append(tf.debugging.Assert(
                tf.logical_or(tf.equal(n, 1), tf.equal(n, batch)),
                [f"serving input {name} must have batch size 1 or that of {ref}; got", n, "vs", batch]))
        elif name != ref:
            checks.append(tf.debugging.Assert(
                tf.equal(n, batch), [f"serving input {name} has a batch size different from {ref}:", n, "vs", batch]))
    seqs = [n for n in F.SEQUENCE_FEATURES if n in inputs]
    for name in seqs[1:]:
        checks.append(tf.debugging.Assert(
            tf.reduce_all(tf.equal(tf.shape(inputs[name]), tf.shape(inputs[seqs[0]]))),
            [f"serving input {name} must have the shape of {seqs[0]} (parallel sequences); got",
             tf.shape(inputs[name]), "vs", tf.shape(inputs[seqs[0]])]))
    with tf.control_dependencies(checks):
        return {k: tf.identity(v) for k, v in inputs.items()}, tf.identity(batch)


def broadcast_rows(inputs: Mapping[str, tf.Tensor], names: Sequence[str], batch: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Repeats batch-1 inputs among ``names`` to ``batch`` rows (inputs already of ``batch`` rows unchanged)."""
    out = dict(inputs)
    for name in names:
        x = out[name]
        shape = tf.concat([[batch], tf.shape(x, out_type=tf.int64)[1:]], axis=0)
        out[name] = tf.broadcast_to(x, shape)
    return out


def sequence_to_sparse(dense: tf.Tensor) -> tf.SparseTensor:
    """``[B, L]`` ids padded with ``features.SEQUENCE_PAD`` -> ``[B, ?]`` SparseTensor of the real ids."""
    return tf.ragged.boolean_mask(dense, tf.not_equal(dense, F.SEQUENCE_PAD)).to_sparse()


def to_transform_inputs(inputs: Mapping[str, tf.Tensor], raw_spec: Mapping[str, object]) -> Dict[str, object]:
    """Dense raw serving tensors -> the layout the Transform graph was traced with (``raw_spec``).

    Sequences drop their padding. A ``FixedLenFeature`` gets its declared shape, a ``VarLenFeature`` becomes
    a SparseTensor.
    """
    out = {}
    for name, x in inputs.items():
        spec = raw_spec[name]
        if name in F.SEQUENCE_FEATURES:
            x = sequence_to_sparse(x)
        if isinstance(spec, tf.io.VarLenFeature):
            if isinstance(x, tf.SparseTensor):
                out[name] = x
            else:
                x2 = tf.reshape(x, [tf.shape(x)[0], -1])
                out[name] = tf.RaggedTensor.from_tensor(x2).to_sparse()
        elif isinstance(spec, tf.io.FixedLenFeature):
            if isinstance(x, tf.SparseTensor):
                x = tf.sparse.to_dense(x)
            out[name] = tf.reshape(x, [-1] + list(spec.shape))
        else:
            raise ValueError(f"raw feature {name!r}: unsupported spec {spec!r}")
    return out


def parse_examples(serialized: tf.Tensor, names: Sequence[str], raw_spec: Mapping[str, object]) -> Dict[str, object]:
    """Parses the raw features ``names`` of serialized tf.Examples with the Transform's raw spec."""
    return tf.io.parse_example(serialized, {n: raw_spec[n] for n in names})
