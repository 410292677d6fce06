"""``create_pipeline``: the TFX pipeline from simulated impression logs to a pushed AR/CR serving pair.

::

    ImportExampleGen (train/, eval/ TFRecords) ─┬─▶ StatisticsGen ─▶ SchemaGen ─▶ CurateSchema
                                                │        └──────────────┬──────────────┘
                                                │                ExampleValidator ─▶ DataGate (stops on anomalies)
                                                ├─▶ Transform (transform.preprocessing) ◀── curated schema
                                                │        └─▶ Trainer (trainer.run.run_fn): eval model + ar/ + cr/
                                                │                 │
                                                │  Resolver (latest blessed model) ─┐
                                                └──────────────▶ Evaluator (TFMA: AUC, GAUC, NSCTR, sCTR, truth)
                                                                   ├─▶ EvaluationReport (HTML)
                                                                   └─▶ Pusher (PairPusherExecutor) ─▶ <serving_root>/{ar,cr}/<version>

The Pusher publishes only a complete AR/CR pair into ``{ar,cr}/``; the ``ar`` and ``cr`` ablation variants
push their one online model as ``<serving_root>/ar-only/`` or ``cr-only/`` (see ``tfx_pipeline.pair_pusher``).
Every other variant (``trainer.variants``: JAC and the systems it is compared with) trains an AR and a CR
and is pushed, evaluated and served as a pair like JAC.

Components reference user code by module path (``transform.preprocessing.preprocessing_fn``,
``trainer.run.run_fn``), so the same pipeline runs locally and compiles for Kubeflow V2 without uploading a
module file.
"""

from __future__ import annotations

import os
from typing import List, Optional

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

import feature_specs
import features as F
from tfx_pipeline import config as config_lib
from tfx_pipeline import eval_config as eval_config_lib
from tfx_pipeline import vertex_training
from tfx_pipeline.data_gate import DataGate
from tfx_pipeline.pair_pusher import PairPusherExecutor
from tfx_pipeline.report_component import EvaluationReport
from tfx_pipeline.schema_curation import CurateSchema
from trainer.cacs_teacher import check_teacher_model
from trainer.config import MODEL_CONFIG_KEY, JACConfig


def create_pipeline(
    cfg: config_lib.PipelineConfig,
    metadata_connection_config=None,
    beam_pipeline_args: Optional[List[str]] = None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline for ``cfg``.

    Variant ``cacs`` with a teacher (``model_config["cacs_teacher_model"]``: a trained, exported model, e.g. a
    blessed JAC's Trainer output, never this run's): the teacher is checked here, before anything runs
    (``trainer.cacs_teacher.check_teacher_model``: a ``ValueError`` naming the model and what its signature
    lacks), and its resolved directory goes to the Trainer; its vocabularies are checked against this run's
    Transform output when the Trainer starts, before training.

    Args:
      cfg: every parameter of the run (see :class:`tfx_pipeline.config.PipelineConfig`).
      metadata_connection_config: ML Metadata connection (the local runner passes SQLite under the pipeline
        root; Kubeflow supplies its own and passes ``None``).
      beam_pipeline_args: defaults to ``cfg.beam_pipeline_args()``.
    """
    # The spec is checked before anything is built: an invalid one (say, without a candidate list) or one this
    # process did not load stops here with a message naming the problem.
    spec_config = {feature_specs.CUSTOM_CONFIG_KEY: cfg.feature_spec_record()}
    model_config = JACConfig.from_dict(cfg.model_config)
    if model_config.variant == "hbm" and not (F.CREATIVE_ATTRIBUTES or F.CREATIVE_EMBEDDING):
        # The HBM's visual prior scores a creative from its content; an id alone says nothing before it is shown.
        raise feature_specs.FeatureSpecError(
            f"variant 'hbm' needs creative content: feature spec {F.SPEC.name!r} has no creative attribute and no "
            "content embedding (role 'creative_embedding') for its visual prior; add one, or use another variant")
    if model_config.has_cr:
        if F.AD_HIST_CTR is None:
            raise feature_specs.FeatureSpecError(
                f"feature spec {F.SPEC.name!r} has no feature with role 'ad_hist_ctr' (the ad's historical CTR): "
                "the creative ranker reads it online and in evaluation; add it (a float32 ad_history scalar)")
        if not F.CR_USER_FEATURES:
            raise feature_specs.FeatureSpecError(
                f"feature spec {F.SPEC.name!r} marks no user feature \"cr_user\": the creative ranker needs at "
                "least one (a few cheap user codes; it scores every creative of every ad)")
    example_gen = tfx.components.ImportExampleGen(
        input_base=cfg.data_dir,
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=split, pattern=f"{split}/*")
            for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT)
        ]))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=True)
    curate_schema = CurateSchema(schema=schema_gen.outputs["schema"])
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=curate_schema.outputs["curated_schema"])
    data_gate = DataGate(anomalies=example_validator.outputs["anomalies"])

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=curate_schema.outputs["curated_schema"],
        preprocessing_fn=config_lib.PREPROCESSING_FN,
        custom_config=spec_config)
    transform.add_upstream_node(data_gate)

    model_config = dict(cfg.model_config)
    if model_config.get("cacs_teacher_model"):
        model_config["cacs_teacher_model"] = check_teacher_model(model_config["cacs_teacher_model"])
    trainer = vertex_training.trainer_component(cfg)(
        run_fn=config_lib.RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=curate_schema.outputs["curated_schema"],
        train_args=tfx.proto.TrainArgs(num_steps=cfg.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=cfg.eval_steps),
        custom_config={MODEL_CONFIG_KEY: model_config, **spec_config,
                       **vertex_training.trainer_custom_config(cfg)})

    # Without a baseline comparison there is no Resolver: the Evaluator sees the candidate alone.
    model_resolver = latest_blessed_model_resolver() if cfg.compare_with_baseline else None

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"] if model_resolver else None,
        example_splits=[F.EVAL_SPLIT],
        eval_config=eval_config_lib.build_eval_config(cfg))

    report = EvaluationReport(
        evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"])

    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=cfg.serving_root)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(PairPusherExecutor))

    components = [example_gen, statistics_gen, schema_gen, curate_schema, example_validator, data_gate,
                  transform, trainer] + ([model_resolver] if model_resolver else []) + [evaluator, report, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=cfg.pipeline_root,
        components=components,
        enable_cache=cfg.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else cfg.beam_pipeline_args(),
    )


def latest_blessed_model_resolver():
    """The Resolver of the Evaluator's baseline: the latest blessed model of this pipeline."""
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")


def local_metadata_config(cfg: config_lib.PipelineConfig):
    os.makedirs(os.path.dirname(cfg.metadata_path), exist_ok=True)
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(cfg.metadata_path)
