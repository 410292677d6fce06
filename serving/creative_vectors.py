"""The two-tower CR from precomputed creative vectors: a store of creative vectors per model version.

A two-tower CR (``trainer.dssm_export``) scores ``pctr_c = sigmoid(s <u, c> + b)``, the creative vector ``c``
independent of the user. Its SavedModel has, beside the CR raw signature (creative features in, ``pctr_c``
out), ``features.CREATIVE_TOWER_SIGNATURE`` (ad + creative features -> ``creative_vector``) and
``features.CREATIVE_VECTORS_SIGNATURE`` (user features + ``creative_vector`` -> ``pctr_c``). A
:class:`CreativeVectorCache` keeps the vectors by (model version, creative id), computes those it lacks
through the creative tower of the version that will score them, and scores a request with one call of the
vectors signature: the model server then runs the user tower once and a dot product per row, not Transform
and the tower over every raw row. Vectors are never mixed across versions: a vector belongs to the tower
that made it, so a newly pushed version starts an empty store (the one before it is kept, for a canary or a
rollback, up to ``max_versions``).

A creative id names one creative of one ad (as in the logs), so it keys the ad + creative features the
tower reads. Usage, with any :class:`serving.clients.ServingClient`::

    cache = CreativeVectorCache(client)               # model features.CR_MODEL_NAME
    result = cache.predict(cr_inputs)                 # features.CR_SERVING_INPUTS, as for predict_raw
    result.outputs["pctr_c"], result.version
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Tuple, Union

import grpc
import numpy as np

import features as F
from serving.clients import PredictResult, ServingClient
from serving.protocol import ServingError

TOWER_INPUTS = F.CR_AD_FEATURES + F.CREATIVE_FEATURES


class _VersionStore:
    """Creative vectors of one model version: sorted ids and their rows (vectorised look-ups)."""

    def __init__(self, dim: int):
        self.ids = np.zeros([0], np.int64)
        self.vectors = np.zeros([0, dim], np.float32)

    def find(self, ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(row of each id in ``vectors``, whether it is there)."""
        pos = np.minimum(np.searchsorted(self.ids, ids), max(len(self.ids) - 1, 0))
        return pos, (self.ids[pos] == ids) if len(self.ids) else np.zeros(ids.shape, bool)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.concatenate([self.ids, ids])
        order = np.argsort(ids, kind="stable")
        self.ids, self.vectors = ids[order], np.concatenate([self.vectors, vectors])[order]


class CreativeVectorCache:
    """Scores CR requests through a two-tower CR's precomputed creative vectors (thread-safe).

    Args:
      client: the model server's client.
      model: the two-tower CR's model name.
      max_versions: versions whose vectors are kept (least recently used dropped first).
      max_creatives: creatives kept per version; beyond it the version's store starts again (a bound on
        memory, not an eviction policy: a catalogue should fit).
      timeout: seconds per model call.
    """

    def __init__(self, client: ServingClient, model: str = F.CR_MODEL_NAME, max_versions: int = 2,
                 max_creatives: int = 1_000_000, timeout: float = 2.0):
        if max_versions < 1 or max_creatives < 1:
            raise ValueError(f"max_versions and max_creatives must be >= 1, got {max_versions}, {max_creatives}")
        self.client, self.model, self.timeout = client, model, timeout
        self.max_versions, self.max_creatives = max_versions, max_creatives
        self._stores: "OrderedDict[int, _VersionStore]" = OrderedDict()
        self._last_version: Dict[Optional[str], int] = {}  # by version label (None: the latest)
        self._lock = threading.Lock()
        self.tower_rows = 0  # creatives sent through the creative tower so far

    # -- the store
    def _store(self, version: int, dim: int) -> _VersionStore:
        store = self._stores.get(version)
        if store is None or len(store.ids) > self.max_creatives:
            store = self._stores[version] = _VersionStore(dim)
        self._stores.move_to_end(version)
        while len(self._stores) > self.max_versions:
            self._stores.popitem(last=False)
        return store

    def _tower(self, rows: Mapping[str, np.ndarray], version: Optional[Union[int, str]]) -> PredictResult:
        result = self.client.start_predict(self.model, rows, F.CREATIVE_TOWER_SIGNATURE, version,
                                           timeout=self.timeout).result(self.timeout)
        with self._lock:
            self.tower_rows += len(rows[F.CREATIVE_ID])
        return result

    def vectors(self, creatives: Mapping[str, np.ndarray], version: int) -> np.ndarray:
        """``[B, d]`` vectors of ``version``'s creative tower for the rows of ``creatives`` (the ad and creative
        columns of a CR request), those not yet known computed with one creative-tower call."""
        ids = np.asarray(creatives[F.CREATIVE_ID], np.int64)
        with self._lock:
            store = self._stores.get(version)
            pos, hit = store.find(ids) if store is not None else (None, np.zeros(ids.shape, bool))
            if hit.all():
                self._stores.move_to_end(version)
                return store.vectors[pos]
        new_ids, first = np.unique(ids[~hit], return_index=True)
        rows = np.flatnonzero(~hit)[first]
        computed = self._tower({n: np.asarray(creatives[n])[rows] for n in TOWER_INPUTS}, version)
        fresh = np.asarray(computed.outputs[F.CREATIVE_VECTOR], np.float32)
        with self._lock:
            store = self._store(version, fresh.shape[1])
            _, known = store.find(new_ids)
            store.add(new_ids[~known], fresh[~known])
            pos, hit = store.find(ids)
            assert hit.all()
            return store.vectors[pos]

    # -- scoring
    def _discover(self, creatives: Mapping[str, np.ndarray], address: Optional[str]) -> int:
        """Sends the request's creatives through the tower ``address`` reaches; returns the version that answered."""
        first = self._tower(creatives, address)
        if first.version is None:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"{self.model}: the server does not report the version that answered; pass "
                               "version=<number> to score from creative vectors")
        ids, rows = np.unique(np.asarray(creatives[F.CREATIVE_ID], np.int64), return_index=True)
        fresh = np.asarray(first.outputs[F.CREATIVE_VECTOR], np.float32)
        with self._lock:
            store = self._store(first.version, fresh.shape[1])
            _, known = store.find(ids)
            store.add(ids[~known], fresh[rows][~known])
        return first.version

    def _score(self, user, creatives, vectors_of: int, address: Optional[Union[int, str]]) -> PredictResult:
        vectors = self.vectors(creatives, vectors_of)
        return self.client.start_predict(self.model, {**user, F.CREATIVE_VECTOR: vectors},
                                         F.CREATIVE_VECTORS_SIGNATURE, address,
                                         timeout=self.timeout).result(self.timeout)

    def predict(self, inputs: Mapping[str, np.ndarray], version: Optional[Union[int, str]] = None) -> PredictResult:
        """``pctr_c`` for a CR request (``features.CR_SERVING_INPUTS``; ``ad_hist_ctr`` may be left out).

        ``version``: a number, a label, or ``None`` (the latest). Without a number, the vectors of the version
        that last answered under that label are sent; if another version answers (one was pushed), its own
        vectors are computed and that version scores the request again, so a score never mixes towers. (The
        server must report the answering version, as gRPC does; over REST pass a number.)
        """
        missing = [n for n in F.CR_USER_FEATURES + TOWER_INPUTS if n not in inputs]
        if missing:
            raise ValueError(f"{self.model}: missing serving input(s) {missing}")
        user = {n: np.asarray(inputs[n]) for n in F.CR_USER_FEATURES}
        creatives = {n: inputs[n] for n in TOWER_INPUTS}
        if isinstance(version, (int, np.integer)):
            return self._score(user, creatives, int(version), int(version))
        pinned = self._last_version.get(version)
        if pinned is None:
            pinned = self._discover(creatives, version)
        try:
            result = self._score(user, creatives, pinned, version)
        except ServingError as e:  # the version whose vectors were to be filled is no longer served
            if e.code != grpc.StatusCode.NOT_FOUND:
                raise
            pinned = self._discover(creatives, version)
            result = self._score(user, creatives, pinned, version)
        if result.version not in (None, pinned):  # another version answered: score again with its vectors
            pinned = result.version
            result = self._score(user, creatives, pinned, pinned)
        self._last_version[version] = pinned
        return result
