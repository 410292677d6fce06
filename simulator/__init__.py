"""Ground-truth click simulator for joint ad & creative ranking.

    from simulator import SimulatorConfig, simulate
    summary = simulate(SimulatorConfig(num_impressions=200_000, seed=0), "data/default")

writes the ``features.TRAIN_SPLIT`` and ``features.EVAL_SPLIT`` folders (``train/``, ``eval/``) of
TFRecord ``tf.train.Example`` files with every column of ``features.FEATURES`` (truth columns included),
``summary.json`` and ``world.npz``.

Modules, each importing only those above it:

* :mod:`simulator.config` -- ``SimulatorConfig``, every option;
* :mod:`simulator.arrays` -- NumPy helpers (logistic, categorical draws, ragged rows);
* :mod:`simulator.world` -- the entities, the click model and the day-by-day state (``World``);
* :mod:`simulator.traffic` -- requests, the logging ad ranker and creative policy, the bias calibration;
* :mod:`simulator.build` -- drawing a calibrated ``World`` from a config;
* :mod:`simulator.live` -- live requests of a day with their truth, and the log of what a ranker showed
  (the demo's requests and the online experiments);
* :mod:`simulator.tfrecord`, :mod:`simulator.generate` -- encoding and writing the log;
  :mod:`simulator.truth` -- reading it back and true policy values; :mod:`simulator.cli` -- the command.
"""

from simulator.build import build_world
from simulator.config import EPSILON_GREEDY, LOGGING_POLICIES, UNIFORM, SimulatorConfig
from simulator.generate import OutputExistsError, format_summary, simulate
from simulator.world import World, load_world

__all__ = [
    "EPSILON_GREEDY", "LOGGING_POLICIES", "UNIFORM", "OutputExistsError", "SimulatorConfig", "World",
    "build_world", "format_summary", "load_world", "simulate",
]
