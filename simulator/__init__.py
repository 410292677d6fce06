"""Ground-truth click simulator for joint ad & creative ranking.

    from simulator import SimulatorConfig, simulate
    summary = simulate(SimulatorConfig(num_impressions=200_000, seed=0), "data/default")

writes ``train/`` and ``eval/`` TFRecord splits of ``tf.train.Example`` with every column of
``features.FEATURES`` (truth columns included), ``summary.json`` and ``world.npz``. The click model is
documented in :mod:`simulator.world`; the traffic and logging policies in :mod:`simulator.traffic`.
"""

from simulator.config import EPSILON_GREEDY, LOGGING_POLICIES, UNIFORM, SimulatorConfig
from simulator.generate import EVAL, TRAIN, OutputExistsError, format_summary, simulate
from simulator.world import World, build_world, load_world, sample_requests

__all__ = [
    "EPSILON_GREEDY", "EVAL", "LOGGING_POLICIES", "TRAIN", "UNIFORM", "OutputExistsError", "SimulatorConfig",
    "World", "build_world", "format_summary", "load_world", "sample_requests", "simulate",
]
