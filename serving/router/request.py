"""The router's request: JSON schema, validation, and the columnar form the models are fed from.

A request (JSON object) lists its ads one object each (*row form*)::

    {
      "user":     {<every features.USER_FEATURES name>: int},
      "sequence": {<every features.SEQUENCE_FEATURES name>: [int, ...]},   # parallel lists, newest last
      "ads": [
        {<every features.AD_FEATURES and AD_HISTORY_FEATURES name>: number,
         "ad_bid": number >= 0 (optional, features.AD_BID: the ad's CPC bid; given for every ad or none),
         "creatives": [
            {<every features.CREATIVE_FEATURES name>: int | [float x CREATIVE_EMBEDDING_DIM],
             "hist_ctr": float (optional: the creative's historical CTR, used only by the fallback)},
            ...]},
        ...],
      "slots": int (optional, L: how many ads to return),
      "mode": "peri" | "pre" | "post" | "no-cr" (optional),
      "request_id": str | int (optional, echoed), "seed": int (optional, for no-cr's random creative)
    }

or gives ads and creatives as columns (*column form*, as TF Serving's columnar ``"inputs"``; a third of
the bytes and a fraction of the parsing for 1,000 ads)::

    {
      "user": {...}, "sequence": {...},                                   # as above
      "ads": {<every ad feature name>: [M values], "num_creatives": [M ints], "ad_bid": [M] (optional)},
      "creatives": {<every creative feature name>: [T values],             # T = sum(num_creatives),
                    "hist_ctr": [T numbers or nulls] (optional)},           # ads' creatives in ad order
      ...options as above
    }

:func:`parse_request` checks everything — types (integers are JSON integers, never ``1.5`` or ``true``),
categorical codes inside their ``features`` domain, ids non-negative, ``ad_hist_ctr`` in [0, 1],
finite numbers, embedding length, sizes against :class:`RequestLimits`, no duplicate ad ids, no duplicate
creative ids within an ad, no unknown fields — and raises :class:`RequestError` naming the first
offending field by its path (``ads[3].creatives[1].creative_style`` in row form,
``creatives.creative_style[13]`` in column form). Columns are checked with NumPy, so a 1,000 x 10
request costs a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
from typing import Any, Callable, Dict, List, Optional

import numpy as np

import features as F

# Request field names (API structure; every model feature name comes from `features`).
USER = "user"
SEQUENCE = "sequence"
ADS = "ads"
CREATIVES = "creatives"
HIST_CTR = "hist_ctr"
NUM_CREATIVES = "num_creatives"  # column form: each ad's creative count
SLOTS = "slots"
MODE = "mode"
REQUEST_ID = "request_id"
SEED = "seed"

PERI, PRE, POST, NO_CR = "peri", "pre", "post", "no-cr"
MODES = (PERI, PRE, POST, NO_CR)

AD_FIELDS = F.AD_FEATURES + F.AD_HISTORY_FEATURES
# Optional per-ad columns: with bids the router ranks by eCPM = pctr_ad x ad_bid (RankRequest.ads holds them).
OPTIONAL_AD_FIELDS = F.AUCTION_FEATURES
_TOP_FIELDS = {USER, SEQUENCE, ADS, CREATIVES, SLOTS, MODE, REQUEST_ID, SEED}
_INT64_MAX = 2 ** 63 - 1
_MISSING = object()


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
      ads: ad and ad-history feature name → [M] array (dtype per ``features``); also ``features.AD_BID``
        when the request gave bids.
      creatives: creative feature name → [T] array ([T, D] for the embedding), ads' creatives
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


def _describe(v: Any) -> str:
    if v is _MISSING:
        return "nothing"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, (dict, list, str)):
        kind = {dict: "an object", list: "a list", str: "a string"}[type(v)]
        text = repr(v)
        return f"{kind} ({text[:40]}{'...' if len(text) > 40 else ''})"
    if v is None:
        return "null"
    return repr(v)


def _first(values: List[Any], bad: Callable[[Any], bool]) -> int:
    return next(i for i, v in enumerate(values) if bad(v))


# JSON types, exactly (orjson and json decode to these): True is not an integer, 1.0 not one either.
_INT = frozenset({int})
_NUMBER = frozenset({int, float})
_LIST = frozenset({list})
_OBJECT = frozenset({dict})


def _value_path(where: Callable[[int], str], name: Optional[str], items: bool) -> Callable[[int], str]:
    """The path of value ``i``: ``<where(i)>.<name>`` (a field of object ``i``), or with ``items``
    ``where(i)`` itself (list items: ``sequence.seq_ad_ids[3]``)."""
    return where if items else (lambda i: f"{where(i)}.{name}")


def _check_types(values: List[Any], types: frozenset, expected: str, where: Callable[[int], str],
                 name: Optional[str] = None, items: bool = False) -> None:
    """Raises :class:`RequestError` for the first value whose type is not one of ``types``.

    A field absent from object ``i`` (``_MISSING``) is "``<where(i)>``: missing field '<name>'";
    any other value is "``<path>``: expected <expected>, got <what it is>" (see :func:`_value_path`).
    """
    if set(map(type, values)) <= types:  # one C-speed pass in the common, valid case
        return
    i = _first(values, lambda v: type(v) not in types)
    if values[i] is _MISSING:
        raise RequestError(f"{where(i)}: missing field '{name}'")
    raise RequestError(f"{_value_path(where, name, items)(i)}: expected {expected}, got "
                       f"{_describe(values[i])}")


def _int_column(values: List[Any], name: str, where: Callable[[int], str],
                items: bool = False) -> np.ndarray:
    """Strict int64 column: JSON integers only, non-negative, inside the feature's domain.

    ``where`` and ``items`` name value ``i`` in errors (:func:`_value_path`).
    """
    _check_types(values, _INT, "an integer", where, name, items)
    path = _value_path(where, name, items)
    try:
        arr = np.fromiter(values, dtype=np.int64, count=len(values))
    except OverflowError:
        i = _first(values, lambda v: not -_INT64_MAX - 1 <= v <= _INT64_MAX)
        raise RequestError(f"{path(i)}: {values[i]} does not fit in int64") from None
    bad = arr < 0
    domain = F.BY_NAME[name].domain
    if domain is not None:
        bad |= arr >= domain
    if bad.any():
        i = int(np.argmax(bad))
        rng = f"[0, {domain})" if domain is not None else ">= 0"
        raise RequestError(f"{path(i)}: {values[i]} is outside its valid range {rng}")
    return arr


def _float_column(values: List[Any], name: str, where: Callable[[int], str],
                  lo: float = -math.inf, hi: float = math.inf, items: bool = False) -> np.ndarray:
    _check_types(values, _NUMBER, "a number", where, name, items)
    arr = np.array(values, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr < lo) | (arr > hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise RequestError(f"{_value_path(where, name, items)(i)}: {values[i]!r} is outside [{lo}, {hi}]")
    return arr


def _column(values: List[Any], name: str, where: Callable[[int], str], items: bool = False) -> np.ndarray:
    if name == F.CREATIVE_EMBEDDING:
        return _embedding_column(values, where, items)
    if F.BY_NAME[name].dtype == F.INT:
        return _int_column(values, name, where, items)
    lo, hi = {F.AD_HIST_CTR: (0.0, 1.0), F.AD_BID: (0.0, math.inf)}.get(name, (-math.inf, math.inf))
    return _float_column(values, name, where, lo, hi, items).astype(np.float32)


def _check_keys(obj: dict, allowed, where: str) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise RequestError(f"{where}: unknown field '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")


def _check_object(value: Any, allowed, where: str, expected: str = "an object") -> None:
    """``value`` at ``where`` is a JSON object with no keys outside ``allowed``."""
    if not isinstance(value, dict):
        raise RequestError(f"{where}: expected {expected}, got {_describe(value)}")
    _check_keys(value, allowed, where)


def _first_duplicate(keys: np.ndarray) -> Optional[int]:
    """Index of the first element equal to an earlier one (rows of a 2-D array are compared whole)."""
    if keys.ndim == 1:
        keys = keys[:, None]
    order = np.lexsort(keys.T[::-1])
    same = np.all(keys[order[1:]] == keys[order[:-1]], axis=1)
    if not same.any():
        return None
    dup_positions = order[1:][same]
    return int(dup_positions.min())


def parse_request(obj: Any, limits: RequestLimits = RequestLimits(), default_slots: int = 3,
                  default_mode: str = PERI) -> RankRequest:
    """Validates a decoded JSON request; returns it in columnar form or raises :class:`RequestError`."""
    if not isinstance(obj, dict):
        raise RequestError(f"request: expected a JSON object, got {_describe(obj)}")
    _check_keys(obj, _TOP_FIELDS, "request")
    for key in (USER, SEQUENCE, ADS):
        if key not in obj:
            raise RequestError(f"request: missing field '{key}'")

    # -- user
    user = obj[USER]
    _check_object(user, F.USER_FEATURES, USER)
    user_values = {n: int(_int_column([user.get(n, _MISSING)], n, lambda i: USER)[0])
                   for n in F.USER_FEATURES}

    # -- behaviour sequence
    seq = obj[SEQUENCE]
    _check_object(seq, F.SEQUENCE_FEATURES, SEQUENCE)
    sequence = {}
    for n in F.SEQUENCE_FEATURES:
        values = seq.get(n, _MISSING)
        if values is _MISSING:
            raise RequestError(f"{SEQUENCE}: missing field '{n}'")
        if not isinstance(values, list):
            raise RequestError(f"{SEQUENCE}.{n}: expected a list of integers, got {_describe(values)}")
        if len(values) > limits.max_sequence_length:
            raise RequestError(f"{SEQUENCE}.{n}: {len(values)} items exceed the limit of "
                               f"{limits.max_sequence_length}")
        sequence[n] = _int_column(values, n, lambda i, n=n: f"{SEQUENCE}.{n}[{i}]", items=True)
    lengths = {n: len(v) for n, v in sequence.items()}
    if len(set(lengths.values())) > 1:
        raise RequestError(f"{SEQUENCE}: the lists must have equal lengths (parallel), got {lengths}")

    # -- ads and their creatives
    ads = obj[ADS]
    if isinstance(ads, dict):
        ad_columns, creatives, hist_ctr, offsets = _ads_from_columns(ads, obj.get(CREATIVES, _MISSING),
                                                                     limits)
    elif isinstance(ads, list):
        if CREATIVES in obj:
            raise RequestError(f"request: field '{CREATIVES}' goes with the column form of '{ADS}' (an "
                               f"object of columns); in the row form each ad lists its own creatives")
        ad_columns, creatives, hist_ctr, offsets = _ads_from_rows(ads, limits)
    else:
        raise RequestError(f"{ADS}: expected a list of ads or an object of columns, got {_describe(ads)}")

    # -- options
    slots = obj.get(SLOTS, default_slots)
    if type(slots) is not int or not 1 <= slots <= limits.max_slots:
        raise RequestError(f"{SLOTS}: expected an integer in [1, {limits.max_slots}], got {_describe(slots)}")
    mode = obj.get(MODE, default_mode)
    if mode not in MODES:
        raise RequestError(f"{MODE}: expected one of {', '.join(MODES)}, got {_describe(mode)}")
    request_id = obj.get(REQUEST_ID)
    if request_id is not None and (type(request_id) not in (str, int) or len(str(request_id)) > 128):
        raise RequestError(f"{REQUEST_ID}: expected a string or integer (at most 128 characters), "
                           f"got {_describe(request_id)}")
    seed = obj.get(SEED)
    if seed is not None and (type(seed) is not int or not 0 <= seed <= _INT64_MAX):
        raise RequestError(f"{SEED}: expected a non-negative integer, got {_describe(seed)}")
    return RankRequest(user_values, sequence, ad_columns, creatives, hist_ctr, offsets, slots, mode,
                       request_id, seed)


def _check_num_ads(m: int, limits: RequestLimits) -> None:
    if m == 0:
        raise RequestError(f"{ADS}: at least one ad is required")
    if m > limits.max_ads:
        raise RequestError(f"{ADS}: {m} ads exceed the limit of {limits.max_ads}")


def _check_unique_ads(ad_columns: Dict[str, np.ndarray], where: Callable[[int], str]) -> None:
    """``where(i)``: the path of ad ``i``'s id."""
    dup = _first_duplicate(ad_columns[F.AD_ID])
    if dup is not None:
        raise RequestError(f"{where(dup)}: duplicate ad id {int(ad_columns[F.AD_ID][dup])}")


def _offsets(counts: np.ndarray, limits: RequestLimits, where: Callable[[int], str]) -> np.ndarray:
    """[M + 1] creative offsets from per-ad counts, checked against the limits."""
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


def _check_unique_creatives(creatives: Dict[str, np.ndarray], counts: np.ndarray,
                            where: Callable[[int], str]) -> None:
    dup = _first_duplicate(np.stack([np.repeat(np.arange(len(counts)), counts),
                                     creatives[F.CREATIVE_ID]], axis=1))
    if dup is not None:
        raise RequestError(f"{where(dup)}: duplicate creative id {int(creatives[F.CREATIVE_ID][dup])} "
                           "within the ad")


def _ads_from_rows(ads: List[Any], limits: RequestLimits):
    """Row form: (ad columns, creative columns, hist_ctr, offsets)."""
    _check_num_ads(len(ads), limits)
    ad_where = lambda i: f"{ADS}[{i}]"  # noqa: E731
    _check_types(ads, _OBJECT, "an object", ad_where, items=True)
    ad_allowed = set(AD_FIELDS) | set(OPTIONAL_AD_FIELDS) | {CREATIVES}
    for i, ad in enumerate(ads):
        if not ad.keys() <= ad_allowed:
            _check_keys(ad, ad_allowed, ad_where(i))
    ad_columns = {n: _column([ad.get(n, _MISSING) for ad in ads], n, ad_where) for n in AD_FIELDS}
    for n in OPTIONAL_AD_FIELDS:  # every ad or none
        if any(n in ad for ad in ads):
            ad_columns[n] = _column([ad.get(n, _MISSING) for ad in ads], n, ad_where)
    _check_unique_ads(ad_columns, lambda i: f"{ADS}[{i}].{F.AD_ID}")

    # -- creatives
    lists = [ad.get(CREATIVES, _MISSING) for ad in ads]
    _check_types(lists, _LIST, "a list", ad_where, CREATIVES)
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    offsets = _offsets(counts, limits, lambda i: f"{ADS}[{i}].{CREATIVES}")
    total = int(offsets[-1])
    flat = list(itertools.chain.from_iterable(lists))

    def cr_where(j: int) -> str:
        i = int(np.searchsorted(offsets, j, side="right") - 1)
        return f"{ADS}[{i}].{CREATIVES}[{j - int(offsets[i])}]"

    _check_types(flat, _OBJECT, "an object", cr_where, items=True)
    cr_allowed = set(F.CREATIVE_FEATURES) | {HIST_CTR}
    # Once every required field is found below, a creative has an unknown field iff it has more keys
    # than the required ones plus hist_ctr: one C-speed pass instead of a key-set check per creative.
    n_hist = sum(map(operator.contains, flat, itertools.repeat(HIST_CTR)))
    has_unknown = sum(map(len, flat)) != len(F.CREATIVE_FEATURES) * total + n_hist
    creatives = {}
    for n in F.CREATIVE_FEATURES:
        values = [c.get(n, _MISSING) for c in flat]
        creatives[n] = _column(values, n, cr_where)
    if has_unknown:
        for j, c in enumerate(flat):
            _check_keys(c, cr_allowed, cr_where(j))
    _check_unique_creatives(creatives, counts, lambda j: f"{cr_where(j)}.{F.CREATIVE_ID}")
    hist = [c.get(HIST_CTR) for c in flat] if n_hist else []
    known = [v for v in hist if v is not None]
    hist_ctr = np.full(total, np.nan)
    if known:
        mask = np.array([v is not None for v in hist])
        idx = np.flatnonzero(mask)
        hist_ctr[idx] = _float_column(known, HIST_CTR, lambda k: cr_where(int(idx[k])), 0.0, 1.0)

    return ad_columns, creatives, hist_ctr, offsets


def _column_lists(obj: Any, where: str, required, optional=()) -> Dict[str, list]:
    """A column-form object's lists, all of one length: required ones present, no unknown keys."""
    _check_object(obj, set(required) | set(optional), where, "an object of columns")
    for n in required:
        if n not in obj:
            raise RequestError(f"{where}: missing column '{n}'")
    for n, v in obj.items():
        if not isinstance(v, list):
            raise RequestError(f"{where}.{n}: expected a list (one value per row), got {_describe(v)}")
    return obj


def _check_length(columns: Dict[str, list], n_rows: int, where: str, what: str) -> None:
    for n, v in columns.items():
        if len(v) != n_rows:
            raise RequestError(f"{where}.{n}: {len(v)} values for {n_rows} {what}")


def _ads_from_columns(ads: Dict[str, Any], creatives_obj: Any, limits: RequestLimits):
    """Column form: (ad columns, creative columns, hist_ctr, offsets)."""
    _column_lists(ads, ADS, list(AD_FIELDS) + [NUM_CREATIVES], OPTIONAL_AD_FIELDS)
    m = len(ads[F.AD_ID])
    _check_num_ads(m, limits)
    _check_length(ads, m, ADS, f"ads ({ADS}.{F.AD_ID} has {m})")
    ad_columns = {n: _column(ads[n], n, lambda i, n=n: f"{ADS}.{n}[{i}]", items=True)
                  for n in AD_FIELDS + tuple(n for n in OPTIONAL_AD_FIELDS if n in ads)}
    _check_unique_ads(ad_columns, lambda i: f"{ADS}.{F.AD_ID}[{i}]")
    counts_list = ads[NUM_CREATIVES]
    _check_types(counts_list, _INT, "an integer", lambda i: f"{ADS}.{NUM_CREATIVES}[{i}]", items=True)
    counts = np.array(counts_list, dtype=np.int64)
    offsets = _offsets(counts, limits, lambda i: f"{ADS}.{NUM_CREATIVES}[{i}]")
    total = int(offsets[-1])

    if creatives_obj is _MISSING:
        raise RequestError(f"request: missing field '{CREATIVES}' (the column form of '{ADS}' needs the "
                           "creatives' columns)")
    _column_lists(creatives_obj, CREATIVES, F.CREATIVE_FEATURES, [HIST_CTR])
    _check_length(creatives_obj, total, CREATIVES, f"creatives (the sum of {ADS}.{NUM_CREATIVES})")
    creatives = {n: _column(creatives_obj[n], n, lambda j, n=n: f"{CREATIVES}.{n}[{j}]", items=True)
                 for n in F.CREATIVE_FEATURES}
    _check_unique_creatives(creatives, counts, lambda j: f"{CREATIVES}.{F.CREATIVE_ID}[{j}]")
    hist_ctr = np.full(total, np.nan)
    hist = creatives_obj.get(HIST_CTR)
    if hist is not None:
        idx = np.array([j for j, v in enumerate(hist) if v is not None], dtype=np.int64)
        if idx.size:
            hist_ctr[idx] = _float_column([hist[j] for j in idx], HIST_CTR,
                                          lambda k: f"{CREATIVES}.{HIST_CTR}[{int(idx[k])}]", 0.0, 1.0,
                                          items=True)
    return ad_columns, creatives, hist_ctr, offsets


def _embedding_column(values: List[Any], where: Callable[[int], str], items: bool = False) -> np.ndarray:
    dim = F.CREATIVE_EMBEDDING_DIM
    name = F.CREATIVE_EMBEDDING
    _check_types(values, _LIST, f"a list of {dim} numbers", where, name, items)
    path = _value_path(where, name, items)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    if (lengths != dim).any():
        i = int(np.argmax(lengths != dim))
        raise RequestError(f"{path(i)}: expected {dim} numbers, got {int(lengths[i])}")
    if not set(map(type, itertools.chain.from_iterable(values))) <= _NUMBER:
        i = _first(values, lambda v: any(type(x) not in (int, float) for x in v))
        bad = next(x for x in values[i] if type(x) not in (int, float))
        raise RequestError(f"{path(i)}: expected numbers, got {_describe(bad)}")
    # fromiter over the flattened lists: ~40% cheaper than np.array on a list of lists.
    arr = np.fromiter(itertools.chain.from_iterable(values), dtype=np.float32,
                      count=len(values) * dim).reshape(len(values), dim)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        i = int(np.argmax(~finite))
        raise RequestError(f"{path(i)}: values must be finite numbers")
    return arr


def to_column_form(request: Dict[str, Any]) -> Dict[str, Any]:
    """The same request in column form (see the module docstring); other fields are kept as they are.

    A request already in column form is returned unchanged. The row form must be well formed enough to
    walk (every ad an object with a ``creatives`` list); field-level checks stay with :func:`parse_request`.
    """
    ads = request[ADS]
    if isinstance(ads, dict):
        return request
    out = {k: v for k, v in request.items() if k != ADS}
    flat = [c for ad in ads for c in ad[CREATIVES]]
    out[ADS] = {n: [ad[n] for ad in ads] for n in AD_FIELDS}
    out[ADS].update({n: [ad.get(n) for ad in ads] for n in OPTIONAL_AD_FIELDS if any(n in ad for ad in ads)})
    out[ADS][NUM_CREATIVES] = [len(ad[CREATIVES]) for ad in ads]
    out[CREATIVES] = {n: [c[n] for c in flat] for n in F.CREATIVE_FEATURES}
    if any(HIST_CTR in c for c in flat):
        out[CREATIVES][HIST_CTR] = [c.get(HIST_CTR) for c in flat]
    return out
