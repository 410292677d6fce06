"""Serve the pushed models and rank a few requests in every mode.

Starts the model servers on a serving root (``tensorflow_model_server`` when it is on PATH, else the local
stand-in — subprocesses on free loopback ports; one per model, as Peri-CR is deployed, or one for both
with ``--layout shared``), waits until AR and CR are AVAILABLE, starts the Peri-CR router, sends a few
requests in each mode, prints the chosen ads and creatives, and shuts everything down (also on Ctrl-C)::

    python -m serving.demo --serving-root outputs/serving_models --data-dir data/default
    python -m serving.demo --serving-root outputs/fake_serving --fake-models     # without a trained pipeline

Requests: with ``--data-dir`` holding a simulation's ``world.npz``, drawn from that world as its traffic is
(M candidate ads, every active creative of each), and each mode's row also shows the true CTR of the
creatives the router showed next to a random creative's and the best one's — what only a simulator can
show. ``--logged-impressions`` rebuilds them from logged TFRecords instead; with neither, random requests.

The console shows only the tables; the demo's own log lines (TensorFlow, gRPC) and each model server's
output go to files in ``--log-dir`` (default ``<serving root>/../logs``), whose paths are printed;
``--verbose`` shows the demo's log lines instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any, Dict, Iterator, Optional, Tuple

import features as F
from serving import backend as B
from serving.router import MODES, PeriCRRouter, RouterClient, RouterConfig, RouterError, RouterServer
from serving.router import request as R
from serving.sample_requests import (SimulatedRequest, random_request, requests_from_tfrecords,
                                     requests_from_world)
from serving.testing import latest_version, make_fake_models
from tfx_pipeline import run_log

BATCHING_SEQUENCE_LENGTH = 50
TRUTH_KEYS = ("shown", "random", "best")


def _fmt(x, spec=".3f") -> str:
    return "-" if x is None else format(x, spec)


def _sizes(request: Dict[str, Any]) -> Tuple[int, int]:
    """(ads, creatives) of a request in row or column form."""
    ads = request[R.ADS]
    if isinstance(ads, dict):
        return len(ads[F.AD_ID]), sum(ads[R.NUM_CREATIVES])
    return len(ads), sum(len(a[R.CREATIVES]) for a in ads)


def format_table(request: Dict[str, Any], responses: Dict[str, Dict[str, Any]], index: int,
                 truth: Optional[SimulatedRequest] = None) -> str:
    """The demo's per-request table: one row per mode, the top-L (ad, creative) pairs and their scores.

    With ``truth`` (a simulated request), each row also gives the true CTR of the shown creatives, of a
    random creative of the same ads and of their best creatives (means over the shown ads).
    """
    n_ads, n_creatives = _sizes(request)
    truth_head = f"{'true CTR: shown':>15} {'random':>6} {'best':>6}  " if truth else ""
    lines = [f"Request {index}"
             + (f" (request_id {request[R.REQUEST_ID]})" if request.get(R.REQUEST_ID) is not None else "")
             + f": user {request[R.USER][F.USER_ID]}, {n_ads} ads, {n_creatives} creatives",
             f"  {'mode':<6} {'total ms':>9} {'scoring ms':>10}  {'degraded':<8}  {truth_head}"
             f"top ads: {F.AD_ID}/{F.CREATIVE_ID} ({F.PCTR_AD} | {F.PCTR_C}, creative source)"]
    for mode, resp in responses.items():
        if "error" in resp:
            lines.append(f"  {mode:<6} error: {resp['error']}")
            continue
        t = resp["timing_ms"]
        true_ctr = ""
        if truth:
            shown = truth.shown_truth(resp["ads"])
            true_ctr = f"{shown['shown']:>15.4f} {shown['random']:>6.4f} {shown['best']:>6.4f}  "
        picks = "  ".join(f"{a[F.AD_ID]}/{a[F.CREATIVE_ID]} ({_fmt(a[F.PCTR_AD])} | {_fmt(a[F.PCTR_C])}, "
                          f"{a['creative_source']})" for a in resp["ads"])
        lines.append(f"  {mode:<6} {t['total']:>9.1f} {t['scoring']:>10.1f}  "
                     f"{'yes' if resp['degraded'] else 'no':<8}  {true_ctr}{picks}")
        if resp["degraded"]:
            lines.append(f"         degraded: {resp['degraded_reason']}")
    return "\n".join(lines)


def format_truth_summary(totals: Dict[str, Dict[str, list]]) -> str:
    """Per mode: the true CTR of the shown creatives against a random and the best creative, over requests."""
    n = max((len(v["shown"]) for v in totals.values()), default=0)
    lines = [f"True CTR of the shown creatives, mean over {n} requests (what only a simulator can show):",
             f"  {'mode':<6} {'shown':>7} {'random creative':>16} {'best creative':>14}"]
    for mode, values in totals.items():
        if values["shown"]:
            mean = {k: sum(values[k]) / len(values[k]) for k in TRUTH_KEYS}
            lines.append(f"  {mode:<6} {mean['shown']:>7.4f} {mean['random']:>16.4f} {mean['best']:>14.4f}")
    return "\n".join(lines)


def world_path(data_dir: Optional[str]) -> Optional[str]:
    """``<data_dir>/world.npz`` if the simulation saved its world there."""
    from simulator.generate import WORLD_FILE

    path = os.path.join(data_dir, WORLD_FILE) if data_dir else None
    return path if path and os.path.isfile(path) else None


def _sample_requests(args, console: run_log.Console) -> Iterator[Tuple[Dict[str, Any], Optional[SimulatedRequest]]]:
    """(request, its truth or None), one at a time: ``--requests`` may be large."""
    if args.logged_impressions:
        reqs = requests_from_tfrecords(args.logged_impressions, max_requests=args.requests, slots=args.slots)
        if not reqs:
            raise SystemExit(f"no usable impressions under {args.logged_impressions}")
        console.line(f"Requests rebuilt from the logged impressions under {args.logged_impressions}")
        for request in reqs:
            yield request, None
        return
    world = world_path(args.data_dir)
    if world:
        from simulator import load_world

        console.line(f"Requests drawn from the simulated world {world}")
        for sim in requests_from_world(load_world(world), args.requests, seed=args.seed, slots=args.slots):
            yield sim.request, sim
        return
    console.line(f"Random requests of {args.ads} ads x {args.creatives} creatives"
                 + (f" (no simulated world under {args.data_dir})" if args.data_dir else ""))
    for i in range(args.requests):
        yield random_request(args.ads, args.creatives, seed=args.seed + i, slots=args.slots,
                             request_id=f"demo-{i + 1}"), None


def _raise_interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving-root", required=True,
                        help=f"push destination with {F.AR_MODEL_NAME}/<version>/ and "
                             f"{F.CR_MODEL_NAME}/<version>/")
    parser.add_argument("--data-dir", help="a simulation's output directory: requests are drawn from its "
                                           "world.npz (random requests when it has none)")
    parser.add_argument("--logged-impressions", help="TFRecords of logged impressions (e.g. the eval split) "
                                                     "to rebuild requests from (instead of the world)")
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--ads", type=int, default=30, help="ads per random request")
    parser.add_argument("--creatives", type=int, default=5, help="creatives per ad (random requests)")
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--backend", choices=B.KINDS, default="auto")
    parser.add_argument("--layout", choices=B.LAYOUTS, default=B.SPLIT,
                        help="split: one model server per model (AR and CR never queue for each other); "
                             "shared: one server for both")
    parser.add_argument("--enable-batching", action="store_true",
                        help="TF Serving batching (the router then tiles user features)")
    parser.add_argument("--fake-models", action="store_true",
                        help="write formula models into an empty serving root first (no training needed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the models")
    parser.add_argument("--log-dir", help="where the demo's and the model servers' logs go "
                                          "(default: <serving root>/../logs)")
    parser.add_argument("--verbose", action="store_true",
                        help="show the demo's log lines on the console instead of writing them to a file")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        parser.error(f"--modes: unknown mode(s) {bad}; choose from {', '.join(MODES)}")

    root = os.path.abspath(args.serving_root)
    missing = [m for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME) if latest_version(os.path.join(root, m)) is None]
    if missing and args.fake_models and len(missing) < 2:
        parser.error(f"--fake-models needs an empty serving root; {root} already has some models")
    if missing and not args.fake_models:
        parser.error(f"no model versions under {root} for {missing}: run the pipeline (its Pusher writes "
                     f"them) or pass --fake-models")
    log_dir = os.path.abspath(args.log_dir or os.path.join(os.path.dirname(root), "logs"))
    if args.verbose:
        return _serve(args, root, modes, run_log.Console(sys.stdout, sys.stderr, hold_lines=False), log_dir)
    log = os.path.join(log_dir, time.strftime("serving-demo-%Y%m%d-%H%M%S.log"))
    with run_log.quiet(log) as console:
        console.line(f"Logs: {log} (the model servers' beside it)")
        try:
            return _serve(args, root, modes, console, log_dir, fake=bool(missing))
        except Exception as e:  # the console must still see why
            run_log.report_failure(console, e, log, "the serving demo failed")
            return 1


def _serve(args, root: str, modes, console: run_log.Console, log_dir: str, fake: bool = False) -> int:
    if fake:
        console.line(f"Writing formula models (not trained) to {root} ...")
        make_fake_models(root, 1)
    # Ctrl-C and SIGTERM both end in the cleanup below (also when started with SIGINT ignored, as
    # background jobs of a non-interactive shell are).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    backend = server = router = None
    totals = {mode: {k: [] for k in TRUTH_KEYS} for mode in modes}
    try:
        backend = B.start_servers(root, args.layout, kind=args.backend, enable_batching=args.enable_batching,
                                  log_dir=log_dir)
        what = ("TensorFlow Serving" if backend.kind == B.TF_SERVING
                else "the local model server stand-in (tensorflow_model_server is not on PATH)")
        console.line(f"Starting {what}:")
        for s in backend.processes:
            console.line(f"  {' and '.join(s.models)}: gRPC {s.grpc_address}, REST {s.rest_url}")
        versions = backend.wait_until_available(timeout=args.timeout)
        console.line("Models AVAILABLE: " + ", ".join(f"{m} v{v}" for m, v in versions.items()))
        addresses = backend.addresses
        config = RouterConfig(ar_address=addresses[F.AR_MODEL_NAME], cr_address=addresses[F.CR_MODEL_NAME],
                              default_slots=args.slots,
                              tile_user_features=args.enable_batching,
                              sequence_length=BATCHING_SEQUENCE_LENGTH if args.enable_batching else None,
                              seed=args.seed)
        router = PeriCRRouter(config)
        server = RouterServer(router).start()
        console.line(f"Router: {server.url}/v1/rank")
        client = RouterClient(server.url)
        for i, (request, truth) in enumerate(_sample_requests(args, console), start=1):
            responses = {}
            for mode in modes:
                try:
                    responses[mode] = client.rank({**request, R.MODE: mode})
                except RouterError as e:
                    responses[mode] = {"error": str(e)}
                    continue
                if truth is not None:
                    for k, v in truth.shown_truth(responses[mode]["ads"]).items():
                        totals[mode][k].append(v)
            console.line("\n" + format_table(request, responses, i, truth))
        if any(v["shown"] for v in totals.values()):
            console.line("\n" + format_truth_summary(totals))
        return 0
    except KeyboardInterrupt:
        console.error("\nInterrupted; shutting down.")
        return 130
    finally:
        if server is not None:
            server.stop()
        if router is not None:
            router.close()
        if backend is not None:
            backend.stop()


if __name__ == "__main__":
    sys.exit(main())
