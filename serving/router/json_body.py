"""The router's JSON body → :class:`RankRequest`: the column form straight into arrays, the rest via orjson.

A column-form body (the form services send, :mod:`serving.router.request`) is parsed with simdjson
(Langdale & Lemire, VLDB Journal 2019; the ``pysimdjson`` binding), and each column is copied from the
parsed document into a NumPy array in one C pass (``Array.as_buffer``): no Python object per value, so a
1,000 ads x 10 creatives body decodes in a small fraction of ``orjson.loads`` plus the per-value type
checks. ``as_buffer`` is as strict as :func:`~serving.router.request.parse_request` about types (an int64
column takes JSON integers only: no ``1.0``, no ``true``; a float column rejects ``true`` and ``null``).

Anything the fast path does not recognise as a regular column-form request — the row form, a missing or
unknown field, a wrong type, a ragged or nested list, a limit exceeded, a ``[`` inside a string — is
decoded again by orjson and checked by :func:`~serving.router.request.decode_request`, which names the
offending field. Both paths end in the same :func:`~serving.router.columns.validate_columns`, so they
accept exactly the same requests and answer the same errors; only the time differs.
"""

from __future__ import annotations

import threading
from typing import Dict, Optional

import numpy as np
import orjson
import simdjson

import features as F
from serving.router import request as R
from serving.router.columns import (RankRequest, RequestColumns, RequestError, RequestLimits,
                                    check_num_ads, creative_offsets, timed_validate)

_local = threading.local()
_TOP_FIELDS = frozenset(R.TOP_FIELDS)
_REQUIRED_TOP = frozenset({R.USER, R.SEQUENCE, R.ADS, R.CREATIVES})
_AD_REQUIRED = frozenset(R.AD_FIELDS) | {R.NUM_CREATIVES}
_CREATIVE_REQUIRED = frozenset(F.CREATIVE_FEATURES)
_CREATIVE_ALLOWED = _CREATIVE_REQUIRED | {R.HIST_CTR}
_INT64, _FLOAT64 = np.dtype(np.int64), np.dtype(np.float64)
_OPEN_BRACKET = ord("[")


class _Irregular(Exception):
    """Not a regular column-form request: decode it the slow way, which names the problem."""


def decode_json_body(body: bytes, limits: RequestLimits = RequestLimits(), default_slots: int = 3,
                     default_mode: str = R.PERI, timing: Optional[Dict[str, float]] = None) -> RankRequest:
    """A request body → :class:`RankRequest`, or :class:`RequestError` (malformed JSON included).

    ``timing`` (if given) gets ``parse_ms`` and ``validate_ms`` (:func:`timed_validate`).
    """
    return timed_validate(lambda: _decode(body, limits, default_slots, default_mode), timing)


def _decode(body: bytes, limits, default_slots, default_mode) -> RequestColumns:
    cols = columns_from_json(body, limits, default_slots, default_mode)
    if cols is not None:
        return cols
    try:
        # orjson: strict RFC 8259 (NaN / Infinity rejected), several times faster than json.
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RequestError(f"malformed JSON: {e}") from None
    return R.decode_request(obj, limits, default_slots, default_mode)


def columns_from_json(body: bytes, limits: RequestLimits = RequestLimits(), default_slots: int = 3,
                      default_mode: str = R.PERI) -> Optional[RequestColumns]:
    """The fast path: a regular column-form body → :class:`RequestColumns`; ``None`` for anything else."""
    parser = getattr(_local, "parser", None)
    try:
        if parser is None:  # a Parser reuses its buffers between documents: one per thread
            parser = _local.parser = simdjson.Parser()
        doc = parser.parse(body)
    except RuntimeError:  # the last document is still referenced somewhere: leave it to that parser
        _local.parser = None
        return columns_from_json(body, limits, default_slots, default_mode)
    except ValueError:  # malformed, NaN, invalid UTF-8, a number out of double range
        return None
    try:
        return _columns(doc, body, limits, default_slots, default_mode)
    except (_Irregular, RequestError):
        return None
    finally:
        del doc  # the document lives in the parser's buffers, which the next parse reuses


def _keys(obj, required: frozenset, allowed: frozenset) -> list:
    if type(obj) is not simdjson.Object:
        raise _Irregular
    keys = list(obj.keys())
    names = set(keys)
    if len(names) != len(keys) or not required <= names <= allowed:  # duplicate, missing, unknown
        raise _Irregular
    return keys


def _column(obj, name: str, dtype: np.dtype, n: int) -> np.ndarray:
    """Column ``name`` of ``obj``: a list of ``n`` numbers of ``dtype`` (int64: JSON integers only)."""
    values = obj[name]
    if type(values) is not simdjson.Array or len(values) != n:
        raise _Irregular
    return _buffer(values, dtype, n)


def _buffer(values, dtype: np.dtype, size: int) -> np.ndarray:
    """The numbers of a list (nested lists flattened, as ``as_buffer`` does), exactly ``size`` of them."""
    try:
        arr = np.frombuffer(values.as_buffer(of_type="i" if dtype == _INT64 else "d"), dtype=dtype)
    except (TypeError, ValueError):  # a value of another type, an integer out of int64
        raise _Irregular from None
    if arr.size != size:
        raise _Irregular
    return arr


def _dtype(name: str) -> np.dtype:
    return _INT64 if name in F.BY_NAME and F.BY_NAME[name].dtype == F.INT else _FLOAT64


def _columns(doc, body: bytes, limits, default_slots, default_mode) -> RequestColumns:
    top = _keys(doc, _REQUIRED_TOP, _TOP_FIELDS)
    user = R.decode_user(_object(doc, R.USER))
    seq_obj = _object(doc, R.SEQUENCE)
    sequence = R.decode_sequence(seq_obj, limits)
    options = R.decode_options(lambda k, default: _scalar(doc, k, default, top), limits, default_slots,
                               default_mode)

    ads = doc[R.ADS]
    ad_keys = _keys(ads, _AD_REQUIRED, _AD_REQUIRED | set(R.OPTIONAL_AD_FLOATS))
    if type(ads[F.AD_ID]) is not simdjson.Array:
        raise _Irregular
    m = len(ads[F.AD_ID])
    check_num_ads(m, limits)
    ad_columns = {n: _column(ads, n, _dtype(n), m) for n in R.ad_column_names(ad_keys)}
    counts = _column(ads, R.NUM_CREATIVES, _INT64, m)
    offsets = creative_offsets(counts, limits, lambda i: "")
    total = int(offsets[-1])

    creatives_obj = doc[R.CREATIVES]
    creative_keys = _keys(creatives_obj, _CREATIVE_REQUIRED, _CREATIVE_ALLOWED)
    creatives = {n: _embeddings(creatives_obj, total) if n == F.CREATIVE_EMBEDDING
                 else _column(creatives_obj, n, _INT64, total) for n in F.CREATIVE_FEATURES}
    hist_ctr = np.full(total, np.nan)
    if R.HIST_CTR in creative_keys:
        hist = creatives_obj[R.HIST_CTR]
        if type(hist) is not simdjson.Array or len(hist) != total:
            raise _Irregular
        hist_ctr = R.optional_numbers(hist.as_list(), total, lambda k: "")  # nulls allowed: a list is fine
    # Every list of a regular request was read above (T embedding rows among them): one more "[" means a
    # nested list the flattening buffers hid, or one inside a string (then the slow path decides).
    lists = len(seq_obj) + len(ad_keys) + len(creative_keys) + total
    if np.count_nonzero(np.frombuffer(body, np.uint8) == _OPEN_BRACKET) != lists:  # 6x bytes.count's speed
        raise _Irregular
    return RequestColumns(user, sequence, ad_columns, offsets, creatives, hist_ctr, *options, R.COLUMN_PATHS)


def _object(doc, key: str) -> dict:
    """A small object (user, sequence) as a dict, for the shared checks."""
    value = doc[key]
    if type(value) is not simdjson.Object:
        raise _Irregular
    return value.as_dict()


def _scalar(doc, key: str, default, keys):
    if key not in keys:
        return default
    value = doc[key]
    if type(value) in (simdjson.Object, simdjson.Array):
        raise _Irregular
    return value


def _embeddings(creatives_obj, total: int) -> np.ndarray:
    """[T, D] float64: T lists of exactly D numbers (lengths checked per row: a flat count of T x D would
    hide ragged rows)."""
    dim = F.CREATIVE_EMBEDDING_DIM
    values = creatives_obj[F.CREATIVE_EMBEDDING]
    if type(values) is not simdjson.Array or len(values) != total:
        raise _Irregular
    flat = _buffer(values, _FLOAT64, total * dim)
    try:
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=total)
    except TypeError:  # a row that is a number, not a list
        raise _Irregular from None
    if (lengths != dim).any():
        raise _Irregular
    return flat.reshape(total, dim)
