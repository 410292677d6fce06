"""The comparison systems through the whole local pipeline, as a user runs them: one output directory, the
variants one after another on the same data (TFX caching: the data steps run once), each evaluated with
JAC's metrics, blessed and pushed as an AR/CR pair, and served by the Peri-CR router from the pushed
SavedModels (a creative-aware AR allows only ``pre`` and ``no-cr``; a bandit CR's sample replays)."""

import copy
import os
import shutil

import pytest

import features as F
from serving.router import PeriCRRouter, RequestError, RouterConfig
from serving.router import request as R
from serving.sample_requests import requests_from_world
from serving.standin import ModelServerStandIn
from simulator import SimulatorConfig, load_world, simulate
from tfx_pipeline import config as config_lib
from tfx_pipeline import local_runner, pair_pusher
from trainer import testing

pytestmark = pytest.mark.slow

IMPRESSIONS = 8_000
VARIANTS = ("hbm", "acr")
DATA_STEPS = ("ImportExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema", "ExampleValidator", "DataGate",
              "Transform")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    simulate(SimulatorConfig(num_impressions=IMPRESSIONS, num_days=4, seed=11, calibration_impressions=IMPRESSIONS),
             str(root / "data"), progress=False)
    return root


def _cfg(workdir, variant):
    model_config = dict(testing.TINY_MODEL, variant=variant, vam_steps=10, quantizer_r=30.0)
    # Each variant's baseline is the previous variant's model: the change threshold would compare systems.
    return config_lib.PipelineConfig(output_dir=str(workdir / "out"), data_dir=str(workdir / "data"),
                                     train_steps=10, eval_steps=2, model_config=model_config, auc_floor=0.0,
                                     nsctr_change_tolerance=1.0, enable_cache=True)


@pytest.fixture(scope="module")
def runs(workdir):
    out = {}
    for variant in VARIANTS:
        cfg = _cfg(workdir, variant)
        summary = local_runner.run(cfg)
        metrics = local_runner.overall_metrics(summary.output_uri("Evaluator", "evaluation"))
        out[variant] = (cfg, summary, metrics)
    return out


def _serve(serving_root):
    return ModelServerStandIn({m: os.path.join(serving_root, m) for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)},
                              poll_seconds=0).start()


def _requests(cfg, n=2):
    world = load_world(os.path.join(cfg.data_dir, "world.npz"))
    return [sim.request for sim in requests_from_world(world, n, seed=3, slots=3)]


def test_each_variant_is_evaluated_blessed_and_pushed_as_a_pair(runs):
    versions = []
    for i, variant in enumerate(VARIANTS):
        cfg, summary, metrics = runs[variant]
        assert summary.succeeded, [(c.name, c.state) for c in summary.components]
        for step in DATA_STEPS:  # the data steps ran once, for the first variant
            assert summary.component(step).state == ("COMPLETE" if i == 0 else "CACHED"), (variant, step)
        for key in (f"{F.PCTR_AD}/auc", f"{F.PCTR_AD}/gauc", f"{F.PCTR_C}/auc", "nsctr", "sctr", "calibrated_sctr"):
            assert any(k.lower().endswith(key) for k in metrics), (variant, key, sorted(metrics))
        pusher = summary.component("Pusher")
        assert summary.component("Evaluator").properties.get("blessed") == 1
        assert pusher.properties.get("pushed") == 1
        versions.append(int(pusher.properties["pushed_version"]))
    cfg = runs[VARIANTS[-1]][0]
    for name in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):
        assert pair_pusher.served_versions(cfg.serving_root, name) == versions


def test_the_router_serves_the_pushed_bandit_pair_and_replays_its_samples(runs, tmp_path):
    cfg, summary, _ = runs["hbm"]
    version = int(summary.component("Pusher").properties["pushed_version"])
    for name in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):  # the hbm pair alone (the acr pair was pushed after it)
        shutil.copytree(os.path.join(cfg.serving_root, name, str(version)), tmp_path / name / str(version))
    server = _serve(str(tmp_path))
    try:
        with PeriCRRouter(RouterConfig(ar_address=server.grpc_address, ar_timeout_ms=30000,
                                       cr_timeout_ms=30000)) as router:
            for request in _requests(cfg):
                first = router.rank(copy.deepcopy(request))
                again = router.rank(copy.deepcopy(request))
                assert not first["degraded"] and first["model_versions"] == {"ar": version, "cr": version}
                assert [(a[F.AD_ID], a[F.CREATIVE_ID], a[F.PCTR_C]) for a in first["ads"]] == [
                    (a[F.AD_ID], a[F.CREATIVE_ID], a[F.PCTR_C]) for a in again["ads"]]
    finally:
        server.stop()


def test_the_router_serves_the_creative_aware_pair_only_in_pre_and_no_cr(runs):
    cfg = runs["acr"][0]
    server = _serve(cfg.serving_root)
    try:
        with PeriCRRouter(RouterConfig(ar_address=server.grpc_address, ar_timeout_ms=30000,
                                       cr_timeout_ms=30000)) as router:
            request = _requests(cfg, 1)[0]
            for mode in (R.PRE, R.NO_CR):
                response = router.rank(dict(copy.deepcopy(request), mode=mode))
                assert not response["degraded"] and "note" not in response and len(response["ads"]) == 3
            for mode in (R.PERI, R.POST):
                with pytest.raises(RequestError, match="creative-aware"):
                    router.rank(dict(copy.deepcopy(request), mode=mode))
    finally:
        server.stop()
