"""Serve the pushed models and rank a few requests in every mode.

Starts the model servers on a serving root (``tensorflow_model_server`` when it is on PATH, else the local
stand-in — subprocesses on free loopback ports; one per model, as Peri-CR is deployed, or one for both
with ``--layout shared``), waits until AR and CR are AVAILABLE, starts the Peri-CR
router, sends a few requests (rebuilt from logged impressions with ``--data-dir``, else random ones) in
each mode, prints the chosen ads and creatives, and shuts everything down (also on Ctrl-C)::

    python -m serving.demo --serving-root /path/to/push/dest --data-dir /path/to/eval/tfrecords
    python -m serving.demo --serving-root outputs/fake_serving --fake-models     # without a trained pipeline
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, Dict, Iterator

import features as F
from serving import backend as B
from serving.router import MODES, PeriCRRouter, RouterClient, RouterConfig, RouterError, RouterServer
from serving.router import request as R
from serving.sample_requests import random_request, requests_from_tfrecords
from serving.testing import latest_version, make_fake_models

BATCHING_SEQUENCE_LENGTH = 50


def _fmt(x, spec=".3f") -> str:
    return "-" if x is None else format(x, spec)


def format_table(request: Dict[str, Any], responses: Dict[str, Dict[str, Any]], index: int) -> str:
    """The demo's per-request table: one row per mode, the top-L (ad, creative) pairs and their scores."""
    ads = request[R.ADS]
    n_creatives = sum(len(a[R.CREATIVES]) for a in ads)
    lines = [f"Request {index}"
             + (f" (request_id {request[R.REQUEST_ID]})" if request.get(R.REQUEST_ID) is not None else "")
             + f": user {request[R.USER][F.USER_ID]}, {len(ads)} ads, {n_creatives} creatives",
             f"  {'mode':<6} {'total ms':>9} {'scoring ms':>10}  {'degraded':<8}  "
             f"top ads: {F.AD_ID}/{F.CREATIVE_ID} ({F.PCTR_AD} | {F.PCTR_C}, creative source)"]
    for mode, resp in responses.items():
        if "error" in resp:
            lines.append(f"  {mode:<6} error: {resp['error']}")
            continue
        t = resp["timing_ms"]
        picks = "  ".join(f"{a[F.AD_ID]}/{a[F.CREATIVE_ID]} ({_fmt(a[F.PCTR_AD])} | {_fmt(a[F.PCTR_C])}, "
                          f"{a['creative_source']})" for a in resp["ads"])
        lines.append(f"  {mode:<6} {t['total']:>9.1f} {t['scoring']:>10.1f}  "
                     f"{'yes' if resp['degraded'] else 'no':<8}  {picks}")
        if resp["degraded"]:
            lines.append(f"         degraded: {resp['degraded_reason']}")
    return "\n".join(lines)


def _sample_requests(args) -> Iterator[Dict[str, Any]]:
    if args.data_dir:
        reqs = requests_from_tfrecords(args.data_dir, max_requests=args.requests, slots=args.slots)
        if not reqs:
            raise SystemExit(f"no usable impressions under {args.data_dir}")
        yield from reqs
        return
    for i in range(args.requests):  # one at a time: --requests may be large
        yield random_request(args.ads, args.creatives, seed=args.seed + i, slots=args.slots,
                             request_id=f"demo-{i + 1}")


def _raise_interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving-root", required=True,
                        help=f"push destination with {F.AR_MODEL_NAME}/<version>/ and "
                             f"{F.CR_MODEL_NAME}/<version>/")
    parser.add_argument("--data-dir", help="TFRecords of logged impressions (e.g. the eval split) to "
                                           "build requests from; default: random requests")
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
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        parser.error(f"--modes: unknown mode(s) {bad}; choose from {', '.join(MODES)}")

    root = os.path.abspath(args.serving_root)
    missing = [m for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME) if latest_version(os.path.join(root, m)) is None]
    if missing and args.fake_models:
        if len(missing) < 2:
            parser.error(f"--fake-models needs an empty serving root; {root} already has some models")
        print(f"Writing formula models (not trained) to {root} ...")
        make_fake_models(root, 1)
    elif missing:
        parser.error(f"no model versions under {root} for {missing}: run the pipeline (its Pusher writes "
                     f"them) or pass --fake-models")

    # Ctrl-C and SIGTERM both end in the cleanup below (also when started with SIGINT ignored, as
    # background jobs of a non-interactive shell are).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    backend = server = router = None
    try:
        backend = B.start_servers(root, args.layout, kind=args.backend, enable_batching=args.enable_batching)
        what = ("TensorFlow Serving" if backend.kind == B.TF_SERVING
                else "the local model server stand-in (tensorflow_model_server is not on PATH)")
        print(f"Starting {what}:")
        for s in backend.processes:
            print(f"  {' and '.join(s.models)}: gRPC {s.grpc_address}, REST {s.rest_url}")
        versions = backend.wait_until_available(timeout=args.timeout)
        print("Models AVAILABLE: " + ", ".join(f"{m} v{v}" for m, v in versions.items()))
        addresses = backend.addresses
        config = RouterConfig(ar_address=addresses[F.AR_MODEL_NAME], cr_address=addresses[F.CR_MODEL_NAME],
                              default_slots=args.slots,
                              tile_user_features=args.enable_batching,
                              sequence_length=BATCHING_SEQUENCE_LENGTH if args.enable_batching else None,
                              seed=args.seed)
        router = PeriCRRouter(config)
        server = RouterServer(router).start()
        print(f"Router: {server.url}/v1/rank\n")
        client = RouterClient(server.url)
        for i, request in enumerate(_sample_requests(args), start=1):
            responses = {}
            for mode in modes:
                try:
                    responses[mode] = client.rank({**request, R.MODE: mode})
                except RouterError as e:
                    responses[mode] = {"error": str(e)}
            print(format_table(request, responses, i) + "\n")
        return 0
    except KeyboardInterrupt:
        print("\nInterrupted; shutting down.", file=sys.stderr)
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
