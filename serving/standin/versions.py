"""The versions of one model: which ones to serve, loading and unloading them, and their states.

This follows TF Serving's file-system source (``file_system_storage_path_source.cc``) and its
``AvailabilityPreservingPolicy`` manager:

* **Aspired versions.** A poll lists the base path; every child whose name parses as an integer is a
  version (``00000123`` is version 123; a duplicate, such as ``123`` beside it, wins over the earlier
  one). The model's ``model_version_policy`` picks the aspired ones: ``latest { num_versions: N }`` (the
  default, N = 1), ``all``, or ``specific { versions: ... }`` (one not on disk is logged). A missing
  base path is an error and changes nothing; an empty one aspires no version (all are unloaded).
* **Availability preserved.** One action at a time: unload the lowest serving version that is no longer
  aspired — unless that would leave no aspired version serving — else load the highest new aspired one.
  So a new version is loaded fully (warm-up included) while the old one serves, then the old one is
  unloaded; a version that fails to load leaves the old one serving.
* **Loading** retries ``max_load_retries`` times, ``load_retry_interval`` seconds apart, in ``LOADING``;
  then the version is ``END`` with the error (code and message) in its status, and is not tried again
  while it stays aspired. **Unloading** takes new requests off the version (``UNLOADING``), waits for the
  ones running on it, then releases it (``END``).

States are ``GetModelStatus``'s: ``START`` → ``LOADING`` → ``AVAILABLE`` → ``UNLOADING`` → ``END``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from typing import Callable, Dict, List, Optional

import grpc

from serving import protocol as P
from serving.standin.servable import SavedModelBundle, as_serving_error

log = logging.getLogger("serving.standin")

Loader = Callable[[str, int, str], SavedModelBundle]  # (model name, version, version directory)
_VERSION_NAME = re.compile(r"^[+-]?\d+$")
_INT64_MAX = 2 ** 63 - 1


def parse_version(name: str) -> Optional[int]:
    """A directory name as TF Serving reads a version (``safe_strto64``): ``"00000123"`` → 123, else None."""
    if not _VERSION_NAME.match(name):
        return None
    v = int(name)
    return v if -_INT64_MAX - 1 <= v <= _INT64_MAX else None


def servable_not_found(name: str, version: Optional[int]) -> P.ServingError:
    """TF Serving's error for a request to a model or version that is not being served."""
    spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return P.ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec}")


def list_versions(name: str, base_path: str) -> Dict[int, str]:
    """Version → directory name of the integer-named children of ``base_path``.

    Raises ``INVALID_ARGUMENT`` (TF Serving's message) when the base path does not exist.
    """
    try:
        children = sorted(os.listdir(base_path))
    except FileNotFoundError:
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Could not find base path {base_path} for servable {name} with error "
                             f"NOT_FOUND: {base_path} not found") from None
    except OSError as e:
        raise P.ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Could not find base path {base_path} for servable {name} with error {e}") from None
    versions: Dict[int, str] = {}
    for child in children:
        v = parse_version(child)
        if v is None:
            continue
        if v in versions:
            log.warning("Duplicate version directories detected. Version %d will be loaded from %s, %s will be "
                        "ignored.", v, child, versions[v])
        versions[v] = child
    return versions


def aspired_versions(model, on_disk: Dict[int, str]) -> Dict[int, str]:
    """The versions ``model``'s version policy aspires to, out of those ``on_disk``."""
    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice") or "latest"
    if kind == "all":
        aspired = dict(on_disk)
    elif kind == "specific":
        wanted = set(policy.specific.versions)
        for v in sorted(wanted - set(on_disk)):
            log.warning("Version %d of servable %s, which was requested to be served as a 'specific' version "
                        "in the servable's version policy, was not found in the file system", v, model.name)
        aspired = {v: d for v, d in on_disk.items() if v in wanted}
    else:
        keep = sorted(on_disk)[-max(1, policy.latest.num_versions):]
        aspired = {v: on_disk[v] for v in keep}
    if not on_disk:
        log.warning("No versions of servable %s found under base path %s. Did you forget to name your leaf "
                    "directory as a number (eg. '/1/')?", model.name, model.base_path)
    return aspired


class ModelVersions:
    """The versions of one model (a ``ModelConfig``), loaded with ``load``."""

    def __init__(self, model, load: Loader, max_load_retries: int = 5, load_retry_interval: float = 60.0,
                 stop: Optional[threading.Event] = None):
        self.model = model
        self.name = model.name
        self._load = load
        self._max_retries = max(0, int(max_load_retries))
        self._retry_interval = max(0.0, float(load_retry_interval))
        self._stop = stop or threading.Event()
        self._aspired: Dict[int, str] = {}  # version -> directory name
        self._tried: set = set()  # aspired versions a load was attempted for (kept while aspired)
        self._servables: Dict[int, SavedModelBundle] = {}  # AVAILABLE versions
        self._states: Dict[int, P.VersionStatus] = {}
        self._cond = threading.Condition()

    # -- the source
    def set_aspired(self, on_disk: Dict[int, str]) -> None:
        """The versions on disk (from :func:`list_versions`), filtered by the version policy."""
        aspired = aspired_versions(self.model, on_disk)
        with self._cond:
            self._aspired = aspired
            self._tried &= set(aspired)
            for v in aspired:
                if v not in self._tried and v not in self._servables:
                    self._states.setdefault(v, P.VersionStatus(v, "START"))

    def unaspire_all(self) -> None:
        """The model left the config: every version goes."""
        with self._cond:
            self._aspired = {}
            self._tried.clear()

    # -- the manager
    def reconcile(self) -> None:
        """Loads and unloads, one action at a time, until the aspired versions are served."""
        while not self._stop.is_set():
            with self._cond:
                action = self._next_action()
            if action is None:
                return
            kind, version = action
            if kind == "unload":
                self._unload(version)
            else:
                self._load_version(version)

    def _next_action(self):
        aspired = set(self._aspired)
        unaspired_serving = sorted(v for v in self._servables if v not in aspired)
        aspired_serving = any(v in self._servables for v in aspired)
        if unaspired_serving and (not aspired or aspired_serving or len(unaspired_serving) > 1):
            return "unload", unaspired_serving[0]
        new = [v for v in aspired if v not in self._tried and v not in self._servables]
        return ("load", max(new)) if new else None

    def _set(self, version: int, state: str, error: Optional[P.ServingError] = None) -> None:
        with self._cond:
            self._states[version] = P.VersionStatus(
                version, state, error.code.name if error else "OK", error.message if error else "")

    def _load_version(self, version: int) -> None:
        with self._cond:
            self._tried.add(version)
            path = os.path.join(self.model.base_path, self._aspired[version])
        self._set(version, "LOADING")
        log.info("Loading servable version {name: %s version: %d} from %s", self.name, version, path)
        attempt = 0
        while True:
            try:
                servable = self._load(self.name, version, path)
                break
            except Exception as e:  # the error goes into the version's status
                error = as_serving_error(e)
            if attempt >= self._max_retries or self._stop.is_set():
                log.error("Loading servable: {name: %s version: %d} failed: %s: %s", self.name, version,
                          error.code.name, error.message)
                self._set(version, "END", error)
                return
            attempt += 1
            log.warning("Retrying load of {name: %s version: %d} in %.0f s (retry %d of %d) after: %s",
                        self.name, version, self._retry_interval, attempt, self._max_retries, error.message)
            if self._stop.wait(self._retry_interval):
                self._set(version, "END", error)
                return
        with self._cond:
            self._servables[version] = servable
            self._states[version] = P.VersionStatus(version, "AVAILABLE")
        log.info("Successfully loaded servable version {name: %s version: %d}", self.name, version)

    def _unload(self, version: int) -> None:
        with self._cond:
            servable = self._servables.pop(version)
            self._states[version] = P.VersionStatus(version, "UNLOADING")
            # Requests already running on it finish first.
            self._cond.wait_for(lambda: servable.inflight == 0)
            self._states[version] = P.VersionStatus(version, "END")
        servable.close()
        log.info("Done unloading servable version {name: %s version: %d}", self.name, version)

    def unload_all(self) -> None:
        """Releases every version (server shutdown)."""
        for v in sorted(self._servables):
            self._unload(v)

    # -- requests
    def available(self) -> List[int]:
        with self._cond:
            return sorted(self._servables)

    @contextlib.contextmanager
    def use(self, version: Optional[int]):
        """The servable for a request — the highest available version, or exactly ``version`` — held
        until the request is done."""
        with self._cond:
            if version is None:
                servable = self._servables[max(self._servables)] if self._servables else None
            else:
                servable = self._servables.get(version)
            if servable is None:
                raise servable_not_found(self.name, version)
            servable.inflight += 1
        try:
            yield servable
        finally:
            with self._cond:
                servable.inflight -= 1
                if servable.inflight == 0:
                    self._cond.notify_all()

    def status(self, version: Optional[int] = None) -> List[P.VersionStatus]:
        """``GetModelStatus``: every version known (newest first), or only ``version``."""
        with self._cond:
            states = dict(self._states)
        if version is not None:
            if version not in states:
                raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                     f"Could not find version {version} of model {self.name}")
            return [states[version]]
        if not states:
            raise P.ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {self.name}")
        return [states[v] for v in sorted(states, reverse=True)]

    def settled(self) -> bool:
        """The initial load is over: the model has a version and its newest one is AVAILABLE or END."""
        with self._cond:
            return bool(self._states) and self._states[max(self._states)].state in ("AVAILABLE", "END")

    def newest_state(self) -> Optional[P.VersionStatus]:
        with self._cond:
            return self._states[max(self._states)] if self._states else None
