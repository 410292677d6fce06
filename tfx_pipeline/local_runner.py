"""Runs the pipeline on this machine with TFX's LocalDagRunner (SQLite ML Metadata under the pipeline root).

    python -m tfx_pipeline.local_runner                      # default data (simulated first if absent)
    python -m tfx_pipeline.local_runner --impressions 50000 --train-steps 100 --output-dir outputs/small
    python -m tfx_pipeline.local_runner --beam-mode multi_processing --beam-workers 2
    python -m tfx_pipeline.local_runner --feature-spec my_spec.json --data-dir DATA   # your own logs (BUILD.md)
    python -m tfx_pipeline.local_runner --model-config '{"variant": "cr"}'
    python -m tfx_pipeline.local_runner --variant hbm --output-dir outputs/hbm       # a comparison system
    python -m tfx_pipeline.local_runner --variant hbm --data-dir data/next_day \
        --warm-start-model outputs/hbm/serving_models/cr/<version>                # the bandit's daily update
    python -m tfx_pipeline.local_runner --variant cacs --output-dir outputs/cacs \
        --teacher-model outputs/pipeline_root/Trainer/model/<id>                  # CACS distilled from a JAC run

``--variant`` picks one of ``trainer.variants`` (JAC, its ablations, the systems it is compared with); each is
evaluated with the same metrics and pushed as an AR/CR pair (the ablations ``ar`` / ``cr`` as a single model).

The console shows one line per component (name, state, elapsed seconds), the simulator's progress bar, the
Trainer's epoch lines and a summary: where the artifacts are, the metrics, whether the model was blessed and
what was pushed. Everything else — TensorFlow, absl, Beam and TFX logs, C++ runtime messages — goes to
``<output_dir>/logs/pipeline-<time>.log`` (its path is printed; ``--verbose`` shows it all instead). Exits
non-zero if the run failed (e.g. the data gate found anomalies), after printing the error and the log's path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import feature_specs
import features as F
from tfx_pipeline import baseline_heads
from tfx_pipeline import config as config_lib
from tfx_pipeline import run_log
from trainer.config import VARIANTS

if TYPE_CHECKING:  # imported in run(): it pulls in TFMA
    from tfx_pipeline import run_summary


def ensure_data(cfg: config_lib.PipelineConfig, console: Optional[run_log.Console] = None) -> None:
    """Simulates the dataset into ``cfg.data_dir`` unless a complete one is already there."""
    from simulator import SimulatorConfig, simulate  # heavy import only when needed

    console = console or run_log.Console(sys.stdout)
    complete = all(os.path.isdir(os.path.join(cfg.data_dir, split)) for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT))
    if not complete and not F.USES_DEFAULT_SPEC:
        raise FileNotFoundError(
            f"{cfg.data_dir} must hold {F.TRAIN_SPLIT}/ and {F.EVAL_SPLIT}/ TFRecords of tf.Examples following "
            f"feature spec {F.SPEC.name!r} ({F.SPEC.source}); the simulator writes only the default spec's columns")
    if complete:
        console.line(f"==> Using simulated data in {cfg.data_dir}" if F.USES_DEFAULT_SPEC
                     else f"==> Using the logs in {cfg.data_dir} (feature spec {F.SPEC.name!r})")
        return
    sim_cfg = SimulatorConfig(**cfg.simulator)
    console.line(f"==> Simulating {sim_cfg.num_impressions:,} impressions into {cfg.data_dir}")
    with console.as_stderr():  # the simulator's tqdm bar writes to sys.stderr
        simulate(sim_cfg, cfg.data_dir, progress=True)


def overall_metrics(evaluation_uri: str, model_name: Optional[str] = None) -> Dict[str, float]:
    """The overall slice's scalar metrics of one model (default: the model under evaluation), flattened as
    ``{"<output>/<metric>": value}``."""
    import tensorflow_model_analysis as tfma

    from creative_metrics.report.loader import flatten_metrics
    from tfx_pipeline.eval_config import CANDIDATE_MODEL

    result = tfma.load_eval_result(evaluation_uri, model_name=model_name or CANDIDATE_MODEL)
    if not result.slicing_metrics:  # no baseline yet: TFMA records a single, unnamed model
        result = tfma.load_eval_result(evaluation_uri)
    return next((flatten_metrics(by_output) for slice_key, by_output in result.slicing_metrics if slice_key == ()),
                {})


def run(cfg: config_lib.PipelineConfig, console: Optional[run_log.Console] = None,
        keras_progress: bool = True) -> run_summary.RunSummary:
    """Runs the pipeline once and returns its summary (raises if a component failed).

    With a ``console``, each component's start and end (and Keras's epoch lines, unless
    ``keras_progress`` is off) are shown on it as the run goes.
    """
    from tfx import v1 as tfx

    from tfx_pipeline import pipeline as pipeline_lib
    from tfx_pipeline import run_summary

    if cfg.compare_with_baseline:
        baseline_heads.check_baseline_heads(cfg.metadata_path, cfg.model_config, cfg.output_dir)
    pipeline = pipeline_lib.create_pipeline(cfg, pipeline_lib.local_metadata_config(cfg))
    progress = (run_log.component_progress(console, len(pipeline.components), keras_progress)
                if console is not None else contextlib.nullcontext())
    with progress:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    return run_summary.read_latest_run(cfg.metadata_path)


def _parse(argv: Optional[List[str]]) -> Tuple[config_lib.PipelineConfig, bool]:
    """The run's config and ``--verbose``."""
    d = config_lib.PipelineConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default=os.environ.get("ADCR_OUTPUT_DIR", d.output_dir))
    p.add_argument("--data-dir", default=os.environ.get("ADCR_DATA_DIR", d.data_dir))
    p.add_argument("--feature-spec", default=os.environ.get(feature_specs.ENV_VAR),
                   help="the feature spec the logs in --data-dir follow: a JSON/YAML spec file or a shipped spec's "
                        f"name ({', '.join(feature_specs.shipped_specs())}); default: ${feature_specs.ENV_VAR}, "
                        f"else {feature_specs.DEFAULT_SPEC!r}. See BUILD.md, 'Your own logs'")
    p.add_argument("--impressions", type=int, help="simulated impressions when the data must be created")
    p.add_argument("--seed", type=int, help="simulator seed when the data must be created")
    p.add_argument("--train-steps", type=int, default=d.train_steps)
    p.add_argument("--eval-steps", type=int, default=d.eval_steps)
    p.add_argument("--model-config", default="{}", help="JSON overrides of trainer.config.JACConfig")
    p.add_argument("--variant", choices=VARIANTS, help="the model variant (trainer.variants; default jac)")
    p.add_argument("--warm-start-model", help="hbm / beta_ts: a previous run's model (its cr/<version> or Trainer "
                                              "output) whose posterior is the prior: the daily update")
    p.add_argument("--teacher-model", help="cacs: the trained, exported model its selector is distilled from (a JAC "
                                           "or ACR run's Trainer output, e.g. PIPELINE_ROOT/Trainer/model/<id>, or "
                                           "its teacher/ directory); never this run's own")
    p.add_argument("--nsctr-floor", type=float, default=d.nsctr_floor)
    p.add_argument("--nsctr-change-tolerance", type=float, default=d.nsctr_change_tolerance)
    p.add_argument("--auc-floor", type=float, default=d.auc_floor)
    p.add_argument("--no-baseline", dest="compare_with_baseline", action="store_false",
                   help="evaluate the model alone and bless it on the absolute floors: no comparison with the "
                        "latest blessed model, so variants with other heads can share one --output-dir")
    p.add_argument("--serving-dir", help="the model base the Pusher writes to (default: OUTPUT_DIR/serving_models)")
    p.add_argument("--enable-cache", action="store_true",
                   help="reuse unchanged components' outputs of earlier runs in this output dir (TFX caching), "
                        "e.g. to train another --variant on the same data")
    p.add_argument("--beam-mode", choices=config_lib.BEAM_MODES, default=d.beam_mode)
    p.add_argument("--beam-workers", type=int, default=d.beam_workers)
    p.add_argument("--verbose", action="store_true",
                   help="show every log line on the console instead of writing them to the log file")
    a = p.parse_args(argv)
    try:
        model_config = json.loads(a.model_config)
    except json.JSONDecodeError as e:
        p.error(f"--model-config is not valid JSON: {e}")
    for flag, key, value in (("--variant", "variant", a.variant),
                             ("--warm-start-model", "warm_start_model",
                              a.warm_start_model and os.path.abspath(a.warm_start_model)),
                             ("--teacher-model", "cacs_teacher_model",
                              a.teacher_model and os.path.abspath(a.teacher_model))):
        if value is not None:
            if model_config.get(key, value) != value:
                p.error(f"{flag} {value!r} contradicts --model-config's {key!r}: {model_config[key]!r}")
            model_config[key] = value
    a.feature_spec = spec_argument(p, a.feature_spec)
    simulator = {}
    if a.impressions is not None:
        simulator["num_impressions"] = a.impressions
    if a.seed is not None:
        simulator["seed"] = a.seed
    try:
        cfg = config_lib.PipelineConfig(
            output_dir=os.path.abspath(a.output_dir), data_dir=os.path.abspath(a.data_dir),
            simulator=simulator, feature_spec=a.feature_spec, train_steps=a.train_steps, eval_steps=a.eval_steps,
            model_config=model_config, nsctr_floor=a.nsctr_floor,
            nsctr_change_tolerance=a.nsctr_change_tolerance, auc_floor=a.auc_floor,
            compare_with_baseline=a.compare_with_baseline, enable_cache=a.enable_cache,
            serving_dir=a.serving_dir and os.path.abspath(a.serving_dir),
            beam_mode=a.beam_mode, beam_workers=a.beam_workers)
    except ValueError as e:
        p.error(str(e))
    return cfg, a.verbose


def log_path(cfg: config_lib.PipelineConfig) -> str:
    """A new log file per run: ``<output_dir>/logs/pipeline-<local time>.log``."""
    return os.path.join(cfg.output_dir, "logs", time.strftime("pipeline-%Y%m%d-%H%M%S.log"))


def spec_argument(parser: argparse.ArgumentParser, value: Optional[str]) -> Optional[str]:
    """``--feature-spec``'s absolute path (a file, or the name of a spec in ``feature_specs/``); an invalid
    spec stops argument parsing with its message, which names the feature."""
    if not value:
        return value
    try:
        path = os.path.abspath(feature_specs.resolve(value))
        feature_specs.load(path)
    except feature_specs.FeatureSpecError as e:
        parser.error(str(e))
    return path


def follow_spec(cfg: config_lib.PipelineConfig, argv: Optional[List[str]],
                module: str = "tfx_pipeline.local_runner") -> None:
    """Makes this process follow ``cfg.feature_spec``: ``features`` loads its spec once, at import, so a
    command-line run restarts itself with ``$ADCR_FEATURE_SPEC`` set (every Beam worker and the Trainer inherit
    it; ``module`` is the runner restarted); a call with explicit ``argv`` raises instead of replacing its
    caller's process."""
    spec = feature_specs.load(cfg.feature_spec or feature_specs.DEFAULT_SPEC)
    if spec.fingerprint() == F.SPEC.fingerprint():
        return
    if argv is not None:
        raise feature_specs.FeatureSpecError(
            f"this process follows feature spec {F.SPEC.name!r}; to run on {spec.name!r} set "
            f"{feature_specs.ENV_VAR}={cfg.feature_spec} before Python starts")
    os.environ[feature_specs.ENV_VAR] = cfg.feature_spec
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module] + sys.argv[1:])


def main(argv: Optional[List[str]] = None) -> int:
    cfg, verbose = _parse(argv)
    follow_spec(cfg, argv)
    if verbose:
        logging.basicConfig(level=logging.WARNING)
        for handler in logging.getLogger().handlers:  # the progress handler lifts absl to INFO: keep it off
            handler.setLevel(logging.WARNING)
        return _run_and_summarise(cfg, run_log.Console(sys.stdout, sys.stderr, hold_lines=False), log=None)
    path = log_path(cfg)
    with run_log.quiet(path) as console:
        try:
            return _run_and_summarise(cfg, console, log=path)
        except Exception as e:  # e.g. the simulation failed: the console must still see why
            run_log.report_failure(console, e, path, "the run failed")
            return 1


def _run_and_summarise(cfg: config_lib.PipelineConfig, console: run_log.Console, log: Optional[str]) -> int:
    from tfx_pipeline import run_summary

    # Before anything runs: a baseline of other heads would fail the Evaluator after the Trainer.
    if cfg.compare_with_baseline:
        baseline_heads.check_baseline_heads(cfg.metadata_path, cfg.model_config, cfg.output_dir)
    ensure_data(cfg, console)
    console.line(f"==> Running the TFX pipeline (LocalDagRunner); artifacts under {cfg.pipeline_root}")
    if log:
        console.line(f"    log: {log}")
    start = time.time()
    failure = None
    try:
        summary = run(cfg, console, keras_progress=log is not None)
    except Exception as e:  # the summary below still says which component failed and why
        failure = e
        summary = run_summary.read_latest_run(cfg.metadata_path) if os.path.exists(cfg.metadata_path) else None
    wall = time.time() - start
    metrics, report = {}, None
    if summary is not None:
        evaluation = summary.output_uri("Evaluator", "evaluation")
        if evaluation and os.path.isdir(evaluation):
            try:
                metrics = overall_metrics(evaluation)
            except Exception as e:  # a summary must not hide the run's own outcome
                console.line(f"(could not read metrics from {evaluation}: {e})")
        report_dir = summary.output_uri("EvaluationReport", "report")
        if report_dir and os.path.exists(os.path.join(report_dir, "report.html")):
            report = os.path.join(report_dir, "report.html")
        console.line()
        # The quiet run already showed a line per component; --verbose prints the table and every metric.
        console.line(run_summary.format_summary(summary, metrics, cfg.serving_root, report,
                                                components=log is None, all_metrics=log is None))
    console.line(f"  wall time: {wall:.1f} s" + (f"; log: {log}" if log else ""))
    if failure is not None:
        run_log.report_failure(console, failure, log, "the pipeline run failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
