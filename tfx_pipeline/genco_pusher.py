"""The GenCO pipeline's Pusher: publishes the one online GenCO model as ``<serving_root>/genco/<version>/``.

The same rules as :mod:`tfx_pipeline.pair_pusher` (whose executor this extends): only a blessed model is pushed;
the version is the push time, bumped past every version already served under ``genco/``; the SavedModel is
staged in a hidden directory with ``saved_model.pb`` last and renamed into place, so TF Serving (or the
stand-in) never loads half a model; versions already there are never touched. GenCO is a model of its own (it
does not pair with AR: the router calls it beside whatever AR serves), so its push is never a pair and never
touches ``ar/`` or ``cr/``. The ``PushedModel`` artifact records ``pushed_models = "genco"`` and
``push_layout = "genco"``.
"""

import os
from typing import Dict, Mapping, Tuple

from absl import logging
from tfx.dsl.io import fileio

import features as F
from tfx_pipeline.pair_pusher import SAVED_MODEL_PB, PairPusherExecutor, next_version, publish_saved_model

GENCO_LAYOUT = "genco"


def push_genco_model(model_path: str, base_directory: str, now: int) -> Tuple[Dict[str, str], int]:
    """Publishes ``<model_path>/genco/`` as ``<base_directory>/genco/<version>/``; ``({"genco": "genco"}, version)``."""
    source = os.path.join(model_path, F.GENCO_MODEL_NAME)
    if not fileio.exists(os.path.join(source, SAVED_MODEL_PB)):
        raise FileNotFoundError(f"the model at {model_path} has no {F.GENCO_MODEL_NAME}/ SavedModel to push")
    version = next_version(base_directory, now, [F.GENCO_MODEL_NAME])
    fileio.makedirs(os.path.join(base_directory, F.GENCO_MODEL_NAME))
    destination = os.path.join(base_directory, F.GENCO_MODEL_NAME, str(version))
    publish_saved_model(source, destination)
    logging.info("Pushed %s version %d to %s", F.GENCO_MODEL_NAME, version, destination)
    return {F.GENCO_MODEL_NAME: F.GENCO_MODEL_NAME}, version


class GenCOPusherExecutor(PairPusherExecutor):
    """Standard Pusher semantics; pushes the model's ``genco/`` SavedModel (see the module docstring)."""

    def push(self, model_path: str, base_directory: str, now: int) -> Tuple[Dict[str, str], int]:
        return push_genco_model(model_path, base_directory, now)

    def layout(self, targets: Mapping[str, str]) -> str:
        return GENCO_LAYOUT
