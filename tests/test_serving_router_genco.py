"""The router's GenCO mode: AR and GenCO in parallel, each ad's combination as GenCO chose it, the 4xx naming
the ad and component of a bad pool, the degraded fallback, and the HTTP API with readiness of all three models.

Backends: a model server stand-in serving fake AR/CR models (serving.testing) and the tiny trained GenCO
SavedModel (trainer.genco.testing)."""

import copy
import http.client
import json
import os
import re

import pytest
import tensorflow as tf

import features as F
from serving import testing as T
from serving.router import RouterConfig, RouterServer
from serving.router import core as C
from serving.router.genco import GenCORouter, GenCOSettings, genco_inputs, parse_genco_request
from serving.router.request import RequestError
from serving.sample_requests import random_request
from serving.standin import ModelServerStandIn
from trainer.genco import testing as GT
from trainer.genco.serving_inputs import example_request

MODELS = (F.AR_MODEL_NAME, F.CR_MODEL_NAME, F.GENCO_MODEL_NAME)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("serving"))
    T.make_fake_models(path, version=1)
    GT.serving_root(path, version=1)
    return path


@pytest.fixture(scope="module")
def server(root):
    with ModelServerStandIn({m: os.path.join(root, m) for m in MODELS}, poll_seconds=0) as s:
        yield s


@pytest.fixture(scope="module")
def router(server):
    config = RouterConfig(ar_address=server.grpc_address, ar_timeout_ms=20000, cr_timeout_ms=20000)
    with GenCORouter(config, GenCOSettings(server.grpc_address, timeout_ms=20000)) as r:
        yield r


def genco_request(num_ads=6, seed=0):
    """A row-form request whose ads carry component pools instead of creatives."""
    req = random_request(num_ads, 1, seed=seed, seq_len=3)
    pools = example_request(num_ads, seed=seed, width=F.GENCO_MAX_CANDIDATES)
    for i, ad in enumerate(req["ads"]):
        del ad["creatives"]
        ad["components"] = {}
        for c in F.GENCO_COMPONENTS:
            ids = pools[F.GENCO_CAND_IDS[c]][i]
            if (ids >= 0).any():
                ad["components"][c] = {"ids": ids[ids >= 0].tolist(),
                                       "styles": pools[F.GENCO_CAND_STYLES[c]][i][ids >= 0].tolist()}
    req["mode"] = "genco"
    req["slots"] = 4
    return req


def test_genco_mode_returns_each_top_ads_combination_as_genco_chose_it(router, root):
    request = genco_request()
    response = router.rank(copy.deepcopy(request))
    assert response["mode"] == "genco" and not response["degraded"]
    assert response["model_versions"] == {F.AR_MODEL_NAME: 1, F.GENCO_MODEL_NAME: 1}
    req = parse_genco_request(request, router.config)
    pctr_ad = T.reference_pctr_ad(C.ar_inputs(req.rank))
    assert [a[F.AD_ID] for a in response["ads"]] == [int(req.rank.ads[F.AD_ID][i]) for i in C.top_ads(pctr_ad, 4)]
    fn = tf.saved_model.load(os.path.join(root, F.GENCO_MODEL_NAME, "1")).signatures[F.RAW_SIGNATURE]
    expected = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in genco_inputs(req).items()}).items()}
    position = {int(a): i for i, a in enumerate(req.rank.ads[F.AD_ID])}
    for ad in response["ads"]:
        i = position[ad[F.AD_ID]]
        pools = request["ads"][i]["components"]
        assert set(ad["combination"]) == set(pools)
        for c, pick in ad["combination"].items():
            assert pick["index"] == expected[F.GENCO_CHOSEN_INDEX[c]][i]
            assert pick["id"] == pools[c]["ids"][pick["index"]] == expected[F.GENCO_CHOSEN_ID[c]][i]
        assert ad["genco_score"] == pytest.approx(float(expected[F.GENCO_SCORE][i]))
        assert ad["creative_source"] == "genco"
    assert {"ar_rpc", "genco_rpc", "scoring", "total"} <= set(response["timing_ms"])


def test_genco_mode_ranks_by_ecpm_when_every_ad_has_a_bid(router):
    request = genco_request(seed=3)
    plain = router.rank(copy.deepcopy(request))
    assert all(a["ecpm"] is None for a in plain["ads"])
    pctr = {a[F.AD_ID]: a[F.PCTR_AD] for a in router.rank({**copy.deepcopy(request), "slots": 6})["ads"]}
    # The lowest-pctr ad gets a bid high enough to lead; the others bid 1.
    last = min(pctr, key=pctr.get)
    for ad in request["ads"]:
        ad[F.AD_BID] = 1000.0 if ad[F.AD_ID] == last else 1.0
    response = router.rank(request)
    assert response["ads"][0][F.AD_ID] == last
    assert response["ads"][0]["ecpm"] == pytest.approx(1000.0 * pctr[last], rel=1e-6)
    assert [a["ecpm"] for a in response["ads"][1:]] == pytest.approx([a[F.PCTR_AD] for a in response["ads"][1:]])


def test_other_modes_still_rank_with_cr(router):
    response = router.rank(random_request(4, 3, seed=2, seq_len=2))
    assert response["mode"] == "peri" and all(a["creative_source"] == "cr" for a in response["ads"])


_mutate = T.mutation


IMAGE = ["ads", 2, "components", "image"]
BAD_REQUESTS = [
    ("pool larger than the padding", _mutate(IMAGE, {"ids": list(range(1, 17)), "styles": [0] * 16}),
     "ads[2].components.image: 16 candidates exceed the padding of 15"),
    ("empty pool", _mutate(IMAGE, {"ids": [], "styles": []}),
     "ads[2].components.image: the pool is empty (leave the component out if the ad lacks it)"),
    ("negative id", _mutate(IMAGE + ["ids", 0], -3), "ads[2].components.image.ids[0]: -3 is not a valid element id"),
    ("float id", _mutate(IMAGE + ["ids", 0], 1.5), "ads[2].components.image.ids[0]: 1.5 is not a valid element id"),
    ("id beyond int64", _mutate(IMAGE + ["ids", 0], 2 ** 64), "is not a valid element id (an integer >= 0"),
    ("style out of range", _mutate(IMAGE + ["styles", 0], 4), "ads[2].components.image.styles[0]: 4 is not a valid style"),
    ("lengths differ", _mutate(IMAGE + ["styles"], lambda s: s + [0]), "ads[2].components.image: 2 ids but 3 styles"),
    ("duplicate id", _mutate(IMAGE + ["ids"], lambda ids: [ids[0], ids[0]]),
     "ads[2].components.image.ids: element id 5 is listed twice"),
    ("unknown component", _mutate(["ads", 1, "components", "video"], {"ids": [1], "styles": [0]}),
     "ads[1].components: unknown component 'video'"),
    ("no components", _mutate(["ads", 0, "components"], KeyError), "ads[0]: missing field 'components'"),
    ("ad field still checked", _mutate(["ads", 3, F.AD_CATEGORY], F.NUM_AD_CATEGORIES),
     f"ads[3].ad_category: {F.NUM_AD_CATEGORIES} is outside its valid range"),
]


@pytest.mark.parametrize("case, mutate, message", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_pools_get_a_400_naming_the_ad_and_component(router, case, mutate, message):
    request = genco_request()
    request["ads"][2]["components"]["image"] = {"ids": [5, 6], "styles": [1, 2]}
    with pytest.raises(RequestError, match=re.escape(message)) as error:
        router.rank(mutate(request))
    assert error.value.status == 400


def test_a_failing_genco_degrades_to_each_pools_first_element(server):
    config = RouterConfig(ar_address=server.grpc_address, ar_timeout_ms=20000)
    with GenCORouter(config, GenCOSettings(server.grpc_address, model="no_such_model")) as r:
        request = genco_request(seed=4)
        response = r.rank(copy.deepcopy(request))
    assert response["degraded"] and "no_such_model" in response["degraded_reason"]
    by_id = {ad[F.AD_ID]: ad for ad in request["ads"]}
    for ad in response["ads"]:
        assert ad["creative_source"] == "fallback:first" and ad["genco_score"] is None
        assert ad["combination"] == {c: {"index": 0, "id": p["ids"][0]}
                                     for c, p in by_id[ad[F.AD_ID]]["components"].items()}


def test_http_api_serves_the_genco_mode_and_reports_all_models_ready(router):
    with RouterServer(router) as http_server:
        conn = http.client.HTTPConnection(http_server.host, http_server.port, timeout=60)
        conn.request("GET", "/readyz")
        ready = json.loads(conn.getresponse().read())
        assert ready["ready"] and set(ready["models"]) == set(MODELS)
        body = json.dumps(genco_request(seed=5))
        conn.request("POST", "/v1/rank", body=body, headers={"Content-Length": str(len(body))})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["mode"] == "genco"
        bad = genco_request(seed=5)
        bad["ads"][0]["components"]["title"]["ids"] = list(range(1, 20))
        bad["ads"][0]["components"]["title"]["styles"] = [0] * 19
        body = json.dumps(bad)
        conn.request("POST", "/v1/rank", body=body, headers={"Content-Length": str(len(body))})
        response = conn.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["error"] == "ads[0].components.title: 19 candidates exceed the padding of 15"
