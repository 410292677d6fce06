"""Small GenCO fixtures for tests and benchmarks: a simulated log, a trained tiny network, its SavedModels.

Each builder is memoised for the process, so several test modules share one simulation, one training run and
one export. Files live in one temporary directory removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from typing import Dict

import features as F

# The paper's architecture with a small batch and Adam, so fifty steps learn something.
TINY_TRAINING = dict(batch_size=256, optimizer="adam", learning_rate=1e-2, eval_batch_size=1024)


@functools.lru_cache(maxsize=None)
def workdir() -> str:
    path = tempfile.mkdtemp(prefix="adcr-genco-test-")
    atexit.register(shutil.rmtree, path, True)
    return path


def log_dir(impressions: int = 8000, seed: int = 2) -> str:
    """A simulated GenCO log (``simulator.combinations``): 4 production days, 1 uniform test day (cached)."""
    return _log_dir(int(impressions), int(seed))


@functools.lru_cache(maxsize=None)
def _log_dir(impressions: int, seed: int) -> str:
    from simulator.combinations import CombinationConfig, simulate_combinations

    out = os.path.join(workdir(), f"log-{impressions}-{seed}")
    simulate_combinations(CombinationConfig(num_impressions=impressions, num_days=5, test_days=1, seed=seed,
                                            calibration_impressions=2000, chunk_size=4096), out, progress=False)
    return out


def logs(impressions: int = 8000, seed: int = 2):
    """``(train, test)`` of :func:`log_dir`, read by :func:`trainer.genco.data.read_log` (test with truth)."""
    return _logs(int(impressions), int(seed))


@functools.lru_cache(maxsize=None)
def _logs(impressions: int, seed: int):
    from trainer.genco import data as D

    root = log_dir(impressions, seed)
    return (D.read_log(os.path.join(root, F.TRAIN_SPLIT, "*")),
            D.read_log(os.path.join(root, F.EVAL_SPLIT, "*"), truth=True))


def trained_model(ablation: str = "genco", epochs: int = 2):
    """A GenCO network of ``ablation`` trained on :func:`logs` (``epochs=0``: built, not trained; cached)."""
    return _trained_model(ablation, int(epochs))


@functools.lru_cache(maxsize=None)
def _trained_model(ablation: str, epochs: int):
    import tf_keras as keras

    from transform import genco as G
    from trainer.genco import data as D
    from trainer.genco.config import GenCOConfig
    from trainer.genco.model import GenCOModel, make_optimizer

    train, _ = logs()
    config = GenCOConfig.ablation(ablation, dict(TINY_TRAINING, initial_ctr=float(train[G.LABEL_KEY].mean())))
    keras.utils.set_random_seed(0)
    model = GenCOModel(config, G.hash_sizes_of(train))
    # Eager steps: for a few dozen of them, cheaper than tracing the training step.
    model.compile(optimizer=make_optimizer(config), run_eagerly=True)
    if epochs:
        model.fit(D.batches(train, config.batch_size, epochs=epochs), verbose=0)
    else:
        model(D.model_inputs(train, slice(0, 4)))
    return model


@functools.lru_cache(maxsize=None)
def exported() -> Dict[str, str]:
    """:func:`trainer.genco.export.export_genco` of the trained tiny model: ``{"eval": dir, "genco": dir}``."""
    from trainer.genco.export import export_genco

    return export_genco(trained_model(), os.path.join(workdir(), "export"))


def serving_root(root: str, version: int = 1) -> str:
    """Copies the exported online model to ``<root>/genco/<version>/`` (a TF Serving model base)."""
    target = os.path.join(root, F.GENCO_MODEL_NAME, str(version))
    shutil.copytree(exported()[F.GENCO_MODEL_NAME], target)
    return root
