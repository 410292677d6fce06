"""SavedModel export: the evaluation model and the two online models (AR, CR).

Layout written by :func:`export_models` into the Trainer's ``serving_model_dir``::

    serving_model_dir/            eval model (TFMA): serialized tf.Example -> pctr_ad, pctr_c,
                                  selected_index, selected_creative_id
    serving_model_dir/ar/         online AR   (features.AR_MODEL_NAME)   -- variants 'jac' and 'ar'
    serving_model_dir/cr/         online CR   (features.CR_MODEL_NAME)   -- variants 'jac' and 'cr'

Each online model has two signatures, both applying the Transform graph to its own raw inputs only:

* ``features.SERVING_SIGNATURE`` (``serving_default``): ``examples`` = serialized tf.Example ``[B]``;
* ``features.RAW_SIGNATURE`` (``predict_raw``): named raw tensors ``features.AR_SERVING_INPUTS`` /
  ``features.CR_SERVING_INPUTS`` (see ``trainer.serving_inputs``), broadcastable inputs with batch 1 or B;

and outputs ``{features.PCTR_AD}`` (AR) or ``{features.PCTR_C}`` (CR). Online CR reads the ad's
historical CTR (``features.AD_HIST_CTR``) in place of AR's pctr_ad, quantized by the same eq. (5), and is
served by :class:`~trainer.cr_scorer.FusedCRScorer`. Each also ships TF Serving warm-up requests.

The SavedModels hold only TensorFlow ops, variables and the Transform assets: they load with
``tf.saved_model.load`` without this project installed.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import tensorflow as tf

import features as F
from transform import names as N
from trainer.candidates import select_creatives
from trainer.cr_scorer import FusedCRScorer
from trainer.jac_model import JACModel
from trainer.serving_inputs import SERVING_INPUTS, example_request
from trainer.signatures import (EXAMPLES_KEY, EXAMPLES_SIGNATURE, broadcast_rows, check_batch, parse_examples,
                                raw_input_signature, to_transform_inputs)
from trainer.warmup import write_warmup_requests


class _Untracked:
    """Holds a Keras model without making it part of the SavedModel's object graph.

    The serving functions capture the model's variables, which the module tracks explicitly; keeping the
    Keras object itself out of the graph avoids Keras-specific serialization of every layer.
    """

    def __init__(self, value):
        self.value = value


class _TransformingModule(tf.Module):
    """Holds the Transform layer and applies it to raw inputs in the layout it was traced with."""

    def __init__(self, tft_output, name: str):
        super().__init__(name=name)
        self.tft_layer = tft_output.transform_features_layer()
        self._raw_spec = tft_output.raw_feature_spec()
        missing = sorted(set(N.EVAL_RAW_INPUTS) - set(self._raw_spec))
        if missing:
            raise ValueError(f"the Transform graph does not take the raw feature(s) {missing}")

    def _transform(self, raw: Mapping[str, object], first: Optional[str] = None) -> Dict[str, object]:
        # tf.Transform fills the raw features not given here with dummies batched like the *first* input;
        # ``first`` lets a caller choose which (e.g. the user features, often of batch 1).
        order = ([first] if first else []) + [k for k in raw if k != first]
        return self.tft_layer({k: raw[k] for k in order})

    def _parse(self, serialized: tf.Tensor, names) -> Dict[str, object]:
        return parse_examples(serialized, names, self._raw_spec)


class _OnlineModule(_TransformingModule):
    """An online model's two signatures around ``score(transformed) -> {output: [B]}``.

    * ``predict_raw``: named raw tensors (:func:`~trainer.signatures.raw_input_signature`); the user
      features keep their own batch (usually 1) unless ``repeat_user_rows`` repeats them per row;
    * ``serve_examples``: serialized tf.Example, parsing only the model's own raw inputs.
    """

    def _add_signatures(self, score, first_user: str, repeat_user_rows: bool = False) -> None:
        name, raw_spec = self.name, self._raw_spec
        serving_inputs = SERVING_INPUTS[name]

        @tf.function(input_signature=[raw_input_signature(name)])
        def predict_raw(inputs):
            inputs, batch = check_batch(name, inputs)
            if repeat_user_rows:
                inputs = broadcast_rows(inputs, [n for n in inputs if n in F.BROADCASTABLE_INPUTS], batch)
            return score(self._transform(to_transform_inputs(inputs, raw_spec), first=first_user))

        @tf.function(input_signature=[EXAMPLES_SIGNATURE])
        def serve_examples(inputs):
            return score(self._transform(self._parse(inputs[EXAMPLES_KEY], serving_inputs)))

        self.predict_raw = predict_raw
        self.serve_examples = serve_examples


class ARServingModule(_OnlineModule):
    """Online AR: raw user + ads (+ sequence) -> pctr_ad per row.

    User and sequence inputs keep their own batch (1 for one user and M ads): AR broadcasts the user
    embeddings and runs the sequence's self-attention once per request.
    """

    def __init__(self, model: JACModel, tft_output):
        super().__init__(tft_output, name=F.AR_MODEL_NAME)
        self._ar = _Untracked(model.ar)
        self.model_variables = list(model.ar.variables)
        self._add_signatures(lambda xf: {F.PCTR_AD: tf.sigmoid(self._ar.value(xf, training=False))},
                             first_user=F.USER_FEATURES[0])


class CRServingModule(_OnlineModule):
    """Online CR: raw (user, ad, creative) rows + the ad's historical CTR -> pctr_c per row.

    ``fused=True`` (the default) serves with :class:`~trainer.cr_scorer.FusedCRScorer`, which keeps the
    user features at their own batch (usually 1) and broadcasts their first-layer contribution; ``False``
    runs the Keras CR as trained, with the user features repeated per row (kept for benchmarks and checks).
    Both read :data:`transform.names.AD_HIST_CTR_CLIPPED` as CR's pctr input.
    """

    def __init__(self, model: JACModel, tft_output, fused: bool = True):
        super().__init__(tft_output, name=F.CR_MODEL_NAME)
        if fused:
            self.scorer = FusedCRScorer(model.cr)
        else:
            self._cr = _Untracked(model.cr)
            self.model_variables = list(model.cr.variables)

        def score(xf):
            pctr = xf[N.AD_HIST_CTR_CLIPPED]
            return {F.PCTR_C: self.scorer(xf, pctr) if fused else tf.sigmoid(self._cr.value(xf, pctr, training=False))}

        self._add_signatures(score, first_user=F.CR_USER_FEATURES[0], repeat_user_rows=not fused)


class EvalModule(_TransformingModule):
    """The evaluation model: every head of the variant on logged impressions, and the top-1 candidate."""

    def __init__(self, model: JACModel, tft_output):
        super().__init__(tft_output, name="eval")
        self._model = _Untracked(model)
        self.model_variables = list(model.variables)
        has_ar, has_cr = model.ar is not None, model.cr is not None
        names = tuple(n for n in N.EVAL_RAW_INPUTS
                      if (has_ar and n in F.AR_SERVING_INPUTS)
                      or (has_cr and (n in F.CR_SERVING_INPUTS or n in F.CANDIDATE_FEATURES)))

        @tf.function(input_signature=[EXAMPLES_SIGNATURE])
        def serve_examples(inputs):
            m = self._model.value
            raw = self._parse(inputs[EXAMPLES_KEY], names)
            xf = self._transform(raw)
            out = {}
            if has_ar:
                out[F.PCTR_AD] = tf.sigmoid(m.ar(xf, training=False))
            if has_cr:
                # As online: CR reads the historical ad CTR, not AR's pctr_ad.
                out[F.PCTR_C] = tf.sigmoid(m.cr(xf, xf[N.AD_HIST_CTR_CLIPPED], training=False))
                out.update(select_creatives(lambda rows, pctr: m.cr(rows, pctr, training=False), xf,
                                            raw[F.CAND_CREATIVE_IDS]))
            return out

        self.serve_examples = serve_examples


def _save(module: tf.Module, export_dir: str, signatures: Mapping[str, object]) -> str:
    tf.saved_model.save(module, export_dir,
                        signatures={k: f.get_concrete_function() for k, f in signatures.items()})
    return export_dir


def _export_online(module: _OnlineModule, export_dir: str, warmup: bool, request_rows: int) -> str:
    """Saves an online module with both signatures; warm-up: ``request_rows`` rows, 4 x 4.

    Every warm-up request gives all its inputs the same 0th dimension (user features repeated per row):
    TF Serving replays warm-up through its batching session when ``--enable_batching`` is on, and that
    session refuses unequal 0th dimensions, which would fail the load.
    """
    _save(module, export_dir, {F.SERVING_SIGNATURE: module.serve_examples, F.RAW_SIGNATURE: module.predict_raw})
    if warmup:
        write_warmup_requests(export_dir, module.name, [
            example_request(module.name, batch_size=request_rows, user_batch_size=request_rows, seed=0),
            example_request(module.name, batch_size=4, user_batch_size=4, seed=1)])
    return export_dir


def export_ar(model: JACModel, tft_output, export_dir: str, warmup: bool = True) -> str:
    """Saves the online AR SavedModel (+ warm-up requests: M = 8 ads) to ``export_dir``."""
    return _export_online(ARServingModule(model, tft_output), export_dir, warmup, request_rows=8)


def export_cr(model: JACModel, tft_output, export_dir: str, warmup: bool = True, fused: bool = True) -> str:
    """Saves the online CR SavedModel (+ warm-up requests: 64 rows) to ``export_dir``."""
    return _export_online(CRServingModule(model, tft_output, fused=fused), export_dir, warmup, request_rows=64)


def export_eval(model: JACModel, tft_output, export_dir: str) -> str:
    """Saves the evaluation SavedModel (signature ``serving_default`` on serialized tf.Example)."""
    module = EvalModule(model, tft_output)
    return _save(module, export_dir, {F.SERVING_SIGNATURE: module.serve_examples})


def export_models(model: JACModel, tft_output, serving_model_dir: str) -> Dict[str, str]:
    """Writes the eval model to ``serving_model_dir`` and the online models of the variant beneath it.

    Returns ``{"eval": dir, "ar": dir, "cr": dir}`` (only the exported online models).
    """
    out = {"eval": export_eval(model, tft_output, serving_model_dir)}
    if model.ar is not None:
        out[F.AR_MODEL_NAME] = export_ar(model, tft_output, os.path.join(serving_model_dir, F.AR_MODEL_NAME))
    if model.cr is not None:
        out[F.CR_MODEL_NAME] = export_cr(model, tft_output, os.path.join(serving_model_dir, F.CR_MODEL_NAME))
    return out
