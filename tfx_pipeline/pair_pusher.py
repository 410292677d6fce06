"""A Pusher executor that publishes the AR and CR SavedModels as one TF Serving version pair.

The Trainer writes the evaluation model at the top of its serving directory and the two online models below
it (``ar/`` and ``cr/``, see ``trainer``). The stock TFX 1.16 filesystem Pusher copies that directory with a
deny pattern for ``saved_model.pb`` that matches at any depth and then restores only the top-level file, so
nested SavedModels would arrive without their graph. This executor keeps everything else of the standard
Pusher (blessing check, ``PushedModel`` artifact and its ``pushed`` / ``pushed_destination`` /
``pushed_version`` properties, archiving the model under the artifact) and replaces the copy:

* destination is a TF Serving model base: ``<base_directory>/ar/<version>/`` and ``<base_directory>/cr/<version>/``;
* both get the **same** integer version, strictly greater than any version already served under either name;
* each model is copied into a hidden staging directory (TF Serving only loads all-digit directory names) with
  ``saved_model.pb`` last, then renamed into place, so a server never sees a half-copied version;
* an unblessed model pushes nothing, and a push never touches versions already there.

Only a **complete pair** enters the ``ar/`` + ``cr/`` layout the router serves. A model of the ``"ar"`` or
``"cr"`` ablation has one online model: serving it beside the other half of an older run would mix runs (and
a first ``cr`` push would serve no AR at all), so it is published on its own, as the TF Serving model
``<name>-only`` (``<base_directory>/ar-only/<version>/`` or ``<base_directory>/cr-only/<version>/``), with a
warning in the log; the served pair is left unchanged. The ``PushedModel`` artifact says which:
``pushed_models`` lists the model names written under ``pushed_destination`` (``"ar,cr"`` or
``"cr-only"``) and ``push_layout`` is ``"pair"`` or ``"single"``.
"""

import os
import re
import time
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

import features as F

MODEL_NAMES = (F.AR_MODEL_NAME, F.CR_MODEL_NAME)
SAVED_MODEL_PB = "saved_model.pb"
PAIR_LAYOUT = "pair"
SINGLE_LAYOUT = "single"


def single_model_name(name: str) -> str:
    """The TF Serving model name an ablation's lone online model is pushed as (``"cr"`` -> ``"cr-only"``)."""
    return f"{name}-only"


def push_targets(present: Sequence[str]) -> Dict[str, str]:
    """``{online model in the Trainer output: model name to push it as}`` for the models ``present``.

    Both models: the pair, each under its own name. One model (an ablation): that model as
    :func:`single_model_name`, never into the pair layout.
    """
    if not present:
        raise ValueError("push_targets: no online model to push")
    if set(present) == set(MODEL_NAMES):
        return {name: name for name in MODEL_NAMES}
    return {name: single_model_name(name) for name in present}


def layout_of(targets: Mapping[str, str]) -> str:
    """:data:`PAIR_LAYOUT` when ``targets`` (of :func:`push_targets`) is the served pair, else :data:`SINGLE_LAYOUT`."""
    return PAIR_LAYOUT if tuple(targets.values()) == MODEL_NAMES else SINGLE_LAYOUT


def served_versions(base_directory: str, name: str) -> List[int]:
    """Integer version directories under ``<base_directory>/<name>/`` (what TF Serving would load)."""
    path = os.path.join(base_directory, name)
    if not fileio.exists(path):
        return []
    return sorted(int(d.rstrip("/")) for d in fileio.listdir(path) if d.rstrip("/").isdigit())


def next_version(base_directory: str, now: int, names: Sequence[str] = MODEL_NAMES) -> int:
    """A version newer than any served version of ``names``: the push time, bumped past collisions."""
    latest = max([v for name in names for v in served_versions(base_directory, name)], default=0)
    return max(now, latest + 1)


def publish_saved_model(source: str, destination: str) -> None:
    """Copies a SavedModel directory to ``destination`` so it appears complete or not at all."""
    if not fileio.exists(os.path.join(source, SAVED_MODEL_PB)):
        raise FileNotFoundError(f"{source} is not a SavedModel (no {SAVED_MODEL_PB})")
    parent, version = os.path.split(destination.rstrip("/"))
    staging = os.path.join(parent, f".staging-{version}")
    if fileio.exists(staging):
        fileio.rmtree(staging)
    top_level_pb = os.path.join(source.rstrip("/"), SAVED_MODEL_PB)
    io_utils.copy_dir(source, staging, deny_regex_patterns=["^" + re.escape(top_level_pb) + "$"])
    # saved_model.pb last: loaders treat its presence as "the model is complete".
    io_utils.copy_file(os.path.join(source, SAVED_MODEL_PB), os.path.join(staging, SAVED_MODEL_PB))
    fileio.rename(staging, destination)


def push_online_models(model_path: str, base_directory: str, now: int) -> Tuple[Dict[str, str], int]:
    """Publishes the online SavedModels under ``model_path`` into the model base ``base_directory``.

    Both ``ar/`` and ``cr/``: the pair, one version for both. One of them: that model as ``<name>-only``
    (:func:`push_targets`), logged as a warning. Returns ``({online model: name pushed as}, version)``.
    """
    present = [n for n in MODEL_NAMES if fileio.exists(os.path.join(model_path, n, SAVED_MODEL_PB))]
    if not present:
        raise FileNotFoundError(f"the model at {model_path} has neither {MODEL_NAMES[0]}/ nor "
                                f"{MODEL_NAMES[1]}/ SavedModel to push")
    targets = push_targets(present)
    if layout_of(targets) == SINGLE_LAYOUT:
        logging.warning(
            "The model at %s has only %s/ (an ablation variant): pushing it as %s, outside the served "
            "%s/ + %s/ pair, which stays as it was", model_path, ", ".join(present),
            ", ".join(targets.values()), *MODEL_NAMES)
    version = next_version(base_directory, now, list(targets.values()))
    for source, target in targets.items():
        fileio.makedirs(os.path.join(base_directory, target))
        destination = os.path.join(base_directory, target, str(version))
        publish_saved_model(os.path.join(model_path, source), destination)
        logging.info("Pushed %s version %d to %s", target, version, destination)
    return targets, version


class PairPusherExecutor(pusher_executor.Executor):
    """Standard Pusher semantics; pushes ``ar/`` and ``cr/`` of the model as one version pair.

    A model with only one of them (an ablation) is pushed as ``<name>-only`` (see the module docstring).
    Subclasses publish other layouts by overriding :meth:`push` and :meth:`layout`.
    """

    def push(self, model_path: str, base_directory: str, now: int) -> Tuple[Dict[str, str], int]:
        """Publishes the model's online SavedModels; ``({online model: name pushed as}, version)``."""
        return push_online_models(model_path, base_directory, now)

    def layout(self, targets: Mapping[str, str]) -> str:
        """The ``push_layout`` property recorded for ``targets``."""
        return layout_of(targets)

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        push_destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                                  push_destination)
        if push_destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("PairPusherExecutor pushes to a filesystem destination only")
        base_directory = push_destination.filesystem.base_directory

        targets, version = self.push(model_path, base_directory, int(time.time()))
        # Archive the whole model (nested SavedModels included) under the PushedModel artifact.
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=base_directory, pushed_version=str(version))
        model_push.set_string_custom_property("pushed_models", ",".join(targets.values()))
        model_push.set_string_custom_property("push_layout", self.layout(targets))
