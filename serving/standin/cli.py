"""``python -m serving.standin``: the stand-in with TF Serving's command line.

The flags are ``tensorflow_model_server``'s, with its defaults and meanings, so one command line starts
either binary (``serving/start_tf_serving.sh``)::

    python -m serving.standin --port=8500 --rest_api_port=8501 --model_name=ar --model_base_path=/srv/ar
    python -m serving.standin --port=8500 --rest_api_port=8501 --model_config_file=models.config \\
        --model_config_file_poll_wait_seconds=5 --monitoring_config_file=monitoring.config

Only the stand-in has ``--host`` (it binds loopback by default; TF Serving binds every interface) and
``--log_level``. Config files are read before TensorFlow is imported, so one that does not parse fails at
once, as TF Serving does: the protobuf parser's line (``Error parsing text-format
tensorflow.serving.ModelServerConfig: 3:7: ...``) on stderr, then ``Failed to start server. Error:
INVALID_ARGUMENT: Invalid protobuf file: '...'`` and exit status 255.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

PROG = "python -m serving.standin"
VERSION = "stand-in for TensorFlow ModelServer 2.16 (not TF Serving)"
log = logging.getLogger("serving.standin")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Local stand-in for TensorFlow Serving (not TF Serving), with "
                               "tensorflow_model_server's flags.")

    def flag(name, kind, default, help_text):
        if kind is bool:
            parser.add_argument(f"--{name}", type=_bool, nargs="?", const=True, default=default, help=help_text)
        else:
            parser.add_argument(f"--{name}", type=kind, default=default, help=help_text)

    flag("port", int, 8500, "gRPC port")
    flag("rest_api_port", int, 0, "REST port; 0 exports no REST API")
    flag("rest_api_timeout_in_ms", int, 30000, "Session deadline of a REST call")
    flag("model_name", str, "default", "name of the model (ignored with --model_config_file)")
    flag("model_base_path", str, "", "its base path (ignored with --model_config_file)")
    flag("model_config_file", str, "", "a text ModelServerConfig: models, version policies, labels")
    flag("model_config_file_poll_wait_seconds", int, 0, "re-read --model_config_file this often (0: once)")
    flag("file_system_poll_wait_seconds", int, 1, "poll base paths for new versions this often (0: once)")
    flag("max_num_load_retries", int, 5, "retries of a version that failed to load")
    flag("load_retry_interval_micros", int, 60_000_000, "wait between load retries")
    flag("allow_version_labels_for_unavailable_models", bool, False,
         "a new label may name a version that is not loaded yet")
    flag("enable_batching", bool, False, "apply the batching session's request checks (no merging)")
    flag("batching_parameters_file", str, "", "a text BatchingParameters (with --enable_batching)")
    flag("monitoring_config_file", str, "", "a text MonitoringConfig (Prometheus metrics)")
    flag("tensorflow_session_parallelism", int, 0, "threads of each Session (0: TF's choice)")
    flag("tensorflow_intra_op_parallelism", int, 0, "intra-op threads (0: TF's choice)")
    flag("tensorflow_inter_op_parallelism", int, 0, "inter-op threads (0: TF's choice)")
    flag("saved_model_tags", str, "serve", "comma-separated tags of the MetaGraph to load")
    flag("enable_model_warmup", bool, True, "replay assets.extra/tf_serving_warmup_requests before serving")
    flag("num_request_iterations_for_warmup", int, 0, "runs of each warm-up request (0: once)")
    flag("enable_signature_method_name_check", bool, False, "check SignatureDef method names")
    flag("grpc_max_threads", int, 16, "threads answering gRPC calls")
    flag("version", bool, False, "print the version and exit")
    parser.add_argument("--host", default="127.0.0.1", help="(stand-in only) address to bind")
    parser.add_argument("--log_level", default="INFO", help="(stand-in only)")
    return parser


class StartError(Exception):
    """The server cannot start; ``status`` is TF Serving's ``CODE: message``."""

    def __init__(self, status: str, details: str = ""):
        super().__init__(status)
        self.status, self.details = status, details


def _fail(code: str, message: str) -> StartError:
    return StartError(f"{code}: {message}")


def options_from_args(args):
    """(ServerOptions, ModelServerConfig or None) — every file read and checked, TensorFlow not imported."""
    from serving import protocol as P
    from serving.standin import model_config as MC
    from serving.standin import protos
    from serving.standin.options import ServerOptions

    if args.port == 0:
        raise _fail("INVALID_ARGUMENT", "At least one of server_options.grpc_port or "
                                        "server_options.grpc_socket_path must be set.")
    if not args.model_base_path and not args.model_config_file:
        raise _fail("INVALID_ARGUMENT", "Both server_options.model_base_path and "
                                        "server_options.model_config_file are empty!")
    if args.batching_parameters_file and not args.enable_batching:
        raise _fail("INVALID_ARGUMENT", "server_options.batching_parameters_file is set without setting "
                                        "server_options.enable_batching to true.")
    rest_port = args.rest_api_port or None
    if rest_port == args.port:
        log.error("server_options.http_port cannot be same as grpc_port. Please use a different port for "
                  "HTTP/REST API. Skipped exporting HTTP/REST API.")
        rest_port = None
    try:
        config = None if args.model_config_file else MC.single_model_config(args.model_name, args.model_base_path)
        if args.model_config_file:
            MC.read_model_server_config(args.model_config_file)  # fail now if it does not parse
        batching = (MC.read_text_proto(args.batching_parameters_file, protos.batching_parameters_class())
                    if args.batching_parameters_file else None)
        monitoring = (MC.read_text_proto(args.monitoring_config_file, protos.monitoring_config_class())
                      if args.monitoring_config_file else None)
    except P.ServingError as e:
        raise StartError(f"{e.code.name}: {e.message}", getattr(e, "parse_error", "")) from None
    options = ServerOptions(
        port=args.port, rest_port=rest_port, host=args.host, model_config_file=args.model_config_file or None,
        config_poll_seconds=max(0, args.model_config_file_poll_wait_seconds),
        poll_seconds=max(0, args.file_system_poll_wait_seconds),
        intra_op_threads=args.tensorflow_intra_op_parallelism, inter_op_threads=args.tensorflow_inter_op_parallelism,
        session_parallelism=args.tensorflow_session_parallelism, enable_batching=args.enable_batching,
        batching_parameters=batching, monitoring_config=monitoring, max_load_retries=args.max_num_load_retries,
        load_retry_interval_seconds=max(0, args.load_retry_interval_micros) / 1e6,
        allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
        enable_model_warmup=args.enable_model_warmup,
        warmup_iterations=max(1, args.num_request_iterations_for_warmup),
        method_name_check=args.enable_signature_method_name_check,
        saved_model_tags=tuple(t for t in args.saved_model_tags.split(",") if t),
        rest_timeout_ms=args.rest_api_timeout_in_ms, grpc_workers=args.grpc_max_threads)
    return options, config


def main(argv: Optional[List[str]] = None) -> int:
    from serving import runtime

    args = build_parser().parse_args(argv)
    if args.version:
        print(f"TensorFlow ModelServer: {VERSION}")
        return 0
    runtime.configure_logging(args.log_level)
    try:
        options, config = options_from_args(args)
        from serving import protocol as P
        from serving.standin.server import ModelServerStandIn

        def start():
            try:
                return ModelServerStandIn(model_config=config, options=options).start()
            except P.ServingError as e:
                raise StartError(f"{e.code.name}: {e.message}", getattr(e, "parse_error", "")) from None

        runtime.run_until_signalled(
            start, lambda server: f"model server stand-in ready: grpc={server.grpc_address}"
                                  + (f" rest={server.rest_url}" if server.rest_port else ""))
    except StartError as e:
        if e.details:
            print(e.details, file=sys.stderr, flush=True)
        print(f"Failed to start server. Error: {e.status}", flush=True)
        return 255
    return 0
