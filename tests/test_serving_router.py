"""The Peri-CR router: request validation, the four modes, degradation, version pushes, HTTP errors.

Backends are model server stand-ins on loopback ports serving fake AR/CR models (or copies of a real
serving root when $ADCR_SERVING_ROOT is set); expected scores come from the same SavedModels loaded
in-process.
"""

import copy
import http.client
import json
import os
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf

import features as F
from serving import backend as B
from serving import protocol as P
from serving import testing as T
from serving import tf_serving
from serving.clients import GrpcServingClient
from serving.inprocess import NoopServingClient
from serving.router import (PeriCRRouter, RequestError, RequestLimits, RouterClient, RouterConfig,
                            RouterError, RouterServer, parse_request)
from serving.router import core as C
from serving.router import request as R
from serving.sample_requests import random_request
from serving.standin import ModelServerStandIn

MODELS = (F.AR_MODEL_NAME, F.CR_MODEL_NAME)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("serving"))
    T.prepare_serving_root(path, version=1)
    return path


@pytest.fixture(scope="module")
def server(root):
    s = ModelServerStandIn({m: os.path.join(root, m) for m in MODELS}, poll_seconds=0).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def loaded(root):
    return {m: tf.saved_model.load(os.path.join(root, m, "1")) for m in MODELS}


@pytest.fixture(scope="module")
def router(server):
    with PeriCRRouter(RouterConfig(ar_address=server.grpc_address, ar_timeout_ms=20000,
                                   cr_timeout_ms=20000)) as r:
        yield r


def expected_scores(loaded, req):
    """pctr_ad [M] and pctr_c [T] of every ad and creative, from the SavedModels in-process."""
    def run(model, inputs):
        fn = loaded[model].signatures[F.RAW_SIGNATURE]
        (out,) = fn(**{k: tf.constant(v) for k, v in inputs.items()}).values()
        return out.numpy()
    return run(F.AR_MODEL_NAME, C.ar_inputs(req)), run(F.CR_MODEL_NAME, C.cr_inputs(req))


# --------------------------------------------------------------------------------------- validation
def _valid():
    return random_request(3, 2, seed=1, seq_len=4)


_set = T.mutation


BAD_REQUESTS = [
    ("no user", _set([R.USER], KeyError), "request: missing field 'user'"),
    ("user field float", _set([R.USER, F.USER_GENDER], 1.5), "user.user_gender: expected an integer, got 1.5"),
    ("user field bool", _set([R.USER, F.USER_GENDER], True), "user.user_gender: expected an integer, got a boolean"),
    ("user field string", _set([R.USER, F.USER_ID], "7"), "user.user_id: expected an integer, got a string"),
    ("user code out of domain", _set([R.USER, F.USER_GENDER], len(F.GENDERS)),
     f"user.user_gender: {len(F.GENDERS)} is outside its valid range [0, {len(F.GENDERS)})"),
    ("user missing feature", _set([R.USER, F.USER_OS], KeyError), "user: missing field 'user_os'"),
    ("user unknown field", _set([R.USER, "user_shoe_size"], 3), "user: unknown field 'user_shoe_size'"),
    ("user not object", _set([R.USER], [1]), "user: expected an object, got a list"),
    ("sequence negative id", _set([R.SEQUENCE, F.SEQ_AD_IDS, 2], -1),
     "sequence.seq_ad_ids[2]: -1 is outside its valid range >= 0"),
    ("sequence not a list", _set([R.SEQUENCE, F.SEQ_AD_IDS], 5), "sequence.seq_ad_ids: expected a list"),
    ("sequence unequal", _set([R.SEQUENCE, F.SEQ_AD_CATEGORIES], [1]), "must have equal lengths"),
    ("ads not list", _set([R.ADS], "x"), "ads: expected a list of ads or an object of columns, got a string"),
    ("creatives with row form", _set([R.CREATIVES], {}), "request: field 'creatives' goes with the column form"),
    ("ads empty", _set([R.ADS], []), "ads: at least one ad is required"),
    ("ad not object", _set([R.ADS, 1], 7), "ads[1]: expected an object, got 7"),
    ("ad missing feature", _set([R.ADS, 2, F.AD_CATEGORY], KeyError), "ads[2]: missing field 'ad_category'"),
    ("ad unknown field", _set([R.ADS, 0, "ad_colour"], 1), "ads[0]: unknown field 'ad_colour'"),
    ("ad category out of domain", _set([R.ADS, 1, F.AD_CATEGORY], F.NUM_AD_CATEGORIES),
     f"ads[1].ad_category: {F.NUM_AD_CATEGORIES} is outside its valid range"),
    ("ad id too large", _set([R.ADS, 0, F.AD_ID], 2 ** 70), "ads[0].ad_id: 1180591620717411303424 does not fit in int64"),
    ("hist ctr above 1", _set([R.ADS, 0, F.AD_HIST_CTR], 1.5), "ads[0].ad_hist_ctr: 1.5 is outside [0.0, 1.0]"),
    ("hist ctr string", _set([R.ADS, 0, F.AD_HIST_CTR], "0.1"), "ads[0].ad_hist_ctr: expected a number, got a string"),
    ("hist imps float", _set([R.ADS, 0, F.AD_HIST_IMPS], 10.0), "ads[0].ad_hist_imps: expected an integer, got 10.0"),
    ("creatives missing", _set([R.ADS, 1, R.CREATIVES], KeyError), "ads[1]: missing field 'creatives'"),
    ("creatives not list", _set([R.ADS, 1, R.CREATIVES], "x"), "ads[1].creatives: expected a list"),
    ("creatives empty", _set([R.ADS, 2, R.CREATIVES], []), "ads[2].creatives: at least one creative is required"),
    ("creative not object", _set([R.ADS, 1, R.CREATIVES, 1], None), "ads[1].creatives[1]: expected an object, got null"),
    ("creative missing feature", _set([R.ADS, 1, R.CREATIVES, 0, F.CREATIVE_STYLE], KeyError),
     "ads[1].creatives[0]: missing field 'creative_style'"),
    ("creative unknown field", _set([R.ADS, 2, R.CREATIVES, 1, "creative_mood"], 1),
     "ads[2].creatives[1]: unknown field 'creative_mood'"),
    ("creative style out of domain", _set([R.ADS, 0, R.CREATIVES, 1, F.CREATIVE_STYLE], -2),
     "ads[0].creatives[1].creative_style: -2 is outside its valid range"),
    ("embedding short", _set([R.ADS, 0, R.CREATIVES, 0, F.CREATIVE_EMBEDDING], [0.1, 0.2]),
     f"ads[0].creatives[0].creative_embedding: expected {F.CREATIVE_EMBEDDING_DIM} numbers, got 2"),
    ("embedding string", _set([R.ADS, 1, R.CREATIVES, 1, F.CREATIVE_EMBEDDING, 3], "x"),
     "ads[1].creatives[1].creative_embedding: expected numbers, got a string"),
    ("embedding not list", _set([R.ADS, 1, R.CREATIVES, 1, F.CREATIVE_EMBEDDING], 0.5),
     "ads[1].creatives[1].creative_embedding: expected a list of"),
    ("creative hist ctr bad", _set([R.ADS, 0, R.CREATIVES, 1, R.HIST_CTR], -0.1),
     "ads[0].creatives[1].hist_ctr: -0.1 is outside [0.0, 1.0]"),
    ("slots zero", _set([R.SLOTS], 0), "slots: expected an integer in [1, 100], got 0"),
    ("slots string", _set([R.SLOTS], "3"), "slots: expected an integer"),
    ("bad mode", _set([R.MODE], "sideways"), "mode: expected one of peri, pre, post, no-cr"),
    ("unknown top field", _set(["candidates"], []), "request: unknown field 'candidates'"),
    ("bad seed", _set([R.SEED], -1), "seed: expected a non-negative integer"),
    ("bad request id", _set([R.REQUEST_ID], {"a": 1}), "request_id: expected a string or integer"),
]


def test_duplicates_are_rejected():
    req = _valid()
    req[R.ADS][2][F.AD_ID] = req[R.ADS][0][F.AD_ID]
    with pytest.raises(RequestError, match=r"ads\[2\]\.ad_id: duplicate ad id"):
        parse_request(req)
    req = _valid()
    req[R.ADS][1][R.CREATIVES][1][F.CREATIVE_ID] = req[R.ADS][1][R.CREATIVES][0][F.CREATIVE_ID]
    with pytest.raises(RequestError, match=r"ads\[1\]\.creatives\[1\]\.creative_id: duplicate creative id"):
        parse_request(req)
    # The same creative id under two different ads is fine.
    req = _valid()
    req[R.ADS][1][R.CREATIVES][0][F.CREATIVE_ID] = req[R.ADS][0][R.CREATIVES][0][F.CREATIVE_ID]
    assert parse_request(req).num_creatives == 6


@pytest.mark.parametrize("limits, message", [
    (RequestLimits(max_ads=2), "ads: 3 ads exceed the limit of 2"),
    (RequestLimits(max_creatives_per_ad=1), "ads[0].creatives: 2 creatives exceed the limit of 1"),
    (RequestLimits(max_total_creatives=5), "ads: 6 creatives in all exceed the limit of 5"),
    (RequestLimits(max_sequence_length=3), "sequence.seq_ad_ids: 4 items exceed the limit of 3"),
])
def test_size_limits(limits, message):
    with pytest.raises(RequestError) as e:
        parse_request(_valid(), limits)
    assert message in str(e.value)


def test_parse_request_columns():
    req = _valid()
    req[R.ADS][1][R.CREATIVES][0][R.HIST_CTR] = 0.03
    parsed = parse_request(req)
    assert parsed.num_ads == 3 and parsed.num_creatives == 6
    np.testing.assert_array_equal(parsed.offsets, [0, 2, 4, 6])
    np.testing.assert_array_equal(parsed.ad_of_creative(), [0, 0, 1, 1, 2, 2])
    assert parsed.ads[F.AD_HIST_CTR].dtype == np.float32 and parsed.ads[F.AD_ID].dtype == np.int64
    assert parsed.creatives[F.CREATIVE_EMBEDDING].shape == (6, F.CREATIVE_EMBEDDING_DIM)
    assert np.isnan(parsed.creative_hist_ctr[[0, 1, 3, 4, 5]]).all()
    assert parsed.creative_hist_ctr[2] == pytest.approx(0.03)
    assert parsed.slots == 3 and parsed.mode == R.PERI


# Column form: the same checks, paths name the column and the row.
def _valid_columns():
    req = _valid()
    req[R.ADS][1][R.CREATIVES][0][R.HIST_CTR] = 0.03
    return R.to_column_form(req)


BAD_COLUMN_REQUESTS = [
    ("ads missing column", _set([R.ADS, F.AD_CATEGORY], KeyError), "ads: missing column 'ad_category'"),
    ("ads missing counts", _set([R.ADS, R.NUM_CREATIVES], KeyError), "ads: missing column 'num_creatives'"),
    ("ads unknown column", _set([R.ADS, "ad_colour"], [1, 2, 3]), "ads: unknown field 'ad_colour'"),
    ("ads column not list", _set([R.ADS, F.AD_CATEGORY], 3), "ads.ad_category: expected a list"),
    ("ads column short", _set([R.ADS, F.AD_CATEGORY], [1, 2]), "ads.ad_category: 2 values for 3 ads"),
    ("ads empty", lambda r: {**r, R.ADS: {n: [] for n in r[R.ADS]}}, "ads: at least one ad is required"),
    ("ad category float", _set([R.ADS, F.AD_CATEGORY, 1], 1.5), "ads.ad_category[1]: expected an integer, got 1.5"),
    ("ad category out of domain", _set([R.ADS, F.AD_CATEGORY, 2], F.NUM_AD_CATEGORIES),
     f"ads.ad_category[2]: {F.NUM_AD_CATEGORIES} is outside its valid range"),
    ("hist ctr above 1", _set([R.ADS, F.AD_HIST_CTR, 0], 1.5), "ads.ad_hist_ctr[0]: 1.5 is outside [0.0, 1.0]"),
    ("count zero", _set([R.ADS, R.NUM_CREATIVES, 1], 0), "ads.num_creatives[1]: at least one creative is required"),
    ("count bool", _set([R.ADS, R.NUM_CREATIVES, 1], True), "ads.num_creatives[1]: expected an integer, got a boolean"),
    ("creatives missing", _set([R.CREATIVES], KeyError), "request: missing field 'creatives'"),
    ("creatives not object", _set([R.CREATIVES], []), "creatives: expected an object of columns, got a list"),
    ("creatives missing column", _set([R.CREATIVES, F.CREATIVE_STYLE], KeyError),
     "creatives: missing column 'creative_style'"),
    ("creatives count mismatch", _set([R.ADS, R.NUM_CREATIVES, 2], 3),
     "creatives.creative_id: 6 values for 7 creatives (the sum of ads.num_creatives)"),
    ("creative style negative", _set([R.CREATIVES, F.CREATIVE_STYLE, 4], -2),
     "creatives.creative_style[4]: -2 is outside its valid range"),
    ("embedding short", _set([R.CREATIVES, F.CREATIVE_EMBEDDING, 5], [0.1]),
     f"creatives.creative_embedding[5]: expected {F.CREATIVE_EMBEDDING_DIM} numbers, got 1"),
    ("embedding bool", _set([R.CREATIVES, F.CREATIVE_EMBEDDING, 3, 0], False),
     "creatives.creative_embedding[3]: expected numbers, got a boolean"),
    ("creative hist ctr bad", _set([R.CREATIVES, R.HIST_CTR, 5], 2.0), "creatives.hist_ctr[5]: 2.0 is outside [0.0, 1.0]"),
]


BAD_ANY_FORM = ([("rows: " + n, _valid, m, msg) for n, m, msg in BAD_REQUESTS]
                + [("columns: " + n, _valid_columns, m, msg) for n, m, msg in BAD_COLUMN_REQUESTS])


@pytest.mark.parametrize("name, valid, mutate, message", BAD_ANY_FORM, ids=[b[0] for b in BAD_ANY_FORM])
def test_bad_requests_are_rejected_naming_the_field(name, valid, mutate, message):
    """Row form: the path names the object (``ads[2].ad_category``); column form the column and row
    (``ads.ad_category[2]``)."""
    with pytest.raises(RequestError) as e:
        parse_request(mutate(valid()))
    assert message in str(e.value)
    assert e.value.status == 400


def test_column_form_duplicates_are_rejected():
    req = _valid_columns()
    req[R.ADS][F.AD_ID][2] = req[R.ADS][F.AD_ID][0]
    with pytest.raises(RequestError, match=r"ads\.ad_id\[2\]: duplicate ad id"):
        parse_request(req)
    req = _valid_columns()  # creatives 2 and 3 belong to ad 1
    req[R.CREATIVES][F.CREATIVE_ID][3] = req[R.CREATIVES][F.CREATIVE_ID][2]
    with pytest.raises(RequestError, match=r"creatives\.creative_id\[3\]: duplicate creative id"):
        parse_request(req)


def test_column_form_parses_to_the_same_request_as_the_row_form():
    rows = random_request(7, 3, seed=5, seq_len=6, hist_ctr=True)
    rows[R.ADS][2][R.CREATIVES][1].pop(R.HIST_CTR)  # a creative without hist_ctr: null in the column
    cols = R.to_column_form(rows)
    assert cols[R.ADS][R.NUM_CREATIVES] == [3] * 7 and cols[R.CREATIVES][R.HIST_CTR][7] is None
    assert R.to_column_form(cols) is cols
    a = parse_request(rows)
    b = parse_request(json.loads(json.dumps(cols)))
    np.testing.assert_array_equal(a.offsets, b.offsets)
    for name in a.ads:
        np.testing.assert_array_equal(a.ads[name], b.ads[name])
        assert a.ads[name].dtype == b.ads[name].dtype
    for name in a.creatives:
        np.testing.assert_array_equal(a.creatives[name], b.creatives[name])
    np.testing.assert_array_equal(a.creative_hist_ctr, b.creative_hist_ctr)
    assert np.isnan(b.creative_hist_ctr[7]) and np.isfinite(b.creative_hist_ctr).sum() == 20
    assert (a.user, a.slots, a.mode) == (b.user, b.slots, b.mode)


def test_model_inputs_follow_the_contract():
    req = parse_request(_valid())
    ar = C.ar_inputs(req)
    assert set(ar) == set(F.AR_SERVING_INPUTS)
    assert ar[F.USER_ID].shape == (1,) and ar[F.AD_ID].shape == (3,)
    assert ar[F.SEQ_AD_IDS].shape == (1, 4) and ar[F.SEQ_AD_IDS].dtype == np.int64
    cr = C.cr_inputs(req)
    assert set(cr) == set(F.CR_SERVING_INPUTS)
    assert cr[F.USER_GENDER].shape == (1,) and cr[F.CREATIVE_ID].shape == (6,)
    np.testing.assert_array_equal(cr[F.AD_ID], np.repeat(req.ads[F.AD_ID], 2))
    tiled = C.ar_inputs(req, tile_user=True, sequence_length=6)
    assert tiled[F.USER_ID].shape == (3,) and tiled[F.SEQ_AD_IDS].shape == (3, 6)
    assert (tiled[F.SEQ_AD_IDS][:, 4:] == F.SEQUENCE_PAD).all()
    cut = C.sequence_matrix(req, F.SEQ_AD_IDS, 2)  # keeps the newest two
    np.testing.assert_array_equal(cut[0], req.sequence[F.SEQ_AD_IDS][-2:])
    empty = random_request(1, 1, seq_len=0)
    assert C.ar_inputs(parse_request(empty))[F.SEQ_AD_IDS].tolist() == [[F.SEQUENCE_PAD]]


def test_selection_helpers_hand_computed():
    req = parse_request(random_request(3, 3, seed=4))
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.2, 0.3, 0.0, 0.0, 0.4], np.float32)
    np.testing.assert_array_equal(C.best_creatives(req, np.array([0, 1, 2]), scores), [1, 3, 8])
    np.testing.assert_array_equal(C.top_ads(np.array([0.2, 0.7, 0.7, 0.1]), 3), [1, 2, 0])
    req.creative_hist_ctr[:] = np.nan
    req.creative_hist_ctr[[4, 5]] = [0.01, 0.02]
    rows, sources = C.fallback_creatives(req, np.array([1, 0]))
    assert rows.tolist() == [5, 0]
    assert sources == [C.SOURCE_FALLBACK_HIST, C.SOURCE_FALLBACK_FIRST]


# -------------------------------------------------------------------------------------------- modes
@pytest.mark.parametrize("mode", R.MODES)
def test_each_mode_ranks_by_pctr_ad_and_picks_argmax_creative(router, loaded, mode):
    request = random_request(12, 4, seed=21, slots=5, mode=mode)
    response = router.rank(copy.deepcopy(request))
    req = parse_request(request)
    pctr_ad, pctr_c = expected_scores(loaded, req)
    assert response["mode"] == mode and response["degraded"] is False
    ads = response["ads"]
    assert [a["rank"] for a in ads] == [1, 2, 3, 4, 5]
    ad_ids = req.ads[F.AD_ID].tolist()
    want_top = np.argsort(-pctr_ad, kind="stable")[:5]
    assert [a[F.AD_ID] for a in ads] == [ad_ids[i] for i in want_top]
    got_pctr = [a[F.PCTR_AD] for a in ads]
    assert got_pctr == sorted(got_pctr, reverse=True)
    np.testing.assert_allclose(got_pctr, pctr_ad[want_top], rtol=1e-6)
    for a, i in zip(ads, want_top):
        lo, hi = req.offsets[i], req.offsets[i + 1]
        ids = req.creatives[F.CREATIVE_ID][lo:hi].tolist()
        assert a[F.CREATIVE_ID] in ids
        if mode == R.NO_CR:
            assert a["creative_source"] == C.SOURCE_RANDOM and a[F.PCTR_C] is None
        else:
            best = int(np.argmax(pctr_c[lo:hi]))
            assert a[F.CREATIVE_ID] == ids[best] and a["creative_source"] == C.SOURCE_CR
            assert a[F.PCTR_C] == pytest.approx(float(pctr_c[lo + best]), rel=1e-6)
    versions = response["model_versions"]
    assert versions[F.AR_MODEL_NAME] == 1
    assert versions[F.CR_MODEL_NAME] == (None if mode == R.NO_CR else 1)
    timing = response["timing_ms"]
    assert {"validate", "ar_encode", "ar_rpc", "ar_decode", "scoring", "select", "total"} <= set(timing)
    assert ("cr_rpc" in timing) == (mode != R.NO_CR)


def test_no_cr_random_creative_is_seeded(router):
    request = random_request(10, 6, seed=3, slots=10, mode=R.NO_CR)
    picks = lambda seed: [a[F.CREATIVE_ID] for a in router.rank(dict(request, seed=seed))["ads"]]  # noqa
    assert picks(1) == picks(1)
    assert picks(1) != picks(2)  # 10 ads x 6 creatives: equal by chance with probability 6^-10


def test_slots_larger_than_ads_returns_every_ad(router):
    response = router.rank(random_request(4, 2, seed=8, slots=50))
    assert len(response["ads"]) == 4


class _Recorder:
    """Wraps a serving client to record the order of calls and the batch sizes sent."""

    def __init__(self, inner, log, name):
        self.inner, self.log, self.name = inner, log, name

    def start_predict(self, model, inputs, signature, version=None, timeout=None):
        rows = max(np.asarray(v).shape[0] for v in inputs.values())
        self.log.append(("start", self.name, rows))
        call = self.inner.start_predict(model, inputs, signature, version, timeout)
        log, name = self.log, self.name

        class Call:
            def result(self, timeout=None):
                log.append(("result", name, None))
                return call.result(timeout)

            def cancel(self):
                call.cancel()
        return Call()


def _recorded(server, mode, num_ads=8, creatives=3, slots=2):
    log = []
    inner = GrpcServingClient(server.grpc_address)
    r = PeriCRRouter(RouterConfig(ar_address=server.grpc_address),
                     ar_client=_Recorder(inner, log, "ar"), cr_client=_Recorder(inner, log, "cr"))
    r.rank(random_request(num_ads, creatives, seed=5, slots=slots, mode=mode))
    inner.close()
    return log


def test_call_order_per_mode(server):
    assert _recorded(server, R.PERI) == [("start", "ar", 8), ("start", "cr", 24),
                                         ("result", "ar", None), ("result", "cr", None)]
    assert _recorded(server, R.PRE) == [("start", "cr", 24), ("result", "cr", None),
                                        ("start", "ar", 8), ("result", "ar", None)]
    # Post-CR scores only the creatives of the top-L ads.
    assert _recorded(server, R.POST) == [("start", "ar", 8), ("result", "ar", None),
                                         ("start", "cr", 6), ("result", "cr", None)]
    assert _recorded(server, R.NO_CR) == [("start", "ar", 8), ("result", "ar", None)]


def test_tiled_inputs_work_with_batching_and_give_the_same_ranking(root, router):
    s = ModelServerStandIn({m: os.path.join(root, m) for m in MODELS}, poll_seconds=0,
                           enable_batching=True).start()
    try:
        request = random_request(6, 3, seed=9, slots=6, seq_len=5)
        with PeriCRRouter(RouterConfig(ar_address=s.grpc_address, tile_user_features=True,
                                       sequence_length=8)) as tiled:
            got = tiled.rank(copy.deepcopy(request))["ads"]
        want = router.rank(copy.deepcopy(request))["ads"]
        assert [(a[F.AD_ID], a[F.CREATIVE_ID]) for a in got] == [(a[F.AD_ID], a[F.CREATIVE_ID]) for a in want]
        np.testing.assert_allclose([a[F.PCTR_AD] for a in got], [a[F.PCTR_AD] for a in want], rtol=1e-6)
        # Broadcast (batch-1) user features are what TF Serving's batching rejects: AR fails -> 503.
        with PeriCRRouter(RouterConfig(ar_address=s.grpc_address)) as broadcast:
            with pytest.raises(C.BackendError, match="equal 0th-dimension size"):
                broadcast.rank(copy.deepcopy(request))
    finally:
        s.stop()


# ---------------------------------------------------------------------------------- degradation
def test_cr_down_gives_fallback_creatives(server):
    dead = f"127.0.0.1:{B.free_port()}"
    request = random_request(6, 3, seed=2, slots=6, hist_ctr=True)
    for c in request[R.ADS][3:]:  # half the ads have no creative history
        for creative in c[R.CREATIVES]:
            del creative[R.HIST_CTR]
    with PeriCRRouter(RouterConfig(ar_address=server.grpc_address, cr_address=dead,
                                   cr_timeout_ms=2000)) as r:
        for mode in (R.PERI, R.PRE, R.POST):
            response = r.rank(dict(copy.deepcopy(request), mode=mode))
            assert response["degraded"] is True
            assert "creative ranker (cr) failed: UNAVAILABLE" in response["degraded_reason"]
            assert response["model_versions"][F.CR_MODEL_NAME] is None
            by_ad = {a[F.AD_ID]: a for a in request[R.ADS]}
            for a in response["ads"]:
                creatives = by_ad[a[F.AD_ID]][R.CREATIVES]
                assert a[F.PCTR_C] is None
                if R.HIST_CTR in creatives[0]:
                    want = max(creatives, key=lambda c: c[R.HIST_CTR])[F.CREATIVE_ID]
                    assert (a[F.CREATIVE_ID], a["creative_source"]) == (want, C.SOURCE_FALLBACK_HIST)
                else:
                    assert (a[F.CREATIVE_ID], a["creative_source"]) == (
                        creatives[0][F.CREATIVE_ID], C.SOURCE_FALLBACK_FIRST)


class _SlowModels(NoopServingClient):
    """Answers every call, but only after ``delay_ms`` (as a model that computes slowly would)."""

    def __init__(self, delay_ms: float):
        super().__init__()
        self.delay_ms = delay_ms

    def _outputs(self, model, inputs, signature):
        time.sleep(self.delay_ms / 1e3)
        return super()._outputs(model, inputs, signature)


def test_an_answer_past_the_deadline_counts_as_late_even_when_delivered():
    """gRPC can deliver a response that lands in the poll cycle its deadline expired in; the router's
    deadline still decides (before, ~20% of 1 microsecond deadlines were answered and ranked normally)."""
    slow = _SlowModels(delay_ms=30)
    with PeriCRRouter(RouterConfig(cr_timeout_ms=10), ar_client=NoopServingClient(), cr_client=slow) as r:
        response = r.rank(random_request(5, 3, seed=1))
    assert response["degraded"] and "DEADLINE_EXCEEDED" in response["degraded_reason"]
    assert "past the 10 ms deadline" in response["degraded_reason"]
    with PeriCRRouter(RouterConfig(ar_timeout_ms=10), ar_client=slow, cr_client=NoopServingClient()) as r:
        with pytest.raises(C.BackendError, match="ad ranker \\(ar\\) failed: DEADLINE_EXCEEDED"):
            r.rank(random_request(5, 3, seed=1))
    with PeriCRRouter(RouterConfig(cr_timeout_ms=1000), ar_client=NoopServingClient(), cr_client=slow) as r:
        assert not r.rank(random_request(5, 3, seed=1))["degraded"]


def test_late_cr_degrades_with_deadline_exceeded(server):
    with PeriCRRouter(RouterConfig(ar_address=server.grpc_address, cr_timeout_ms=0.001)) as r:
        response = r.rank(random_request(5, 3, seed=1))
    assert response["degraded"] and "DEADLINE_EXCEEDED" in response["degraded_reason"]
    assert len(response["ads"]) == 3


def test_ar_down_or_unknown_is_503(server):
    with RouterServer(PeriCRRouter(RouterConfig(ar_address=f"127.0.0.1:{B.free_port()}",
                                                ar_timeout_ms=2000))) as srv:
        with pytest.raises(RouterError) as e:
            RouterClient(srv.url).rank(random_request(3, 2))
        assert e.value.status == 503 and "ad ranker (ar) failed: UNAVAILABLE" in e.value.message
        srv.router.close()
    with RouterServer(PeriCRRouter(RouterConfig(ar_address=server.grpc_address, ar_model="nope"))) as srv:
        with pytest.raises(RouterError) as e:
            RouterClient(srv.url).rank(random_request(3, 2))
        assert e.value.status == 503 and "NOT_FOUND" in e.value.message and "nope" in e.value.message
        srv.router.close()


def _load(url, stop, results, errors, requests_per_thread, deadline):
    client = RouterClient(url, timeout=30)
    for i in range(requests_per_thread):
        if stop.is_set() or time.monotonic() > deadline:
            return
        started = time.monotonic()
        try:
            response = client.rank(random_request(20, 4, seed=i, slots=3))
        except Exception as e:  # every failure is a test failure; keep going to count them
            errors.append(repr(e))
            continue
        response["_started"] = started
        results.append(response)


def _run_load(url, threads=3, requests_per_thread=40, seconds=30.0):
    stop, results, errors = threading.Event(), [], []
    deadline = time.monotonic() + seconds
    workers = [threading.Thread(target=_load, args=(url, stop, results, errors, requests_per_thread,
                                                    deadline)) for _ in range(threads)]
    for w in workers:
        w.start()
    return stop, workers, results, errors


def test_killing_cr_under_load_degrades_without_errors(root):
    ar = ModelServerStandIn({F.AR_MODEL_NAME: os.path.join(root, F.AR_MODEL_NAME)}, poll_seconds=0).start()
    cr = ModelServerStandIn({F.CR_MODEL_NAME: os.path.join(root, F.CR_MODEL_NAME)}, poll_seconds=0).start()
    config = RouterConfig(ar_address=ar.grpc_address, cr_address=cr.grpc_address, cr_timeout_ms=3000)
    try:
        with RouterServer(PeriCRRouter(config)) as srv:
            stop, workers, results, errors = _run_load(srv.url)
            t0 = time.monotonic()
            while len(results) < 10 and time.monotonic() - t0 < 20:
                time.sleep(0.05)
            before = len(results)
            cr.stop(grace=0)  # mid-load: in-flight CR calls are cancelled, later ones refused
            while sum(r["degraded"] for r in list(results)) < 15 and time.monotonic() - t0 < 40:
                time.sleep(0.05)
            stop.set()
            for w in workers:
                w.join(60)
            srv.router.close()
        assert errors == []
        assert before >= 10
        assert not any(r["degraded"] for r in results[:before - 3])  # healthy before the kill
        degraded = [r for r in results if r["degraded"]]
        assert len(degraded) >= 15
        assert all(r["degraded"] for r in results[-5:])  # once CR is gone, every response falls back
        assert all(r["degraded_reason"].startswith("creative ranker (cr) failed") for r in degraded)
        assert all(a["creative_source"] == C.SOURCE_FALLBACK_FIRST for r in degraded for a in r["ads"])
        assert all(len(r["ads"]) == 3 for r in results)
    finally:
        cr.stop(grace=0)
        ar.stop()


def test_new_version_pushed_under_load_fails_no_request(tmp_path):
    root = str(tmp_path)
    T.prepare_serving_root(root, version=1)
    s = ModelServerStandIn({m: os.path.join(root, m) for m in MODELS}, poll_seconds=0.2).start()
    try:
        # Deadlines far above any call's time even on a loaded machine: the test is about the version swap, and a
        # request degraded by a slow (not failed) call would hide what it checks.
        config = RouterConfig(ar_address=s.grpc_address, ar_timeout_ms=30_000, cr_timeout_ms=30_000)
        with RouterServer(PeriCRRouter(config)) as srv:
            stop, workers, results, errors = _run_load(srv.url, requests_per_thread=2000, seconds=120)
            T.push_version(root, 2)  # written aside, renamed into place
            status = GrpcServingClient(s.grpc_address)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30:
                states = {m: {v.version: v.state for v in status.status(m)} for m in MODELS}
                if all(st.get(2) == "AVAILABLE" and st.get(1) == "END" for st in states.values()):
                    break
                time.sleep(0.1)
            swapped = time.monotonic()
            while sum(r["_started"] > swapped for r in list(results)) < 10 and time.monotonic() - t0 < 60:
                time.sleep(0.05)
            stop.set()
            for w in workers:
                w.join(60)
            status.close()
            srv.router.close()
        assert errors == []
        assert states == {m: {2: "AVAILABLE", 1: "END"} for m in MODELS}
        assert results[0]["model_versions"] == {m: 1 for m in MODELS}
        after = [r["model_versions"] for r in results if r["_started"] > swapped]
        assert len(after) >= 10 and all(v == {m: 2 for m in MODELS} for v in after)
        assert not any(r["degraded"] for r in results)
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------ HTTP
@pytest.fixture(scope="module")
def http_router(server):
    with RouterServer(PeriCRRouter(RouterConfig(ar_address=server.grpc_address)),
                      max_body_bytes=20_000) as srv:
        yield srv
        srv.router.close()


def _post(srv, path, body: bytes, headers=None):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    conn.request("POST", path, body=body, headers=headers or {})
    r = conn.getresponse()
    payload = json.loads(r.read())
    conn.close()
    return r.status, payload


@pytest.mark.parametrize("body, status, message", [
    (b"{\"user\": ", 400, "malformed JSON"),
    (b"{\"a\": NaN}", 400, "malformed JSON"),
    (b"{\"a\": Infinity}", 400, "malformed JSON"),
    (b"\xff\xfe", 400, "malformed JSON"),
    (b"[]", 400, "request: expected a JSON object"),
    (json.dumps({"user": {}}).encode(), 400, "request: missing field 'sequence'"),
])
def test_http_bad_bodies(http_router, body, status, message):
    got_status, payload = _post(http_router, "/v1/rank", body)
    assert got_status == status and message in payload["error"]


def test_http_oversize_unknown_path_and_methods(http_router):
    big = json.dumps(random_request(40, 5)).encode()
    assert len(big) > 20_000
    status, payload = _post(http_router, "/v1/rank", big)
    assert status == 413 and "exceeds the limit of 20000 bytes" in payload["error"]
    status, payload = _post(http_router, "/v1/nope", b"{}")
    assert status == 404 and "unknown path: /v1/nope" in payload["error"]
    conn = http.client.HTTPConnection(http_router.host, http_router.port, timeout=30)
    conn.request("GET", "/v1/rank")
    r = conn.getresponse()
    assert r.status == 405 and "use POST" in json.loads(r.read())["error"]
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    conn.request("GET", "/readyz")
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 200 and body["ready"] is True
    conn.putrequest("POST", "/v1/rank")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"2\r\n{}\r\n0\r\n\r\n")
    r = conn.getresponse()
    assert r.status == 411 and "Content-Length" in json.loads(r.read())["error"]
    conn.close()


def test_http_rank_round_trip_with_request_id(http_router):
    response = RouterClient(http_router.url).rank(random_request(5, 2, seed=3, request_id="abc"))
    assert response["request_id"] == "abc" and len(response["ads"]) == 3
    assert response["timing_ms"]["parse"] >= 0 and response["timing_ms"]["total"] >= \
        response["timing_ms"]["scoring"]


def test_http_column_form_with_numpy_columns_ranks_like_the_row_form(http_router):
    client = RouterClient(http_router.url)
    rows = random_request(6, 3, seed=8, slots=4)
    cols = R.to_column_form(rows)
    cols[R.ADS] = {n: np.asarray(v) for n, v in cols[R.ADS].items()}  # the client encodes NumPy arrays
    cols[R.CREATIVES] = {n: np.asarray(v) for n, v in cols[R.CREATIVES].items()}
    want, got = client.rank(rows), client.rank(cols)
    assert [(a[F.AD_ID], a[F.CREATIVE_ID]) for a in got["ads"]] == \
        [(a[F.AD_ID], a[F.CREATIVE_ID]) for a in want["ads"]]
    assert [a[F.PCTR_AD] for a in got["ads"]] == pytest.approx([a[F.PCTR_AD] for a in want["ads"]], rel=1e-6)


# ---------------------------------------------------------------------------------- real TF Serving
@pytest.mark.skipif(tf_serving.find_model_server() is None,
                    reason="tensorflow_model_server is not on PATH (TF Serving binary not installed)")
@pytest.mark.parametrize("batching", [False, True])
def test_router_against_real_tf_serving(root, loaded, batching):
    request = random_request(10, 3, seed=31, slots=4)
    req = parse_request(request)
    pctr_ad, pctr_c = expected_scores(loaded, req)
    with B.start_backend(root, kind=B.TF_SERVING, enable_batching=batching) as backend:
        backend.wait_until_available(timeout=120)
        config = RouterConfig(ar_address=backend.grpc_address, tile_user_features=batching,
                              sequence_length=32 if batching else None)
        with PeriCRRouter(config) as r:
            for mode in R.MODES:
                ads = r.rank(dict(copy.deepcopy(request), mode=mode))["ads"]
                top = np.argsort(-pctr_ad, kind="stable")[:4]
                assert [a[F.AD_ID] for a in ads] == req.ads[F.AD_ID][top].tolist()
                if mode != R.NO_CR:
                    for a, i in zip(ads, top):
                        lo, hi = req.offsets[i], req.offsets[i + 1]
                        assert a[F.CREATIVE_ID] == req.creatives[F.CREATIVE_ID][lo + np.argmax(pctr_c[lo:hi])]


# ----------------------------------------------------------------------- JSON body: the fast path
from serving.router import columns as RC  # noqa: E402
from serving.router import json_body as J  # noqa: E402
from serving.router import tensors as RT  # noqa: E402
from serving.router import RouterGrpcClient  # noqa: E402


def _slow(body: bytes):
    """What the orjson path answers: a RankRequest or the RequestError's message."""
    try:
        obj = __import__("orjson").loads(body)
    except ValueError:
        return "malformed JSON"
    try:
        return parse_request(obj)
    except RequestError as e:
        return str(e)


def _fast(body: bytes):
    try:
        return J.decode_json_body(body)
    except RequestError as e:
        return "malformed JSON" if str(e).startswith("malformed JSON") else str(e)


def _assert_same_request(a, b):
    assert isinstance(a, C.RankRequest) and isinstance(b, C.RankRequest), (a, b)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    for part in ("ads", "creatives", "sequence"):
        x, y = getattr(a, part), getattr(b, part)
        assert list(x) == list(y)
        for name in x:
            assert x[name].dtype == y[name].dtype, name
            np.testing.assert_array_equal(x[name], y[name])
    np.testing.assert_array_equal(a.creative_hist_ctr, b.creative_hist_ctr)
    assert (a.user, a.slots, a.mode, a.request_id, a.seed) == (b.user, b.slots, b.mode, b.request_id, b.seed)


def _body(mutate=None, **options):
    req = random_request(4, 3, seed=12, seq_len=5, hist_ctr=True, **options)
    req[R.ADS][1][R.CREATIVES][2].pop(R.HIST_CTR)  # a null in the hist_ctr column
    cols = json.loads(json.dumps(R.to_column_form(req)))
    return json.dumps(mutate(cols) if mutate else cols).encode()


def test_fast_path_decodes_a_column_body_as_parse_request_does():
    for body in (_body(), _body(slots=2, mode=R.NO_CR, request_id="r-1"),
                 json.dumps(R.to_column_form(random_request(50, 7, seed=3, seq_len=0))).encode()):
        assert J.columns_from_json(body) is not None  # taken: not a silent fallback
        _assert_same_request(_fast(body), _slow(body))


def _edit(path, value):
    """A mutation of the column-form dict at ``path``; ``value`` may be a function of the old value."""
    def mutate(cols):
        obj = cols
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value(obj[path[-1]]) if callable(value) else value
        return cols
    return mutate


def _raw(replace_from: bytes, replace_to: bytes):
    return lambda body: body.replace(replace_from, replace_to, 1)


IRREGULAR_BODIES = [
    ("float for an int", _edit([R.ADS, F.AD_CATEGORY, 1], 1.0), None),
    ("bool for an int", _edit([R.CREATIVES, F.CREATIVE_STYLE, 0], True), None),
    ("bool for a float", _edit([R.ADS, F.AD_HIST_CTR, 2], False), None),
    ("null in an int column", _edit([R.ADS, F.AD_BRAND_ID, 0], None), None),
    ("string for a float", _edit([R.ADS, F.AD_HIST_CTR, 0], "0.1"), None),
    ("int beyond int64", _edit([R.ADS, F.AD_ID, 3], 2 ** 64), None),
    ("nested one-item list", _edit([R.ADS, F.AD_CATEGORY, 2], lambda v: [v]), None),
    ("nested list in an embedding", _edit([R.CREATIVES, F.CREATIVE_EMBEDDING, 4, 1], lambda v: [v]), None),
    ("ragged embeddings, same count", _edit([R.CREATIVES, F.CREATIVE_EMBEDDING],
                                            lambda e: [e[0][:-1]] + [e[1] + [0.5]] + e[2:]), None),
    ("embedding row a number", _edit([R.CREATIVES, F.CREATIVE_EMBEDDING, 3], 0.5), None),
    ("hist_ctr string", _edit([R.CREATIVES, R.HIST_CTR, 1], "x"), None),
    ("hist_ctr not a list", _edit([R.CREATIVES, R.HIST_CTR], None), None),
    ("unknown ad column", _edit([R.ADS, "ad_colour"], [1, 2, 3, 4]), None),
    ("counts do not add up", _edit([R.ADS, R.NUM_CREATIVES, 0], 4), None),
    ("zero count", _edit([R.ADS, R.NUM_CREATIVES, 0], 0), None),
    ("slots as float", _edit([R.SLOTS], 2.0), None),
    ("mode unknown", _edit([R.MODE], "sideways"), None),
    ("out of domain (a value error)", _edit([R.ADS, F.AD_CATEGORY, 2], F.NUM_AD_CATEGORIES), None),
    ("duplicate ad id (a value error)", lambda cols: _edit([R.ADS, F.AD_ID, 3], cols[R.ADS][F.AD_ID][1])(cols),
     None),
    ("bracket in request_id (valid)", _edit([R.REQUEST_ID], "a[1]"), None),
    ("duplicate key", None, _raw(b'{"user"', b'{"slots": 9, "slots": 2, "user"')),
    ("NaN literal", None, _raw(b"0.", b"NaN, 0.")),
    ("1e400", None, _raw(b"0.", b"1e400, 0.")),
    ("row form", None, lambda body: json.dumps(random_request(3, 2, seed=1)).encode()),
    ("not an object", None, lambda body: b"[1, 2]"),
]


@pytest.mark.parametrize("name, mutate, raw", IRREGULAR_BODIES, ids=[b[0] for b in IRREGULAR_BODIES])
def test_fast_path_answers_irregular_bodies_as_the_slow_path(name, mutate, raw):
    """Whatever the fast path does not recognise goes the slow way: same requests accepted, same errors."""
    body = _body(mutate, request_id="q") if mutate else _body(request_id="q")
    if raw is not None:
        body = raw(body)
    slow, fast = _slow(body), _fast(body)
    if isinstance(slow, str):
        assert fast == slow
    else:
        _assert_same_request(fast, slow)


def test_fast_path_reports_value_errors_by_column_and_index():
    body = _body(_edit([R.CREATIVES, F.CREATIVE_COLOR_TONE, 7], 99))
    assert J.columns_from_json(body) is not None  # types and shapes are regular: the fast path decides
    with pytest.raises(RequestError, match=r"creatives\.creative_color_tone\[7\]: 99 is outside its valid range"):
        J.decode_json_body(body)


def test_creative_duplicate_shortcut_agrees_with_the_general_check():
    rng = np.random.default_rng(0)
    for counts in ([3, 3, 3, 3], [2, 4, 1, 3]):
        offsets = np.concatenate([[0], np.cumsum(counts)])
        for _ in range(30):
            ids = rng.integers(0, 6, size=offsets[-1])
            ad = np.repeat(np.arange(len(counts)), counts)
            assert RC._duplicate_creative(ids, offsets) == RC.first_duplicate(np.stack([ad, ids], axis=1))


# -------------------------------------------------------------------- an optional ad column (hook)
def test_an_optional_ad_column_is_accepted_in_every_form(monkeypatch):
    """An extra per-ad float (e.g. a bid) is one entry of columns.OPTIONAL_AD_FLOATS for all forms."""
    rows = random_request(3, 2, seed=2, seq_len=3)
    with pytest.raises(RequestError, match=r"ads\[0\]: unknown field 'bid'"):
        parse_request(dict(rows, ads=[dict(a, bid=1.0) for a in rows[R.ADS]]))
    monkeypatch.setitem(RC.OPTIONAL_AD_FLOATS, "bid", (0.0, 100.0))
    rows[R.ADS] = [dict(a, bid=b) for a, b in zip(rows[R.ADS], (0.5, 2, 7.25))]
    cols = R.to_column_form(rows)
    assert cols[R.ADS]["bid"] == [0.5, 2, 7.25]
    for req in (parse_request(rows), J.decode_json_body(json.dumps(cols).encode()),
                RC.validate_columns(RT.columns_from_proto(RT.request_to_proto(rows)))):
        np.testing.assert_array_equal(req.ads["bid"], np.float32([0.5, 2, 7.25]))
    assert "bid" not in parse_request(random_request(3, 2, seed=2)).ads  # optional: absent is fine
    bad = json.loads(json.dumps(cols))
    bad[R.ADS]["bid"][1] = 101
    with pytest.raises(RequestError, match=r"ads\.bid\[1\]: 101.0 is outside \[0.0, 100.0\]"):
        J.decode_json_body(json.dumps(bad).encode())
    rows[R.ADS][2].pop("bid")
    with pytest.raises(RequestError, match=r"ads\[2\]: missing field 'bid'"):
        parse_request(rows)


# ---------------------------------------------------------------------------- the binary form
def _proto(request=None, **edits):
    """A PredictRequest of ``request`` (default: a small valid one); ``edits``: input name -> array (None
    drops it)."""
    proto = RT.request_to_proto(request or random_request(3, 2, seed=1, seq_len=4))
    for name, value in edits.items():
        if name in proto.inputs:
            del proto.inputs[name]
        if value is not None:
            P.fill_tensor_proto(proto.inputs[name], value)
    return proto


def test_binary_form_decodes_to_the_same_request_as_json():
    rows = random_request(7, 3, seed=5, seq_len=6, hist_ctr=True, slots=4, mode=R.POST, request_id="x")
    rows[R.ADS][2][R.CREATIVES][1].pop(R.HIST_CTR)
    want = parse_request(rows)
    got = RC.validate_columns(RT.columns_from_proto(RT.request_to_proto(rows)))
    want.creative_hist_ctr = want.creative_hist_ctr.astype(np.float32).astype(np.float64)  # sent as float32
    _assert_same_request(got, want)
    again = RC.validate_columns(RT.columns_from_proto(RT.request_to_proto(got)))  # from a RankRequest
    _assert_same_request(again, got)


BAD_TENSORS = [
    ("float codes", dict(ad_category=np.float32([1, 2, 3])), "input 'ad_category': expected int64 [M], got float32 [3]"),
    ("ints for floats", dict(ad_hist_ctr=np.int64([0, 0, 0])), "input 'ad_hist_ctr': expected float32 [M], got int64 [3]"),
    ("user not scalar", dict(user_gender=np.int64([1, 2])), "input 'user_gender': expected int64 [] or [1], got shape [2]"),
    ("embedding width", dict(creative_embedding=np.zeros([6, 7], np.float32)),
     f"input 'creative_embedding': expected {F.CREATIVE_EMBEDDING_DIM} numbers per creative, got 7"),
    ("embedding 1-D", dict(creative_embedding=np.zeros([6], np.float32)),
     "input 'creative_embedding': expected float32 [T, D], got float32 [6]"),
    ("short ad column", dict(ad_brand_id=np.int64([1, 2])), "input 'ad_brand_id': 2 values for 3 ads (ad_id has 3)"),
    ("short creative column", dict(creative_style=np.int64([1])),
     "input 'creative_style': 1 values for 6 creatives (the sum of num_creatives)"),
    ("code out of domain", dict(ad_category=np.int64([1, 2, F.NUM_AD_CATEGORIES])),
     f"ad_category[2]: {F.NUM_AD_CATEGORIES} is outside its valid range [0, {F.NUM_AD_CATEGORIES})"),
    ("negative sequence id", dict(seq_ad_ids=np.int64([1, 2, -3, 4])), "seq_ad_ids[2]: -3 is outside its valid range >= 0"),
    ("user code", dict(user_gender=np.int64(len(F.GENDERS))),
     f"user_gender: {len(F.GENDERS)} is outside its valid range [0, {len(F.GENDERS)})"),
    ("NaN hist ctr", dict(ad_hist_ctr=np.float32([0.1, np.nan, 0.2])), "ad_hist_ctr[1]: nan is outside [0.0, 1.0]"),
    ("inf embedding", dict(creative_embedding=np.where(np.arange(48).reshape(6, 8) == 20, np.inf, 0).astype(np.float32)),
     "creative_embedding[2]: values must be finite numbers"),
    ("duplicate ad", dict(ad_id=np.int64([5, 6, 5])), "ad_id[2]: duplicate ad id 5"),
    ("zero count", dict(num_creatives=np.int64([2, 0, 4])), "num_creatives[1]: at least one creative is required"),
    ("unknown input", dict(ad_colour=np.int64([1, 2, 3])), "request: unknown input 'ad_colour'"),
    ("missing input", dict(ad_category=None), "request: missing input 'ad_category'"),
    ("bad mode", dict(mode=np.array(b"sideways", object)), "mode: expected one of peri, pre, post, no-cr"),
    ("slots as float", dict(slots=np.float32(2)), "slots: expected an integer in [1, 100], got 2.0"),
    ("slots not scalar", dict(slots=np.int64([1, 2])), "input 'slots': expected a scalar, got shape [2]"),
]


@pytest.mark.parametrize("name, edits, message", BAD_TENSORS, ids=[b[0] for b in BAD_TENSORS])
def test_bad_binary_requests_name_the_input(name, edits, message):
    with pytest.raises(RequestError) as e:
        RC.validate_columns(RT.columns_from_proto(_proto(**edits)))
    assert message in str(e.value) and e.value.status == 400


def test_response_round_trips_through_predict_response():
    response = {"request_id": 17, "mode": R.PERI, "degraded": True,
                "degraded_reason": "creative ranker (cr) failed: UNAVAILABLE: gone",
                "ads": [{"rank": 1, F.AD_ID: 9, F.PCTR_AD: 0.25, "ecpm": None, F.CREATIVE_ID: 900, F.PCTR_C: None,
                         "creative_source": C.SOURCE_FALLBACK_FIRST},
                        {"rank": 2, F.AD_ID: 4, F.PCTR_AD: 0.125, "ecpm": None, F.CREATIVE_ID: 401, F.PCTR_C: None,
                         "creative_source": C.SOURCE_FALLBACK_HIST}],
                "model_versions": {"ar": 3, "cr": None}, "version_label": None,
                "timing_ms": {"parse": 0.5, "total": 12.25}}
    assert RT.response_from_proto(RT.response_to_proto(response)) == response
    response.update(request_id="abc", degraded=False, degraded_reason=None, version_label="canary",
                    ads=[dict(response["ads"][0], pctr_c=0.5, ecpm=0.75, creative_source=C.SOURCE_CR)])
    assert RT.response_from_proto(RT.response_to_proto(response)) == response  # eCPM in float64: exact


@pytest.fixture(scope="module")
def grpc_router(server):
    with RouterServer(PeriCRRouter(RouterConfig(ar_address=server.grpc_address)), max_body_bytes=200_000,
                      grpc_port=0) as srv:
        yield srv
        srv.router.close()


@pytest.mark.parametrize("mode, transport", [(R.PERI, "grpc"), (R.NO_CR, "grpc"), (R.POST, "http"),
                                             (R.PERI, "http")])
def test_binary_form_ranks_like_the_json_api(grpc_router, mode, transport):
    request = random_request(9, 3, seed=17, slots=4, mode=mode, request_id="g")
    if transport == "grpc":
        with RouterGrpcClient(grpc_router.grpc_address) as client:
            got = client.rank(copy.deepcopy(request))
    else:  # the same PredictRequest POSTed as application/x-protobuf
        got = RouterClient(grpc_router.url).rank(copy.deepcopy(request), binary=True)
    want = RouterClient(grpc_router.url).rank(request)
    assert got["request_id"] == "g" and got["mode"] == mode and got["degraded"] is False
    assert [{k: a[k] for k in ("rank", F.AD_ID, F.CREATIVE_ID, "creative_source")} for a in got["ads"]] == \
        [{k: a[k] for k in ("rank", F.AD_ID, F.CREATIVE_ID, "creative_source")} for a in want["ads"]]
    np.testing.assert_allclose([a[F.PCTR_AD] for a in got["ads"]], [a[F.PCTR_AD] for a in want["ads"]], rtol=1e-6)
    assert [a[F.PCTR_C] is None for a in got["ads"]] == [mode == R.NO_CR] * 4
    assert got["model_versions"] == want["model_versions"] and got["version_label"] is want["version_label"] is None
    assert {"parse", "validate", "scoring", "total"} <= set(got["timing_ms"])


def test_binary_form_errors_carry_status_codes(grpc_router, server):
    with RouterGrpcClient(grpc_router.grpc_address) as client:
        with pytest.raises(RouterError) as e:
            client.rank(_proto(ad_category=np.int64([1, 2, 99])))
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.status == 400
        assert "ad_category[2]: 99 is outside its valid range" in e.value.message
        proto = _proto()
        proto.model_spec.name = "nope"
        with pytest.raises(RouterError) as e:
            client.rank(proto)
        assert e.value.code == grpc.StatusCode.NOT_FOUND and "'router'" in e.value.message
        with pytest.raises(RouterError) as e:  # over max_body_bytes, as HTTP's 413
            client.rank(random_request(300, 10, seed=1))
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    http = RouterClient(grpc_router.url)
    with pytest.raises(RouterError) as e:  # the binary form over HTTP: the same message, HTTP 400
        http.rank(_proto(ad_category=np.int64([1, 2, 99])), binary=True)
    assert e.value.status == 400 and "ad_category[2]: 99 is outside its valid range" in e.value.message
    status, payload = _post(grpc_router, "/v1/rank", b"\xff\xff\xff", {"Content-Type": RT.PROTOBUF})
    assert status == 400 and payload["error"].startswith("malformed PredictRequest")
    dead = f"127.0.0.1:{B.free_port()}"
    with RouterServer(PeriCRRouter(RouterConfig(ar_address=server.grpc_address, cr_address=dead,
                                                cr_timeout_ms=2000)), grpc_port=0) as srv:
        with RouterGrpcClient(srv.grpc_address) as client:  # CR down: degraded, not an error
            response = client.rank(random_request(5, 2, seed=3, hist_ctr=True))
            assert response["degraded"] and response["model_versions"][F.CR_MODEL_NAME] is None
            assert {a["creative_source"] for a in response["ads"]} == {C.SOURCE_FALLBACK_HIST}
        srv.router.close()
    with RouterServer(PeriCRRouter(RouterConfig(ar_address=dead, ar_timeout_ms=2000)), grpc_port=0) as srv:
        with RouterGrpcClient(srv.grpc_address) as client:  # AR down: UNAVAILABLE, as HTTP's 503
            with pytest.raises(RouterError) as e:
                client.rank(random_request(3, 2))
            assert e.value.code == grpc.StatusCode.UNAVAILABLE and e.value.status == 503
            assert "ad ranker (ar) failed: UNAVAILABLE" in e.value.message
        srv.router.close()


def test_http_client_reuses_connections_and_recovers_after_the_server_closes_one(http_router):
    client = RouterClient(http_router.url)
    small = random_request(3, 2, seed=4)
    assert len(client.rank(small)["ads"]) == 3
    with pytest.raises(RouterError) as e:  # 413: the router closes this connection
        client.rank(random_request(40, 5))
    assert e.value.status == 413
    assert len(client.rank(small)["ads"]) == 3  # a fresh connection, no error
    with pytest.raises(ConnectionError):
        RouterClient(f"http://127.0.0.1:{B.free_port()}", timeout=2).healthz()
