"""Starts a model server as a subprocess: ``tensorflow_model_server`` when it is on PATH, else the stand-in.

Used by the demo and the benchmark::

    with start_backend(serving_root) as backend:          # kind="auto"
        backend.wait_until_available([F.AR_MODEL_NAME, F.CR_MODEL_NAME])
        backend.grpc_address, backend.rest_url, backend.kind   # "tf-serving" or "stand-in"
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterable, Mapping, Optional

import features as F
from serving import tf_serving
from serving.clients import GrpcServingClient

TF_SERVING = "tf-serving"
STAND_IN = "stand-in"
KINDS = ("auto", TF_SERVING, STAND_IN)
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another process may still take it; good enough locally)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def resolve_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"backend kind must be one of {KINDS}, got {kind!r}")
    if kind == "auto":
        return TF_SERVING if tf_serving.find_model_server() else STAND_IN
    if kind == TF_SERVING and not tf_serving.find_model_server():
        raise FileNotFoundError(f"{tf_serving.BINARY} is not on PATH")
    return kind


class BackendProcess:
    """A running model server subprocess; ``stop()`` ends it (SIGTERM, then SIGKILL after a grace)."""

    def __init__(self, kind: str, process: subprocess.Popen, grpc_address: str, rest_url: str,
                 log_path: str, command, owned_dir: Optional[str] = None):
        self._owned_dir = owned_dir  # a temporary directory to remove once the server is gone
        self.kind = kind
        self.process = process
        self.grpc_address = grpc_address
        self.rest_url = rest_url
        self.log_path = log_path
        self.command = command

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""

    def wait_until_available(self, models: Iterable[str] = (F.AR_MODEL_NAME, F.CR_MODEL_NAME),
                             timeout: float = 120.0) -> Dict[str, int]:
        """Waits until ``GetModelStatus`` reports every model AVAILABLE; returns model → version."""
        deadline = time.monotonic() + timeout
        with GrpcServingClient(self.grpc_address) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited with code {self.process.returncode}:\n"
                                       + self.log_tail())
                try:
                    return client.wait_until_available(models, timeout=min(2.0, deadline - time.monotonic()))
                except TimeoutError as e:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"{e}\n{self.kind} log:\n{self.log_tail()}") from None

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._owned_dir and self.process.poll() is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_backend(serving_root: Optional[str] = None, *, model_base_paths: Optional[Mapping[str, str]] = None,
                  kind: str = "auto", host: str = "127.0.0.1", grpc_port: int = 0, rest_port: int = 0,
                  poll_seconds: float = 1.0, enable_batching: bool = False,
                  intra_op_threads: Optional[int] = None, inter_op_threads: Optional[int] = None,
                  log_dir: Optional[str] = None) -> BackendProcess:
    """Starts TF Serving (``kind="tf-serving"``) or the stand-in (``"stand-in"``); ``"auto"`` picks.

    Give either ``serving_root`` (serves ``ar`` and ``cr`` under it) or ``model_base_paths``.
    TF Serving binds every interface (it has no host flag); the stand-in binds ``host``.
    Ports 0 are replaced by free ones. The server's output goes to ``log_path`` in ``log_dir`` (default:
    a temporary directory, removed by ``stop()``).
    """
    if (serving_root is None) == (model_base_paths is None):
        raise ValueError("give exactly one of serving_root and model_base_paths")
    paths = dict(model_base_paths) if model_base_paths else {
        m: os.path.join(serving_root, m) for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)}
    paths = {m: os.path.abspath(p) for m, p in paths.items()}
    kind = resolve_kind(kind)
    grpc_port = grpc_port or free_port(host)
    rest_port = rest_port or free_port(host)
    owned_dir = None if log_dir else tempfile.mkdtemp(prefix="adcr-serving-")
    log_dir = log_dir or owned_dir
    log_path = os.path.join(log_dir, f"{kind}-{grpc_port}.log")
    if kind == TF_SERVING:
        config = os.path.join(log_dir, f"models-{grpc_port}.config")
        with open(config, "w") as fh:
            fh.write(tf_serving.models_config_for_paths(paths))
        cmd = tf_serving.model_server_command(
            config, binary=tf_serving.find_model_server(), port=grpc_port, rest_port=rest_port,
            enable_batching=enable_batching, poll_seconds=poll_seconds,
            intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads)
    else:
        cmd = [sys.executable, "-m", "serving.standin_server", "--host", host, "--port", str(grpc_port),
               "--rest-port", str(rest_port), "--file-system-poll-wait-seconds", str(poll_seconds)]
        for m, p in paths.items():
            cmd += ["--model-base-path", f"{m}={p}"]
        if enable_batching:
            cmd.append("--enable-batching")
        if intra_op_threads:
            cmd += ["--intra-op-threads", str(intra_op_threads)]
        if inter_op_threads:
            cmd += ["--inter-op-threads", str(inter_op_threads)]
    env = dict(os.environ)
    env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    log_fh = open(log_path, "ab")
    try:
        process = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL)
    finally:
        log_fh.close()
    return BackendProcess(kind, process, f"{host}:{grpc_port}", f"http://{host}:{rest_port}", log_path, cmd,
                          owned_dir)

