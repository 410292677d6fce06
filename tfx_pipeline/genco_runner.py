"""Runs the GenCO pipeline on this machine (TFX LocalDagRunner, SQLite ML Metadata under the pipeline root).

    python -m tfx_pipeline.genco_runner --output-dir outputs/genco --impressions 200000 --train-steps 400
    python -m tfx_pipeline.genco_runner --model-config '{"ablation": "no_rl"}'

Simulates a GenCO log into ``--data-dir`` first if it holds none (``simulator.combinations``), then prints the
run's outcome: each component's state, the overall metrics of the model under evaluation, whether it was
blessed and what was pushed (``<serving_root>/genco/<version>``). Exits non-zero if the run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

import features as F
from tfx_pipeline.genco_pipeline import GenCOPipelineConfig, create_genco_pipeline


def ensure_data(cfg: GenCOPipelineConfig) -> None:
    """Simulates a GenCO log into ``cfg.data_dir`` unless both splits are there."""
    if all(os.path.isdir(os.path.join(cfg.data_dir, s)) for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT)):
        return
    from simulator.combinations import CombinationConfig, simulate_combinations

    simulate_combinations(CombinationConfig(**cfg.simulator), cfg.data_dir, progress=True)


def run(cfg: GenCOPipelineConfig):
    """Runs the pipeline once; returns the run's :class:`tfx_pipeline.run_summary.RunSummary`."""
    from tfx import v1 as tfx

    from tfx_pipeline.pipeline import local_metadata_config
    from tfx_pipeline.run_summary import read_latest_run

    ensure_data(cfg)
    tfx.orchestration.LocalDagRunner().run(create_genco_pipeline(cfg, local_metadata_config(cfg)))
    return read_latest_run(cfg.metadata_path)


def main(argv: Optional[List[str]] = None) -> int:
    d = GenCOPipelineConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default=d.output_dir)
    p.add_argument("--data-dir", default=d.data_dir)
    p.add_argument("--impressions", type=int, help="simulated impressions when the data must be created")
    p.add_argument("--seed", type=int, help="simulator seed when the data must be created")
    p.add_argument("--train-steps", type=int, default=d.train_steps)
    p.add_argument("--eval-steps", type=int, default=d.eval_steps)
    p.add_argument("--model-config", default="{}", help="JSON overrides of trainer.genco.config.GenCOConfig")
    p.add_argument("--sctr-floor", type=float, default=d.sctr_floor)
    p.add_argument("--sctr-change-tolerance", type=float, default=d.sctr_change_tolerance)
    p.add_argument("--auc-floor", type=float, default=d.auc_floor)
    a = p.parse_args(argv)
    try:
        model_config = json.loads(a.model_config)
    except json.JSONDecodeError as e:
        p.error(f"--model-config is not valid JSON: {e}")
    simulator = {k: v for k, v in (("num_impressions", a.impressions), ("seed", a.seed)) if v is not None}
    try:
        cfg = GenCOPipelineConfig(output_dir=os.path.abspath(a.output_dir), data_dir=os.path.abspath(a.data_dir),
                                  simulator=simulator, train_steps=a.train_steps, eval_steps=a.eval_steps,
                                  model_config=model_config, sctr_floor=a.sctr_floor,
                                  sctr_change_tolerance=a.sctr_change_tolerance, auc_floor=a.auc_floor)
    except ValueError as e:
        p.error(str(e))
    from tfx_pipeline.local_runner import overall_metrics
    from tfx_pipeline.run_summary import format_summary

    try:
        summary = run(cfg)
    except Exception as e:  # the summary of what ran is still the most useful thing to show
        print(f"the GenCO pipeline run failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    evaluation = summary.output_uri("Evaluator", "evaluation")
    metrics = overall_metrics(evaluation) if evaluation and os.path.isdir(evaluation) else {}
    print(format_summary(summary, metrics, cfg.serving_root, None, components=True, all_metrics=True))
    return 0 if summary.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
