"""The router reads the served AR's inputs from its metadata: with a creative-aware AR (ACR) it scores each ad
with the creative CR picked (pre) or a random one (no-cr) and refuses peri and post; with a creative-blind AR its
pre response says the ranking equals peri's. Backends: model-server stand-ins with closed-form fake models."""

import copy
import os
import time

import numpy as np
import pytest
import tensorflow as tf

import features as F
from serving import testing as T
from serving.clients import GrpcServingClient
from serving.protocol import ModelMetadata, SignatureInfo, TensorInfo
from serving.router import PeriCRRouter, RequestError, RouterClient, RouterConfig, RouterError, RouterServer
from serving.router import model_contract as MC
from serving.router import request as R
from serving.standin import ModelServerStandIn

PRICE_TAG_WEIGHT = 3.0


def fake_acr_pctr(hist_ctr, price_tag):
    """The fake creative-aware AR: sigmoid(-3 + 8 hist_ctr + 3 price_tag)."""
    return 1 / (1 + np.exp(-(-3.0 + 8.0 * np.asarray(hist_ctr, np.float64) + PRICE_TAG_WEIGHT * np.asarray(price_tag))))


def write_fake_acr(base: str, version: int) -> None:
    """A SavedModel with the creative-aware AR contract (features.ACR_SERVING_INPUTS) at <base>/<version>."""
    names = F.ACR_SERVING_INPUTS

    def spec(n):
        dtype = tf.int64 if F.BY_NAME[n].dtype == F.INT else tf.float32
        shape = [None, F.CREATIVE_EMBEDDING_DIM] if n == F.CREATIVE_EMBEDDING else (
            [None, None] if n in F.SEQUENCE_FEATURES else [None])
        return tf.TensorSpec(shape, dtype, name=n)

    def raw(*args):
        x = dict(zip(names, args))
        z = -3.0 + 8.0 * x[F.AD_HIST_CTR] + PRICE_TAG_WEIGHT * tf.cast(x[F.CREATIVE_PRICE_TAG], tf.float32)
        return {F.PCTR_AD: tf.sigmoid(z)}

    module = tf.Module()
    module.raw = tf.function(raw, input_signature=[spec(n) for n in names], autograph=False)
    T._write_version(base, version, lambda d: tf.saved_model.save(
        module, d, signatures={F.RAW_SIGNATURE: module.raw.get_concrete_function()}))


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    blind = str(tmp_path_factory.mktemp("blind"))
    T.make_fake_models(blind, 1)
    aware = str(tmp_path_factory.mktemp("aware"))
    T.make_fake_models(aware, 1)
    os.rename(os.path.join(aware, F.AR_MODEL_NAME), os.path.join(aware, "blind-ar"))
    write_fake_acr(os.path.join(aware, F.AR_MODEL_NAME), 1)
    return blind, aware


def _server(root):
    return ModelServerStandIn({m: os.path.join(root, m) for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)},
                              poll_seconds=0).start()


@pytest.fixture(scope="module")
def servers(roots):
    started = [_server(r) for r in roots]
    yield started
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def routers(servers):
    made = [PeriCRRouter(RouterConfig(ar_address=s.grpc_address, ar_timeout_ms=20000, cr_timeout_ms=20000))
            for s in servers]
    yield made
    for r in made:
        r.close()


def _creative(cid, style, price_tag):
    return {F.CREATIVE_ID: cid, F.CREATIVE_STYLE: style, F.CREATIVE_COLOR_TONE: 0, F.CREATIVE_PRICE_TAG: price_tag,
            F.CREATIVE_TEXT_LENGTH: 0, F.CREATIVE_EMBEDDING: [0.0] * F.CREATIVE_EMBEDDING_DIM}


def constructed_request(mode):
    """Ad 0 has the better historical CTR (AR ranks it first without creatives); only ad 1 has a creative with
    a price tag, and CR prefers it (its style and price tag weigh in CR's fake formula)."""
    return dict(copy.deepcopy(_BASE), **{R.MODE: mode})


_BASE = {
    R.USER: {n: 1 for n in F.USER_FEATURES},
    R.SEQUENCE: {F.SEQ_AD_IDS: [5, 6], F.SEQ_AD_CATEGORIES: [2, 3]},
    R.ADS: [
        {F.AD_ID: 11, F.AD_ADVERTISER_ID: 1, F.AD_CATEGORY: 4, F.AD_BRAND_ID: 1, F.AD_PRICE_BUCKET: 1,
         F.AD_HIST_CTR: 0.05, F.AD_HIST_IMPS: 100, R.CREATIVES: [_creative(1, 0, 0), _creative(2, 1, 0)]},
        {F.AD_ID: 22, F.AD_ADVERTISER_ID: 1, F.AD_CATEGORY: 4, F.AD_BRAND_ID: 1, F.AD_PRICE_BUCKET: 1,
         F.AD_HIST_CTR: 0.03, F.AD_HIST_IMPS: 100, R.CREATIVES: [_creative(3, 0, 0), _creative(4, 5, 1)]},
    ],
    R.SLOTS: 2,
}


def test_pre_ranking_of_a_creative_aware_ar_differs_from_a_creative_blind_ars(routers):
    blind, aware = routers
    got_blind = blind.rank(constructed_request(R.PRE))
    got_aware = aware.rank(constructed_request(R.PRE))
    # CR picks the same creatives under both: creative 2 for ad 11, creative 4 (price tag) for ad 22.
    picks = {a[F.AD_ID]: a[F.CREATIVE_ID] for a in got_blind["ads"]}
    assert picks == {a[F.AD_ID]: a[F.CREATIVE_ID] for a in got_aware["ads"]} == {11: 2, 22: 4}
    assert [a[F.AD_ID] for a in got_blind["ads"]] == [11, 22]  # the creative-blind AR: by historical CTR
    assert [a[F.AD_ID] for a in got_aware["ads"]] == [22, 11]  # ACR sees ad 22's price tag
    # ...and scored each ad with exactly the creative CR picked.
    want = {11: fake_acr_pctr(0.05, 0), 22: fake_acr_pctr(0.03, 1)}
    for a in got_aware["ads"]:
        assert a[F.PCTR_AD] == pytest.approx(want[a[F.AD_ID]], rel=1e-5)
    assert got_blind["note"] == MC.PRE_EQUALS_PERI and "note" not in got_aware
    assert "note" not in blind.rank(constructed_request(R.PERI))


def test_no_cr_scores_each_ad_with_its_random_creative(routers):
    aware = routers[1]
    by_id = {c[F.CREATIVE_ID]: c for ad in _BASE[R.ADS] for c in ad[R.CREATIVES]}
    hist = {ad[F.AD_ID]: ad[F.AD_HIST_CTR] for ad in _BASE[R.ADS]}
    shown = set()
    for seed in range(6):
        response = aware.rank(dict(constructed_request(R.NO_CR), seed=seed))
        for a in response["ads"]:
            assert a["creative_source"] == "random"
            price_tag = by_id[a[F.CREATIVE_ID]][F.CREATIVE_PRICE_TAG]
            assert a[F.PCTR_AD] == pytest.approx(fake_acr_pctr(hist[a[F.AD_ID]], price_tag), rel=1e-5)
            shown.add(a[F.CREATIVE_ID])
    assert len(shown) > 2  # the random creatives vary with the seed


@pytest.mark.parametrize("mode", [R.PERI, R.POST])
def test_creative_aware_ar_refuses_peri_and_post_with_a_clear_400(routers, servers, mode):
    with pytest.raises(RequestError) as e:
        routers[1].rank(constructed_request(mode))
    assert e.value.status == 400
    for words in (f"'{mode}'", "creative-aware", "'pre'", "'no-cr'", F.CREATIVE_PRICE_TAG):
        assert words in str(e.value)
    with RouterServer(PeriCRRouter(RouterConfig(ar_address=servers[1].grpc_address))) as srv:
        with pytest.raises(RouterError) as http:
            RouterClient(srv.url).rank(constructed_request(mode))
        srv.router.close()
    assert http.value.status == 400 and "creative-aware" in http.value.message


def test_the_contract_is_read_again_when_another_ar_is_pushed(tmp_path):
    root = str(tmp_path)
    T.make_fake_models(root, 1)
    server = ModelServerStandIn({m: os.path.join(root, m) for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)},
                                poll_seconds=0.2).start()
    try:
        with PeriCRRouter(RouterConfig(ar_address=server.grpc_address)) as router:
            assert "note" in router.rank(constructed_request(R.PRE))
            write_fake_acr(os.path.join(root, F.AR_MODEL_NAME), 2)
            status = GrpcServingClient(server.grpc_address)
            deadline = time.monotonic() + 30
            while {s.version: s.state for s in status.status(F.AR_MODEL_NAME)}.get(2) != "AVAILABLE":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            status.close()
            outcomes = []
            for _ in range(3):  # the old contract may fail one request (503); then ACR's contract holds
                try:
                    outcomes.append(router.rank(constructed_request(R.PRE)))
                except Exception as e:  # noqa: BLE001
                    outcomes.append(e)
            assert not isinstance(outcomes[-1], Exception) and "note" not in outcomes[-1]
            assert [a[F.AD_ID] for a in outcomes[-1]["ads"]] == [22, 11]
            with pytest.raises(RequestError, match="creative-aware"):
                router.rank(constructed_request(R.PERI))
    finally:
        server.stop()


def _metadata(inputs):
    info = TensorInfo("DT_INT64", (None,))
    return ModelMetadata("ar", 3, {F.RAW_SIGNATURE: SignatureInfo({n: info for n in inputs}, {F.PCTR_AD: info})})


def test_contract_from_metadata():
    assert not MC.contract_from_metadata(_metadata(F.AR_SERVING_INPUTS)).creative_aware
    aware = MC.contract_from_metadata(_metadata(F.ACR_SERVING_INPUTS))
    assert aware.creative_aware and aware.creative_inputs == F.ACR_CREATIVE_INPUTS and aware.version == 3
    with pytest.raises(MC.ContractError, match=F.CREATIVE_EMBEDDING):  # half a creative
        MC.contract_from_metadata(_metadata(F.AR_SERVING_INPUTS + (F.CREATIVE_STYLE,)))
    cacs = MC.contract_from_metadata(_metadata(F.CACS_AR_SERVING_INPUTS))  # the whole creative, id included
    assert cacs.creative_inputs == F.CREATIVE_FEATURES
    with pytest.raises(MC.ContractError, match=F.CREATIVE_STYLE):  # the id alone is not a creative
        MC.contract_from_metadata(_metadata(F.AR_SERVING_INPUTS + (F.CREATIVE_ID,)))
    with pytest.raises(MC.ContractError, match=F.USER_ID):
        MC.contract_from_metadata(_metadata(F.ACR_SERVING_INPUTS[1:]))
    with pytest.raises(MC.ContractError, match="no 'predict_raw' signature"):
        MC.contract_from_metadata(ModelMetadata("ar", 3, {}))


def test_contract_cache_reads_once_and_again_after_a_version_change():
    reads = []

    def read():
        reads.append(1)
        return MC.ARContract("ar", len(reads))

    cache = MC.ARContractCache(read)
    assert cache.get().version == 1 and cache.get().version == 1 and len(reads) == 1
    cache.observe(1)
    assert cache.get().version == 1
    cache.observe(5)
    assert cache.get().version == 2
    cache.invalidate()
    assert cache.get().version == 3
