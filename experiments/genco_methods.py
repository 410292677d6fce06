"""The methods of the GenCO experiments, each trained on a training log and run on a test log.

Every method returns, per test impression, a combination ``chosen [n, m]`` (index into each pool, -1 for the
components the ad lacks):

* ``uniform`` -- a uniformly random element per component (the paper's lower bound);
* ``dco`` -- :class:`trainer.genco.dco.SuccessiveElimination` on the training log's combination CTRs;
* ``mlp`` -- :class:`trainer.genco.mlp_baseline.CombinationMLP` (exhaustive or sampled, see there);
* ``f_ele``, ``f_comb``, ``genco`` -- the trained GenCO network's three selection rules
  (:data:`trainer.genco.model.POLICIES`);
* the ablations of :data:`trainer.genco.config.ABLATIONS` (``no_mil`` ...) -- each its own trained network,
  selecting as ``genco``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict, Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras

import features as F
from transform import genco as G
from trainer.genco import data as D
from trainer.genco.config import GenCOConfig
from trainer.genco.dco import SuccessiveElimination
from trainer.genco.mlp_baseline import CombinationMLP
from trainer.genco.model import POLICIES, GenCOModel, make_optimizer

Log = Mapping[str, np.ndarray]


@dataclasses.dataclass
class Trained:
    """A trained network and what its training cost."""

    model: keras.Model
    seconds: float
    examples_per_second: float
    final_metrics: Dict[str, float]


def with_initial_ctr(config: GenCOConfig, log: Log) -> GenCOConfig:
    """``config`` with its output bias starting at the log's click rate, unless it sets one."""
    return config if config.initial_ctr is not None else config.replace(
        initial_ctr=float(np.clip(np.mean(log[G.LABEL_KEY]), 1e-4, 1 - 1e-4)))


def train(model: keras.Model, config: GenCOConfig, log: Log, epochs: int, seed: int) -> Trained:
    """Fits ``model`` on ``log`` (``epochs`` shuffled passes of ``config.batch_size``)."""
    model.compile(optimizer=make_optimizer(config))
    start = time.perf_counter()
    history = model.fit(D.batches(log, config.batch_size, seed=seed, epochs=epochs), verbose=0)
    seconds = time.perf_counter() - start
    rows = epochs * len(log[G.LABEL_KEY])
    return Trained(model, seconds, rows / seconds, {k: float(v[-1]) for k, v in history.history.items()})


def _in_batches(fn, log: Log, batch_size: int) -> Dict[str, np.ndarray]:
    parts: Dict[str, list] = {}
    n = len(log[G.LABEL_KEY])
    for lo in range(0, n, batch_size):
        out = fn({k: tf.constant(v) for k, v in D.model_inputs(log, slice(lo, lo + batch_size)).items()})
        for k, v in out.items():
            parts.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def train_genco(config: GenCOConfig, train_log: Log, epochs: int, seed: int) -> Trained:
    config = with_initial_ctr(config, train_log)
    keras.utils.set_random_seed(seed)
    model = GenCOModel(config, G.hash_sizes_of(train_log))
    return train(model, config, train_log, epochs, seed)


def genco_selections(model: GenCOModel, test_log: Log, policies=POLICIES) -> Dict[str, np.ndarray]:
    """``{policy: chosen [n, m]}`` of the network's selection rules on ``test_log``."""
    out = {}
    for policy in policies:
        fn = tf.function(lambda x, p=policy: model.select(x, policy=p), autograph=False)
        out[policy] = _in_batches(fn, test_log, model.config.eval_batch_size)["chosen"]
    return out


def logged_weights(model: GenCOModel, test_log: Log) -> np.ndarray:
    """[n, m] the multi-instance weights :math:`w_{i,j}` of each logged combination (eq. 17)."""
    fn = tf.function(lambda x: {"w": model(x, training=False)["weights"]}, autograph=False)
    return _in_batches(fn, test_log, model.config.eval_batch_size)["w"]


def train_mlp(config: GenCOConfig, train_log: Log, epochs: int, seed: int,
              max_combinations: int = 256) -> Trained:
    config = with_initial_ctr(config, train_log)
    keras.utils.set_random_seed(seed)
    model = CombinationMLP(config, G.hash_sizes_of(train_log), max_combinations=max_combinations)
    return train(model, config, train_log, epochs, seed)


def mlp_selection(model: CombinationMLP, test_log: Log):
    """(chosen [n, m], share of impressions scored exhaustively)."""
    fn = tf.function(lambda x: model.select(x), autograph=False)
    out = _in_batches(fn, test_log, 1024)
    return out["chosen"], float(out["exhaustive"].mean())


def _pool_ids(log: Log) -> np.ndarray:
    return np.asarray(log[G.POOL_IDS]).reshape(-1, G.M, G.N).astype(np.int64)


def logged_element_ids(log: Log) -> np.ndarray:
    """[n, m] the logged element's id per component (``features.GENCO_PAD`` where absent)."""
    ids = _pool_ids(log)
    logged = np.asarray(log[G.LOGGED])
    picked = np.take_along_axis(ids, np.maximum(logged, 0)[..., None], axis=2)[..., 0]
    return np.where(logged >= 0, picked, F.GENCO_PAD)


def dco_selection(train_log: Log, test_log: Log, seed: int):
    """(chosen [n, m], share of impressions served an observed combination)."""
    dco = SuccessiveElimination(seed=seed).fit(train_log[F.AD_ID], logged_element_ids(train_log),
                                               train_log[G.LABEL_KEY])
    chosen, from_arm = dco.select(test_log[F.AD_ID], _pool_ids(test_log))
    return chosen, float(from_arm.mean())


def uniform_selection(log: Log, seed: int) -> np.ndarray:
    """[n, m] a uniformly random element of every pool."""
    real = _pool_ids(log) >= 0
    draw = (np.random.default_rng([seed, 11]).random(real.shape) + 1.0) * real
    return np.where(real.any(axis=2), draw.argmax(axis=2), -1)
