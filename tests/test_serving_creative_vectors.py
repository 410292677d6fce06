"""The two-tower CR served from precomputed creative vectors (serving.creative_vectors): the same scores as the
CR raw signature, the creative tower run once per (version, creative), never a vector of one version scored
by another, through the local serving runtime as through a bare client."""

import copy
import os
import shutil

import grpc
import numpy as np
import pytest
import tensorflow as tf

import features as F
from serving.clients import PredictResult, ServingClient
from serving.creative_vectors import CreativeVectorCache
from serving.inprocess import InProcessServingClient, _DoneCall
from serving.protocol import ServingError
from serving.router import PeriCRRouter, RouterConfig
from serving.sample_requests import random_request
from trainer import testing
from trainer.dssm_export import TwoTowerCRServingModule
from trainer.serving_inputs import SERVING_INPUTS
from trainer.serving_module import export_online

ROWS = 20


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two versions of a two-tower CR (untrained, and trained a few steps: other towers)."""
    data = testing.transformed_data()
    root = tmp_path_factory.mktemp("dssm")
    out = {}
    for version, steps in ((1, 0), (2, 5)):
        model = testing.trained_model("dssm", steps=steps)
        out[version] = export_online(TwoTowerCRServingModule(model, data.tft_output), str(root / str(version)),
                                     warmup=False, request_rows=8)
    return out


@pytest.fixture(scope="module")
def request_rows():
    """One user and ROWS logged (ad, creative) rows, every creative id twice (a creative shown to two ads'
    requests is one creative: here the same rows twice)."""
    parsed = tf.io.parse_example(testing.raw_examples(testing.transformed_data().raw_eval, ROWS // 2),
                                 F.raw_feature_spec())
    out = {}
    for name in SERVING_INPUTS[F.CR_MODEL_NAME]:
        x = parsed[name].numpy()
        out[name] = x[:1] if name in F.CR_USER_FEATURES else np.concatenate([x, x])
    return out


class VersionedClient(ServingClient):
    """Loaded SavedModels by version; ``latest`` answers unversioned calls; counts the calls per signature."""

    def __init__(self, exports):
        self.models = {v: tf.saved_model.load(p) for v, p in exports.items()}
        self.latest = min(self.models)
        self.calls = []

    def start_predict(self, model, inputs, signature=F.SERVING_SIGNATURE, version=None, timeout=None):
        version = self.latest if version is None else version
        if version not in self.models:
            return _DoneCall(error=ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found ({version})"))
        rows = inputs[F.CREATIVE_VECTOR if F.CREATIVE_VECTOR in inputs else F.CREATIVE_ID]
        self.calls.append((signature, version, len(rows)))
        fn = self.models[version].signatures[signature]
        outputs = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
        return _DoneCall(PredictResult(outputs, model, version, signature, 0.0, 0.0, 0.0))

    def metadata(self, model, version=None, timeout=10.0):
        raise NotImplementedError

    def status(self, model, version=None, timeout=10.0):
        raise NotImplementedError

    def raw(self, version, inputs):
        return self.models[version].signatures[F.RAW_SIGNATURE](
            **{k: tf.constant(v) for k, v in inputs.items()})[F.PCTR_C].numpy()


def test_scores_equal_the_raw_signature_and_the_tower_runs_once_per_creative(exports, request_rows):
    client = VersionedClient(exports)
    cache = CreativeVectorCache(client)
    want = client.raw(1, request_rows)
    assert want.std() > 1e-4
    result = cache.predict(request_rows)
    assert result.version == 1 and result.signature == F.CREATIVE_VECTORS_SIGNATURE
    np.testing.assert_allclose(result.outputs[F.PCTR_C], want, rtol=1e-6, atol=1e-7)
    assert cache.tower_rows == ROWS  # the first request: its rows through the tower (version unknown yet)
    again = cache.predict(request_rows)
    np.testing.assert_allclose(again.outputs[F.PCTR_C], want, rtol=1e-6, atol=1e-7)
    assert cache.tower_rows == ROWS and client.calls[-1] == (F.CREATIVE_VECTORS_SIGNATURE, 1, ROWS)
    # Another user, the same creatives: no tower call; half the rows new: only those ROWS / 4 distinct ones.
    other = dict(request_rows, **{F.USER_GENDER: (request_rows[F.USER_GENDER] + 1) % len(F.GENDERS)})
    np.testing.assert_allclose(cache.predict(other).outputs[F.PCTR_C], client.raw(1, other), rtol=1e-6, atol=1e-7)
    half = dict(other, **{F.CREATIVE_ID: np.concatenate([request_rows[F.CREATIVE_ID][:ROWS // 2],
                                                          request_rows[F.CREATIVE_ID][:ROWS // 2] + 10_000])})
    got = cache.predict(half).outputs[F.PCTR_C]
    assert cache.tower_rows == ROWS + len(np.unique(request_rows[F.CREATIVE_ID]))
    np.testing.assert_allclose(got, client.raw(1, half), rtol=1e-6, atol=1e-7)


def test_a_new_version_scores_with_its_own_vectors(exports, request_rows):
    client = VersionedClient(exports)
    cache = CreativeVectorCache(client)
    cache.predict(request_rows)
    client.latest = 2  # a push: version 2 answers the next unversioned call, given version 1's vectors
    want = client.raw(2, request_rows)
    assert not np.allclose(want, client.raw(1, request_rows), atol=1e-4)
    result = cache.predict(request_rows)
    assert result.version == 2
    np.testing.assert_allclose(result.outputs[F.PCTR_C], want, rtol=1e-6, atol=1e-7)
    distinct = len(np.unique(request_rows[F.CREATIVE_ID]))
    calls = client.calls[-3:]  # scored by 2 with 1's vectors (discarded), 2's tower, 2 again
    assert calls == [(F.CREATIVE_VECTORS_SIGNATURE, 2, ROWS), (F.CREATIVE_TOWER_SIGNATURE, 2, distinct),
                     (F.CREATIVE_VECTORS_SIGNATURE, 2, ROWS)]
    np.testing.assert_allclose(cache.predict(request_rows, version=1).outputs[F.PCTR_C], client.raw(1, request_rows),
                               rtol=1e-6, atol=1e-7)  # a pinned version: its own vectors, still kept
    del client.models[1]  # version 1 unloaded: its vectors cannot be filled any more
    with pytest.raises(ServingError, match="not found"):
        cache.predict(dict(request_rows, **{F.CREATIVE_ID: request_rows[F.CREATIVE_ID] + 20_000}), version=1)


def test_cache_bounds_and_bad_input(exports, request_rows):
    client = VersionedClient(exports)
    with pytest.raises(ValueError, match="max_versions"):
        CreativeVectorCache(client, max_versions=0)
    cache = CreativeVectorCache(client, max_versions=1)
    with pytest.raises(ValueError, match=F.CREATIVE_EMBEDDING):
        cache.predict({k: v for k, v in request_rows.items() if k != F.CREATIVE_EMBEDDING})
    cache.predict(request_rows)
    cache.predict(request_rows, version=2)
    assert list(cache._stores) == [2]  # one version kept


def test_through_the_local_serving_runtime(exports, request_rows, tmp_path):
    shutil.copytree(exports[1], os.path.join(tmp_path, F.CR_MODEL_NAME, "7"))
    client = InProcessServingClient({F.CR_MODEL_NAME: os.path.join(tmp_path, F.CR_MODEL_NAME)})
    want = client.predict(F.CR_MODEL_NAME, request_rows, F.RAW_SIGNATURE)[F.PCTR_C]
    result = CreativeVectorCache(client).predict(request_rows)
    assert result.version == 7
    np.testing.assert_allclose(result.outputs[F.PCTR_C], want, rtol=1e-6, atol=1e-7)


def test_the_router_ranks_from_creative_vectors_as_from_raw_rows(tmp_path):
    """The dssm pair behind the router: ``cr_creative_vectors`` gives the same ranking, creatives and scores;
    a second request of the same creatives runs no creative tower."""
    exported = testing.exported_models("dssm", steps=0)
    for name in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):
        shutil.copytree(exported[name], os.path.join(tmp_path, name, "3"))
    client = InProcessServingClient({n: os.path.join(tmp_path, n) for n in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)})
    requests = [random_request(num_ads=6, num_creatives=4, seed=s) for s in range(3)]
    for s, request in enumerate(requests):  # a creative id names one creative: none shared across the requests
        for ad in request["ads"]:
            for creative in ad["creatives"]:
                creative[F.CREATIVE_ID] += s * 10**9
    with PeriCRRouter(RouterConfig(), ar_client=client) as raw_router, \
            PeriCRRouter(RouterConfig(cr_creative_vectors=True), ar_client=client) as router:
        for request in requests + requests:
            want, got = raw_router.rank(copy.deepcopy(request)), router.rank(copy.deepcopy(request))
            assert not got["degraded"] and got["model_versions"] == {"ar": 3, "cr": 3}
            assert [(a[F.AD_ID], a[F.CREATIVE_ID]) for a in got["ads"]] == [
                (a[F.AD_ID], a[F.CREATIVE_ID]) for a in want["ads"]]
            np.testing.assert_allclose([a[F.PCTR_C] for a in got["ads"]], [a[F.PCTR_C] for a in want["ads"]],
                                       rtol=1e-5)
        assert router.creative_vectors.tower_rows == 3 * 6 * 4  # each request's creatives once
    jac = testing.exported_models("jac", steps=0)
    shutil.copytree(jac[F.CR_MODEL_NAME], os.path.join(tmp_path, "jac_cr", "1"))
    mlp_cr = InProcessServingClient({F.CR_MODEL_NAME: os.path.join(tmp_path, "jac_cr")})
    with PeriCRRouter(RouterConfig(cr_creative_vectors=True), ar_client=client, cr_client=mlp_cr) as router:
        response = router.rank(copy.deepcopy(requests[0]))
        assert response["degraded"] and "creative_tower" in response["degraded_reason"]
