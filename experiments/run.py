"""``python -m experiments.run --profile NAME --out DIR``: train, serve, run the A/B test, write the results.

For each seed of the profile (:mod:`experiments.profiles`), into ``DIR/seed-<s>/``:

1. ``data/``: the simulated log and world (``python -m simulator.cli``, ``live_days`` beyond the log);
2. ``pipeline/``: each training through the real pipeline (``python -m tfx_pipeline.local_runner``), all in
   one output dir with TFX caching, so the data steps run once per seed; no baseline comparison and blessing
   floors at 0 (the experiment serves what it trained, and reports its offline metrics); each training pushes
   to ``runs/<training>/serving_models``;
3. the harness: its throughput with no-op models (:class:`~experiments.deployments.NoopDeployment`), then the
   deployments (HTTP: model server and router processes), a check that the HTTP and in-process paths answer
   ``check_requests`` requests identically, and the A/B test over the live days (:mod:`experiments.abtest`;
   logs in ``ab_logs/``).

Then the profile's fidelity study (:mod:`experiments.fidelity`; its worlds in ``DIR/fidelity/``).

Then ``DIR/results.json`` (:mod:`experiments.results`), ``DIR/results.md`` and ``DIR/report.html``
(:mod:`experiments.report`). The console shows a line per step; the tools' own output goes to
``DIR/seed-<s>/logs/``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import orjson

from experiments import abtest, fidelity, report, results, stats
from experiments.config import HTTP, PATHS, Profile
from experiments.deployments import HttpDeployment, InProcessDeployment, NoopDeployment
from experiments.profiles import PROFILES
from serving.router.request import MODE
from simulator import cli as simulator_cli
from simulator import live, load_world
from tfx_pipeline import run_log

_CHECK_STREAM = 50
# Response fields compared between the two paths (timing differs by nature).
_COMPARED = ("ad_id", "creative_id", "pctr_ad", "pctr_c", "ecpm", "creative_source")


class StepFailed(RuntimeError):
    """A step's command failed; the message names it and its log."""


def _run_logged(cmd: List[str], log_path: str, commands: List[str]) -> None:
    commands.append(shlex.join(cmd))
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if code != 0:
        with open(log_path, errors="replace") as fh:
            tail = "".join(fh.readlines()[-15:])
        raise StepFailed(f"{shlex.join(cmd[:4])} ... exited with code {code}; log: {log_path}\n{tail}")


def pipeline_command(profile: Profile, training, seed: int, data_dir: str, pipeline_dir: str, serving_dir: str,
                     teacher_model: Optional[str] = None) -> List[str]:
    """One training's pipeline run. Every training of a seed shares ``pipeline_dir`` with TFX caching, so the
    data steps (ExampleGen to Transform) run once per seed; with no baseline comparison, so variants of other
    heads can share it and each model is judged alone; and pushes to its own ``serving_dir``."""
    cmd = [sys.executable, "-m", "tfx_pipeline.local_runner", "--output-dir", pipeline_dir, "--data-dir", data_dir,
           "--serving-dir", serving_dir, "--enable-cache", "--no-baseline",
           "--train-steps", str(profile.train_steps), "--eval-steps", str(profile.eval_steps),
           "--model-config", json.dumps(profile.model_config_of(training, seed)),
           "--auc-floor", "0", "--nsctr-floor", "0"]
    return cmd + (["--teacher-model", teacher_model] if teacher_model else [])


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """What a training's pipeline run left: its Evaluator's overall metrics and its Trainer's model."""

    offline: Dict[str, float]
    model_uri: str


def trained_run(pipeline_dir: str) -> TrainedRun:
    """The latest run in ``pipeline_dir``: raises if it pushed nothing."""
    from tfx_pipeline import local_runner, run_summary

    summary = run_summary.read_latest_run(os.path.join(pipeline_dir, "pipeline_root", "metadata.sqlite"))
    pusher = summary.component("Pusher")
    if pusher is None or pusher.properties.get("pushed") != 1:
        raise StepFailed(f"the pipeline run in {pipeline_dir} pushed no model (see its logs/)")
    return TrainedRun(local_runner.overall_metrics(summary.output_uri("Evaluator", "evaluation")),
                      summary.output_uri("Trainer", "model"))


def check_paths(world, profile: Profile, http, in_process, day: int, seed: int) -> Dict[str, Any]:
    """Ranks ``check_requests`` requests (every arm's mode in turn) over both paths; compares the answers."""
    batch = live.draw_requests(world, day, np.random.default_rng([seed, _CHECK_STREAM]), profile.check_requests)
    differences, max_diff = 0, 0.0
    for r in range(len(batch)):
        mode = profile.arms[r % len(profile.arms)].mode
        body = orjson.dumps({**batch.request(r, request_id=f"check-{r}"), MODE: mode})
        answers = [d.rank(body)[0] for d in (http, in_process)]
        shown = [[tuple(a[k] for k in _COMPARED) for a in answer["ads"]] for answer in answers]
        if shown[0] != shown[1] or answers[0]["degraded"] != answers[1]["degraded"]:
            differences += 1
        for a, b in zip(*(answer["ads"] for answer in answers)):
            max_diff = max(max_diff, abs(a["pctr_ad"] - b["pctr_ad"]), abs((a["pctr_c"] or 0) - (b["pctr_c"] or 0)))
    return {"requests": len(batch), "identical": differences == 0, "differing_requests": differences,
            "max_abs_score_difference": max_diff}


def noop_throughput(world, profile: Profile, day: int, seed: int) -> Dict[str, float]:
    """The harness's own speed: a day of ``noop_requests`` requests (logs written) against no-op models."""
    noop = NoopDeployment()
    with tempfile.TemporaryDirectory() as logs:
        traffic = abtest.run_day(copy.deepcopy(world), day, profile.arms, dict.fromkeys(
            (a.label for a in profile.arms), noop), profile.noop_requests, seed, profile.salt, logs)
    return {"requests": profile.noop_requests, "requests_per_second": profile.noop_requests / traffic.seconds,
            "harness_ms_per_request": traffic.harness_ms_per_request,
            "router_ms_per_request": 1e3 * traffic.rank_seconds / profile.noop_requests}


def run_seed(profile: Profile, seed: int, seed_dir: str, commands: List[str], say: Callable[[str], None],
             seconds: Dict[str, float]) -> Dict[str, Any]:
    """Steps 1-3 of the module docstring for one seed; returns its record for :func:`results.build`."""
    config = profile.world_config(seed)
    logs = os.path.join(seed_dir, "logs")
    data_dir = os.path.join(seed_dir, "data")
    t0 = time.perf_counter()
    say(f"==> seed {seed}: simulating {config.num_impressions:,} impressions over {config.num_days} days "
        f"(+{config.live_days} live days) into {data_dir}")
    _run_logged([sys.executable, "-m", "simulator.cli"] + simulator_cli.command_for(config, data_dir)
                + ["--quiet", "--force"], os.path.join(logs, "simulate.log"), commands)
    with open(os.path.join(data_dir, "summary.json")) as fh:
        world_summary = json.load(fh)
    seconds[f"seed{seed}_simulate"] = time.perf_counter() - t0

    serving_roots, runs = {}, {}
    pipeline_dir = os.path.join(seed_dir, "pipeline")
    for training in profile.trainings:
        t0 = time.perf_counter()
        serving_roots[training.name] = os.path.join(seed_dir, "runs", training.name, "serving_models")
        say(f"==> seed {seed}: training {training.name!r} through the pipeline ({profile.train_steps} steps"
            + (f", distilled from {training.teacher!r}" if training.teacher else "")
            + f") into {pipeline_dir}, pushing to {serving_roots[training.name]}")
        teacher = runs[training.teacher].model_uri if training.teacher else None
        _run_logged(pipeline_command(profile, training, seed, data_dir, pipeline_dir, serving_roots[training.name],
                                     teacher), os.path.join(logs, f"pipeline-{training.name}.log"), commands)
        runs[training.name] = trained_run(pipeline_dir)  # read now: the next run becomes the latest
        seconds[f"seed{seed}_train_{training.name}"] = time.perf_counter() - t0
        say(f"    done in {seconds[f'seed{seed}_train_{training.name}']:.0f} s")
    offline = {name: run.offline for name, run in runs.items()}

    world = load_world(os.path.join(data_dir, "world.npz"))
    days = list(range(config.num_days, config.num_days + config.live_days))
    harness: Dict[str, Any] = {"seed": seed}
    if profile.noop_requests:
        harness["noop"] = noop_throughput(world, profile, days[0], seed)
        say(f"==> harness with no-op models: {harness['noop']['requests_per_second']:,.0f} requests/s "
            f"({harness['noop']['harness_ms_per_request']:.2f} ms of harness per request)")

    t0 = time.perf_counter()
    make = ((lambda ar, cr, **serving: HttpDeployment(ar, cr, os.path.join(logs, "serving"), **serving))
            if profile.path == HTTP else InProcessDeployment)
    say(f"==> serving {len(profile.arms)} arms ({profile.path}): starting the model servers and routers")
    deployments = abtest.deployments_by_arm(profile.arms, make, serving_roots)
    seconds[f"seed{seed}_serve_start"] = time.perf_counter() - t0
    try:
        if profile.check_requests and profile.path == HTTP:
            first = profile.arms[0]
            in_process = InProcessDeployment(first.ar.base_path(serving_roots), first.cr.base_path(serving_roots),
                                             **first.serving())
            try:
                harness["paths"] = check_paths(world, profile, deployments[first.label], in_process, days[0], seed)
            finally:
                in_process.close()
            say(f"==> HTTP and in-process paths on {harness['paths']['requests']} requests: "
                f"{'identical' if harness['paths']['identical'] else 'DIFFERENT'}")
        t0 = time.perf_counter()

        def progress(day, traffic):
            counts = ", ".join(f"{label} {int((traffic.arm == i).sum())}" for i, label in enumerate(traffic.labels))
            say(f"==> A/B day {day}: {len(traffic.arm)} requests ({counts}) in {traffic.seconds:.1f} s, "
                f"router p50 {np.nanpercentile(traffic.rt_ms, 50):.1f} ms")

        traffic = abtest.run(world, profile.arms, deployments, days, profile.requests_per_day, seed, profile.salt,
                             os.path.join(seed_dir, "ab_logs"), progress)
        seconds[f"seed{seed}_ab"] = time.perf_counter() - t0
    finally:
        abtest.close_all(deployments.values())
    harness.update({"requests": int(len(traffic.arm)), "requests_per_second": len(traffic.arm) / traffic.seconds,
                    "harness_ms_per_request": traffic.harness_ms_per_request, "live_days": days})
    return {"seed": seed, "arms": stats.arm_metrics(traffic, profile.control, profile.bootstrap_replicates, seed),
            "offline": offline, "world": world_summary, "harness": harness}


def headline(results_: Dict[str, Any]) -> List[str]:
    """A few console lines: each online row's expected CTR lift and RT, each offline row's NSCTR / AUC."""
    lines = []
    for t in ("table1", "table2", "table3", "table4"):
        for row, values in results_[t]["rows"].items():
            if values is None:
                continue
            shown = [c for c in ("expected_ctr", "expected_ctr_lift", "rpm_lift", "rt_p99_ms", "nsctr", "true_ctr",
                                 "ipw", "auc", "gauc") if values.get(c)]
            lines.append(f"  {t} {row:<9} " + "  ".join(f"{report.LABELS[c]} {report.cell(c, values[c])}"
                                                         for c in shown))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES))
    parser.add_argument("--out", required=True, help="output directory (results.json, results.md, report.html)")
    parser.add_argument("--path", choices=PATHS, help="override the profile's path to the router")
    parser.add_argument("--seeds", help="override the profile's seeds (comma-separated)")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    overrides = {}
    if args.path:
        overrides["path"] = args.path
    if args.seeds:
        overrides["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    profile = dataclasses.replace(profile, **overrides)
    out = os.path.abspath(args.out)
    log = os.path.join(out, "logs", time.strftime("experiment-%Y%m%d-%H%M%S.log"))
    commands = [shlex.join([sys.executable, "-m", "experiments.run"] + list(argv if argv is not None else sys.argv[1:]))]
    with run_log.quiet(log) as console:  # TensorFlow's, TFMA's and absl's lines go to the log file
        console.line(f"Log: {log}")
        try:
            return _run(profile, out, commands, console.line)
        except Exception as e:  # the console must still see why
            run_log.report_failure(console, e, log, "the experiment failed")
            return 1


def _run(profile: Profile, out: str, commands: List[str], say: Callable[[str], None]) -> int:
    started = time.perf_counter()
    seconds: Dict[str, float] = {}
    records = [run_seed(profile, seed, os.path.join(out, f"seed-{seed}"), commands, say, seconds)
               for seed in profile.seeds]
    study = None
    if profile.fidelity is not None:
        t0 = time.perf_counter()
        say(f"==> fidelity study: {len(fidelity.UPGRADES) - 1} creative-ranking upgrades, "
            f"{len(profile.fidelity.conditions)} worlds x {len(profile.fidelity.seeds)} seeds into {out}/fidelity")
        study = fidelity.run(profile.fidelity, os.path.join(out, "fidelity"), say, commands)
        seconds["fidelity"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - started
    built = results.build(profile, records, commands, seconds, study)
    paths = report.write(built, out)
    say(f"==> results ({seconds['total']:.0f} s): {paths['results.json']}, {paths['results.md']}, "
        f"{paths['report.html']}")
    for line in headline(built):
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
