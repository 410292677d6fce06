"""The bandit CRs' SavedModel (VAM-HBM, Beta-TS): the CR contract with a Thompson sample, and the posterior.

Signatures (beside ``serving_default``, which samples like ``predict_raw``):

* ``features.RAW_SIGNATURE``: ``features.CR_SERVING_INPUTS`` -> ``pctr_c`` ``[B]``, a Thompson sample seeded
  by the request's own values (``trainer.thompson.request_seed``): the same request gets the same sample, a
  replay is reproducible; every other request draws afresh. (Under TF Serving's cross-request batching the
  seed covers the merged batch.) The router calls this like any CR's and shows the best sample;
* ``features.POSTERIOR_MEAN_SIGNATURE``: the same inputs -> the posterior mean.

The posterior lives in the SavedModel's variables, restorable by name for the next day's update: the module's
``posterior_state`` (name -> variable), ``posterior_keys`` (``"creative"`` / ``"ad"`` -> the raw id of each
table row, -1 for OOV buckets), ``posterior_kind`` (the variant) and, for VAM-HBM, ``vam_weights``.
:func:`load_posterior` reads them back.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

import features as F
from trainer.creative_log import AD_INDEX, CREATIVE_INDEX, vocabulary_keys
from trainer.serving_module import OnlineModule, Untracked

CREATIVE_KEYS = "creative"
AD_KEYS = "ad"


class BanditCRServingModule(OnlineModule):
    """Online bandit CR: ``predict_raw`` samples, ``predict_mean`` averages.

    ``model.cr`` provides ``thompson_pctr(features, seed)``, ``mean_pctr(features)``, ``posterior_variables()``
    and, optionally, ``vam`` (the visual prior, whose weights are exported by name for a warm start).
    """

    def __init__(self, model, tft_output):
        super().__init__(tft_output, name=F.CR_MODEL_NAME)
        cr = Untracked(model.cr)
        self.model_variables = list(model.cr.variables)
        self.posterior_kind = tf.Variable(model.config.variant, trainable=False)
        self.posterior_state = dict(model.cr.posterior_variables())
        rows = model.cr.cardinalities
        self.posterior_keys = {CREATIVE_KEYS: tf.Variable(vocabulary_keys(tft_output, F.CREATIVE_ID, rows[CREATIVE_INDEX]))}
        if AD_INDEX in rows:
            self.posterior_keys[AD_KEYS] = tf.Variable(vocabulary_keys(tft_output, F.AD_ID, rows[AD_INDEX]))
        if getattr(model.cr, "vam", None) is not None:
            self.vam_weights = list(model.cr.vam.weights)

        first = F.CR_USER_FEATURES[0]
        self._add_signatures(lambda xf, seed: {F.PCTR_C: cr.value.thompson_pctr(xf, seed())}, first_user=first)
        self.extra_signatures = {F.POSTERIOR_MEAN_SIGNATURE: self.raw_signature(
            F.CR_MODEL_NAME, lambda xf, seed: {F.PCTR_C: cr.value.mean_pctr(xf)}, first_user=first)}


def select_by_thompson(cr, rows, pctr, seed):
    """The evaluation model's pick: the best Thompson sample (the bandit's policy), seeded by the batch."""
    return cr.thompson_pctr(rows, seed)


@dataclasses.dataclass
class SavedPosterior:
    """A bandit CR SavedModel's posterior: ``kind`` (variant), ``state`` and ``keys`` (name -> array), VAM weights."""

    kind: str
    state: Dict[str, np.ndarray]
    keys: Dict[str, np.ndarray]
    vam_weights: List[np.ndarray]


def find_cr_saved_model(path: str) -> str:
    """The CR SavedModel under ``path``: a Trainer output (``Format-Serving/cr``), a serving dir (``cr/``) or itself."""
    for candidate in (os.path.join(path, "Format-Serving", F.CR_MODEL_NAME), os.path.join(path, F.CR_MODEL_NAME), path):
        if tf.io.gfile.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(f"no CR SavedModel under {path} (looked for Format-Serving/{F.CR_MODEL_NAME}/, "
                            f"{F.CR_MODEL_NAME}/ and the directory itself)")


def load_posterior(path: str, kind: str) -> SavedPosterior:
    """Reads the posterior of the bandit CR SavedModel under ``path``; raises if it is not a ``kind`` model."""
    export_dir = find_cr_saved_model(path)
    loaded = tf.saved_model.load(export_dir)
    found = loaded.posterior_kind.numpy().decode() if hasattr(loaded, "posterior_kind") else None
    if found != kind:
        raise ValueError(f"warm_start_model {path}: {export_dir} holds no {kind} posterior "
                         f"({'a ' + found + ' posterior' if found else 'not a bandit CR'})")
    return SavedPosterior(
        kind, {k: v.numpy() for k, v in loaded.posterior_state.items()},
        {k: v.numpy() for k, v in loaded.posterior_keys.items()},
        [w.numpy() for w in getattr(loaded, "vam_weights", [])])
