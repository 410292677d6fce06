"""The router's GenCO mode: AR ranks the ads while GenCO composes every ad's creative from its elements.

As Peri-CR requests CR beside AR, mode ``"genco"`` requests GenCO (Gu et al., 2025) beside AR: two concurrent
gRPC calls, AR on the M ads (``predict_raw``, as in :mod:`serving.router.core`) and GenCO on the same M ads
with their component pools (``predict_raw`` of :mod:`trainer.genco.serving_inputs`), which returns each ad's
chosen element per component. The request is the row form of :mod:`serving.router.request` with
``"mode": "genco"`` and, instead of ``creatives``, each ad's pools::

    {"mode": "genco", "user": {...}, "sequence": {...}, "slots": 3,
     "ads": [{<ad features>, "components": {"title": {"ids": [int, ...], "styles": [int, ...]},
                                            "image": {...}, ...}},     # a component the ad lacks is left out
             ...]}

and the answer, per top-L ad, its combination::

    {"rank": 1, "ad_id": .., "pctr_ad": .., "ecpm": .. | null, "creative_source": "genco" | "fallback:first",
     "combination": {"title": {"index": int, "id": int}, ...}, "genco_score": float | null}

Bad pools get a 400 naming the ad and the component: more candidates than the padding
(``features.GENCO_MAX_CANDIDATES``), an empty pool for a listed component, ids that are not non-negative
integers, styles outside ``[0, features.GENCO_NUM_STYLES)``, ids and styles of different lengths, an id listed
twice in a pool, an unknown component. GenCO failed or late (``timeout_ms``) -> every ad shows the first element
of each pool and the response is ``degraded``; AR failed -> 503, as in the other modes.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, List, Optional

import grpc
import numpy as np
import orjson

import features as F
from serving.clients import GrpcServingClient, ServingClient
from serving.protocol import ServingError
from serving.router.core import ECPM, BackendError, PeriCRRouter, RouterConfig, ar_inputs, ecpm, log, top_ads
from serving.router.request import ADS, MODE, NO_CR, RankRequest, RequestError, parse_request

GENCO_MODE = "genco"
COMPONENTS = "components"
IDS, STYLES = "ids", "styles"
SOURCE_GENCO = "genco"
SOURCE_FALLBACK_FIRST = "fallback:first"
_INT64_MAX = 2 ** 63 - 1
# Stands in for every ad's creative list when its AR part is validated by parse_request; never scored.
_PLACEHOLDER_CREATIVE = {**{n: 0 for n in F.CREATIVE_FEATURES}, F.CREATIVE_EMBEDDING: [0.0] * F.CREATIVE_EMBEDDING_DIM}


@dataclasses.dataclass
class GenCOSettings:
    """Where GenCO is served: gRPC ``address``, model name, deadline."""

    address: str
    model: str = F.GENCO_MODEL_NAME
    timeout_ms: float = 2000.0

    def __post_init__(self):
        if self.timeout_ms <= 0:
            raise ValueError(f"genco timeout_ms must be positive, got {self.timeout_ms}")


@dataclasses.dataclass
class GenCORequest:
    """A validated GenCO request: its AR part and every ad's pools, padded for the model."""

    rank: RankRequest  # the ads' and user's features (its creative columns are the placeholders)
    pools: Dict[str, Dict[str, np.ndarray]]  # component -> {"ids": [M, N], "styles": [M, N]} (GENCO_PAD padding)

    def size(self, component: str) -> np.ndarray:
        return (self.pools[component][IDS] != F.GENCO_PAD).sum(axis=1)


def is_genco_request(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get(MODE) == GENCO_MODE


def _int_list(values: Any, where: str, high: Optional[int], what: str) -> List[int]:
    if not isinstance(values, list):
        raise RequestError(f"{where}: expected a list of {what}, got {type(values).__name__}")
    for k, v in enumerate(values):
        if type(v) is not int or v < 0 or v > (high - 1 if high is not None else _INT64_MAX):
            valid = f"[0, {high})" if high is not None else ">= 0 (a 64-bit integer)"
            raise RequestError(f"{where}[{k}]: {v!r} is not a valid {what[:-1]} (an integer {valid})")
    return values


def _parse_pools(ad: Any, i: int) -> Dict[str, tuple]:
    where = f"{ADS}[{i}].{COMPONENTS}"
    if not isinstance(ad, dict) or COMPONENTS not in ad:
        raise RequestError(f"{ADS}[{i}]: missing field '{COMPONENTS}' (the genco mode composes each ad's creative "
                           f"from its component pools)")
    pools = ad[COMPONENTS]
    if not isinstance(pools, dict) or not pools:
        raise RequestError(f"{where}: expected an object with at least one of {', '.join(F.GENCO_COMPONENTS)}")
    out = {}
    for c, pool in pools.items():
        if c not in F.GENCO_COMPONENTS:
            raise RequestError(f"{where}: unknown component '{c}' (known: {', '.join(F.GENCO_COMPONENTS)})")
        if not isinstance(pool, dict) or set(pool) != {IDS, STYLES}:
            raise RequestError(f"{where}.{c}: expected an object with exactly '{IDS}' and '{STYLES}'")
        ids = _int_list(pool[IDS], f"{where}.{c}.{IDS}", None, "element ids")
        styles = _int_list(pool[STYLES], f"{where}.{c}.{STYLES}", F.GENCO_NUM_STYLES, "styles")
        if not ids:
            raise RequestError(f"{where}.{c}: the pool is empty (leave the component out if the ad lacks it)")
        if len(ids) > F.GENCO_MAX_CANDIDATES:
            raise RequestError(f"{where}.{c}: {len(ids)} candidates exceed the padding of {F.GENCO_MAX_CANDIDATES}")
        if len(styles) != len(ids):
            raise RequestError(f"{where}.{c}: {len(ids)} ids but {len(styles)} styles")
        if len(set(ids)) != len(ids):
            dup = next(v for k, v in enumerate(ids) if v in ids[:k])
            raise RequestError(f"{where}.{c}.{IDS}: element id {dup} is listed twice")
        out[c] = (ids, styles)
    return out


def parse_genco_request(obj: Dict[str, Any], config: RouterConfig) -> GenCORequest:
    """Validates a GenCO-mode request (:class:`~serving.router.request.RequestError`, 400, naming the field)."""
    ads = obj.get(ADS)
    if not isinstance(ads, list):
        raise RequestError(f"{ADS}: the genco mode takes a list of ads (the row form), got {type(ads).__name__}")
    pools = [_parse_pools(ad, i) for i, ad in enumerate(ads)]
    # The AR part (user, sequence, ad features, options) is validated exactly as in the other modes.
    ar_ads = [{k: v for k, v in ad.items() if k != COMPONENTS} | {"creatives": [_PLACEHOLDER_CREATIVE]} for ad in ads]
    rank = parse_request({**obj, ADS: ar_ads, MODE: NO_CR}, config.limits, config.default_slots, NO_CR)
    dense = {}
    for c in F.GENCO_COMPONENTS:
        ids = np.full((len(ads), F.GENCO_MAX_CANDIDATES), F.GENCO_PAD, np.int64)
        styles = ids.copy()
        for i, ad_pools in enumerate(pools):
            if c in ad_pools:
                ids[i, :len(ad_pools[c][0])], styles[i, :len(ad_pools[c][1])] = ad_pools[c]
        dense[c] = {IDS: ids, STYLES: styles}
    return GenCORequest(rank, dense)


def genco_inputs(req: GenCORequest) -> Dict[str, np.ndarray]:
    """``predict_raw`` inputs of GenCO: one row per ad; the user's features once (batch 1)."""
    out = {n: np.array([req.rank.user[n]], np.int64) for n in F.GENCO_USER_FEATURES}
    out.update({n: req.rank.ads[n].astype(np.int64) for n in F.GENCO_AD_FEATURES})
    for c in F.GENCO_COMPONENTS:
        out[F.GENCO_CAND_IDS[c]] = req.pools[c][IDS]
        out[F.GENCO_CAND_STYLES[c]] = req.pools[c][STYLES]
    return out


def check_genco_outputs(req: GenCORequest, outputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """GenCO's outputs as int64 [M] indices per component and a float32 [M] score; raises ``ServingError``
    (INTERNAL) unless every index points at a candidate of a pool the ad has, and -1 where it has none."""
    m = req.rank.num_ads
    out = {}
    for c in F.GENCO_COMPONENTS:
        index = np.asarray(outputs.get(F.GENCO_CHOSEN_INDEX[c]), dtype=np.int64).reshape(-1)
        size = req.size(c)
        if index.shape != (m,) or ((size > 0) & ((index < 0) | (index >= size))).any() or \
                ((size == 0) & (index != -1)).any():
            raise ServingError(grpc.StatusCode.INTERNAL, f"GenCO returned invalid {F.GENCO_CHOSEN_INDEX[c]} for {m} ads")
        out[c] = index
    score = np.asarray(outputs.get(F.GENCO_SCORE), dtype=np.float32).reshape(-1)
    if score.shape != (m,) or not np.isfinite(score).all():
        raise ServingError(grpc.StatusCode.INTERNAL, f"GenCO returned {F.GENCO_SCORE} of shape {score.shape}")
    out[F.GENCO_SCORE] = score
    return out


class GenCORouter(PeriCRRouter):
    """:class:`~serving.router.core.PeriCRRouter` plus the ``"genco"`` mode (see the module docstring)."""

    def __init__(self, config: RouterConfig, genco: GenCOSettings, ar_client: Optional[ServingClient] = None,
                 cr_client: Optional[ServingClient] = None, genco_client: Optional[ServingClient] = None):
        super().__init__(config, ar_client, cr_client)
        self.genco_settings = genco
        if genco_client is None:
            genco_client = GrpcServingClient(genco.address)
            self._own.append(genco_client)
        self.genco = genco_client

    def served_models(self):
        return super().served_models() + [(self.genco_settings.model, self.genco)]

    def decode_json(self, body: bytes, timing: Optional[Dict[str, float]] = None) -> Any:
        """A GenCO-mode body -> its JSON object (validated by :meth:`rank_genco`); any other -> the
        core's columns. The byte test keeps the other modes on the core's fast path."""
        if b'"genco"' in body:
            t0 = time.perf_counter()
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise RequestError(f"malformed JSON: {e}") from None
            if is_genco_request(obj):
                if timing is not None:
                    timing["parse_ms"] = (time.perf_counter() - t0) * 1e3
                return obj
        return super().decode_json(body, timing)

    def rank(self, request: Any, timing: Optional[Dict[str, float]] = None) -> Dict[str, Any]:
        if is_genco_request(request):
            return self.rank_genco(request, timing)
        return super().rank(request, timing)

    def _start_genco(self, req: GenCORequest):
        s = self.genco_settings
        return self.genco.start_predict(s.model, genco_inputs(req), F.RAW_SIGNATURE, timeout=s.timeout_ms / 1e3)

    def _genco_result(self, call, error, req: GenCORequest, timing):
        """(checked outputs and the version, or None; the degradation reason or None)."""
        if call is not None:
            try:
                result = call.result()
                outputs = check_genco_outputs(req, result.outputs)
                timing["genco_rpc_ms"], timing["genco_decode_ms"] = result.rpc_ms, result.decode_ms
                return (outputs, result.version), None
            except ServingError as e:
                error = e
        reason = f"combination generator ({self.genco_settings.model}) failed: {error.code.name}: {error.message}"
        log.warning("degraded: %s", reason)
        return None, reason

    def rank_genco(self, request: Dict[str, Any], timing: Optional[Dict[str, float]] = None) -> Dict[str, Any]:
        """Ranks a GenCO-mode request: AR and GenCO in parallel (see the module docstring); ads by
        ``pctr_ad``, or by eCPM when every ad has a bid, as in the other modes."""
        t_start = time.perf_counter()
        timing = dict(timing or {})
        req = parse_genco_request(request, self.config)
        t_valid = time.perf_counter()
        c = self.config
        ar_call, ar_err = self._timed_start(
            lambda r: self.ar.start_predict(c.ar_model, ar_inputs(r, c.tile_user_features, c.sequence_length),
                                            F.RAW_SIGNATURE, timeout=c.ar_timeout_ms / 1e3), timing, "ar", req.rank)
        genco_call, genco_err = self._timed_start(self._start_genco, timing, "genco", req)
        try:
            ar_result = self._ar_result(ar_call, ar_err, req.rank, timing)
        except BackendError:
            if genco_call is not None:
                genco_call.cancel()
            raise
        generated, reason = self._genco_result(genco_call, genco_err, req, timing)
        t_scored = time.perf_counter()
        pctr_ad = ar_result.outputs[F.PCTR_AD]
        bids = req.rank.ads.get(F.AD_BID)
        ad_ecpm = ecpm(pctr_ad, bids)
        ads_out = []
        for k, a in enumerate(top_ads(pctr_ad, min(req.rank.slots, req.rank.num_ads), bids)):
            combination = {}
            for comp in F.GENCO_COMPONENTS:
                if req.size(comp)[a] == 0:
                    continue
                index = int(generated[0][comp][a]) if generated else 0
                combination[comp] = {"index": index, "id": int(req.pools[comp][IDS][a, index])}
            ads_out.append({"rank": k + 1, F.AD_ID: int(req.rank.ads[F.AD_ID][a]), F.PCTR_AD: float(pctr_ad[a]),
                            ECPM: None if ad_ecpm is None else float(ad_ecpm[a]), "combination": combination,
                            "genco_score": float(generated[0][F.GENCO_SCORE][a]) if generated else None,
                            "creative_source": SOURCE_GENCO if generated else SOURCE_FALLBACK_FIRST})
        t_end = time.perf_counter()
        timing.update(validate_ms=(t_valid - t_start) * 1e3, scoring_ms=(t_scored - t_valid) * 1e3,
                      select_ms=(t_end - t_scored) * 1e3, total_ms=(t_end - t_start) * 1e3)
        return {"request_id": req.rank.request_id, "mode": GENCO_MODE, "degraded": reason is not None,
                "degraded_reason": reason, "ads": ads_out,
                "model_versions": {c.ar_model: ar_result.version,
                                   self.genco_settings.model: generated[1] if generated else None},
                "timing_ms": {k[:-3]: round(v, 3) for k, v in timing.items()}}
