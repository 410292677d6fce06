"""The Peri-CR router: ranks a request's M ads with AR and picks each ad's creative with CR.

Four orders of the two models (Yang et al., AAAI 2024 — JAC / Peri-CR: "Online Parallelism Architecture"
and Table 1):

* ``peri`` (Peri-CR, the default): AR on the M ads and CR on all M x N creatives are requested at
  once — two concurrent gRPC calls — so the latency is that of the slower model, not their sum.
* ``pre`` (Pre-CR, the order of CACS, Lin et al., SIGIR 2022): CR first picks every ad's creative,
  then AR ranks the ads. A creative-blind AR ranks as in ``peri`` (the response's ``note`` says so; the
  mode measures the serial cost); a creative-aware AR scores each ad with the creative CR picked.
* ``post`` (Post-CR): AR first, then CR only for the top-L ads' creatives.
* ``no-cr``: AR only; each ad shows a random creative (seeded by the request's ``seed`` and user id), which a
  creative-aware AR scores the ad with.

Which AR is served is read from its metadata (:mod:`serving.router.model_contract`): a creative-aware AR
cannot run before CR picked the creatives, so ``peri`` and ``post`` are refused with a 400 saying why.

Both calls use the models' ``predict_raw`` signature; user features and the behaviour sequence are sent
once (batch 1) for the models to broadcast, unless ``tile_user_features`` (needed when TF Serving
batches across requests).

Scores: ads are ranked by ``pctr_ad`` — or, when the request gives every ad a bid (``features.AD_BID``), by
eCPM = ``pctr_ad`` x bid (ties keep request order) — and the top ``slots`` returned, each with its ``ecpm``
(null without bids); each ad shows the creative with the highest ``pctr_c`` (ties: the first listed).

Failures. AR failed or late (``ar_timeout_ms``) → :class:`BackendError` (HTTP 503): there is no ranking
without it. CR failed or late (``cr_timeout_ms``) → every ad gets its *fallback creative*: the one with
the highest ``hist_ctr`` given in the request, else the first listed (callers list creatives in their
preferred order, e.g. most recent first); the response is marked ``degraded`` with the reason.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent import futures
from typing import Any, Dict, List, Optional

import grpc
import numpy as np

import features as F
from serving.clients import GrpcServingClient, PredictResult, ServingClient, _FuturePredictCall
from serving.creative_vectors import CreativeVectorCache
from serving.protocol import ServingError
from serving.router.json_body import decode_json_body
from serving.router import model_contract as MC
from serving.router.request import (MODES, NO_CR, PERI, POST, PRE, RankRequest, RequestLimits,
                                    parse_request)
from serving.router.traffic_split import TrafficSplit

log = logging.getLogger("serving.router")

SOURCE_CR = "cr"
SOURCE_FALLBACK_HIST = "fallback:hist_ctr"
SOURCE_FALLBACK_FIRST = "fallback:first"
SOURCE_RANDOM = "random"
ECPM = "ecpm"  # response field: pctr_ad x bid of each returned ad (null when the request has no bids)


class BackendError(Exception):
    """The ad ranker failed: the request cannot be ranked (HTTP 503)."""

    status = 503


@dataclasses.dataclass
class RouterConfig:
    """Router settings.

    Attributes:
      ar_address / cr_address: gRPC ``host:port`` of the model servers (CR defaults to AR's).
      ar_timeout_ms / cr_timeout_ms: per-backend deadlines.
      default_slots / default_mode: used when a request gives none.
      tile_user_features: send user and sequence rows once per ad / creative instead of once
        (TF Serving with ``--enable_batching`` needs equal 0th dimensions).
      sequence_length: pad (or cut, keeping the newest) the behaviour sequence to this fixed length;
        ``None`` sends it as is. Fix it when TF Serving batches, which pads with the first element.
      seed: base seed of the ``no-cr`` random creative.
      traffic_split: address both models by version label, users split between a stable and a canary
        label (:mod:`serving.router.traffic_split`); ``None`` serves the latest versions.
      cr_creative_vectors: the CR is a two-tower CR (``dssm``): score it from its creative vectors, kept by
        model version and creative id (:mod:`serving.creative_vectors`), instead of its raw signature.
    """

    ar_address: str = "127.0.0.1:8500"
    cr_address: Optional[str] = None
    ar_model: str = F.AR_MODEL_NAME
    cr_model: str = F.CR_MODEL_NAME
    ar_timeout_ms: float = 2000.0
    cr_timeout_ms: float = 2000.0
    default_slots: int = 3
    default_mode: str = PERI
    limits: RequestLimits = dataclasses.field(default_factory=RequestLimits)
    tile_user_features: bool = False
    sequence_length: Optional[int] = None
    seed: int = 0
    traffic_split: Optional[TrafficSplit] = None
    cr_creative_vectors: bool = False

    def __post_init__(self):
        if self.default_mode not in MODES:
            raise ValueError(f"default_mode must be one of {MODES}, got {self.default_mode!r}")
        if self.ar_timeout_ms <= 0 or self.cr_timeout_ms <= 0:
            raise ValueError("ar_timeout_ms and cr_timeout_ms must be positive")
        if self.sequence_length is not None and self.sequence_length < 1:
            raise ValueError(f"sequence_length must be >= 1, got {self.sequence_length}")
        if not 1 <= self.default_slots <= self.limits.max_slots:
            raise ValueError(f"default_slots must be in [1, {self.limits.max_slots}]")


# --------------------------------------------------------------------------------------- model inputs
def _np_dtype(name: str):
    return np.int64 if F.BY_NAME[name].dtype == F.INT else np.float32


def _user_rows(value, rows: int, tile: bool, dtype) -> np.ndarray:
    arr = np.array([value], dtype=dtype)
    return np.repeat(arr, rows) if tile else arr


def sequence_matrix(req: RankRequest, name: str, length: Optional[int]) -> np.ndarray:
    """[1, L] int64, right-padded with ``SEQUENCE_PAD`` (never empty: a lone pad for an empty sequence)."""
    seq = req.sequence[name]
    if length is not None:
        seq = seq[-length:]  # newest last: keep the most recent
        width = length
    else:
        width = max(1, seq.size)
    out = np.full([1, width], F.SEQUENCE_PAD, dtype=np.int64)
    out[0, :seq.size] = seq
    return out


def ar_inputs(req: RankRequest, tile_user: bool = False,
              sequence_length: Optional[int] = None) -> Dict[str, np.ndarray]:
    """``predict_raw`` inputs of AR: one row per ad; user features and sequences batch 1 (or tiled)."""
    m = req.num_ads
    out = {}
    for n in F.AR_SERVING_INPUTS:
        if n in F.SEQUENCE_FEATURES:
            seq = sequence_matrix(req, n, sequence_length)
            out[n] = np.repeat(seq, m, axis=0) if tile_user else seq
        elif n in F.USER_FEATURES:
            out[n] = _user_rows(req.user[n], m, tile_user, _np_dtype(n))
        else:
            out[n] = req.ads[n]
    return out


def cr_inputs(req: RankRequest, ads: Optional[np.ndarray] = None,
              tile_user: bool = False) -> Dict[str, np.ndarray]:
    """``predict_raw`` inputs of CR: one row per creative of ``ads`` (default: all ads), in ad order.

    The ad's features and its ``ad_hist_ctr`` (CR's online stand-in for ``pctr_ad``) repeat per creative.
    """
    if ads is None:  # all ads (peri, pre): the creative columns as they are, no gather
        rows, ads, n_rows = None, slice(None), req.num_creatives
    else:  # the given ads in their order (post: the top L), each ad's creatives in turn
        ads = np.asarray(ads, dtype=np.int64)
        rows = _creative_rows(req, ads)
        n_rows = rows.size
    out = {}
    for n in F.CR_SERVING_INPUTS:
        if n in F.CR_USER_FEATURES:
            out[n] = _user_rows(req.user[n], n_rows, tile_user, _np_dtype(n))
        elif n in F.CREATIVE_FEATURES:
            out[n] = req.creatives[n] if rows is None else req.creatives[n][rows]
        else:
            out[n] = np.repeat(req.ads[n][ads], req.counts[ads])
    return out


def _creative_rows(req: RankRequest, ads: Optional[np.ndarray]) -> np.ndarray:
    if ads is None:
        return np.arange(req.num_creatives)
    return np.concatenate([np.arange(req.offsets[a], req.offsets[a + 1]) for a in ads]) \
        if len(ads) else np.zeros([0], np.int64)


# ----------------------------------------------------------------------------------------- selection
def best_creatives(req: RankRequest, ads: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row (into the request's creatives) of the highest-scoring creative of each ad in ``ads``.

    ``scores`` is [T], one ``pctr_c`` per creative of the request (only ``ads``' rows are read).
    Ties go to the first listed creative.
    """
    return np.array([req.offsets[a] + int(np.argmax(scores[req.offsets[a]:req.offsets[a + 1]]))
                     for a in ads], dtype=np.int64)


def fallback_creatives(req: RankRequest, ads: np.ndarray):
    """(rows, sources): each ad's creative with the best known ``hist_ctr``, else its first one."""
    rows, sources = [], []
    for a in ads:
        lo, hi = int(req.offsets[a]), int(req.offsets[a + 1])
        hist = req.creative_hist_ctr[lo:hi]
        if np.isfinite(hist).any():
            rows.append(lo + int(np.nanargmax(hist)))
            sources.append(SOURCE_FALLBACK_HIST)
        else:
            rows.append(lo)
            sources.append(SOURCE_FALLBACK_FIRST)
    return np.array(rows, dtype=np.int64), sources


def random_creatives(req: RankRequest, ads: np.ndarray, base_seed: int) -> np.ndarray:
    """A uniformly random creative per ad, reproducible from (router seed, request seed, user id)."""
    rng = np.random.default_rng([base_seed, req.seed or 0, req.user[F.USER_ID]])
    return req.offsets[ads] + rng.integers(0, req.counts[ads])


def ecpm(pctr_ad: np.ndarray, bids: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """[M] float64 eCPM = ``pctr_ad`` x bid, or ``None`` without bids."""
    return None if bids is None else pctr_ad.astype(np.float64) * bids.astype(np.float64)


def top_ads(pctr_ad: np.ndarray, slots: int, bids: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices of the ``slots`` highest ``pctr_ad``, or eCPM with ``bids`` (ties keep request order)."""
    key = pctr_ad.astype(np.float64) if bids is None else ecpm(pctr_ad, bids)
    return np.argsort(-key, kind="stable")[:slots]


# ---------------------------------------------------------------------------------------- the router
class PeriCRRouter:
    """Ranks requests against AR and CR model servers (TF Serving or the stand-in) over gRPC.

    ``rank(request_json)`` returns the response dict (see :meth:`rank`); it raises
    :class:`serving.router.request.RequestError` (4xx) for bad requests and :class:`BackendError` (503)
    when AR fails.
    """

    def __init__(self, config: RouterConfig, ar_client: Optional[ServingClient] = None,
                 cr_client: Optional[ServingClient] = None):
        self.config = config
        self._own = []
        if ar_client is None:
            ar_client = GrpcServingClient(config.ar_address)
            self._own.append(ar_client)
        if cr_client is None:
            if config.cr_address in (None, config.ar_address):
                cr_client = ar_client
            else:
                cr_client = GrpcServingClient(config.cr_address)
                self._own.append(cr_client)
        self.ar = ar_client
        self.cr = cr_client
        self.ar_contract = MC.ARContractCache(lambda: MC.read_ar_contract(self.ar, config.ar_model))
        self.creative_vectors, self._cr_pool = None, None
        if config.cr_creative_vectors:  # its calls run on a thread, so that CR still runs beside AR
            self.creative_vectors = CreativeVectorCache(self.cr, config.cr_model, timeout=config.cr_timeout_ms / 1e3)
            self._cr_pool = futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="cr-vectors")

    def served_models(self):
        """[(model name, client)] of every model the router calls (readiness checks them all)."""
        return [(self.config.ar_model, self.ar), (self.config.cr_model, self.cr)]

    def decode_json(self, body: bytes, timing: Optional[Dict[str, float]] = None) -> Any:
        """A JSON request body -> what :meth:`rank` takes (:func:`serving.router.json_body.decode_json_body`);
        a subclass with another request form (``serving.router.genco``) recognises its own first."""
        c = self.config
        return decode_json_body(body, c.limits, c.default_slots, c.default_mode, timing)

    def close(self) -> None:
        if self._cr_pool is not None:
            self._cr_pool.shutdown(wait=False, cancel_futures=True)
        for c in self._own:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- backend calls
    def _label(self, req: RankRequest) -> Optional[str]:
        """The version label that scores this request's user (None: the latest versions)."""
        split = self.config.traffic_split
        return None if split is None else split.label_for(req.user[F.USER_ID])

    def _start_ar(self, req: RankRequest, creative_rows: Optional[np.ndarray] = None):
        c = self.config
        inputs = ar_inputs(req, c.tile_user_features, c.sequence_length)
        if creative_rows is not None:  # a creative-aware AR: each ad with its shown creative
            inputs.update(MC.creative_columns(req, creative_rows, self.ar_contract.get().creative_inputs))
        return self.ar.start_predict(c.ar_model, inputs, F.RAW_SIGNATURE, self._label(req),
                                     timeout=c.ar_timeout_ms / 1e3)

    def _start_cr(self, req: RankRequest, ads: Optional[np.ndarray] = None):
        c = self.config
        inputs = cr_inputs(req, ads, c.tile_user_features)
        if self.creative_vectors is not None:
            return _FuturePredictCall(self._cr_pool.submit(self._cr_from_vectors, inputs, self._label(req)))
        return self.cr.start_predict(c.cr_model, inputs, F.RAW_SIGNATURE, self._label(req),
                                     timeout=c.cr_timeout_ms / 1e3)

    def _cr_from_vectors(self, inputs, label) -> PredictResult:
        try:
            return self.creative_vectors.predict(inputs, label)
        except ServingError:
            raise
        except Exception as e:  # e.g. a CR without the two-tower signatures: a failed CR call (degraded)
            raise ServingError(grpc.StatusCode.INTERNAL, f"scoring from creative vectors: {e}") from None

    @staticmethod
    def _timed_start(start, timing: Dict[str, float], prefix: str, *args):
        t0 = time.perf_counter()
        try:
            return start(*args), None
        except ServingError as e:  # e.g. a closed channel: treated like a failed call
            return None, e
        except Exception as e:
            log.exception("%s request could not be built", prefix)
            return None, ServingError(grpc.StatusCode.INTERNAL, str(e))
        finally:
            timing[f"{prefix}_encode_ms"] = (time.perf_counter() - t0) * 1e3

    @staticmethod
    def _scores(call, error, output: str, rows: int, what: str, prefix: str, timing, timeout_ms: float):
        """(result, None) once ``result.outputs[output]`` is checked to be finite float32 [rows], else
        (None, the error). ``prefix`` ("ar" / "cr") names the call's entries in ``timing``."""
        if call is None:
            return None, error
        try:
            result = call.result()
        except ServingError as e:
            return None, e
        if result.rpc_ms > timeout_ms:
            # gRPC may still deliver a response that lands in the poll cycle its deadline expired in: the
            # router's deadline is what callers were promised, so a late answer is a late answer.
            return None, ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                      f"answered after {result.rpc_ms:.1f} ms, past the {timeout_ms:g} ms deadline")
        scores = np.asarray(result.outputs.get(output), dtype=np.float32).reshape(-1)
        if scores.shape != (rows,) or not np.isfinite(scores).all():
            return None, ServingError(grpc.StatusCode.INTERNAL, f"{prefix.upper()} returned {output} of "
                                                                f"shape {scores.shape} for {rows} {what}")
        result.outputs[output] = scores
        timing[f"{prefix}_rpc_ms"] = result.rpc_ms
        timing[f"{prefix}_decode_ms"] = result.decode_ms
        return result, None

    def _ar_result(self, call, error, req: RankRequest, timing) -> PredictResult:
        result, error = self._scores(call, error, F.PCTR_AD, req.num_ads, "ads", "ar", timing,
                                     self.config.ar_timeout_ms)
        if result is None:
            self.ar_contract.invalidate()  # the served AR may have changed to one with other inputs
            raise BackendError(f"ad ranker ({self.config.ar_model}) failed: {error.code.name}: "
                               f"{error.message}")
        self.ar_contract.observe(result.version)
        return result

    def _cr_result(self, call, error, rows: int, timing):
        """(result or None, reason or None)."""
        result, error = self._scores(call, error, F.PCTR_C, rows, "creatives", "cr", timing,
                                     self.config.cr_timeout_ms)
        if result is not None:
            return result, None
        reason = (f"creative ranker ({self.config.cr_model}) failed: {error.code.name}: "
                  f"{error.message}")
        log.warning("degraded: %s", reason)
        return None, reason

    # -- ranking
    def rank(self, request: Any, timing: Optional[Dict[str, float]] = None) -> Dict[str, Any]:
        """Ranks one request (a decoded JSON object or a :class:`RankRequest`).

        ``timing``: stages already spent on this request (``<stage>_ms``, e.g. the ``parse_ms`` and
        ``validate_ms`` of :func:`serving.router.json_body.decode_json_body`), reported with the rest.

        Returns::

            {"request_id": ..., "mode": "peri", "degraded": false, "degraded_reason": null,
             "ads": [{"rank": 1, "ad_id": int, "pctr_ad": float, "ecpm": float | null, "creative_id": int,
                      "pctr_c": float | null, "creative_source": "cr" | "fallback:hist_ctr" |
                      "fallback:first" | "random"}, ...],          # top-L, by pctr_ad (eCPM with bids)
             "model_versions": {"ar": int | null, "cr": int | null},   # the versions that scored it
             "version_label": str | null,                 # the label both were addressed by (traffic split)
             "note": str,                         # only when there is one (pre with a creative-blind AR)
             "timing_ms": {"parse": .., "validate": .., "ar_encode": .., "ar_rpc": .., "ar_decode": ..,
                           "cr_encode": .., "cr_rpc": .., "cr_decode": .., "scoring": ..,
                           "select": .., "total": ..}}

        (``parse``: the HTTP or gRPC API's bytes → typed columns, given in ``timing``; ``validate``: the
        value checks.)

        ``scoring`` is the wall time from the first model request to the last decoded response.
        """
        t_start = time.perf_counter()
        timing = dict(timing or {})
        if isinstance(request, RankRequest):
            req = request
        else:
            req = parse_request(request, self.config.limits, self.config.default_slots,
                                self.config.default_mode)
            timing["validate_ms"] = (time.perf_counter() - t_start) * 1e3
        try:
            contract = self.ar_contract.get()
        except MC.ContractError as e:
            raise BackendError(str(e)) from None
        note = MC.check_mode(contract, req.mode)  # a RequestError for an order this AR cannot serve
        t_valid = time.perf_counter()
        slots = min(req.slots, req.num_ads)
        cr_result = None
        reason = None
        cr_ads = None  # ads whose creatives CR scored (None: all)
        shown = None  # for a creative-aware AR: the creative row each ad is scored with

        if req.mode == PERI:
            ar_call, ar_err = self._timed_start(self._start_ar, timing, "ar", req)
            cr_call, cr_err = self._timed_start(self._start_cr, timing, "cr", req)
            try:
                ar_result = self._ar_result(ar_call, ar_err, req, timing)
            except BackendError:
                if cr_call is not None:
                    cr_call.cancel()
                raise
            cr_result, reason = self._cr_result(cr_call, cr_err, req.num_creatives, timing)
        elif req.mode == PRE:
            cr_call, cr_err = self._timed_start(self._start_cr, timing, "cr", req)
            cr_result, reason = self._cr_result(cr_call, cr_err, req.num_creatives, timing)
            if contract.creative_aware:  # each ad with the creative CR picked (its fallback if CR failed)
                every = np.arange(req.num_ads)
                shown = (best_creatives(req, every, cr_result.outputs[F.PCTR_C]) if cr_result is not None
                         else fallback_creatives(req, every)[0])
            ar_call, ar_err = self._timed_start(self._start_ar, timing, "ar", req, shown)
            ar_result = self._ar_result(ar_call, ar_err, req, timing)
        else:  # post, no-cr: AR first
            if req.mode == NO_CR and contract.creative_aware:  # the random creatives, scored by AR
                shown = random_creatives(req, np.arange(req.num_ads), self.config.seed)
            ar_call, ar_err = self._timed_start(self._start_ar, timing, "ar", req, shown)
            ar_result = self._ar_result(ar_call, ar_err, req, timing)
        pctr_ad = ar_result.outputs[F.PCTR_AD]
        bids = req.ads.get(F.AD_BID)
        ad_ecpm = ecpm(pctr_ad, bids)
        top = top_ads(pctr_ad, slots, bids)
        if req.mode == POST:
            cr_ads = top
            cr_call, cr_err = self._timed_start(self._start_cr, timing, "cr", req, cr_ads)
            cr_result, reason = self._cr_result(cr_call, cr_err, int(req.counts[cr_ads].sum()), timing)
        t_scored = time.perf_counter()

        # The creative of each top ad.
        scores = None
        if req.mode == NO_CR:
            rows = shown[top] if shown is not None else random_creatives(req, top, self.config.seed)
            sources = [SOURCE_RANDOM] * len(top)
        elif cr_result is None:
            rows, sources = fallback_creatives(req, top)
        else:
            scores = np.full(req.num_creatives, np.nan, dtype=np.float32)
            scores[_creative_rows(req, cr_ads)] = cr_result.outputs[F.PCTR_C]
            rows = best_creatives(req, top, scores)
            sources = [SOURCE_CR] * len(top)

        ads_out: List[Dict[str, Any]] = []
        for k, (a, row) in enumerate(zip(top, rows)):
            ads_out.append({
                "rank": k + 1,
                F.AD_ID: int(req.ads[F.AD_ID][a]),
                F.PCTR_AD: float(pctr_ad[a]),
                ECPM: None if ad_ecpm is None else float(ad_ecpm[a]),
                F.CREATIVE_ID: int(req.creatives[F.CREATIVE_ID][row]),
                F.PCTR_C: None if scores is None else float(scores[row]),
                "creative_source": sources[k],
            })
        t_end = time.perf_counter()
        timing["scoring_ms"] = (t_scored - t_valid) * 1e3
        timing["select_ms"] = (t_end - t_scored) * 1e3
        timing["total_ms"] = (t_end - t_start) * 1e3
        response = {
            "request_id": req.request_id,
            "mode": req.mode,
            "degraded": reason is not None,
            "degraded_reason": reason,
            "ads": ads_out,
            "model_versions": {
                self.config.ar_model: ar_result.version,
                self.config.cr_model: None if cr_result is None else cr_result.version,
            },
            "version_label": self._label(req),
            "timing_ms": {k[:-3]: round(v, 3) for k, v in timing.items()},
        }
        if note:
            response["note"] = note
        return response
