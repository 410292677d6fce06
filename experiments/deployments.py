"""How the harness reaches the router: over HTTP to real processes (the reference), or in this process.

A *deployment* is one AR and one CR model behind one router; arms that serve the same two models share it
(the mode travels in each request). Each kind ranks an encoded JSON request and returns the response and the
round trip as the harness saw it:

* :class:`HttpDeployment` -- one model server process per model (:func:`serving.backend.start_backend`:
  TF Serving when on PATH, else the stand-in) and the router as its own process
  (``python -m serving.router``), requests over HTTP (:class:`serving.router.RouterClient`): what production
  runs, and the reference.
* :class:`InProcessDeployment` -- the same router core (:class:`serving.router.PeriCRRouter`) in front of
  the same SavedModel versions loaded here (:class:`serving.inprocess.InProcessServingClient`); the request
  goes through the same JSON decoding, so both answer identically (a test checks it), without two process
  hops: for sweeps.
* :class:`NoopDeployment` -- the router core in front of models that answer at once
  (:class:`serving.inprocess.NoopServingClient`): what is left is the harness's and the router's own cost.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, Mapping, Optional, Tuple

import orjson

import features as F
from serving import backend as B
from serving.inprocess import InProcessServingClient, NoopServingClient
from serving.router import PeriCRRouter, RouterClient, RouterConfig
from serving.router.traffic_split import TrafficSplit

# Generous deadlines: on a shared 2-core machine a model call can take a while, and a late CR would make
# the response degraded (a fallback creative) rather than slow.
BACKEND_TIMEOUT_MS = 20_000.0


class _RouterInProcess:
    """Ranks by calling :meth:`PeriCRRouter.rank` on the decoded body (as the HTTP handler does)."""

    router: PeriCRRouter

    def rank(self, body: bytes) -> Tuple[Dict[str, Any], float]:
        t0 = time.perf_counter()
        response = self.router.rank(orjson.loads(body))
        return response, (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        self.router.close()


def _labels(versions: Optional[Mapping[str, int]], label: Optional[str]) -> Dict[str, Dict[str, int]]:
    """model -> {label: version}: the label names each model's served version."""
    if label is None:
        return {}
    missing = [m for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME) if m not in (versions or {})]
    if missing:
        raise ValueError(f"label {label!r}: needs the version it names for {missing}")
    return {m: {label: versions[m]} for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)}


def _split(label: Optional[str]) -> Optional[TrafficSplit]:
    """Every user to ``label`` (a split with no canary share), or ``None``: the latest versions."""
    return None if label is None else TrafficSplit(stable_label=label, canary_label=f"{label}_canary")


class InProcessDeployment(_RouterInProcess):
    """The router core and the served SavedModels (of two model base paths), in-process: the latest
    versions, or ``versions`` (model name -> version), addressed by ``label`` when given."""

    def __init__(self, ar_path: str, cr_path: str, versions: Optional[Mapping[str, int]] = None,
                 label: Optional[str] = None):
        versions, labels = dict(versions or {}), _labels(versions, label)
        clients = {m: InProcessServingClient({m: p}, {m: versions[m]} if m in versions else None,
                                             {m: labels[m]} if m in labels else None)
                   for m, p in ((F.AR_MODEL_NAME, ar_path), (F.CR_MODEL_NAME, cr_path))}
        self.router = PeriCRRouter(
            RouterConfig(ar_timeout_ms=BACKEND_TIMEOUT_MS, cr_timeout_ms=BACKEND_TIMEOUT_MS,
                         traffic_split=_split(label)),
            ar_client=clients[F.AR_MODEL_NAME], cr_client=clients[F.CR_MODEL_NAME])


class NoopDeployment(_RouterInProcess):
    """The router core in front of models that answer a constant score at once."""

    def __init__(self):
        client = NoopServingClient()
        self.router = PeriCRRouter(RouterConfig(), ar_client=client, cr_client=client)


class HttpDeployment:
    """Model server processes (one per model) and a router process; :meth:`rank` posts to ``/v1/rank``.

    Args:
      ar_path, cr_path: model base paths (directories of integer versions) served as ``ar`` and ``cr``.
      versions, label: as :class:`InProcessDeployment` (the servers' models.config serves those versions
        under the label, the router addresses both models by it).
      log_dir: where the servers' and the router's output goes.
      kind: the model server (:data:`serving.backend.KINDS`).
      timeout: seconds to wait for the models and the router to be ready.
    """

    def __init__(self, ar_path: str, cr_path: str, log_dir: str, kind: str = "auto", timeout: float = 300.0,
                 versions: Optional[Mapping[str, int]] = None, label: Optional[str] = None):
        os.makedirs(log_dir, exist_ok=True)
        self.servers = []
        self.router_process = None
        versions, labels = dict(versions or {}), _labels(versions, label)
        split = _split(label)
        label_flags = [] if split is None else ["--stable-label", split.stable_label,
                                                "--canary-label", split.canary_label]
        try:
            for model, path in ((F.AR_MODEL_NAME, ar_path), (F.CR_MODEL_NAME, cr_path)):
                self.servers.append(B.start_backend(
                    model_base_paths={model: path}, kind=kind, log_dir=log_dir,
                    versions={model: versions[model]} if model in versions else None,
                    labels={model: labels[model]} if model in labels else None))
            for server in self.servers:
                server.wait_until_available(server.models, timeout=timeout)
            port = B.free_port()
            self.url = f"http://127.0.0.1:{port}"
            ar, cr = (s.grpc_address for s in self.servers)
            self.router_log = os.path.join(log_dir, f"router-{port}.log")
            self.router_process = B.spawn(
                [sys.executable, "-m", "serving.router", "--ar-address", ar, "--cr-address", cr, "--port", str(port),
                 "--ar-timeout-ms", str(BACKEND_TIMEOUT_MS), "--cr-timeout-ms", str(BACKEND_TIMEOUT_MS),
                 "--log-level", "WARNING"] + label_flags, self.router_log)
            self.client = RouterClient(self.url, timeout=60.0)
            self._wait_ready(timeout)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Optional[Exception] = None
        while time.monotonic() < deadline:
            if self.router_process.poll() is not None:
                raise RuntimeError(f"the router exited with code {self.router_process.returncode}; see "
                                   f"{self.router_log}")
            try:
                self.client.readyz()
                return
            except Exception as e:  # not listening yet (a connection error), or models not AVAILABLE (503)
                last = e
            time.sleep(0.3)
        raise TimeoutError(f"the router at {self.url} was not ready after {timeout:.0f} s: {last}")

    def rank(self, body: bytes) -> Tuple[Dict[str, Any], float]:
        t0 = time.perf_counter()
        response = self.client.rank(body)
        return response, (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        if self.router_process is not None:
            B.stop_process(self.router_process)
            self.router_process = None
        for server in self.servers:
            server.stop()
        self.servers = []
