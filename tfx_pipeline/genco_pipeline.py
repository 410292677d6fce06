"""``create_genco_pipeline``: the same TFX components, from a GenCO log to a pushed GenCO model.

::

    ImportExampleGen (train/, eval/) ─┬─▶ StatisticsGen ─▶ SchemaGen ─▶ ExampleValidator ─▶ DataGate
                                      ├─▶ Transform (transform.genco.preprocessing_fn: pools padded to 15,
                                      │     hash sizes) ─▶ Trainer (trainer.genco.run.run_fn): eval model + genco/
                                      │  Resolver (latest blessed model) ─┐
                                      └──────────────────────────────▶ Evaluator (TFMA: calibrated sCTR per
                                                                       component, true CTR, AUC of the reward model)
                                                                         └─▶ Pusher ─▶ <serving_root>/genco/<version>

The data is a GenCO log (``features.GENCO_FEATURES``; :mod:`simulator.combinations` writes one, with
production-logged training days and uniform-logged test days: the Evaluator's split). Blessing
(:func:`build_genco_eval_config`): the mean over components of the calibrated sCTR (Gu et al., 2025,
Algorithm 1) above a floor and not below the latest blessed model's by more than a tolerance, and the reward
model's AUC on the logged combinations above a floor; each on the overall slice.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

import features as F
from creative_metrics import tfma_metrics as metrics_lib
from tfx_pipeline import config as config_lib
from tfx_pipeline.data_gate import DataGate
from tfx_pipeline.eval_config import BASELINE_MODEL, CANDIDATE_MODEL
from tfx_pipeline.genco_pusher import GenCOPusherExecutor
from tfx_pipeline.pipeline import latest_blessed_model_resolver
from trainer.config import MODEL_CONFIG_KEY

PREPROCESSING_FN = "transform.genco.preprocessing_fn"
RUN_FN = "trainer.genco.run.run_fn"


@dataclasses.dataclass
class GenCOPipelineConfig(config_lib.PipelineConfig):
    """:class:`tfx_pipeline.config.PipelineConfig` for the GenCO pipeline.

    ``simulator`` overrides :class:`simulator.combinations.CombinationConfig`, ``model_config``
    :class:`trainer.genco.config.GenCOConfig` (plus ``"ablation"``); ``auc_floor`` gates the reward model's
    AUC. The NSCTR thresholds of the JAC pipeline are unused; these gate on calibrated sCTR:

    Attributes:
      sctr_floor: the mean calibrated sCTR over components a model must exceed.
      sctr_change_tolerance: it may be at most this much (absolute) below the latest blessed model's.
    """

    output_dir: str = os.path.join(config_lib.REPO_ROOT, "outputs", "genco")
    data_dir: str = os.path.join(config_lib.REPO_ROOT, "data", "genco")
    pipeline_name: str = "adcreative-genco"
    auc_floor: float = 0.5
    sctr_floor: float = 0.0
    sctr_change_tolerance: float = 0.005


def build_genco_eval_config(cfg: GenCOPipelineConfig) -> tfma.EvalConfig:
    sctr_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.sctr_floor}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -cfg.sctr_change_tolerance}))
    auc_threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.auc_floor}))
    reward_model = tfma.MetricsSpec(output_names=[F.GENCO_LOGGED_PCTR], metrics=[
        tfma.MetricConfig(class_name="ExampleCount"),
        tfma.MetricConfig(class_name="AUC", per_slice_thresholds=metrics_lib.overall_slice_only(auc_threshold)),
        tfma.MetricConfig(class_name="Calibration")])
    combinations = tfma.MetricsSpec(metrics=[metrics_lib.metric_config("GenCOCalibratedSCTR", sctr_threshold),
                                             metrics_lib.metric_config("GenCOTrueCTR")])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name=CANDIDATE_MODEL, signature_name=F.SERVING_SIGNATURE, label_key=F.LABEL),
                     tfma.ModelSpec(name=BASELINE_MODEL, signature_name=F.SERVING_SIGNATURE, label_key=F.LABEL,
                                    is_baseline=True)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[F.USER_GENDER])],
        metrics_specs=[reward_model, combinations])


def create_genco_pipeline(cfg: GenCOPipelineConfig, metadata_connection_config=None,
                          beam_pipeline_args: Optional[List[str]] = None) -> tfx.dsl.Pipeline:
    """Builds the GenCO pipeline for ``cfg`` (see the module docstring)."""
    example_gen = tfx.components.ImportExampleGen(
        input_base=cfg.data_dir,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=split, pattern=f"{split}/*")
                                                   for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT)]))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                        schema=schema_gen.outputs["schema"])
    data_gate = DataGate(anomalies=example_validator.outputs["anomalies"])
    transform = tfx.components.Transform(examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
                                         preprocessing_fn=PREPROCESSING_FN)
    transform.add_upstream_node(data_gate)
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN, examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"], schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=cfg.train_steps), eval_args=tfx.proto.EvalArgs(num_steps=cfg.eval_steps),
        custom_config={MODEL_CONFIG_KEY: dict(cfg.model_config)})
    model_resolver = latest_blessed_model_resolver()
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"], example_splits=[F.EVAL_SPLIT],
        eval_config=build_genco_eval_config(cfg))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=cfg.serving_root)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(GenCOPusherExecutor))
    components = [example_gen, statistics_gen, schema_gen, example_validator, data_gate, transform, trainer,
                  model_resolver, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline_name, pipeline_root=cfg.pipeline_root, components=components, enable_cache=False,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else cfg.beam_pipeline_args())
