"""TFX Trainer entry point: ``run_fn(fn_args)`` trains the variant of ``custom_config[MODEL_CONFIG_KEY]``
and exports the eval model and the online models (see ``trainer.export``)."""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

import feature_specs
import features as F
from transform import names as N
from trainer import distribute
from trainer.cacs_teacher import SavedModelTeacher, resolve_teacher_dir
from trainer.config import MODEL_CONFIG_KEY, JACConfig, eval_steps_of
from trainer.data import make_dataset, read_column_sample
from trainer.info_gain import choose_r
from trainer.jac_model import make_optimizer
from trainer.throughput import TrainingClock
from trainer.variants import build_model, export_models, fit_posteriors

_LOG = logging.getLogger(__name__)
CONFIG_FILE = "model_config.json"


def resolve_config(config: JACConfig, train_files, tft_output, data_accessor=None) -> Tuple[JACConfig, Dict]:
    """``config`` with its data-dependent fields set from a sample of the training data.

    * ``quantizer_r="auto"``: chosen by information gain (:func:`trainer.info_gain.choose_r`) between the
      codes of the historical ad CTR and the click;
    * ``initial_ctr=None``: the sample's mean click.

    Returns the resolved config and the information (bits) per candidate r (empty when r was given).
    """
    auto_r = config.uses_quantizer and isinstance(config.quantizer_r, str)
    if not auto_r and config.initial_ctr is not None:
        return config, {}
    pctr, labels = read_column_sample(train_files, tft_output, N.AD_HIST_CTR_CLIPPED, config.r_sample_size,
                                      data_accessor)
    scores = {}
    if auto_r:
        r, scores = choose_r(pctr, labels, config.quantizer_buckets, config.r_grid)
        config = config.replace(quantizer_r=r)
    if config.initial_ctr is None:
        # Kept strictly inside (0, 1) for samples without clicks (or without non-clicks).
        ctr = (float(labels.sum()) + 1.0) / (len(labels) + 2.0)
        config = config.replace(initial_ctr=ctr)
    return config, scores


def _transform_output_dir(fn_args) -> str:
    return getattr(fn_args, "transform_output", None) or fn_args.transform_graph_path


def run_fn(fn_args) -> Optional[Dict[str, Any]]:
    """Trains and exports. Returns a summary (config, chosen r, steps, final metrics, throughput, export dirs).

    Reads ``fn_args.train_files`` / ``eval_files`` (transformed examples), ``transform_output``,
    ``train_steps`` (``None`` or 0: ``config.epochs`` passes), ``eval_steps``, ``serving_model_dir``,
    ``model_run_dir`` (TensorBoard logs) and ``custom_config[MODEL_CONFIG_KEY]`` (overrides of
    :class:`~trainer.config.JACConfig`). Evaluation steps: the model config's ``eval_steps`` if set, else
    ``fn_args.eval_steps`` (the Trainer's ``EvalArgs``), else one full pass.

    ``TF_CONFIG`` (set per replica by the Trainer on Kubeflow / Vertex AI, or by ``trainer.local_cluster``)
    selects the distribution (``trainer.distribute``); without it, one process as before. The workers and ps
    tasks of parameter-server training only serve the chief and never return; only the chief exports.
    """
    cluster = distribute.Cluster.from_environment()
    if cluster.is_server:
        return distribute.serve(cluster)  # blocks until the process is stopped
    custom = getattr(fn_args, "custom_config", None) or {}
    feature_specs.check_same_spec(custom, F.SPEC, "the Trainer's run_fn")
    config = JACConfig.from_dict(custom.get(MODEL_CONFIG_KEY, {}))
    strategy = distribute.strategy_for(cluster, config.embedding_min_shard_bytes)  # before any other TF op
    tft_output = tft.TFTransformOutput(_transform_output_dir(fn_args))
    accessor = getattr(fn_args, "data_accessor", None)
    if config.cacs_teacher_model:  # before any work: a teacher of other vocabularies fails the run here
        SavedModelTeacher(resolve_teacher_dir(config.cacs_teacher_model)).check(N.cardinalities(tft_output),
                                                                                tft_output)
    config, r_scores = resolve_config(config, fn_args.train_files, tft_output, accessor)
    _LOG.info("training variant %s with %s on %s", config.variant, config.to_json(), cluster.sizes or "one process")

    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config, N.cardinalities(tft_output))
        model.compile(optimizer=make_optimizer(config), steps_per_execution=config.steps_per_execution)
    posteriors = fit_posteriors(model, fn_args.train_files, tft_output, accessor)  # bandit CRs only
    if posteriors:  # fit() restores the trainable state compile() saw: compile again with the frozen parts
        with strategy.scope():
            model.compile(optimizer=make_optimizer(config), steps_per_execution=config.steps_per_execution)

    train_steps: Optional[int] = fn_args.train_steps or None
    eval_steps = eval_steps_of(config, getattr(fn_args, "eval_steps", None))
    read = functools.partial(_dataset, strategy, cluster, tft_output, model.feature_names, accessor)
    clock = TrainingClock()
    callbacks = [clock]
    if getattr(fn_args, "model_run_dir", None):
        callbacks.append(keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq=100))
    # Block shuffle only where it saves work: models that read the behaviour sequence (trainer.unique_sequences).
    block_rows = config.shuffle_block_rows if N.HAS_SEQUENCE and N.SEQ_AD_IDS in model.feature_names else 1
    train = read(fn_args.train_files, config.batch_size, train_steps, shuffle=True, seed=config.seed,
                 shuffle_block_rows=block_rows)
    history = model.fit(train,
                        epochs=1 if train_steps else config.epochs, steps_per_epoch=train_steps,
                        validation_data=read(fn_args.eval_files, config.eval_batch_size, eval_steps, shuffle=False),
                        validation_steps=eval_steps, callbacks=callbacks, verbose=2)
    metrics = {k: float(v[-1]) for k, v in history.history.items()}
    _LOG.info("final metrics: %s", metrics)

    sample = lambda: next(iter(make_dataset(fn_args.eval_files, tft_output, model.feature_names, 2,  # noqa: E731
                                            accessor, shuffle=False)))[0]
    to_export = distribute.exportable(model, cluster, _checkpoint_dir(fn_args), sample)
    exported = export_models(to_export, tft_output, fn_args.serving_model_dir) if cluster.is_chief else {}
    distribute.wait_for_chief(cluster, strategy)
    summary = {"config": config.to_dict(), "r_information_bits": {str(k): v for k, v in r_scores.items()},
               "steps": {"train": train_steps, "eval": eval_steps}, "metrics": metrics, "exported": exported,
               "posteriors": posteriors, "cluster": cluster.sizes, "sharded_tables": distribute.shard_report(model),
               "throughput": clock.summary(config.batch_size * strategy.num_replicas_in_sync,
                                           int(model.optimizer.iterations.numpy()),
                                           synchronous=cluster.mode != distribute.PARAMETER_SERVER)}
    if cluster.is_chief and getattr(fn_args, "model_run_dir", None):
        tf.io.gfile.makedirs(fn_args.model_run_dir)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, CONFIG_FILE), "w") as f:
            f.write(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def _dataset(strategy, cluster, tft_output, feature_names, accessor, files, batch_size: int, steps: Optional[int],
             shuffle: bool, seed: Optional[int] = None, shuffle_block_rows: int = 1):
    """``fit``'s input of ``files`` under ``strategy``; repeated when ``steps`` bound the pass, once otherwise.

    A cluster reads with ``DatasetCreator`` (one dataset per worker, repeated forever), so it needs steps.
    """
    if cluster.mode != distribute.SINGLE and not steps:
        raise ValueError(f"distributed training ({cluster.mode}) needs step counts: fn_args.train_steps "
                         "(TrainArgs.num_steps) and eval steps (EvalArgs.num_steps or model_config eval_steps)")
    return distribute.dataset_for(strategy, lambda ctx: make_dataset(
        files, tft_output, feature_names, batch_size, accessor, num_epochs=None if steps else 1, shuffle=shuffle,
        seed=seed, input_context=ctx, shuffle_block_rows=shuffle_block_rows))


def _checkpoint_dir(fn_args) -> Optional[str]:
    """Where a cluster checkpoints the trained model before export: the ModelRun dir, which every task reaches."""
    run_dir = getattr(fn_args, "model_run_dir", None)
    return os.path.join(run_dir, "checkpoint") if run_dir else None
