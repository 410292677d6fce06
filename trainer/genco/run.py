"""TFX Trainer entry point of the GenCO pipeline: ``run_fn(fn_args)`` trains GenCO on the Transform output
(:func:`transform.genco.preprocessing_fn`) and exports the eval and online models (:mod:`trainer.genco.export`).

``custom_config[trainer.config.MODEL_CONFIG_KEY]`` holds :class:`~trainer.genco.config.GenCOConfig` overrides
(e.g. ``{"ablation": "no_rl", "batch_size": 256}``: ``ablation`` picks one of
:data:`trainer.genco.config.ABLATIONS`); the hash embedding sizes come from the Transform's vocabularies.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from transform import genco as G
from trainer.config import MODEL_CONFIG_KEY
from trainer.genco.config import GenCOConfig
from trainer.genco.data import transformed_dataset
from trainer.genco.export import export_genco
from trainer.genco.model import GenCOModel, make_optimizer

_LOG = logging.getLogger(__name__)
SUMMARY_FILE = "genco_config.json"
ABLATION_KEY = "ablation"


def config_of(overrides: Optional[Dict[str, Any]]) -> GenCOConfig:
    """The GenCOConfig of a Trainer's model_config (``ablation``: a name of the ablation table)."""
    overrides = dict(overrides or {})
    return GenCOConfig.ablation(overrides.pop(ABLATION_KEY, "genco"), overrides)


def _sample_ctr(files, tft_output, accessor, rows: int = 50_000) -> float:
    """The click rate of (up to) the first ``rows`` training rows, kept inside (0, 1)."""
    clicks, n = 0.0, 0
    for _, label in transformed_dataset(files, tft_output, 8192, accessor, num_epochs=1, shuffle=False):
        clicks, n = clicks + float(tf.reduce_sum(tf.cast(label, tf.float32))), n + int(tf.size(label))
        if n >= rows:
            break
    return (clicks + 1.0) / (n + 2.0)


def run_fn(fn_args) -> Dict[str, Any]:
    """Trains and exports; returns a summary (config, hash sizes, steps, final metrics, export dirs)."""
    config = config_of((getattr(fn_args, "custom_config", None) or {}).get(MODEL_CONFIG_KEY))
    tft_output = tft.TFTransformOutput(getattr(fn_args, "transform_output", None) or fn_args.transform_graph_path)
    sizes = G.hash_sizes(tft_output)
    accessor = getattr(fn_args, "data_accessor", None)
    if config.initial_ctr is None:
        config = config.replace(initial_ctr=_sample_ctr(fn_args.train_files, tft_output, accessor))
    eval_steps = getattr(fn_args, "eval_steps", None) or None
    _LOG.info("training GenCO with %s, hash sizes %s", config.to_json(), sizes)
    keras.utils.set_random_seed(config.seed)
    model = GenCOModel(config, sizes)
    model.compile(optimizer=make_optimizer(config))
    train_steps = fn_args.train_steps or None
    train = transformed_dataset(fn_args.train_files, tft_output, config.batch_size, accessor,
                                num_epochs=None if train_steps else config.epochs, seed=config.seed)
    evaluation = transformed_dataset(fn_args.eval_files, tft_output, config.eval_batch_size, accessor,
                                     num_epochs=None if eval_steps else 1, shuffle=False)
    history = model.fit(train, epochs=1 if train_steps else config.epochs, steps_per_epoch=train_steps,
                        validation_data=evaluation, validation_steps=eval_steps, verbose=2)
    metrics = {k: float(v[-1]) for k, v in history.history.items()}
    exported = export_genco(model, fn_args.serving_model_dir)
    summary = {"config": config.to_dict(), "hash_sizes": sizes, "steps": {"train": train_steps, "eval": eval_steps},
               "metrics": metrics, "exported": exported}
    if getattr(fn_args, "model_run_dir", None):
        tf.io.gfile.makedirs(fn_args.model_run_dir)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, SUMMARY_FILE), "w") as f:
            f.write(json.dumps(summary, indent=2, sort_keys=True))
    return summary
