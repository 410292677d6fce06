"""The router's request: its JSON forms, their type and shape checks, and the column form's converter.

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
the bytes, and decoded straight into arrays by :mod:`serving.router.json_body`)::

    {
      "user": {...}, "sequence": {...},                                   # as above
      "ads": {<every ad feature name>: [M values], "num_creatives": [M ints], "ad_bid": [M] (optional)},
      "creatives": {<every creative feature name>: [T values],             # T = sum(num_creatives),
                    "hist_ctr": [T numbers or nulls] (optional)},           # ads' creatives in ad order
      ...options as above
    }

Services can send the same columns as tensors of a TF Serving ``PredictRequest`` over gRPC
(:mod:`serving.router.tensors`).

:func:`parse_request` checks everything — types (integers are JSON integers, never ``1.5`` or ``true``),
embedding length, sizes against :class:`RequestLimits`, no unknown fields here, then the values
(:func:`serving.router.columns.validate_columns`: categorical codes inside their ``features`` domain, ids
non-negative, ``ad_hist_ctr`` in [0, 1], no duplicate ad ids, no duplicate creative ids within an ad) —
and raises :class:`RequestError` naming the first offending field by its path
(``ads[3].creatives[1].creative_style`` in row form, ``creatives.creative_style[13]`` in column form).
"""

from __future__ import annotations

import itertools
import operator
from typing import Any, Callable, Dict, List, Optional

import numpy as np

import features as F
from serving.router.columns import (AD_FIELDS, ADS, HIST_CTR, OPTIONAL_AD_FLOATS, Paths, RankRequest,
                                    RequestColumns, RequestError, RequestLimits, check_num_ads,
                                    creative_offsets, validate_columns)

# Request field names (API structure; every model feature name comes from `features`).
USER = "user"
SEQUENCE = "sequence"
CREATIVES = "creatives"
NUM_CREATIVES = "num_creatives"  # column form: each ad's creative count
SLOTS = "slots"
MODE = "mode"
REQUEST_ID = "request_id"
SEED = "seed"

PERI, PRE, POST, NO_CR = "peri", "pre", "post", "no-cr"
MODES = (PERI, PRE, POST, NO_CR)

TOP_FIELDS = {USER, SEQUENCE, ADS, CREATIVES, SLOTS, MODE, REQUEST_ID, SEED}
_INT64_MAX = 2 ** 63 - 1
_MISSING = object()

CREATIVES_WHAT = f"creatives (the sum of {ADS}.{NUM_CREATIVES})"  # what a creative column's length counts


def ad_column_names(given) -> List[str]:
    """The ad columns to read, in check order: every required one, then the optional ones ``given``."""
    return list(AD_FIELDS) + [n for n in OPTIONAL_AD_FLOATS if n in given]


COLUMN_PATHS = Paths(ad=lambda name, i: f"{ADS}.{name}[{i}]",
                     creative=lambda name, j: f"{CREATIVES}.{name}[{j}]")


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


def _ints(values: List[Any], name: str, where: Callable[[int], str], items: bool = False) -> np.ndarray:
    """int64 column of JSON integers (never ``1.0`` or ``true``); the range is checked later."""
    _check_types(values, _INT, "an integer", where, name, items)
    try:
        return np.fromiter(values, dtype=np.int64, count=len(values))
    except OverflowError:
        i = _first(values, lambda v: not -_INT64_MAX - 1 <= v <= _INT64_MAX)
        raise RequestError(f"{_value_path(where, name, items)(i)}: {values[i]} does not fit in int64") from None


def _numbers(values: List[Any], name: str, where: Callable[[int], str], items: bool = False) -> np.ndarray:
    _check_types(values, _NUMBER, "a number", where, name, items)
    return np.array(values, dtype=np.float64)


def _embeddings(values: List[Any], where: Callable[[int], str], items: bool = False) -> np.ndarray:
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
    return np.fromiter(itertools.chain.from_iterable(values), dtype=np.float32,
                       count=len(values) * dim).reshape(len(values), dim)


def _column(values: List[Any], name: str, where: Callable[[int], str], items: bool = False) -> np.ndarray:
    if name == F.CREATIVE_EMBEDDING:
        return _embeddings(values, where, items)
    if name in F.BY_NAME and F.BY_NAME[name].dtype == F.INT:
        return _ints(values, name, where, items)
    return _numbers(values, name, where, items)


def _check_keys(obj: dict, allowed, where: str) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise RequestError(f"{where}: unknown field '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")


def _check_object(value: Any, allowed, where: str, expected: str = "an object") -> None:
    """``value`` at ``where`` is a JSON object with no keys outside ``allowed``."""
    if not isinstance(value, dict):
        raise RequestError(f"{where}: expected {expected}, got {_describe(value)}")
    _check_keys(value, allowed, where)


# ----------------------------------------------------------------------------- parts every JSON form has
def decode_user(user: Any) -> Dict[str, int]:
    _check_object(user, F.USER_FEATURES, USER)
    return {n: int(_ints([user.get(n, _MISSING)], n, lambda i: USER)[0]) for n in F.USER_FEATURES}


def decode_sequence(seq: Any, limits: RequestLimits) -> Dict[str, np.ndarray]:
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
        sequence[n] = _ints(values, n, lambda i, n=n: f"{SEQUENCE}.{n}[{i}]", items=True)
    lengths = {n: len(v) for n, v in sequence.items()}
    if len(set(lengths.values())) > 1:
        raise RequestError(f"{SEQUENCE}: the lists must have equal lengths (parallel), got {lengths}")
    return sequence


def decode_options(get: Callable[[str, Any], Any], limits: RequestLimits, default_slots: int,
                   default_mode: str):
    """(slots, mode, request_id, seed) from the request's ``get(field, default)``."""
    slots = get(SLOTS, default_slots)
    if type(slots) is not int or not 1 <= slots <= limits.max_slots:
        raise RequestError(f"{SLOTS}: expected an integer in [1, {limits.max_slots}], got {_describe(slots)}")
    mode = get(MODE, default_mode)
    if mode not in MODES:
        raise RequestError(f"{MODE}: expected one of {', '.join(MODES)}, got {_describe(mode)}")
    request_id = get(REQUEST_ID, None)
    if request_id is not None and (type(request_id) not in (str, int) or len(str(request_id)) > 128):
        raise RequestError(f"{REQUEST_ID}: expected a string or integer (at most 128 characters), "
                           f"got {_describe(request_id)}")
    seed = get(SEED, None)
    if seed is not None and (type(seed) is not int or not 0 <= seed <= _INT64_MAX):
        raise RequestError(f"{SEED}: expected a non-negative integer, got {_describe(seed)}")
    return slots, mode, request_id, seed


def parse_request(obj: Any, limits: RequestLimits = RequestLimits(), default_slots: int = 3,
                  default_mode: str = PERI) -> RankRequest:
    """Validates a decoded JSON request; returns it in columnar form or raises :class:`RequestError`."""
    return validate_columns(decode_request(obj, limits, default_slots, default_mode))


def decode_request(obj: Any, limits: RequestLimits = RequestLimits(), default_slots: int = 3,
                   default_mode: str = PERI) -> RequestColumns:
    """A decoded JSON request (either form) → :class:`RequestColumns`: types and shapes checked."""
    if not isinstance(obj, dict):
        raise RequestError(f"request: expected a JSON object, got {_describe(obj)}")
    _check_keys(obj, TOP_FIELDS, "request")
    for key in (USER, SEQUENCE, ADS):
        if key not in obj:
            raise RequestError(f"request: missing field '{key}'")
    user = decode_user(obj[USER])
    sequence = decode_sequence(obj[SEQUENCE], limits)
    ads = obj[ADS]
    if isinstance(ads, dict):
        ad_columns, offsets, creatives, hist_ctr = _ads_from_columns(ads, obj.get(CREATIVES, _MISSING), limits)
        paths = COLUMN_PATHS
    elif isinstance(ads, list):
        if CREATIVES in obj:
            raise RequestError(f"request: field '{CREATIVES}' goes with the column form of '{ADS}' (an "
                               f"object of columns); in the row form each ad lists its own creatives")
        ad_columns, offsets, creatives, hist_ctr = _ads_from_rows(ads, limits)
        paths = _row_paths(offsets)
    else:
        raise RequestError(f"{ADS}: expected a list of ads or an object of columns, got {_describe(ads)}")
    options = decode_options(obj.get, limits, default_slots, default_mode)
    return RequestColumns(user, sequence, ad_columns, offsets, creatives, hist_ctr, *options, paths)


# ------------------------------------------------------------------------------------------ row form
def _row_paths(offsets: np.ndarray) -> Paths:
    return Paths(ad=lambda name, i: f"{ADS}[{i}].{name}",
                 creative=lambda name, j: f"{_creative_where(offsets, j)}.{name}")


def _creative_where(offsets: np.ndarray, j: int) -> str:
    i = int(np.searchsorted(offsets, j, side="right") - 1)
    return f"{ADS}[{i}].{CREATIVES}[{j - int(offsets[i])}]"


def _ads_from_rows(ads: List[Any], limits: RequestLimits):
    """Row form: (ad columns, offsets, creative columns, hist_ctr)."""
    check_num_ads(len(ads), limits)
    ad_where = lambda i: f"{ADS}[{i}]"  # noqa: E731
    _check_types(ads, _OBJECT, "an object", ad_where, items=True)
    ad_allowed = set(AD_FIELDS) | set(OPTIONAL_AD_FLOATS) | {CREATIVES}
    for i, ad in enumerate(ads):
        if not ad.keys() <= ad_allowed:
            _check_keys(ad, ad_allowed, ad_where(i))
    given = set().union(*(ad.keys() for ad in ads)) if OPTIONAL_AD_FLOATS else ()
    ad_columns = {n: _column([ad.get(n, _MISSING) for ad in ads], n, ad_where) for n in ad_column_names(given)}

    lists = [ad.get(CREATIVES, _MISSING) for ad in ads]
    _check_types(lists, _LIST, "a list", ad_where, CREATIVES)
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    offsets = creative_offsets(counts, limits, lambda i: f"{ADS}[{i}].{CREATIVES}")
    total = int(offsets[-1])
    flat = list(itertools.chain.from_iterable(lists))
    cr_where = lambda j: _creative_where(offsets, j)  # noqa: E731
    _check_types(flat, _OBJECT, "an object", cr_where, items=True)
    cr_allowed = set(F.CREATIVE_FEATURES) | {HIST_CTR}
    # Once every required field is found below, a creative has an unknown field iff it has more keys
    # than the required ones plus hist_ctr: one C-speed pass instead of a key-set check per creative.
    n_hist = sum(map(operator.contains, flat, itertools.repeat(HIST_CTR)))
    has_unknown = sum(map(len, flat)) != len(F.CREATIVE_FEATURES) * total + n_hist
    creatives = {n: _column([c.get(n, _MISSING) for c in flat], n, cr_where) for n in F.CREATIVE_FEATURES}
    if has_unknown:
        for j, c in enumerate(flat):
            _check_keys(c, cr_allowed, cr_where(j))
    hist_ctr = optional_numbers([c.get(HIST_CTR) for c in flat] if n_hist else None, total,
                                 lambda k: f"{cr_where(k)}.{HIST_CTR}")
    return ad_columns, offsets, creatives, hist_ctr


def optional_numbers(values: Optional[List[Any]], n: int, path: Callable[[int], str]) -> np.ndarray:
    """float64 [n] of numbers or nulls (NaN); ``path(k)`` names value ``k``."""
    out = np.full(n, np.nan)
    if values is None:
        return out
    idx = np.array([k for k, v in enumerate(values) if v is not None], dtype=np.int64)
    if idx.size:
        out[idx] = _numbers([values[k] for k in idx], HIST_CTR, lambda k: path(int(idx[k])), items=True)
    return out


# --------------------------------------------------------------------------------------- column form
def _column_lists(obj: Any, where: str, required, optional=()) -> Dict[str, list]:
    """A column-form object's lists: required ones present, no unknown keys, every value a list."""
    _check_object(obj, set(required) | set(optional), where, "an object of columns")
    for n in required:
        if n not in obj:
            raise RequestError(f"{where}: missing column '{n}'")
    for n, v in obj.items():
        if not isinstance(v, list):
            raise RequestError(f"{where}.{n}: expected a list (one value per row), got {_describe(v)}")
    return obj


def check_length(columns: Dict[str, Any], n_rows: int, where: str, what: str) -> None:
    for n, v in columns.items():
        if len(v) != n_rows:
            raise RequestError(f"{where}.{n}: {len(v)} values for {n_rows} {what}")


def _ads_from_columns(ads: Dict[str, Any], creatives_obj: Any, limits: RequestLimits):
    """Column form: (ad columns, offsets, creative columns, hist_ctr)."""
    _column_lists(ads, ADS, list(AD_FIELDS) + [NUM_CREATIVES], OPTIONAL_AD_FLOATS)
    m = len(ads[F.AD_ID])
    check_num_ads(m, limits)
    check_length(ads, m, ADS, f"ads ({ADS}.{F.AD_ID} has {m})")
    ad_columns = {n: _column(ads[n], n, lambda i, n=n: f"{ADS}.{n}[{i}]", items=True)
                  for n in ad_column_names(ads)}
    counts = _ints(ads[NUM_CREATIVES], NUM_CREATIVES, lambda i: f"{ADS}.{NUM_CREATIVES}[{i}]", items=True)
    offsets = creative_offsets(counts, limits, lambda i: f"{ADS}.{NUM_CREATIVES}[{i}]")
    total = int(offsets[-1])

    if creatives_obj is _MISSING:
        raise RequestError(f"request: missing field '{CREATIVES}' (the column form of '{ADS}' needs the "
                           "creatives' columns)")
    _column_lists(creatives_obj, CREATIVES, F.CREATIVE_FEATURES, [HIST_CTR])
    check_length(creatives_obj, total, CREATIVES, CREATIVES_WHAT)
    creatives = {n: _column(creatives_obj[n], n, lambda j, n=n: f"{CREATIVES}.{n}[{j}]", items=True)
                 for n in F.CREATIVE_FEATURES}
    hist_ctr = optional_numbers(creatives_obj.get(HIST_CTR), total, lambda k: f"{CREATIVES}.{HIST_CTR}[{k}]")
    return ad_columns, offsets, creatives, hist_ctr


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
    given = set().union(*(ad.keys() for ad in ads))
    out[ADS] = {n: [ad.get(n) for ad in ads] for n in ad_column_names(given)}
    out[ADS][NUM_CREATIVES] = [len(ad[CREATIVES]) for ad in ads]
    out[CREATIVES] = {n: [c[n] for c in flat] for n in F.CREATIVE_FEATURES}
    if any(HIST_CTR in c for c in flat):
        out[CREATIVES][HIST_CTR] = [c.get(HIST_CTR) for c in flat]
    return out
