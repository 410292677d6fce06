""":class:`ModelServerStandIn`: the models' versions behind the gRPC and REST APIs, and their lifecycle."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Dict, List, Mapping, Optional, Sequence

import grpc
import numpy as np

from serving import protocol as P
from serving import runtime
from serving.standin.grpc_api import make_grpc_server
from serving.standin.metrics import RequestMetrics
from serving.standin.rest_api import make_http_server
from serving.standin.servable import Servable, load_servable
from serving.standin.versions import ModelVersions, servable_not_found

log = logging.getLogger("serving.standin")


class ModelServerStandIn:
    """Serves pushed SavedModels over TF Serving's gRPC and REST APIs (a local stand-in, not TF Serving).

    Args:
      model_base_paths: model name → base path holding integer version directories.
      port / rest_port: gRPC and REST ports (0 picks a free one; see :attr:`port`, :attr:`rest_port`).
      host: address to bind (loopback by default).
      poll_seconds: how often base paths are polled for new versions (TF Serving's
        ``--file_system_poll_wait_seconds``); 0 disables polling after the initial load.
      intra_op_threads / inter_op_threads: TF thread pools (set before TF runs its first op).
      enable_batching: apply TF Serving's batching-session input check (equal 0th dimensions).
      max_load_retries: how many more times a version that failed to load is tried.
      grpc_workers: threads answering gRPC calls.
    """

    def __init__(self, model_base_paths: Mapping[str, str], *, port: int = 0, rest_port: int = 0,
                 host: str = "127.0.0.1", poll_seconds: float = 1.0,
                 intra_op_threads: Optional[int] = None, inter_op_threads: Optional[int] = None,
                 enable_batching: bool = False, max_load_retries: int = 5, grpc_workers: int = 16):
        if not model_base_paths:
            raise ValueError("model_base_paths is empty: give at least one name=base_path")
        runtime.configure_tf_threads(intra_op_threads, inter_op_threads)
        self._models = {name: ModelVersions(name, os.path.abspath(path), max_load_retries)
                        for name, path in model_base_paths.items()}
        self._host = host
        self._requested_ports = (port, rest_port)
        self._poll_seconds = poll_seconds
        self._enable_batching = enable_batching
        self._grpc_workers = grpc_workers
        self._metrics = RequestMetrics()
        self._stop = threading.Event()
        self._grpc_server = None
        self._http_server = None
        self._threads: List[threading.Thread] = []
        self.port: Optional[int] = None
        self.rest_port: Optional[int] = None

    # -- lifecycle
    def start(self) -> "ModelServerStandIn":
        """Loads the latest version of every model, then starts the gRPC and REST servers and polling."""
        self.poll_once()
        self._grpc_server, self.port = make_grpc_server(self, self._host, self._requested_ports[0],
                                                        self._grpc_workers)
        self._http_server = make_http_server(self, self._host, self._requested_ports[1])
        self.rest_port = self._http_server.server_address[1]
        self._grpc_server.start()
        self._threads = [threading.Thread(target=self._http_server.serve_forever, name="standin-rest",
                                          daemon=True)]
        if self._poll_seconds and self._poll_seconds > 0:
            self._threads.append(threading.Thread(target=self._poll_loop, name="standin-poll", daemon=True))
        for t in self._threads:
            t.start()
        log.info("model server stand-in: gRPC %s:%d, REST %s:%d, models %s", self._host, self.port,
                 self._host, self.rest_port, {n: m.base_path for n, m in self._models.items()})
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stops polling and both servers; requests in flight get ``grace`` seconds to finish."""
        self._stop.set()
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait(grace + 1.0)
        for t in self._threads:
            t.join(timeout=grace + 5.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def grpc_address(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self._host}:{self.rest_port}"

    def poll_once(self) -> None:
        """One pass of the file-system source over every base path (loads and retires versions)."""
        for versions in self._models.values():
            versions.poll(load_servable)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll_once()
            except Exception:  # a poll must never kill the poller
                log.exception("poll failed")

    # -- the APIs (protocol-neutral)
    def model_status(self, name: str, version: Optional[int] = None) -> List[P.VersionStatus]:
        if name not in self._models:
            raise P.ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        return self._models[name].status(version)

    @contextlib.contextmanager
    def serving(self, name: str, version: Optional[int]):
        """The servable for a request, held until the request is done."""
        if name not in self._models:
            raise servable_not_found(name, version)
        with self._models[name].use(version) as servable:
            yield servable

    def predict(self, servable: Servable, signature: str, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        """Checks ``inputs`` against the signature (as TF Serving does) and runs it."""
        return servable.predict(signature, inputs, output_filter, self._enable_batching)

    def record(self, model: str, api: str, entrypoint: str, status: str, started: float) -> None:
        """Counts a request that began at ``started`` (``time.perf_counter()``) and ended now."""
        self._metrics.record(model, api, entrypoint, status, time.perf_counter() - started)

    def metrics_text(self) -> str:
        return self._metrics.render()
