"""The multi-component world of GenCO (Gu et al., 2025): ads whose creative is a combination of elements.

An option beside the default single-creative world of :mod:`simulator` (which it leaves unchanged)::

    from simulator.combinations import CombinationConfig, simulate_combinations
    summary = simulate_combinations(CombinationConfig(num_impressions=200_000, seed=0), "data/genco")

or ``python -m simulator.combinations --out data/genco``. The log's columns are ``features.GENCO_FEATURES``.

Modules, each importing only those above it:

* :mod:`~simulator.combinations.config` -- ``CombinationConfig``;
* :mod:`~simulator.combinations.truth` -- the true CTR of any combination from the logged truth columns, and
  the exact best combination;
* :mod:`~simulator.combinations.world` -- entities, pools, churn and the click model (``CombinationWorld``);
* :mod:`~simulator.combinations.traffic` -- impressions, the production and uniform logging policies, the bias;
* :mod:`~simulator.combinations.build` -- drawing a calibrated world from a config;
* :mod:`~simulator.combinations.generate` -- writing the log; :mod:`~simulator.combinations.cli` -- the command.
"""

from simulator.combinations.build import build_world
from simulator.combinations.config import CombinationConfig
from simulator.combinations.generate import format_summary, simulate_combinations
from simulator.combinations.world import CombinationWorld

__all__ = ["CombinationConfig", "CombinationWorld", "build_world", "format_summary", "simulate_combinations"]
