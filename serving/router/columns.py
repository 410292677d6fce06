"""A router request as typed columns, and the checks every request form shares.

Each form of the request — JSON rows or columns (:mod:`serving.router.request`, decoded by
:mod:`serving.router.json_body`) and the binary ``PredictRequest`` (:mod:`serving.router.tensors`) —
first checks its own types and shapes and decodes into :class:`RequestColumns`: one array per feature,
with :class:`Paths` saying how that form names value ``i`` of a column in an error. Then
:func:`validate_columns` checks the values, a whole column at a time (one NumPy pass each: codes inside
their ``features`` domain, ids non-negative, ``ad_hist_ctr`` and ``hist_ctr`` in [0, 1], finite
embeddings, no duplicate ad id, no duplicate creative id within an ad) and returns the
:class:`RankRequest` the router feeds the models from. Errors name the field and the first bad index.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

import features as F

ADS = "ads"
HIST_CTR = "hist_ctr"
AD_FIELDS = F.AD_FEATURES + F.AD_HISTORY_FEATURES
# Ad feature -> the closed range its values must lie in (every other ad feature is an integer code).
AD_FLOAT_RANGES = {F.AD_HIST_CTR: (0.0, 1.0)} if F.AD_HIST_CTR else {}
# Optional per-ad float columns: name -> range. A request gives such a column for every ad or for none;
# given, it is in RankRequest.ads. The ad's CPC bid: with bids the router ranks by eCPM = pctr_ad x ad_bid.
OPTIONAL_AD_FLOATS: Dict[str, tuple] = {F.AD_BID: (0.0, math.inf)} if F.AD_BID else {}  # the spec may have none
HIST_CTR_RANGE = (0.0, 1.0)


class RequestError(ValueError):
    """A request the router will not rank; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """Upper bounds on one request (bad input past them gets a 400 naming the limit)."""

    max_ads: int = 2000
    max_creatives_per_ad: int = 50
    max_total_creatives: int = 50000
    max_sequence_length: int = 1000
    max_slots: int = 100


@dataclasses.dataclass
class RankRequest:
    """A validated request in columnar form.

    Attributes:
      user: user feature name → value.
      sequence: sequence feature name → int64 [S] (no padding).
      ads: ad and ad-history feature name → [M] array (int64 codes, float32 ``ad_hist_ctr``), and any
        optional ad column the request gave (:data:`OPTIONAL_AD_FLOATS`).
      creatives: creative feature name → [T] array ([T, D] float32 for the embedding), ads' creatives
        concatenated in ad order.
      creative_hist_ctr: [T] float64, NaN where the request gave none.
      offsets: [M + 1]; ad ``i``'s creatives are rows ``offsets[i]:offsets[i + 1]``.
    """

    user: Dict[str, int]
    sequence: Dict[str, np.ndarray]
    ads: Dict[str, np.ndarray]
    creatives: Dict[str, np.ndarray]
    creative_hist_ctr: np.ndarray
    offsets: np.ndarray
    slots: int
    mode: str
    request_id: Any = None
    seed: Optional[int] = None

    @property
    def num_ads(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_creatives(self) -> int:
        return int(self.offsets[-1])

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def ad_of_creative(self) -> np.ndarray:
        """[T] index of each creative's ad."""
        return np.repeat(np.arange(self.num_ads), self.counts)


@dataclasses.dataclass(frozen=True)
class Paths:
    """How one request form names a value in an error: ``ad(name, i)`` is ad ``i``'s feature ``name``,
    ``creative(name, j)`` the feature of creative row ``j`` (ads' creatives in ad order)."""

    ad: Callable[[str, int], str]
    creative: Callable[[str, int], str]
    user: Callable[[str], str] = lambda name: f"user.{name}"
    sequence: Callable[[str, int], str] = lambda name, i: f"sequence.{name}[{i}]"


@dataclasses.dataclass
class RequestColumns:
    """A request whose types and shapes are checked, its values not yet (:func:`validate_columns`).

    ``ads`` and ``creatives`` hold int64 codes and float64 (or float32) numbers; ``offsets`` come from
    :func:`creative_offsets`; ``creative_hist_ctr`` is float64 with NaN where none was given.
    """

    user: Dict[str, int]
    sequence: Dict[str, np.ndarray]
    ads: Dict[str, np.ndarray]
    offsets: np.ndarray
    creatives: Dict[str, np.ndarray]
    creative_hist_ctr: np.ndarray
    slots: int
    mode: str
    request_id: Any
    seed: Optional[int]
    paths: Paths


# --------------------------------------------------------------------------- shape checks (any form)
def check_num_ads(m: int, limits: RequestLimits) -> None:
    if m == 0:
        raise RequestError(f"{ADS}: at least one ad is required")
    if m > limits.max_ads:
        raise RequestError(f"{ADS}: {m} ads exceed the limit of {limits.max_ads}")


def creative_offsets(counts: np.ndarray, limits: RequestLimits, where: Callable[[int], str]) -> np.ndarray:
    """[M + 1] creative offsets from per-ad counts, checked against the limits (``where(i)``: ad i's count)."""
    if (counts <= 0).any():
        raise RequestError(f"{where(int(np.argmax(counts <= 0)))}: at least one creative is required")
    if (counts > limits.max_creatives_per_ad).any():
        i = int(np.argmax(counts > limits.max_creatives_per_ad))
        raise RequestError(f"{where(i)}: {int(counts[i])} creatives exceed the limit of "
                           f"{limits.max_creatives_per_ad}")
    total = int(counts.sum())
    if total > limits.max_total_creatives:
        raise RequestError(f"{ADS}: {total} creatives in all exceed the limit of "
                           f"{limits.max_total_creatives}")
    return np.concatenate([[0], np.cumsum(counts)])


# --------------------------------------------------------------------------------------- value checks
def check_codes(arr: np.ndarray, name: str, path: Callable[[int], str]) -> np.ndarray:
    """int64 codes of feature ``name``: non-negative and inside its ``features`` domain."""
    domain = F.BY_NAME[name].domain
    bad = (arr < 0) | (arr >= domain) if domain is not None else arr < 0
    if bad.any():
        i = int(np.argmax(bad))
        rng = f"[0, {domain})" if domain is not None else ">= 0"
        raise RequestError(f"{path(i)}: {int(arr[i])} is outside its valid range {rng}")
    return arr.astype(np.int64, copy=False)


def check_range(arr: np.ndarray, lo: float, hi: float, path: Callable[[int], str],
                allow_nan: bool = False) -> np.ndarray:
    """Numbers in [lo, hi] (NaN only where ``allow_nan``: a value not given)."""
    with np.errstate(invalid="ignore"):
        ok = (arr >= lo) & (arr <= hi)
    if allow_nan:
        ok |= np.isnan(arr)
    if not ok.all():
        i = int(np.argmax(~ok))
        raise RequestError(f"{path(i)}: {arr[i].item()!r} is outside [{lo}, {hi}]")
    return arr


def first_duplicate(keys: np.ndarray) -> Optional[int]:
    """Index of the first element equal to an earlier one (rows of a 2-D array are compared whole)."""
    if keys.ndim == 1:
        keys = keys[:, None]
    order = np.lexsort(keys.T[::-1])
    same = np.all(keys[order[1:]] == keys[order[:-1]], axis=1)
    if not same.any():
        return None
    return int(order[1:][same].min())


def _duplicate_creative(ids: np.ndarray, offsets: np.ndarray) -> Optional[int]:
    """Row of the first creative whose id repeats an earlier one of the same ad."""
    counts = np.diff(offsets)
    if (counts == counts[0]).all():
        # Every ad has N creatives (the usual request): sorting the [M, N] grid's rows shows in a tenth
        # of the time of the general lexsort that no ad repeats an id.
        grid = np.sort(ids.reshape(len(counts), -1), axis=1)
        if not (grid[:, 1:] == grid[:, :-1]).any():
            return None
    return first_duplicate(np.stack([np.repeat(np.arange(len(counts)), counts), ids], axis=1))


def validate_columns(cols: RequestColumns) -> RankRequest:
    """Checks every value (see the module docstring) and returns the :class:`RankRequest`."""
    p = cols.paths
    user = {}
    for n, v in cols.user.items():
        check_codes(np.array([v], np.int64), n, lambda i, n=n: p.user(n))
        user[n] = int(v)
    sequence = {n: check_codes(v, n, lambda i, n=n: p.sequence(n, i)) for n, v in cols.sequence.items()}
    ads = {}
    for n, v in cols.ads.items():
        path = lambda i, n=n: p.ad(n, i)  # noqa: E731
        rng = AD_FLOAT_RANGES.get(n) or OPTIONAL_AD_FLOATS.get(n)
        ads[n] = check_codes(v, n, path) if rng is None else \
            check_range(v, *rng, path).astype(np.float32, copy=False)
    dup = first_duplicate(ads[F.AD_ID])
    if dup is not None:
        raise RequestError(f"{p.ad(F.AD_ID, dup)}: duplicate ad id {int(ads[F.AD_ID][dup])}")
    creatives = {}
    for n, v in cols.creatives.items():
        if n == F.CREATIVE_EMBEDDING:
            finite = np.isfinite(v).all(axis=1)
            if not finite.all():
                raise RequestError(f"{p.creative(n, int(np.argmax(~finite)))}: values must be finite numbers")
            creatives[n] = v.astype(np.float32, copy=False)
        else:
            creatives[n] = check_codes(v, n, lambda j, n=n: p.creative(n, j))
    dup = _duplicate_creative(creatives[F.CREATIVE_ID], cols.offsets)
    if dup is not None:
        raise RequestError(f"{p.creative(F.CREATIVE_ID, dup)}: duplicate creative id "
                           f"{int(creatives[F.CREATIVE_ID][dup])} within the ad")
    hist = check_range(np.asarray(cols.creative_hist_ctr, np.float64), *HIST_CTR_RANGE,
                       lambda j: p.creative(HIST_CTR, j), allow_nan=True)
    return RankRequest(user, sequence, ads, creatives, hist, cols.offsets, cols.slots, cols.mode,
                       cols.request_id, cols.seed)



def timed_validate(decode: Callable[[], RequestColumns], timing: Optional[Dict[str, float]] = None) -> RankRequest:
    """``validate_columns(decode())``; ``timing`` (if given) gets ``parse_ms`` (the form's decoding: bytes
    to typed columns) and ``validate_ms`` (the value checks)."""
    t0 = time.perf_counter()
    cols = decode()
    t1 = time.perf_counter()
    req = validate_columns(cols)
    if timing is not None:
        timing["parse_ms"] = (t1 - t0) * 1e3
        timing["validate_ms"] = (time.perf_counter() - t1) * 1e3
    return req
