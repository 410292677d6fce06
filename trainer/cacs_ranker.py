"""CACS's ad ranker: the creative-aware AR that reads the selected creative's vector from the selector's tower.

In CACS (Lin et al., SIGIR 2022) creative selection runs before ad ranking, and the ranker shares the
selector's creative representation: it scores each ad with the creative the selector picked, reading that
creative's tower vector beside its raw attributes. :class:`CACSRankerModel` is
:class:`~trainer.acr_model.CreativeAwareARModel` with the selector's unit creative vector :math:`c` appended
to its input row:

.. math::

    x_0 = [x_0^{ACR};\\ \\mathrm{sg}(c)], \\qquad c = \\frac{f_c([E_{ad}; E_{creative}; v])}{\\lVert f_c(\\cdot) \\rVert}

:math:`\\mathrm{sg}` stops the ranker's gradient: the tower is trained by the selector's own losses (clicks,
distillation, ID dropout), so the selector is the same model with or without the ranker beside it, and the
vector the ranker reads is exactly the one the selector's ``creative_tower`` signature serves.

Online (:class:`CACSRankerServingModule`), the AR SavedModel holds a copy of the selector's creative tower
(:class:`~trainer.dssm_export.CreativeTowerScorer`, the same weights) and computes :math:`c` from the raw
creative features of each row, so the router sends the picked creative unchanged (its inputs,
``features.CACS_AR_SERVING_INPUTS``, are AR's plus the whole creative, id included); its
``features.CREATIVE_TOWER_SIGNATURE`` returns the vectors it reads.
"""

from __future__ import annotations

from typing import List, Mapping

import tensorflow as tf

import features as F
from trainer import dssm_model
from trainer.acr_model import CreativeAwareARModel
from trainer.dssm_export import CreativeTowerScorer
from trainer.serving_inputs import CACS_AR, CREATIVE_TOWER
from trainer.serving_module import OnlineModule, Untracked

# Key of a precomputed creative vector ``[B, d]`` among the ranker's features (the online module sets it).
SHARED_CREATIVE_VECTOR = "shared_creative_vector"


class CACSRankerModel(CreativeAwareARModel):
    """ACR reading the selector's creative vector too; :meth:`share_creative_tower` gives it the selector.

    Args: those of :class:`~trainer.acr_model.CreativeAwareARModel`.

    Shapes: ``call(features)`` takes ACR's inputs and the creative tower's (ad features, creative id and
    attributes, content embedding; one creative per ad row), or :data:`SHARED_CREATIVE_VECTOR` ``[B, d]`` in
    place of the tower's computation; returns the logit ``[B]``.
    """

    feature_names = tuple(dict.fromkeys(CreativeAwareARModel.feature_names + dssm_model.CREATIVE_INPUTS))

    def __init__(self, cardinalities: Mapping[str, int], **kwargs):
        super().__init__(cardinalities, **kwargs)
        self._selector = None

    def share_creative_tower(self, selector) -> None:
        """Reads ``selector.creative_vectors`` (a :class:`~trainer.dssm_model.TwoTowerCRModel`); not tracked
        here: its variables are the selector's."""
        self._selector = Untracked(selector)

    def creative_vectors(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        if SHARED_CREATIVE_VECTOR in features:
            return tf.cast(features[SHARED_CREATIVE_VECTOR], tf.float32)
        if self._selector is None:
            raise ValueError("CACSRankerModel: no selector to read creative vectors from; call "
                             "share_creative_tower(selector) first (trainer.variants.build_model does)")
        # The un-dropped ids: the ranker reads the vector the selector serves.
        return tf.stop_gradient(self._selector.value.creative_vectors(features))

    def extra_inputs(self, features: Mapping[str, tf.Tensor]) -> List[tf.Tensor]:
        return super().extra_inputs(features) + [self.creative_vectors(features)]


class CACSRankerServingModule(OnlineModule):
    """Online CACS ranker: AR's inputs + each row's whole creative -> ``pctr_ad``; and the vectors it reads.

    Signatures: ``predict_raw`` / ``serving_default`` (``features.CACS_AR_SERVING_INPUTS``); and
    ``features.CREATIVE_TOWER_SIGNATURE`` (raw ad + creative features -> ``creative_vector``), the vectors
    the ranker consumes, computed by its copy of the selector's creative tower.
    """

    def __init__(self, model, tft_output):
        super().__init__(tft_output, name=F.AR_MODEL_NAME, inputs_key=CACS_AR)
        ar = Untracked(model.ar)
        self.model_variables = list(model.ar.variables)
        self.creative_tower = CreativeTowerScorer(model.cr)

        def pctr(xf, seed):
            shared = dict(xf, **{SHARED_CREATIVE_VECTOR: self.creative_tower(xf)})
            return {F.PCTR_AD: tf.sigmoid(ar.value(shared, training=False))}

        self._add_signatures(pctr, first_user=F.USER_FEATURES[0])
        self.extra_signatures = {F.CREATIVE_TOWER_SIGNATURE: self.raw_signature(
            CREATIVE_TOWER, lambda xf, seed: {F.CREATIVE_VECTOR: self.creative_tower(xf)})}
