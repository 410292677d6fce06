"""SavedModel export: the evaluation model and the online AR and CR models.

Layout written by :func:`trainer.variants.export_models` into the Trainer's ``serving_model_dir``::

    serving_model_dir/            eval model (TFMA): serialized tf.Example -> pctr_ad, pctr_c,
                                  selected_index, selected_creative_id (the AR-only ablation: pctr_ad, ar_logit)
    serving_model_dir/ar/         online AR   (features.AR_MODEL_NAME)   -- every variant but 'cr'
    serving_model_dir/cr/         online CR   (features.CR_MODEL_NAME)   -- every variant but 'ar'

Each online model has two signatures, both applying the Transform graph to its own raw inputs only:

* ``features.SERVING_SIGNATURE`` (``serving_default``): ``examples`` = serialized tf.Example ``[B]``;
* ``features.RAW_SIGNATURE`` (``predict_raw``): named raw tensors ``features.AR_SERVING_INPUTS`` /
  ``features.CR_SERVING_INPUTS`` (see ``trainer.serving_inputs``), broadcastable inputs with batch 1 or B;
  a creative-aware AR takes ``features.ACR_SERVING_INPUTS`` (one creative per ad row);

and outputs ``{features.PCTR_AD}`` (AR) or ``{features.PCTR_C}`` (CR). Online CR reads the ad's
historical CTR (``features.AD_HIST_CTR``) in place of AR's pctr_ad, quantized by the same eq. (5), and is
served by :class:`~trainer.cr_scorer.FusedCRScorer`. Each also ships TF Serving warm-up requests. The
comparison CRs' modules (``trainer.dssm_export``, ``trainer.bandit_export``) keep these two signatures and
add their own.
"""

from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

import features as F
from transform import names as N
from trainer import thompson
from trainer.candidates import select_creatives
from trainer.cr_scorer import FusedCRScorer
from trainer.serving_inputs import CREATIVE_AWARE_AR, SERVING_INPUTS
from trainer.serving_module import OnlineModule, TransformingModule, Untracked, export_online, save_module
from trainer.signatures import EXAMPLES_KEY, EXAMPLES_SIGNATURE

# The eval model's second output when it has AR only (TFMA would unwrap a one-output dict).
AR_LOGIT = "ar_logit"

# select(cr_head, candidate_rows, pctr, seed) -> a score per candidate row (the highest is picked)
Select = Callable[[object, dict, tf.Tensor, tf.Tensor], tf.Tensor]


def select_by_logit(cr, rows, pctr, seed):
    return cr(rows, pctr, training=False)


class ARServingModule(OnlineModule):
    """Online AR: raw user + ads (+ sequence) -> pctr_ad per row.

    User and sequence inputs keep their own batch (1 for one user and M ads): AR broadcasts the user
    embeddings and runs the sequence's self-attention once per request. A creative-aware AR (``inputs_key``
    ``trainer.serving_inputs.CREATIVE_AWARE_AR``) also takes each row's creative.
    """

    def __init__(self, model, tft_output, inputs_key: str = F.AR_MODEL_NAME):
        super().__init__(tft_output, name=F.AR_MODEL_NAME, inputs_key=inputs_key)
        self._ar = Untracked(model.ar)
        self.model_variables = list(model.ar.variables)
        self._add_signatures(lambda xf, seed: {F.PCTR_AD: tf.sigmoid(self._ar.value(xf, training=False))},
                             first_user=F.USER_FEATURES[0])


def creative_aware_ar_module(model, tft_output) -> ARServingModule:
    return ARServingModule(model, tft_output, inputs_key=CREATIVE_AWARE_AR)


class CRServingModule(OnlineModule):
    """Online CR: raw (user, ad, creative) rows + the ad's historical CTR -> pctr_c per row.

    ``fused=True`` (the default) serves with :class:`~trainer.cr_scorer.FusedCRScorer`, which keeps the
    user features at their own batch (usually 1) and broadcasts their first-layer contribution; ``False``
    runs the Keras CR as trained, with the user features repeated per row (kept for benchmarks and checks).
    Both read :data:`transform.names.AD_HIST_CTR_CLIPPED` as CR's pctr input.
    """

    def __init__(self, model, tft_output, fused: bool = True):
        super().__init__(tft_output, name=F.CR_MODEL_NAME)
        if fused:
            self.scorer = FusedCRScorer(model.cr)
        else:
            self._cr = Untracked(model.cr)
            self.model_variables = list(model.cr.variables)

        def score(xf, seed):
            pctr = xf[N.AD_HIST_CTR_CLIPPED]
            return {F.PCTR_C: self.scorer(xf, pctr) if fused else tf.sigmoid(self._cr.value(xf, pctr, training=False))}

        self._add_signatures(score, first_user=F.CR_USER_FEATURES[0], repeat_user_rows=not fused)


class EvalModule(TransformingModule):
    """The evaluation model: every head of the variant on logged impressions, and the top-1 candidate.

    ``ar_inputs``: the AR's raw input set (a creative-aware AR reads the exposed creative); ``select`` scores
    the candidate rows for the pick (CR's logit; a bandit CR's Thompson sample, seeded by the batch).
    """

    def __init__(self, model, tft_output, ar_inputs: str = F.AR_MODEL_NAME, select: Optional[Select] = None):
        super().__init__(tft_output, name="eval")
        self._model = Untracked(model)
        self.model_variables = list(model.variables)
        select = select or select_by_logit
        has_ar, has_cr = model.ar is not None, model.cr is not None
        wanted = set(SERVING_INPUTS[ar_inputs] if has_ar else ()) | set(
            F.CR_SERVING_INPUTS + F.CANDIDATE_FEATURES if has_cr else ())
        names = tuple(n for n in N.EVAL_RAW_INPUTS if n in wanted)

        @tf.function(input_signature=[EXAMPLES_SIGNATURE])
        def serve_examples(inputs):
            m = self._model.value
            raw = self._parse(inputs[EXAMPLES_KEY], names)
            xf = self._transform(raw)
            out = {}
            if has_ar:
                ar_logit = m.ar(xf, training=False)
                out[F.PCTR_AD] = tf.sigmoid(ar_logit)
                if not has_cr:
                    # TFMA unwraps a one-output dict to its bare tensor (its predictions extractor does not
                    # prefer dicts), and the metrics then cannot find pctr_ad by name: the AR-only ablation
                    # also returns its logit.
                    out[AR_LOGIT] = ar_logit
            if has_cr:
                # As online: CR reads the historical ad CTR, not AR's pctr_ad.
                out[F.PCTR_C] = tf.sigmoid(m.cr(xf, xf[N.AD_HIST_CTR_CLIPPED], training=False))
                seed = thompson.request_seed([inputs[EXAMPLES_KEY]])
                out.update(select_creatives(lambda rows, pctr: select(m.cr, rows, pctr, seed), xf,
                                            raw[F.CAND_CREATIVE_IDS]))
            return out

        self.serve_examples = serve_examples


def export_ar(model, tft_output, export_dir: str, warmup: bool = True) -> str:
    """Saves the online AR SavedModel (+ warm-up requests: M = 8 ads) to ``export_dir``."""
    return export_online(ARServingModule(model, tft_output), export_dir, warmup, request_rows=8)


def export_cr(model, tft_output, export_dir: str, warmup: bool = True, fused: bool = True) -> str:
    """Saves the online CR SavedModel (+ warm-up requests: 64 rows) to ``export_dir``."""
    return export_online(CRServingModule(model, tft_output, fused=fused), export_dir, warmup, request_rows=64)


def export_eval(model, tft_output, export_dir: str, ar_inputs: str = F.AR_MODEL_NAME,
                select: Optional[Select] = None) -> str:
    """Saves the evaluation SavedModel (signature ``serving_default`` on serialized tf.Example)."""
    module = EvalModule(model, tft_output, ar_inputs, select)
    return save_module(module, export_dir, {F.SERVING_SIGNATURE: module.serve_examples})
