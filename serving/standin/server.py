""":class:`ModelServerStandIn`: TF Serving's ``ServerCore`` — the configured models, their labels, polling.

Start-up is TF Serving's: the config is checked and applied (:meth:`ModelServerStandIn.reload_config`),
every model's aspired versions are loaded, and only then do the gRPC and REST servers start; if a model's
newest version did not become AVAILABLE the start fails with ``UNKNOWN: N servable(s) did not become
available: {...}``. Then two threads poll: the base paths every ``poll_seconds`` (new versions load,
retired ones unload, see :mod:`serving.standin.versions`) and ``model_config_file`` every
``config_poll_seconds``, re-applied when it changed; an edit that does not parse or does not pass the
checks is logged and the running config keeps serving.

Version labels (``version_labels`` of a model's config) are resolved per request, as
``ServerCore::ServableRequestFromModelSpec`` does: an unknown label is ``INVALID_ARGUMENT: Unrecognized
servable version label: x``. A config may only point a label at a version that is AVAILABLE — else the
whole config is refused with ``FAILED_PRECONDITION: Request to assign label to version N of model m,
which is not currently available for inference`` — unless ``allow_version_labels_for_unavailable_models``
and the label is new. So a label moves atomically between two loaded versions, and a canary or a
rollback never fails a request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Dict, List, Mapping, Optional

import grpc

from serving import protocol as P
from serving.standin import model_config as MC
from serving.standin.grpc_api import make_grpc_server
from serving.standin.metrics import RequestMetrics
from serving.standin.options import ServerOptions
from serving.standin.predict import Runtime
from serving.standin.rest_api import make_http_server
from serving.standin.servable import session_config
from serving.standin.versions import ModelVersions, list_versions, servable_not_found
from serving.standin.warmup import load_servable

log = logging.getLogger("serving.standin")


class ModelServerStandIn:
    """Serves SavedModels over TF Serving's gRPC and REST APIs (a local stand-in, not TF Serving).

    Give the models as exactly one of ``model_base_paths`` (model name → base path, latest version
    policy), ``model_config`` (a ``ModelServerConfig`` or its text) or ``model_config_file`` (a keyword of
    :class:`~serving.standin.options.ServerOptions`). Other keywords are :class:`ServerOptions` fields,
    applied over ``options``::

        with ModelServerStandIn({"ar": "/srv/push/ar"}, poll_seconds=0) as server:
            server.grpc_address, server.rest_url
    """

    def __init__(self, model_base_paths: Optional[Mapping[str, str]] = None, *, model_config=None,
                 options: Optional[ServerOptions] = None, **fields):
        self.options = dataclasses.replace(options or ServerOptions(), **fields)
        given = [x is not None for x in (model_base_paths, model_config, self.options.model_config_file)]
        if sum(given) != 1:
            raise ValueError("give exactly one of model_base_paths, model_config and model_config_file")
        if model_base_paths is not None and not model_base_paths:
            raise ValueError("model_base_paths is empty: give at least one name=base_path")
        if isinstance(model_config, str):
            model_config = MC.parse_model_server_config(model_config)
        self._initial_config = (MC.config_for_base_paths(model_base_paths) if model_base_paths is not None
                                else model_config)
        o = self.options
        self._metrics = RequestMetrics()
        self.runtime = Runtime(o.method_name_check, o.max_batch_size, self._metrics.record_runtime)
        self._session_config = session_config(o.intra_op_threads, o.inter_op_threads, o.session_parallelism)
        self._models: Dict[str, ModelVersions] = {}  # every model configured so far (removed ones END)
        self._config = None  # the running ModelServerConfig
        self._labels: Dict[str, Dict[str, int]] = {}  # model -> label -> version; replaced, never mutated
        self._manager = threading.RLock()  # one reload or poll at a time
        self._stop = threading.Event()
        self._grpc_server = self._http_server = None
        self._threads: List[threading.Thread] = []
        self.port: Optional[int] = None
        self.rest_port: Optional[int] = None

    # ------------------------------------------------------------------------------------- lifecycle
    def start(self) -> "ModelServerStandIn":
        """Applies the config, loads every model, then starts the gRPC and REST servers and polling.

        Raises :class:`~serving.protocol.ServingError` as TF Serving fails to start (a config that does
        not parse or pass its checks, a model whose newest version did not load).
        """
        config = self._initial_config
        if config is None:
            config = MC.read_model_server_config(self.options.model_config_file)
        self.reload_config(config)
        self._await_initial_load()
        o = self.options
        self._grpc_server, self.port = make_grpc_server(self, o.host, o.port, o.grpc_workers)
        if o.rest_port is not None:
            self._http_server = make_http_server(self, o.host, o.rest_port)
            self.rest_port = self._http_server.server_address[1]
            self._threads.append(threading.Thread(target=self._http_server.serve_forever, name="standin-rest",
                                                  daemon=True))
        self._grpc_server.start()
        if o.poll_seconds > 0:
            self._threads.append(threading.Thread(target=self._every, args=(o.poll_seconds, self.poll_once),
                                                  name="standin-fs-poll", daemon=True))
        if o.model_config_file and o.config_poll_seconds > 0:
            self._threads.append(threading.Thread(target=self._every,
                                                  args=(o.config_poll_seconds, self.poll_config_file_once),
                                                  name="standin-config-poll", daemon=True))
        for t in self._threads:
            t.start()
        log.info("Running gRPC ModelServer at %s:%d%s", o.host, self.port,
                 f"; HTTP/REST API at {o.host}:{self.rest_port}" if self.rest_port else "")
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stops polling and both servers (requests in flight get ``grace`` seconds), then unloads."""
        self._stop.set()
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait(grace + 1.0)
        for t in self._threads:
            t.join(timeout=grace + 5.0)
        with self._manager:
            for versions in self._models.values():
                versions.unload_all()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def grpc_address(self) -> str:
        return f"{self.options.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.options.host}:{self.rest_port}"

    def _every(self, seconds: float, fn) -> None:
        while not self._stop.wait(seconds):
            try:
                fn()
            except Exception:  # a poll must never kill the poller
                log.exception("poll failed")

    def _await_initial_load(self) -> None:
        """Waits as TF Serving does until every model's newest version is AVAILABLE or END."""
        while not all(self._models[m.name].settled() for m in self._active_models()):
            if self._stop.wait(max(self.options.poll_seconds, 1.0)):
                return
            self.poll_once()
        failed = [(m.name, self._models[m.name].newest_state()) for m in self._active_models()
                  if self._models[m.name].newest_state().state != "AVAILABLE"]
        if failed:
            details = "".join(f"{{{{name: {name} version: {s.version}}}"
                              + (f" due to error: {s.error_code}: {s.error_message}" if s.error_code != "OK"
                                 else "") + "}, " for name, s in failed)
            raise P.ServingError(grpc.StatusCode.UNKNOWN,
                                 f"{len(failed)} servable(s) did not become available: {{{details}}}")

    # ------------------------------------------------------------------------------------ the config
    def _active_models(self) -> list:
        return [] if self._config is None else list(self._config.model_config_list.config)

    def reload_config(self, config) -> None:
        """Applies a ``ModelServerConfig`` as ``ServerCore::ReloadConfig``; raises ``ServingError`` and
        changes nothing when it fails the checks (the running config keeps serving)."""
        with self._manager:
            models = MC.check_config(config, self._config)
            if config.WhichOneof("config") is None:
                log.info("Taking no action for empty config.")
                return
            labels = self._checked_labels(models)
            removed = [m.name for m in self._active_models() if m.name not in {x.name for x in models}]
            self._config = type(config)()
            self._config.CopyFrom(config)
            for model in models:
                log.info("(Re-)adding model: %s", MC.describe(model))
                if model.name in self._models:
                    self._models[model.name].model = model
                else:
                    self._models[model.name] = ModelVersions(
                        model, self._load, self.options.max_load_retries,
                        self.options.load_retry_interval_seconds, self._stop)
            self._labels = labels
            for name in removed:
                log.info("Removing model: %s", name)
                self._models[name].unaspire_all()
                self._models[name].reconcile()
            self.poll_once()

    def _checked_labels(self, models) -> Dict[str, Dict[str, int]]:
        """``UpdateModelVersionLabelMap``: every label of ``models`` names an AVAILABLE version."""
        out: Dict[str, Dict[str, int]] = {}
        for model in models:
            versions = self._models.get(model.name)
            available = set(versions.available()) if versions else set()
            for label, version in sorted(model.version_labels.items()):
                existing = self._labels.get(model.name, {}).get(label)
                allowed = (self.options.allow_version_labels_for_unavailable_models
                           and existing in (None, version))
                if not allowed and version not in available:
                    raise P.ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                                         f"Request to assign label to version {version} of model "
                                         f"{model.name}, which is not currently available for inference")
                out.setdefault(model.name, {})[label] = version
        return out

    def poll_config_file_once(self) -> bool:
        """Re-reads ``model_config_file`` and applies it if it changed; True if applied. Failures are
        logged as TF Serving logs them and keep the running config."""
        path = self.options.model_config_file
        try:
            config = MC.read_model_server_config(path)
        except P.ServingError as e:
            if isinstance(e, MC.ConfigParseError):
                log.error("%s", e.parse_error)
            log.error("Failed to read ModelServerConfig file: %s", e.message)
            return False
        if config == self._config:
            return False
        try:
            self.reload_config(config)
        except P.ServingError as e:
            log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", e.message)
            return False
        return True

    def poll_once(self) -> None:
        """One pass of the file-system source over every configured model (loads and unloads versions).

        As TF Serving's source, a base path that cannot be listed fails the whole pass (logged)."""
        with self._manager:
            try:
                on_disk = {m.name: list_versions(m.name, m.base_path) for m in self._active_models()}
            except P.ServingError as e:
                log.error("FileSystemStoragePathSource encountered a filesystem access error: %s", e.message)
                return
            for m in self._active_models():
                versions = self._models[m.name]
                versions.set_aspired(on_disk[m.name])
                versions.reconcile()

    def _load(self, name: str, version: int, path: str):
        o = self.options
        return load_servable(name, version, path, self.runtime, self._session_config, o.saved_model_tags,
                             o.enable_model_warmup, o.warmup_iterations)

    # ---------------------------------------------------------------------------- the APIs' lookups
    def label_version(self, name: str, label: str) -> int:
        version = self._labels.get(name, {}).get(label)
        if version is None:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
        return version

    @contextlib.contextmanager
    def servable(self, name: str, version: Optional[int] = None, label: Optional[str] = None):
        """``GetServableHandle``: the version a request names (latest, a number or a label), held until
        the request is done."""
        if not name:
            raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        if label is not None:
            version = self.label_version(name, label)
        versions = self._models.get(name)
        if versions is None:
            raise servable_not_found(name, version)
        with versions.use(version) as bundle:
            yield bundle

    def model_status(self, name: str, version: Optional[int] = None) -> List[P.VersionStatus]:
        """``GetModelStatus``: every version of ``name`` (newest first), or only ``version``."""
        versions = self._models.get(name)
        if versions is None:
            raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                 f"Could not find any versions of model {name}" if version is None
                                 else f"Could not find version {version} of model {name}")
        return versions.status(version)

    def labels(self, name: str) -> Dict[str, int]:
        """The version labels of ``name`` now being served."""
        return dict(self._labels.get(name, {}))

    def record(self, model: str, api: str, entrypoint: str, status: str, started: float) -> None:
        """Counts a request that began at ``started`` (``time.perf_counter()``) and ended now."""
        self._metrics.record_request(model, api, entrypoint, status, time.perf_counter() - started)

    def metrics_text(self) -> str:
        return self._metrics.render()
