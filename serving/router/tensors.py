"""The router's binary form: the request's columns as named tensors of a TF Serving ``PredictRequest``.

Services call the router as they call a model on TF Serving — ``PredictionService/Predict`` over gRPC
(:mod:`serving.router.grpc_api`) with ``model_spec.name = "router"`` — or POST the serialized message to
``/v1/rank`` with ``Content-Type: application/x-protobuf`` (:data:`PROTOBUF`; the answer is a serialized
``PredictResponse``), and need no JSON at all: the columns travel as ``TensorProto`` bytes
(``tensor_content``) and are read in place. Inputs, every name as in the JSON column form
(:mod:`serving.router.request`):

==============================================  =================  ==========================
input                                           dtype              shape
==============================================  =================  ==========================
each ``features.USER_FEATURES`` name            int64 (or int32)   ``[]`` or ``[1]``
each ``features.SEQUENCE_FEATURES`` name        int64 (or int32)   ``[S]``, newest last
each ad feature, ``ad_hist_imps``               int64 (or int32)   ``[M]``
``ad_hist_ctr``                                 float32 / float64  ``[M]``
``num_creatives``                               int64 (or int32)   ``[M]``
each creative feature but the embedding         int64 (or int32)   ``[T]`` (T = sum of counts)
``creative_embedding``                          float32 / float64  ``[T, CREATIVE_EMBEDDING_DIM]``
``hist_ctr`` (optional)                         float32 / float64  ``[T]``, NaN where unknown
``slots``, ``seed`` (optional)                  int64              ``[]``
``mode``, ``request_id`` (optional)             string             ``[]``
==============================================  =================  ==========================

Outputs of the ``PredictResponse``: one row per returned ad, in rank order — ``ad_id`` int64 ``[L]``,
``creative_id`` int64 ``[L]``, ``pctr_ad`` float32 ``[L]``, ``pctr_c`` float32 ``[L]`` (NaN: no CR
score), ``creative_source`` string ``[L]`` — and ``mode`` string ``[]``, ``degraded`` bool ``[]``,
``degraded_reason`` string ``[]`` ("" when not degraded), ``request_id`` (when given, as given),
``model_names`` string ``[K]`` with ``model_versions`` int64 ``[K]`` (−1: that model did not answer),
``timing_stages`` string ``[S]`` with ``timing_ms`` float32 ``[S]``. Bad requests fail with
``INVALID_ARGUMENT`` and the same message as over HTTP, naming the input and the first bad index
(``ad_category[2]: 24 is outside its valid range [0, 24)``).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Union

import numpy as np

import features as F
from serving import protocol as P
from serving.router import request as R
from serving.router.columns import (RankRequest, Paths, RequestColumns, RequestError, RequestLimits,
                                    check_num_ads, creative_offsets)

ROUTER_MODEL = "router"
RANK_SIGNATURE = "rank"
PROTOBUF = "application/x-protobuf"  # the HTTP content type of a serialized PredictRequest / PredictResponse
TENSOR_PATHS = Paths(ad=lambda name, i: f"{name}[{i}]", creative=lambda name, j: f"{name}[{j}]",
                     user=lambda name: name, sequence=lambda name, i: f"{name}[{i}]")
_OPTIONS = (R.SLOTS, R.MODE, R.REQUEST_ID, R.SEED)
_REQUIRED = (F.USER_FEATURES + F.SEQUENCE_FEATURES + R.AD_FIELDS + (R.NUM_CREATIVES,) + F.CREATIVE_FEATURES)
_AD_OUTPUTS = (F.AD_ID, F.CREATIVE_ID, F.PCTR_AD, F.PCTR_C, "creative_source")


# --------------------------------------------------------------------------------------- request
def _is_int(name: str) -> bool:
    return name == R.NUM_CREATIVES or (name in F.BY_NAME and F.BY_NAME[name].dtype == F.INT)


def _decode(inputs, name: str) -> np.ndarray:
    try:
        return P.from_tensor_proto(inputs[name])
    except (ValueError, TypeError) as e:
        raise RequestError(f"input '{name}': {e}") from None


def _input(inputs, name: str, shape: str, ndims=(1,)) -> np.ndarray:
    """Input ``name`` as int64 (int32 or int64 sent) or float64 (float32 or float64 sent), of ``ndims``."""
    arr = _decode(inputs, name)
    integer = _is_int(name)
    if arr.dtype.kind != ("i" if integer else "f") or arr.ndim not in ndims:
        raise RequestError(f"input '{name}': expected {'int64' if integer else 'float32'} {shape}, got "
                           f"{'string' if arr.dtype == object else arr.dtype.name} {list(arr.shape)}")
    return arr.astype(np.int64 if integer else np.float64, copy=False)


def _option(inputs, name: str, default):
    """A scalar option as a Python value, for the checks the JSON form shares."""
    if name not in inputs:
        return default
    arr = _decode(inputs, name)
    if arr.size != 1:
        raise RequestError(f"input '{name}': expected a scalar, got shape {list(arr.shape)}")
    value = arr.reshape(-1)[0]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(f"input '{name}': not UTF-8 text") from None
    return value.item()  # int, float or bool: the checks reject all but int where an int goes


def parse_request_proto(body: bytes):
    """A serialized ``PredictRequest`` (an HTTP body) → the message, or :class:`RequestError`."""
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import predict_pb2

    try:
        return predict_pb2.PredictRequest.FromString(body)
    except DecodeError as e:
        raise RequestError(f"malformed PredictRequest: {e}") from None


def columns_from_proto(request, limits: RequestLimits = RequestLimits(), default_slots: int = 3,
                       default_mode: str = R.PERI) -> RequestColumns:
    """A ``PredictRequest`` → :class:`RequestColumns` (dtypes, shapes, sizes and limits checked)."""
    inputs = request.inputs
    allowed = set(_REQUIRED) | set(R.OPTIONAL_AD_FLOATS) | {R.HIST_CTR} | set(_OPTIONS)
    unknown = sorted(set(inputs) - allowed)
    if unknown:
        raise RequestError(f"request: unknown input '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
    missing = [n for n in _REQUIRED if n not in inputs]
    if missing:
        raise RequestError(f"request: missing input '{missing[0]}'")
    user = {}
    for n in F.USER_FEATURES:
        arr = _input(inputs, n, "[] or [1]", (0, 1))
        if arr.size != 1:
            raise RequestError(f"input '{n}': expected int64 [] or [1], got shape {list(arr.shape)}")
        user[n] = int(arr.reshape(-1)[0])
    sequence = {n: _input(inputs, n, "[S]") for n in F.SEQUENCE_FEATURES}
    lengths = {n: len(v) for n, v in sequence.items()}
    if len(set(lengths.values())) > 1:
        raise RequestError(f"{R.SEQUENCE}: the lists must have equal lengths (parallel), got {lengths}")
    if lengths and max(lengths.values()) > limits.max_sequence_length:
        raise RequestError(f"{R.SEQUENCE}: {max(lengths.values())} items exceed the limit of "
                           f"{limits.max_sequence_length}")

    ads = {n: _input(inputs, n, "[M]") for n in R.ad_column_names(inputs)}
    m = len(ads[F.AD_ID])
    check_num_ads(m, limits)
    counts = _input(inputs, R.NUM_CREATIVES, "[M]")
    _check_rows({**ads, R.NUM_CREATIVES: counts}, m, f"ads ({F.AD_ID} has {m})")
    offsets = creative_offsets(counts, limits, lambda i: f"{R.NUM_CREATIVES}[{i}]")
    total = int(offsets[-1])
    creatives = {n: _input(inputs, n, "[T, D]", (2,)) if n == F.CREATIVE_EMBEDDING else _input(inputs, n, "[T]")
                 for n in F.CREATIVE_FEATURES}
    hist_ctr = _input(inputs, R.HIST_CTR, "[T]") if R.HIST_CTR in inputs else np.full(total, np.nan)
    _check_rows({**creatives, R.HIST_CTR: hist_ctr}, total, f"creatives (the sum of {R.NUM_CREATIVES})")
    dim = creatives[F.CREATIVE_EMBEDDING].shape[1] if F.CREATIVE_EMBEDDING else 0
    if dim != F.CREATIVE_EMBEDDING_DIM:
        raise RequestError(f"input '{F.CREATIVE_EMBEDDING}': expected {F.CREATIVE_EMBEDDING_DIM} numbers "
                           f"per creative, got {dim}")
    options = R.decode_options(lambda k, default: _option(inputs, k, default), limits, default_slots,
                               default_mode)
    return RequestColumns(user, sequence, ads, offsets, creatives, hist_ctr, *options, TENSOR_PATHS)


def _check_rows(columns: Mapping[str, np.ndarray], n_rows: int, what: str) -> None:
    for n, v in columns.items():
        if len(v) != n_rows:
            raise RequestError(f"input '{n}': {len(v)} values for {n_rows} {what}")


def request_to_proto(request: Union[Mapping[str, Any], RankRequest], model: str = ROUTER_MODEL):
    """A request (JSON-like dict in either form, NumPy columns allowed, or a :class:`RankRequest`) → the
    ``PredictRequest`` the router's gRPC API takes."""
    from tensorflow_serving.apis import predict_pb2

    proto = predict_pb2.PredictRequest()
    proto.model_spec.name = model
    proto.model_spec.signature_name = RANK_SIGNATURE
    for name, value in _request_arrays(request).items():
        P.fill_tensor_proto(proto.inputs[name], value)
    return proto


def _request_arrays(request) -> Dict[str, np.ndarray]:
    if isinstance(request, RankRequest):
        out = {n: np.int64(v) for n, v in request.user.items()}
        out.update(request.sequence)
        out.update(request.ads)
        out[R.NUM_CREATIVES] = request.counts
        out.update(request.creatives)
        if np.isfinite(request.creative_hist_ctr).any():
            out[R.HIST_CTR] = request.creative_hist_ctr.astype(np.float32)
        options = {R.SLOTS: request.slots, R.MODE: request.mode, R.REQUEST_ID: request.request_id,
                   R.SEED: request.seed}
    else:
        cols = R.to_column_form(dict(request))
        out = {n: _wire(v) for part in (R.USER, R.SEQUENCE, R.ADS, R.CREATIVES) for n, v in cols[part].items()}
        if R.HIST_CTR in out:
            out[R.HIST_CTR] = np.array([np.nan if v is None else v for v in cols[R.CREATIVES][R.HIST_CTR]],
                                       np.float32)
        options = {k: cols.get(k) for k in _OPTIONS}
    for k, v in options.items():
        if v is not None:
            out[k] = np.array(v.encode(), object) if isinstance(v, str) else _wire(v)
    return out


def _wire(values) -> np.ndarray:
    """JSON-like values as the wire dtype of their kind: integers int64, numbers float32. Nothing is
    coerced across kinds (floats sent for an int64 input are refused by the router, naming it)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    return arr.astype(np.float32, copy=False) if arr.dtype.kind == "f" else arr


# -------------------------------------------------------------------------------------- response
def response_to_proto(response: Mapping[str, Any], model: str = ROUTER_MODEL):
    """The router's response dict (:meth:`PeriCRRouter.rank`) → ``PredictResponse``."""
    from tensorflow_serving.apis import predict_pb2

    proto = predict_pb2.PredictResponse()
    proto.model_spec.name = model
    proto.model_spec.signature_name = RANK_SIGNATURE
    ads = response["ads"]
    columns = {
        F.AD_ID: np.array([a[F.AD_ID] for a in ads], np.int64),
        F.CREATIVE_ID: np.array([a[F.CREATIVE_ID] for a in ads], np.int64),
        F.PCTR_AD: np.array([a[F.PCTR_AD] for a in ads], np.float32),
        F.PCTR_C: np.array([np.nan if a[F.PCTR_C] is None else a[F.PCTR_C] for a in ads], np.float32),
        "ecpm": np.array([np.nan if a.get("ecpm") is None else a["ecpm"] for a in ads], np.float64),
        "creative_source": np.array([a["creative_source"].encode() for a in ads], object),
        "mode": np.array(response["mode"].encode(), object),
        "degraded": np.array(bool(response["degraded"])),
        "degraded_reason": np.array((response["degraded_reason"] or "").encode(), object),
        "model_names": np.array([m.encode() for m in response["model_versions"]], object),
        "model_versions": np.array([-1 if v is None else v for v in response["model_versions"].values()],
                                   np.int64),
        "timing_stages": np.array([s.encode() for s in response["timing_ms"]], object),
        "timing_ms": np.array(list(response["timing_ms"].values()), np.float32),
    }
    request_id = response.get("request_id")
    if request_id is not None:
        columns["request_id"] = np.array(request_id.encode(), object) if isinstance(request_id, str) \
            else np.int64(request_id)
    if response.get("version_label") is not None:  # (traffic split: the label both models were addressed by)
        columns["version_label"] = np.array(response["version_label"].encode(), object)
    if response.get("note"):  # (e.g. pre with a creative-blind AR)
        columns["note"] = np.array(response["note"].encode(), object)
    for name, value in columns.items():
        P.fill_tensor_proto(proto.outputs[name], value)
    return proto


def response_from_proto(proto) -> Dict[str, Any]:
    """``PredictResponse`` → the same dict the JSON API answers."""
    out = {k: P.from_tensor_proto(v) for k, v in proto.outputs.items()}
    text = lambda a: a.item().decode() if isinstance(a.item(), bytes) else a.item()  # noqa: E731
    ads = []
    for k in range(len(out[F.AD_ID])):
        pctr_c = float(out[F.PCTR_C][k])
        ecpm = float(out["ecpm"][k]) if "ecpm" in out else np.nan  # NaN: the request had no bids
        ads.append({"rank": k + 1, F.AD_ID: int(out[F.AD_ID][k]), F.PCTR_AD: float(out[F.PCTR_AD][k]),
                    "ecpm": None if np.isnan(ecpm) else ecpm,
                    F.CREATIVE_ID: int(out[F.CREATIVE_ID][k]), F.PCTR_C: None if np.isnan(pctr_c) else pctr_c,
                    "creative_source": out["creative_source"][k].decode()})
    reason = text(out["degraded_reason"])
    response = {
        "request_id": text(out["request_id"]) if "request_id" in out else None,
        "mode": text(out["mode"]),
        "degraded": bool(out["degraded"]),
        "degraded_reason": reason or None,
        "ads": ads,
        "model_versions": {m.decode(): None if v < 0 else int(v)
                           for m, v in zip(out["model_names"], out["model_versions"])},
        "version_label": text(out["version_label"]) if "version_label" in out else None,
        "timing_ms": {s.decode(): round(float(v), 3) for s, v in zip(out["timing_stages"], out["timing_ms"])},
    }
    if "note" in out:
        response["note"] = text(out["note"])
    return response
