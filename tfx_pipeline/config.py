"""Every pipeline parameter in one place: data size, training steps, model overrides, blessing thresholds, Beam.

The runners build a :class:`PipelineConfig` (defaults below, overridable from their command lines) and pass it
to :func:`tfx_pipeline.pipeline.create_pipeline`; nothing else in the pipeline package holds a tunable literal.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PIPELINE_NAME = "adcreative-ranking"  # Kubeflow V2 wants [a-z0-9][a-z0-9-]*

# Module paths (not file paths), so Kubeflow V2 compiles without uploading a user-module wheel and every
# Beam worker imports the same installed code.
PREPROCESSING_FN = "transform.preprocessing.preprocessing_fn"
RUN_FN = "trainer.run.run_fn"
METRICS_MODULE = "creative_metrics.tfma_metrics"

BEAM_MODES = ("in_memory", "multi_processing")


@dataclasses.dataclass
class PipelineConfig:
    """Parameters of one pipeline run.

    Attributes:
      output_dir: everything the run writes: ``pipeline_root/`` (artifacts + SQLite ML Metadata),
        ``serving_models/`` (the TF Serving model base: ``ar/<version>``, ``cr/<version>``; an ablation
        variant's lone model goes to ``ar-only/`` or ``cr-only/``).
      serving_dir: the TF Serving model base the Pusher writes to (default ``<output_dir>/serving_models``).
      data_dir: the simulator's output (``train/`` and ``eval/`` TFRecord splits). Simulated first if absent.
      simulator: overrides of the simulator's options used when ``data_dir`` has to be created.
      feature_spec: the feature spec the logs follow (a spec file, or the name of one in ``feature_specs/``;
        ``None``: the one this process follows, ``$ADCR_FEATURE_SPEC`` or else the simulator's). Every process
        of the run must have loaded the same spec (the local runner's ``--feature-spec`` sees to it):
        :meth:`feature_spec_record` checks.
      train_steps / eval_steps: Trainer steps (batches of the model config's batch size).
      model_config: overrides of :class:`trainer.config.JACConfig` fields (passed as Trainer custom_config).
      nsctr_floor: absolute NSCTR a candidate must exceed to be blessed.
      nsctr_change_tolerance: the candidate's NSCTR may be at most this much (absolute) below the baseline's.
      auc_floor: AR's AUC must exceed this (a sanity gate: a broken AR is never pushed with a good CR).
      compare_with_baseline: the Evaluator compares the model with the pipeline's latest blessed one (the
        Resolver) and blesses only within ``nsctr_change_tolerance`` of it. Off: no Resolver, the model is
        evaluated alone and blessed on the absolute floors, so runs of variants with other heads (say, the
        AR-only and CR-only ablations) can share one output dir and its cached data steps, as experiments do.
      enable_cache: reuse a component's outputs from an earlier run in the same pipeline root when its inputs
        and parameters are unchanged (TFX caching): a second variant on the same data then runs only the
        Trainer and what follows it. Off by default: a cached component does not see changes of user code.
      beam_mode: ``in_memory`` (default; fastest on one machine) or ``multi_processing``.
      beam_workers: worker processes for ``multi_processing`` (0 = one per core).
      extra_beam_args: appended verbatim (e.g. DataflowRunner / FlinkRunner settings, see BUILD.md).
      vertex_project: set, the Trainer runs as a Vertex AI Training CustomJob in this GCP project, on the
        worker pools below (``tfx_pipeline.vertex_training``; each replica gets its ``TF_CONFIG`` from Vertex).
      vertex_region: the CustomJob's region.
      trainer_image: container image of every training replica (the Kubeflow runner sets its ``--image``).
      chief_machine_type: the chief's machine (pool 0; one replica).
      worker_count, worker_machine_type: worker replicas (pool 1). Without ps tasks: multi-worker mirrored
        training, the chief training too.
      ps_count, ps_machine_type: parameter servers (pool 2): parameter-server training, the embedding tables
        split across them; they need workers.
    """

    output_dir: str = os.path.join(REPO_ROOT, "outputs")
    data_dir: str = os.path.join(REPO_ROOT, "data", "default")
    serving_dir: Optional[str] = None
    pipeline_name: str = PIPELINE_NAME
    simulator: Dict[str, Any] = dataclasses.field(default_factory=dict)
    feature_spec: Optional[str] = None
    train_steps: int = 400
    eval_steps: int = 50
    model_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    nsctr_floor: float = 0.0
    nsctr_change_tolerance: float = 0.002
    auc_floor: float = 0.53
    compare_with_baseline: bool = True
    enable_cache: bool = False
    beam_mode: str = "in_memory"
    beam_workers: int = 0
    extra_beam_args: List[str] = dataclasses.field(default_factory=list)
    vertex_project: Optional[str] = None
    vertex_region: str = "us-central1"
    trainer_image: Optional[str] = None
    chief_machine_type: str = "n1-standard-8"
    worker_count: int = 0
    worker_machine_type: str = "n1-standard-8"
    ps_count: int = 0
    ps_machine_type: str = "n1-highmem-8"

    def __post_init__(self):
        if self.beam_mode not in BEAM_MODES:
            raise ValueError(f"beam_mode must be one of {BEAM_MODES}, got {self.beam_mode!r}")
        for name in ("train_steps", "eval_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.nsctr_change_tolerance < 0:
            raise ValueError(f"nsctr_change_tolerance must be >= 0, got {self.nsctr_change_tolerance}")
        if not 0.0 <= self.auc_floor < 1.0:
            raise ValueError(f"auc_floor must be in [0, 1), got {self.auc_floor}")
        for name in ("worker_count", "ps_count"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        if self.ps_count and not self.worker_count:
            raise ValueError(f"ps_count={self.ps_count} needs worker_count >= 1: parameter servers serve workers")
        if (self.worker_count or self.ps_count) and not self.vertex_project:
            raise ValueError("worker_count / ps_count need vertex_project: Vertex AI Training runs the worker pools "
                             "(on Kubernetes, see BUILD.md)")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        # SQLite ML Metadata lives under the pipeline root, so one directory holds a whole run history.
        return os.path.join(self.pipeline_root, "metadata.sqlite")

    @property
    def serving_root(self) -> str:
        return self.serving_dir or os.path.join(self.output_dir, "serving_models")

    def feature_spec_record(self) -> Dict[str, str]:
        """Loads and validates the run's feature spec, checks that this process follows it (``features.SPEC``),
        and returns what the components' custom_config record of it.

        Raises:
          feature_specs.FeatureSpecError: the spec is invalid (e.g. lacks a required group: the message names
            it), or this process loaded another spec (the message says how to select this one).
        """
        import feature_specs
        import features as F

        spec = feature_specs.load(self.feature_spec) if self.feature_spec else F.SPEC
        feature_specs.check_same_spec({feature_specs.CUSTOM_CONFIG_KEY: feature_specs.pipeline_record(spec)},
                                      F.SPEC, "this process")
        return feature_specs.pipeline_record(spec)

    def beam_pipeline_args(self) -> List[str]:
        if self.beam_mode == "in_memory":
            args = ["--direct_running_mode=in_memory"]
        else:
            args = ["--direct_running_mode=multi_processing",
                    f"--direct_num_workers={self.beam_workers}"]
        return args + list(self.extra_beam_args)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_overrides(cls, overrides: Optional[Dict[str, Any]] = None) -> "PipelineConfig":
        overrides = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**overrides)
