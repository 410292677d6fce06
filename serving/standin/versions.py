"""The versions of one model: which one serves, the state of each, and the swap to a new one.

This follows TF Serving's file-system source with the *latest* version policy (``num_versions: 1``).
A poll lists the base path's version directories (integer names holding ``saved_model.pb`` or
``saved_model.pbtxt``); when the aspired (highest) version is not the serving one, it is loaded fully
while the old one keeps serving; then new requests go to the new version, the old one is marked
``UNLOADING``, requests already running on it finish, and it is released (``END``). A version that fails
to load is marked ``END`` with the error, the serving version stays, and the load is retried on later
polls (at most ``max_load_retries`` more times). An empty base path leaves the serving version loaded.

States are ``GetModelStatus``'s: ``LOADING`` → ``AVAILABLE`` → ``UNLOADING`` → ``END``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Callable, Dict, List, Optional

import grpc

from serving import protocol as P
from serving.standin.servable import SAVED_MODEL_FILES, Servable

log = logging.getLogger("serving.standin")

Loader = Callable[[str, int, str], Servable]  # (model name, version, version directory) -> servable


def servable_not_found(name: str, version: Optional[int]) -> P.ServingError:
    """TF Serving's error for a request to a model or version that is not being served."""
    spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return P.ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec}")


class ModelVersions:
    """The versions of the model ``name`` under ``base_path``."""

    def __init__(self, name: str, base_path: str, max_load_retries: int):
        self.name = name
        self.base_path = base_path
        self.max_load_retries = max_load_retries
        self.current: Optional[Servable] = None
        self.states: Dict[int, P.VersionStatus] = {}
        self._attempts: Dict[int, int] = {}
        self._cond = threading.Condition()

    def ready_versions(self) -> List[int]:
        """Version directories under the base path that hold a SavedModel, ascending."""
        try:
            names = os.listdir(self.base_path)
        except OSError:
            return []
        return sorted(int(n) for n in names if n.isdigit() and any(
            os.path.exists(os.path.join(self.base_path, n, f)) for f in SAVED_MODEL_FILES))

    def _set(self, version: int, state: str, code: str = "OK", message: str = "") -> None:
        with self._cond:
            self.states[version] = P.VersionStatus(version, state, code, message)

    def poll(self, load: Loader) -> None:
        """Loads the aspired (highest) version if it is not the serving one, then retires the old one."""
        versions = self.ready_versions()
        if not versions:
            return
        aspired = versions[-1]
        if self.current is not None and self.current.version == aspired:
            return
        if self._attempts.get(aspired, 0) > self.max_load_retries:
            return
        self._attempts[aspired] = self._attempts.get(aspired, 0) + 1
        self._set(aspired, "LOADING")
        log.info("loading %s version %d from %s", self.name, aspired, self.base_path)
        try:
            new = load(self.name, aspired, os.path.join(self.base_path, str(aspired)))
        except Exception as e:  # keep serving the old version; retried on a later poll
            log.error("failed to load %s version %d: %s", self.name, aspired, e)
            self._set(aspired, "END", "UNKNOWN", f"failed to load: {e}")
            return
        with self._cond:
            old, self.current = self.current, new
            self.states[aspired] = P.VersionStatus(aspired, "AVAILABLE")
            if old is not None:
                self.states[old.version] = P.VersionStatus(old.version, "UNLOADING")
        log.info("%s version %d is AVAILABLE", self.name, aspired)
        if old is not None:
            with self._cond:  # requests already running on the old version finish first
                self._cond.wait_for(lambda: old.inflight == 0, timeout=60.0)
                self.states[old.version] = P.VersionStatus(old.version, "END")
            log.info("%s version %d unloaded", self.name, old.version)

    @contextlib.contextmanager
    def use(self, version: Optional[int]):
        """The serving servable (``version``: it must be that one), held until the request is done."""
        with self._cond:
            servable = self.current
            if servable is None or (version is not None and servable.version != version):
                raise servable_not_found(self.name, version)
            servable.inflight += 1
        try:
            yield servable
        finally:
            with self._cond:
                servable.inflight -= 1
                if servable.inflight == 0:
                    self._cond.notify_all()

    def status(self, version: Optional[int]) -> List[P.VersionStatus]:
        """``GetModelStatus``: every version known (newest first), or only ``version``."""
        with self._cond:
            states = dict(self.states)
        if not states:
            raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                 f"Could not find any versions of model {self.name}")
        if version is not None:
            if version not in states:
                raise P.ServingError(grpc.StatusCode.NOT_FOUND,
                                     f"Could not find version {version} of model {self.name}")
            return [states[version]]
        return [states[v] for v in sorted(states, reverse=True)]
