"""SavedModel export of GenCO: the evaluation model and the online model.

Layout written by :func:`export_genco` into the Trainer's ``serving_model_dir``::

    serving_model_dir/          eval model (TFMA): serialized GenCO tf.Example -> the chosen combination,
                                its score, the logged combination's predicted CTR and instance weights
    serving_model_dir/genco/    online GenCO (features.GENCO_MODEL_NAME)

The online model has two signatures, both returning, per ad, the chosen element of every component
(``features.GENCO_CHOSEN_INDEX``, ``features.GENCO_CHOSEN_ID``; -1 where the ad lacks it) and the reward model's
CTR of the chosen combination (``features.GENCO_SCORE``), chosen as in eqs. 24-25 of Gu et al., 2025 (K
combinations drawn from the generator, the best by the reward model; the draw is seeded by the request's ids,
so a request always gets the same answer):

* ``features.RAW_SIGNATURE`` (``predict_raw``): the named tensors of :mod:`trainer.genco.serving_inputs`, checked
  in the graph -- a pool wider than ``features.GENCO_MAX_CANDIDATES``, an id below -1, a style out of its
  domain, styles not shaped like their ids, or mismatched batch sizes fail with ``INVALID_ARGUMENT`` naming the
  input; the padding is never a candidate;
* ``features.SERVING_SIGNATURE`` (``serving_default``): ``examples``, serialized GenCO tf.Examples.

Both hold only TensorFlow ops and variables (no Transform graph: the model hashes its ids itself) and ship
TF Serving warm-up requests, so TF Serving or the stand-in serves them like the AR and CR models.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping

import tensorflow as tf

import features as F
from transform import genco as G
from transform.preprocessing import _code
from trainer.genco.model import GENCO, GenCOModel
from trainer.genco.serving_inputs import example_request
from trainer.signatures import EXAMPLES_KEY, EXAMPLES_SIGNATURE
from trainer.warmup import write_warmup_requests

_POOL_INPUTS = tuple(n for c in F.GENCO_COMPONENTS for n in (F.GENCO_CAND_IDS[c], F.GENCO_CAND_STYLES[c]))
_RAW_SERVING_COLUMNS = F.GENCO_USER_FEATURES + F.GENCO_AD_FEATURES + _POOL_INPUTS


class _Untracked:
    """Holds the Keras model outside the SavedModel's object graph (its variables are tracked explicitly)."""

    def __init__(self, value):
        self.value = value


def raw_input_signature() -> Dict[str, tf.TensorSpec]:
    return {n: tf.TensorSpec([None, None] if n in _POOL_INPUTS else [None], tf.int64, name=n)
            for n in F.GENCO_SERVING_INPUTS}


def check_raw_inputs(inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The contract of :mod:`trainer.genco.serving_inputs`, asserted in the graph (messages name the input,
    unquoted: TensorFlow escapes quotes in assertion messages); returns the inputs gated on the checks."""
    ref = F.GENCO_AD_FEATURES[0]
    batch = tf.shape(inputs[ref])[0]
    checks = []
    for name in F.GENCO_USER_FEATURES:
        n = tf.shape(inputs[name])[0]
        checks.append(tf.debugging.Assert(tf.logical_or(tf.equal(n, 1), tf.equal(n, batch)),
                                          [f"serving input {name} must have batch size 1 or that of {ref}; got",
                                           n, "vs", batch]))
    for name in F.GENCO_AD_FEATURES[1:]:
        checks.append(tf.debugging.Assert(tf.equal(tf.shape(inputs[name])[0], batch),
                                          [f"serving input {name} has a batch size different from {ref}:",
                                           tf.shape(inputs[name])[0], "vs", batch]))
    for c in F.GENCO_COMPONENTS:
        ids, styles = inputs[F.GENCO_CAND_IDS[c]], inputs[F.GENCO_CAND_STYLES[c]]
        ids_name, styles_name = F.GENCO_CAND_IDS[c], F.GENCO_CAND_STYLES[c]
        shapes = [
            tf.debugging.Assert(tf.equal(tf.shape(ids)[0], batch),
                                [f"serving input {ids_name} has a batch size different from {ref}:",
                                 tf.shape(ids)[0], "vs", batch]),
            tf.debugging.Assert(tf.less_equal(tf.shape(ids)[1], G.N),
                                [f"serving input {ids_name}: the {c} pool has more candidates than the padding of "
                                 f"{G.N}; got", tf.shape(ids)[1]]),
            tf.debugging.Assert(tf.reduce_all(tf.equal(tf.shape(styles), tf.shape(ids))),
                                [f"serving input {styles_name} must have the shape of {ids_name}; got",
                                 tf.shape(styles), "vs", tf.shape(ids)]),
        ]
        with tf.control_dependencies(shapes):  # the value checks compare ids and styles elementwise
            bad_style = tf.logical_and(ids >= 0, tf.logical_or(styles < 0, styles >= F.GENCO_NUM_STYLES))
            checks += shapes + [
                tf.debugging.Assert(tf.reduce_all(ids >= F.GENCO_PAD),
                                    [f"serving input {ids_name}: element ids must be >= 0 ({F.GENCO_PAD} pads); got",
                                     tf.reduce_min(ids)]),
                tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad_style)),
                                    [f"serving input {styles_name}: styles of real candidates must be in "
                                     f"[0, {F.GENCO_NUM_STYLES})"])]
    with tf.control_dependencies(checks):
        return {k: tf.identity(v) for k, v in inputs.items()}


def to_model_inputs(inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Checked raw serving inputs -> the model's dense inputs (pools padded to ``features.GENCO_MAX_CANDIDATES``)."""
    def pad(x):
        return tf.pad(x, [[0, 0], [0, G.N - tf.shape(x)[1]]], constant_values=F.GENCO_PAD)

    out = {n: inputs[n] for n in F.GENCO_USER_FEATURES + F.GENCO_AD_FEATURES}
    for name in G.CONTEXT_CODES:
        out[name] = _code(out[name], name)
    out[G.POOL_IDS] = tf.stack([pad(inputs[F.GENCO_CAND_IDS[c]]) for c in F.GENCO_COMPONENTS], axis=1)
    styles = tf.stack([pad(inputs[F.GENCO_CAND_STYLES[c]]) for c in F.GENCO_COMPONENTS], axis=1)
    out[G.POOL_STYLES] = tf.where(out[G.POOL_IDS] >= 0, styles, tf.constant(F.GENCO_PAD, tf.int64))
    return out


def _selection_outputs(model: GenCOModel, dense: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    selected = model.select(dense, policy=GENCO)
    chosen = selected["chosen"]
    ids = tf.reshape(tf.cast(dense[G.POOL_IDS], tf.int64), [-1, G.M, G.N])
    chosen_ids = tf.gather(ids, tf.maximum(chosen, 0), axis=2, batch_dims=2)
    out = {F.GENCO_SCORE: selected["score"]}
    for j, c in enumerate(F.GENCO_COMPONENTS):
        out[F.GENCO_CHOSEN_INDEX[c]] = chosen[:, j]
        out[F.GENCO_CHOSEN_ID[c]] = tf.where(chosen[:, j] >= 0, chosen_ids[:, j], tf.constant(-1, tf.int64))
    return out


def _fully_built(model: GenCOModel) -> GenCOModel:
    """``model`` after one eager selection, so every layer has its variables before they are collected (a
    model only ever called on logged combinations, or not at all, may lack some)."""
    model.select(to_model_inputs({k: tf.constant(v) for k, v in example_request(2, seed=0).items()}))
    return model


class GenCOServingModule(tf.Module):
    """The online GenCO model's two signatures (see the module docstring)."""

    def __init__(self, model: GenCOModel):
        super().__init__(name=F.GENCO_MODEL_NAME)
        self._model = _Untracked(_fully_built(model))
        self.model_variables = list(model.variables)

        @tf.function(input_signature=[raw_input_signature()], autograph=False)
        def predict_raw(inputs):
            return _selection_outputs(self._model.value, to_model_inputs(check_raw_inputs(inputs)))

        @tf.function(input_signature=[EXAMPLES_SIGNATURE], autograph=False)
        def serve_examples(inputs):
            return _selection_outputs(self._model.value, G.parse_examples(inputs[EXAMPLES_KEY], _RAW_SERVING_COLUMNS))

        # Outside the object graph: saving lists a module's tf.function attributes and traces them once more.
        self.signatures = _Untracked({F.RAW_SIGNATURE: predict_raw, F.SERVING_SIGNATURE: serve_examples})


class GenCOEvalModule(tf.Module):
    """The evaluation model: on a logged impression, the chosen combination and what the Evaluator reports."""

    def __init__(self, model: GenCOModel):
        super().__init__(name="genco_eval")
        self._model = _Untracked(_fully_built(model))
        self.model_variables = list(model.variables)
        columns = _RAW_SERVING_COLUMNS + tuple(F.GENCO_EXPOSED.values()) + tuple(F.GENCO_COMPONENT_PROPENSITY.values())

        @tf.function(input_signature=[EXAMPLES_SIGNATURE], autograph=False)
        def serve_examples(inputs):
            m = self._model.value
            dense = G.parse_examples(inputs[EXAMPLES_KEY], columns)
            out = _selection_outputs(m, dense)
            logged = m(dense, training=False)
            out[F.GENCO_LOGGED_PCTR] = tf.sigmoid(logged["combination_logit"])
            for j, c in enumerate(F.GENCO_COMPONENTS):
                out[F.GENCO_WEIGHT[c]] = logged["weights"][:, j]
            return out

        self.signatures = _Untracked({F.SERVING_SIGNATURE: serve_examples})


def _save(module: tf.Module, export_dir: str) -> str:
    signatures = {k: f.get_concrete_function() for k, f in module.signatures.value.items()}
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir


def export_online(model: GenCOModel, export_dir: str, warmup: bool = True) -> str:
    """Saves the online GenCO SavedModel (+ warm-up requests: 8 ads of one user, 4 ads of 4 users)."""
    _save(GenCOServingModule(model), export_dir)
    if warmup:
        write_warmup_requests(export_dir, F.GENCO_MODEL_NAME, [example_request(8, seed=0),
                                                               example_request(4, seed=1, user_batch_size=4)])
    return export_dir


def export_eval(model: GenCOModel, export_dir: str) -> str:
    return _save(GenCOEvalModule(model), export_dir)


def export_genco(model: GenCOModel, serving_model_dir: str) -> Dict[str, str]:
    """The eval model at ``serving_model_dir`` and the online model in ``genco/`` beneath it."""
    return {"eval": export_eval(model, serving_model_dir),
            F.GENCO_MODEL_NAME: export_online(model, os.path.join(serving_model_dir, F.GENCO_MODEL_NAME))}
