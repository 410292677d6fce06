"""ACR, the creative-aware ad ranker: AR that also reads the creative shown with the ad.

The ad ranker of JAC's Table 4 "ACR" and of its no-CR and Pre-CR baselines (Yang et al., AAAI 2024) "takes
creative features as input": it can only score an ad once its creative is known, i.e. after CR picked it
(Pre-CR) or with a random one (no-CR). Trained in the joint model with CR as JAC is (variant ``"acr"``).
"""

from __future__ import annotations

from typing import List, Mapping

import tensorflow as tf

import features as F
from transform import names as N
from trainer.ar_model import ARModel
from trainer.embeddings import CategoricalEmbeddings

# The exposed creative's transformed attributes and content embedding (the creative id is left out: a ranker
# of ads should generalise over creatives, and CR models the id).
CREATIVE_CATEGORICAL = tuple(N.xf(n) for n in F.CREATIVE_ATTRIBUTES)
CREATIVE_INPUTS = CREATIVE_CATEGORICAL + N.CR_DENSE


class CreativeAwareARModel(ARModel):
    """AR with the exposed creative in its input row.

    .. math::

        x_0 = [x_0^{AR};\\ E_{style}; E_{tone}; E_{price\\,tag}; E_{text}; v]

    :math:`x_0^{AR}` is :class:`~trainer.ar_model.ARModel`'s input row (ids, codes, crosses, numerics, the
    sequence interest), :math:`E` dimension-``embedding_dim`` embeddings of the creative's four attribute
    codes and :math:`v` its content embedding; the cross network and deep tower are AR's.

    Args: those of :class:`~trainer.ar_model.ARModel`; ``cardinalities`` also covers the creative attributes.

    Shapes: ``call(features)`` takes AR's inputs plus :data:`CREATIVE_CATEGORICAL` ``[B]`` and the embedding
    ``[B, 8]`` (one creative per ad row; user features may still have batch 1) and returns the logit ``[B]``.
    """

    feature_names = N.AR_INPUTS + CREATIVE_INPUTS

    def __init__(self, cardinalities: Mapping[str, int], **kwargs):
        super().__init__(cardinalities, **kwargs)
        self.creative_cardinalities = {n: int(cardinalities[n]) for n in CREATIVE_CATEGORICAL}
        self.creative_embeddings = CategoricalEmbeddings(self.creative_cardinalities, CREATIVE_CATEGORICAL,
                                                         self.embedding_dim, name="creative_embeddings")

    def extra_inputs(self, features: Mapping[str, tf.Tensor]) -> List[tf.Tensor]:
        dense = [tf.cast(features[n], tf.float32) for n in N.CR_DENSE]
        return [self.creative_embeddings(features)] + dense

    def get_config(self):
        config = super().get_config()
        config["cardinalities"] = {**config["cardinalities"], **self.creative_cardinalities}
        return config
