"""The Trainer as a Vertex AI Training CustomJob: its worker pools (chief, workers, ps) from the pipeline config.

With ``PipelineConfig.vertex_project`` set, the pipeline uses TFX's Vertex Trainer
(``tfx.extensions.google_cloud_ai_platform.Trainer``): the pipeline step submits a CustomJob whose every
replica runs the Trainer executor, i.e. ``trainer.run.run_fn``, in ``PipelineConfig.trainer_image``. Vertex
gives each replica its ``TF_CONFIG`` from its pool (pool 0: ``chief``, 1: ``worker``, 2: ``ps``), and
``run_fn`` picks the strategy from it (``trainer.distribute``): with ps replicas parameter-server training,
with workers only multi-worker mirrored training, with the chief alone one process.
"""

from __future__ import annotations

from typing import Any, Dict, List

from tfx import v1 as tfx

from tfx_pipeline import config as config_lib

_VERTEX = tfx.extensions.google_cloud_ai_platform


def worker_pool_specs(cfg: config_lib.PipelineConfig) -> List[Dict[str, Any]]:
    """Vertex ``workerPoolSpecs`` in Vertex's order: the chief (one replica), the workers, the ps tasks.

    Pools with no replica are left out (only trailing pools can be: ps tasks need workers).
    """
    pools = [(cfg.chief_machine_type, 1), (cfg.worker_machine_type, cfg.worker_count),
             (cfg.ps_machine_type, cfg.ps_count)]
    return [{"machine_spec": {"machine_type": machine}, "replica_count": count,
             "container_spec": {"image_uri": cfg.trainer_image}}
            for machine, count in pools if count]


def trainer_custom_config(cfg: config_lib.PipelineConfig) -> Dict[str, Any]:
    """The Vertex Trainer's entries of the Trainer ``custom_config`` (empty without ``vertex_project``)."""
    if not cfg.vertex_project:
        return {}
    return {_VERTEX.ENABLE_VERTEX_KEY: True, _VERTEX.VERTEX_REGION_KEY: cfg.vertex_region,
            _VERTEX.TRAINING_ARGS_KEY: {"project": cfg.vertex_project,
                                        "job_spec": {"worker_pool_specs": worker_pool_specs(cfg)}}}


def trainer_component(cfg: config_lib.PipelineConfig):
    """TFX's Vertex Trainer with ``vertex_project`` set, else the local ``tfx.components.Trainer``."""
    return _VERTEX.Trainer if cfg.vertex_project else tfx.components.Trainer


def describe(cfg: config_lib.PipelineConfig) -> str:
    """One line: where the Trainer runs."""
    if not cfg.vertex_project:
        return "Trainer: in the pipeline step, one process"
    pools = ", ".join(f"{name} {p['replica_count']} x {p['machine_spec']['machine_type']}"
                      for name, p in zip(("chief", "workers", "ps"), worker_pool_specs(cfg)))
    return f"Trainer: Vertex AI Training CustomJob in {cfg.vertex_project}/{cfg.vertex_region}: {pools}"
