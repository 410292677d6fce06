"""What an experiment runs: the models trained through the pipeline, the arms served, the world and the sizes.

An **arm** is (router mode, the AR and CR model it serves, a label), plus the paper rows it fills::

    Arm("jac-peri", PERI, ar=ModelRef("jac", "ar"), cr=ModelRef("jac", "cr"), rows=(("table1", "Peri-CR+"),))

A :class:`ModelRef` names a model of a :class:`Training` (the latest version under that training's serving
root: ``ar``, ``cr``, or an ablation's ``ar-only`` / ``cr-only``, see ``tfx_pipeline.pair_pusher``) or any
model base path. Adding an arm is adding an entry to a :class:`Profile`'s ``arms`` (and, for a new model, one
to its ``trainings``); :mod:`experiments.profiles` holds the named profiles.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import features as F
from serving.router.request import MODES
from simulator import SimulatorConfig

HTTP = "http"  # the reference path: real router over HTTP in front of model server processes
IN_PROCESS = "in-process"  # the same router core and SavedModels in this process (sweeps)
PATHS = (HTTP, IN_PROCESS)

# The tables of results.json; a row is named as in the paper (Yang et al., AAAI 2024).
TABLES = ("table1", "table2", "table3", "table4")


@dataclasses.dataclass(frozen=True)
class Training:
    """A model trained through the real pipeline (``python -m tfx_pipeline.local_runner``) on a seed's log.

    Attributes:
      name: the training's name (its output directory and what :class:`ModelRef` refers to).
      model_config: ``trainer.config.JACConfig`` overrides (``{"variant": "cr"}`` for the CR ablation); the
        profile's ``model_config`` is applied first, the seed last.
      offline_rows: ``(table, paper row)`` pairs its Evaluator metrics fill (tables 3 and 4).
      teacher: the training whose trained model this one distils from (CACS's ``--teacher-model``: the
        same seed's JAC run); it must come earlier in the profile's trainings.
    """

    name: str
    model_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    offline_rows: Tuple[Tuple[str, str], ...] = ()
    teacher: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A served model: ``<serving root of training>/<served_as>``, or a model base ``path``.

    Its latest version, or ``version``; ``label`` names that version on its model server (TF Serving's
    ``version_labels``) and the router then addresses the model by the label, as a production rollout does
    (``serving.router.traffic_split``): ``ModelRef("jac", "cr", version=1, label="stable")``.
    """

    training: Optional[str] = None
    served_as: str = F.AR_MODEL_NAME
    path: Optional[str] = None
    version: Optional[int] = None
    label: Optional[str] = None

    def __post_init__(self):
        if (self.training is None) == (self.path is None):
            raise ValueError("ModelRef: give exactly one of training and path")
        if self.version is not None and (isinstance(self.version, bool) or not isinstance(self.version, int)
                                         or self.version < 1):
            raise ValueError(f"ModelRef: version must be a positive integer, got {self.version!r}")
        if self.label is not None:
            if self.version is None:
                raise ValueError(f"ModelRef: label {self.label!r} needs the version it names")
            if not isinstance(self.label, str) or not re.fullmatch(r"\w+", self.label, flags=re.ASCII):
                raise ValueError(f"ModelRef: label must be letters, digits and underscores (a TF Serving "
                                 f"label), got {self.label!r}")

    def base_path(self, serving_roots: Mapping[str, str]) -> str:
        """The model base path (a directory of integer versions), given each training's serving root."""
        if self.path is not None:
            return os.path.abspath(self.path)
        if self.training not in serving_roots:
            raise ValueError(f"ModelRef: no training named {self.training!r} (trained: {sorted(serving_roots)})")
        return os.path.join(serving_roots[self.training], self.served_as)


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of the A/B test: a router mode in front of an AR and a CR model.

    Attributes:
      label: the arm's name in the results.
      mode: the router mode (``peri``, ``pre``, ``post``, ``no-cr``; :mod:`serving.router.core`).
      ar, cr: the models it serves (``no-cr`` still needs a CR model for the router's readiness).
      rows: ``(table, paper row)`` pairs its online metrics fill (tables 1 and 2).
    """

    label: str
    mode: str
    ar: ModelRef
    cr: ModelRef
    rows: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Arm {self.label!r}: mode must be one of {MODES}, got {self.mode!r}")
        if self.ar.label != self.cr.label:  # the router addresses both models by one label
            raise ValueError(f"Arm {self.label!r}: the AR and CR must carry the same version label (or none), "
                             f"got {self.ar.label!r} and {self.cr.label!r}")

    def serving(self) -> Dict[str, Any]:
        """How its deployment serves the two models: ``{}`` (latest versions), or ``versions`` (model name ->
        version) and ``label``."""
        versions = {name: ref.version for name, ref in ((F.AR_MODEL_NAME, self.ar), (F.CR_MODEL_NAME, self.cr))
                    if ref.version is not None}
        out: Dict[str, Any] = {"versions": versions} if versions else {}
        if self.ar.label is not None:
            out["label"] = self.ar.label
        return out


@dataclasses.dataclass(frozen=True)
class FidelityCondition:
    """One world of the fidelity study: ``simulator`` overrides (the logging policy, the sCTR-bias knob)."""

    name: str
    simulator: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class FidelityStudy:
    """The fidelity study (:mod:`experiments.fidelity`): its worlds, seeds and bootstrap.

    Attributes:
      simulator: ``SimulatorConfig`` options of every world (each condition's overrides on top, then the seed).
      conditions: the worlds; the first is the headline (``results.json``'s ``fidelity.pearson``).
      seeds: world and ranker seeds.
      bootstrap_replicates: resamples of the upgrades for each correlation's CI.
    """

    simulator: Mapping[str, Any]
    conditions: Tuple[FidelityCondition, ...]
    seeds: Tuple[int, ...]
    bootstrap_replicates: int = 1000

    def __post_init__(self):
        if not self.conditions or not self.seeds:
            raise ValueError("FidelityStudy: needs at least one condition and one seed")
        names = [c.name for c in self.conditions]
        if len(set(names)) != len(names):
            raise ValueError(f"FidelityStudy: condition names must be unique, got {names}")
        for c in self.conditions:
            SimulatorConfig(**{**self.simulator, **c.simulator}).validate()


@dataclasses.dataclass(frozen=True)
class LadderStep:
    """A rung of the A/B ladder (:mod:`experiments.ab_ladder`): ``training``'s Evaluator metrics are its
    offline values, ``arm``'s expected CTR its online one."""

    name: str
    training: str
    arm: str


@dataclasses.dataclass(frozen=True)
class Profile:
    """A named experiment: the world, what is trained, the arms, the traffic and the statistics.

    Attributes:
      name: the profile's name (``--profile``).
      simulator: ``SimulatorConfig`` options of every seed's world (the seed is set per seed); ``num_days``
        logged days train the models, ``live_days`` more are served to the arms.
      seeds: world and training seeds; every metric is a mean over them with a 95% CI.
      trainings, arms: what is trained and served; ``control``: the arm lifts are relative to.
      requests_per_day: live requests per day, over all arms (each user's requests go to one arm).
      train_steps, eval_steps, model_config: the pipeline runs' sizes and shared model overrides.
      path: :data:`HTTP` (reference) or :data:`IN_PROCESS`.
      bootstrap_replicates: resamples of users for each confidence interval.
      check_requests: requests ranked over both paths to check they answer identically (0: no check).
      noop_requests: requests timed with no-op models, for the harness's own throughput (0: not timed).
      salt: the hash salt of the arm assignment.
      fidelity: the fidelity study run after the A/B test (``None``: not run).
      ab_ladder: successive creative rankers, each a training and the arm serving its CR after the same AR,
        whose offline lifts are set against their online lifts (:mod:`experiments.ab_ladder`; empty: none).
    """

    name: str
    simulator: Mapping[str, Any]
    seeds: Tuple[int, ...]
    trainings: Tuple[Training, ...]
    arms: Tuple[Arm, ...]
    control: str
    requests_per_day: int
    train_steps: int
    eval_steps: int
    model_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    path: str = HTTP
    bootstrap_replicates: int = 1000
    check_requests: int = 20
    noop_requests: int = 300
    salt: str = "ab"
    fidelity: Optional[FidelityStudy] = None
    ab_ladder: Tuple[LadderStep, ...] = ()

    def __post_init__(self):
        labels = [a.label for a in self.arms]
        if len(set(labels)) != len(labels):
            raise ValueError(f"Profile {self.name!r}: arm labels must be unique, got {labels}")
        if self.control not in labels:
            raise ValueError(f"Profile {self.name!r}: control {self.control!r} is not an arm ({labels})")
        trained = {t.name for t in self.trainings}
        for i, training in enumerate(self.trainings):
            if training.teacher is not None and training.teacher not in {t.name for t in self.trainings[:i]}:
                raise ValueError(f"Profile {self.name!r}: training {training.name!r} has teacher "
                                 f"{training.teacher!r}, which is not trained before it "
                                 f"({[t.name for t in self.trainings[:i]]})")
        for arm in self.arms:
            for ref in (arm.ar, arm.cr):
                if ref.training is not None and ref.training not in trained:
                    raise ValueError(f"Profile {self.name!r}: arm {arm.label!r} serves a model of training "
                                     f"{ref.training!r}, which the profile does not train ({sorted(trained)})")
        for table, _ in [row for arm in self.arms for row in arm.rows] + \
                [row for t in self.trainings for row in t.offline_rows]:
            if table not in TABLES:
                raise ValueError(f"Profile {self.name!r}: unknown table {table!r} (tables: {TABLES})")
        if self.ab_ladder and len(self.ab_ladder) < 3:
            raise ValueError(f"Profile {self.name!r}: ab_ladder needs at least 3 steps (2 upgrades), got "
                             f"{len(self.ab_ladder)}")
        arm_labels = set(labels)
        for step in self.ab_ladder:
            if step.training not in trained or step.arm not in arm_labels:
                raise ValueError(f"Profile {self.name!r}: ab_ladder step {step.name!r} names "
                                 + (f"training {step.training!r}, which the profile does not train"
                                    if step.training not in trained else f"arm {step.arm!r}, which is not an arm"))
        if self.path not in PATHS:
            raise ValueError(f"Profile {self.name!r}: path must be one of {PATHS}, got {self.path!r}")
        if not self.seeds:
            raise ValueError(f"Profile {self.name!r}: needs at least one seed")
        if self.world_config(self.seeds[0]).live_days < 1:
            raise ValueError(f"Profile {self.name!r}: simulator.live_days must be >= 1 (the days served)")

    def world_config(self, seed: int) -> SimulatorConfig:
        """The seed's simulator config (validated)."""
        return SimulatorConfig(**{**self.simulator, "seed": seed}).validate()

    def model_config_of(self, training: Training, seed: int) -> Dict[str, Any]:
        return {**self.model_config, **training.model_config, "seed": seed}

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)
