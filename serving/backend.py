"""Starts model servers as subprocesses: ``tensorflow_model_server`` when it is on PATH, else the stand-in,
both with TF Serving's command line.

Used by the demo and the benchmark::

    with start_backend(serving_root) as backend:          # one server for both models; kind="auto"
        backend.wait_until_available([F.AR_MODEL_NAME, F.CR_MODEL_NAME])
        backend.grpc_address, backend.rest_url, backend.kind   # "tf-serving" or "stand-in"

    with start_model_servers(serving_root) as servers:    # one server per model (Peri-CR's layout)
        servers.wait_until_available()
        servers.addresses                                  # {"ar": "127.0.0.1:...", "cr": "127.0.0.1:..."}

    start_servers(serving_root, layout="split" | "shared")  # either of the above

Both kinds of handle have ``addresses`` (model → gRPC address), ``processes`` and ``stop()``.

Peri-CR requests AR and CR at the same time, so the two models must not queue for the same CPU: in
production they are separate TF Serving deployments. ``start_model_servers`` reproduces that on one
machine, one server process per model, optionally each pinned to its own CPUs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

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


def pin_to_cpus(cpus: Optional[Sequence[int]]):
    """A ``preexec_fn`` pinning the child to ``cpus`` (checked here, so a bad id fails in the parent)."""
    if not cpus:
        return None
    cpus = sorted(set(int(c) for c in cpus))
    if not hasattr(os, "sched_setaffinity"):
        raise OSError("pinning a model server to CPUs needs os.sched_setaffinity (Linux)")
    allowed = os.sched_getaffinity(0)
    if not set(cpus) <= allowed:
        raise ValueError(f"cpus {cpus} are not all available to this process (allowed: {sorted(allowed)})")
    return lambda: os.sched_setaffinity(0, cpus)


def split_cpus(n_servers: int) -> List[Optional[List[int]]]:
    """This process's CPUs dealt into ``n_servers`` disjoint groups, or no pinning (``None`` each) when
    there are fewer CPUs than servers."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < n_servers:
        return [None] * n_servers
    return [cpus[i::n_servers] for i in range(n_servers)]


def spawn(cmd: Sequence[str], log_path: str, cpus: Optional[Sequence[int]] = None) -> subprocess.Popen:
    """Starts ``cmd`` (e.g. ``python -m serving.standin ...``) with its output appended to ``log_path``.

    The child finds this checkout's packages (the repository goes first on ``PYTHONPATH``), reads no
    stdin, and with ``cpus`` is pinned to them (:func:`pin_to_cpus`).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    preexec_fn = pin_to_cpus(cpus)
    with open(log_path, "ab") as log_fh:
        return subprocess.Popen(list(cmd), stdout=log_fh, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class BackendProcess:
    """A running model server subprocess; ``stop()`` ends it (SIGTERM, then SIGKILL after a grace)."""

    def __init__(self, kind: str, process: subprocess.Popen, grpc_address: str, rest_url: str,
                 log_path: str, command, owned_dir: Optional[str] = None,
                 cpus: Optional[Sequence[int]] = None, models: Sequence[str] = (F.AR_MODEL_NAME, F.CR_MODEL_NAME)):
        self._owned_dir = owned_dir  # a temporary directory to remove once the server is gone
        self.cpus = sorted(cpus) if cpus else None  # the CPUs it is pinned to (None: not pinned)
        self.models = tuple(models)  # the models it serves
        self.kind = kind
        self.process = process
        self.grpc_address = grpc_address
        self.rest_url = rest_url
        self.log_path = log_path
        self.command = command

    @property
    def addresses(self) -> Dict[str, str]:
        """Model → gRPC address."""
        return dict.fromkeys(self.models, self.grpc_address)

    @property
    def processes(self) -> List["BackendProcess"]:
        return [self]

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
        stop_process(self.process, grace)
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
                  log_dir: Optional[str] = None, cpus: Optional[Sequence[int]] = None,
                  versions: Optional[Mapping[str, int]] = None,
                  labels: Optional[Mapping[str, Mapping[str, int]]] = None) -> BackendProcess:
    """Starts TF Serving (``kind="tf-serving"``) or the stand-in (``"stand-in"``); ``"auto"`` picks.

    Give either ``serving_root`` (serves ``ar`` and ``cr`` under it) or ``model_base_paths``. Both kinds
    get TF Serving's command line (:func:`serving.tf_serving.model_server_command`) and a models.config.
    TF Serving binds every interface (it has no host flag); the stand-in binds ``host``.
    Ports 0 are replaced by free ones. The server's output goes to ``log_path`` in ``log_dir`` (default:
    a temporary directory, removed by ``stop()``). ``cpus`` pins the server to those CPU ids (Linux).
    ``versions`` / ``labels``: serve one version of a model / give versions labels
    (:func:`serving.tf_serving.models_config_for_paths`); by default the latest version of each.
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
    name = "-".join(sorted(paths))
    log_path = os.path.join(log_dir, f"{kind}-{name}-{grpc_port}.log")
    # Both binaries get the same TF Serving flags and models.config (the stand-in only adds --host).
    config = os.path.join(log_dir, f"models-{grpc_port}.config")
    with open(config, "w") as fh:
        fh.write(tf_serving.models_config_for_paths(paths, versions=versions, labels=labels))
    cmd = tf_serving.model_server_command(
        config, binary=tf_serving.find_model_server() if kind == TF_SERVING else tf_serving.STANDIN,
        port=grpc_port, rest_port=rest_port, enable_batching=enable_batching, poll_seconds=poll_seconds,
        intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads,
        # A label in the startup config names a version not loaded yet: both servers refuse it without this flag.
        extra_args=(() if kind == TF_SERVING else (f"--host={host}",))
        + (("--allow_version_labels_for_unavailable_models=true",) if labels else ()))
    process = spawn(cmd, log_path, cpus)
    return BackendProcess(kind, process, f"{host}:{grpc_port}", f"http://{host}:{rest_port}", log_path, cmd,
                          owned_dir, cpus, sorted(paths))


class ModelServers:
    """One model server process per model (see :func:`start_model_servers`); ``stop()`` ends them all."""

    def __init__(self, servers: Mapping[str, BackendProcess]):
        self.servers = dict(servers)

    @property
    def ar(self) -> BackendProcess:
        return self.servers[F.AR_MODEL_NAME]

    @property
    def cr(self) -> BackendProcess:
        return self.servers[F.CR_MODEL_NAME]

    @property
    def kind(self) -> str:
        return self.ar.kind

    @property
    def addresses(self) -> Dict[str, str]:
        """Model → gRPC address of its server."""
        return {m: s.grpc_address for m, s in self.servers.items()}

    @property
    def processes(self) -> List[BackendProcess]:
        return list(self.servers.values())

    def wait_until_available(self, timeout: float = 120.0) -> Dict[str, int]:
        """Waits until each server reports its model AVAILABLE; returns model → version."""
        deadline = time.monotonic() + timeout
        versions = {}
        for model, server in self.servers.items():
            versions.update(server.wait_until_available([model], timeout=max(1.0, deadline - time.monotonic())))
        return versions

    def stop(self, grace: float = 10.0) -> None:
        for server in self.servers.values():
            server.stop(grace)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_model_servers(serving_root: str, *, kind: str = "auto", pin_cpus: bool = False,
                        **kwargs) -> ModelServers:
    """Starts one server for ``ar`` and one for ``cr`` under ``serving_root`` (Peri-CR's layout).

    With ``pin_cpus`` each server gets its own share of this process's CPUs (:func:`split_cpus`), so
    the concurrent AR and CR calls never run on the same core. Other keyword arguments go to
    :func:`start_backend` for both servers. If the second server fails to start the first is stopped.
    """
    models = (F.AR_MODEL_NAME, F.CR_MODEL_NAME)
    cpu_groups = split_cpus(len(models)) if pin_cpus else [None] * len(models)
    servers: Dict[str, BackendProcess] = {}
    try:
        for model, cpus in zip(models, cpu_groups):
            servers[model] = start_backend(model_base_paths={model: os.path.join(serving_root, model)},
                                           kind=kind, cpus=cpus, **kwargs)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return ModelServers(servers)


SPLIT, SHARED = "split", "shared"
LAYOUTS = (SPLIT, SHARED)


def start_servers(serving_root: str, layout: str = SPLIT, *, pin_cpus: bool = False, **kwargs):
    """``layout="split"``: :func:`start_model_servers`; ``"shared"``: one :func:`start_backend` for both."""
    if layout == SPLIT:
        return start_model_servers(serving_root, pin_cpus=pin_cpus, **kwargs)
    if layout == SHARED:
        if pin_cpus:
            raise ValueError("pin_cpus needs the split layout (one server per model)")
        return start_backend(serving_root, **kwargs)
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
