"""``python -m serving.standin``: the stand-in's command line."""

from __future__ import annotations

import argparse
import os
from typing import Dict, List

import features as F
from serving import runtime
from serving.standin.server import ModelServerStandIn

PROG = "python -m serving.standin"


def parse_base_paths(items: List[str]) -> Dict[str, str]:
    """``["ar=/models/ar", ...]`` → ``{"ar": "/models/ar", ...}`` (each model once)."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise argparse.ArgumentTypeError(f"--model-base-path expects NAME=DIR, got {item!r}")
        if name in out:
            raise argparse.ArgumentTypeError(f"--model-base-path: model {name!r} given twice")
        out[name] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Local stand-in for TF Serving (not TF Serving): serves the pushed AR/CR "
                    "SavedModels over TF Serving's gRPC and REST APIs.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--serving-root", help=f"serve <root>/{F.AR_MODEL_NAME} and <root>/{F.CR_MODEL_NAME}")
    src.add_argument("--model-base-path", action="append", metavar="NAME=DIR",
                     help="a model name and its base path (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port (0: pick a free one)")
    parser.add_argument("--file-system-poll-wait-seconds", type=float, default=1.0)
    parser.add_argument("--intra-op-threads", type=int, default=None)
    parser.add_argument("--inter-op-threads", type=int, default=None)
    parser.add_argument("--enable-batching", action="store_true",
                        help="apply TF Serving's batching input check (equal 0th dimensions)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runtime.configure_logging(args.log_level)
    try:
        paths = ({m: os.path.join(args.serving_root, m) for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)}
                 if args.serving_root else parse_base_paths(args.model_base_path))
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    runtime.run_until_signalled(
        lambda: ModelServerStandIn(
            paths, port=args.port, rest_port=args.rest_port, host=args.host,
            poll_seconds=args.file_system_poll_wait_seconds, intra_op_threads=args.intra_op_threads,
            inter_op_threads=args.inter_op_threads, enable_batching=args.enable_batching).start(),
        lambda server: f"model server stand-in ready: grpc={server.grpc_address} rest={server.rest_url}")
    return 0
