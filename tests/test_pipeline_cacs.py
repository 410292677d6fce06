"""CACS (Lin et al., SIGIR 2022) through the local pipeline: a JAC run trains the teacher, the ``cacs`` run on the
same data (TFX caching: the data steps run once) distils its selector from that run's exported teacher, is
evaluated, blessed and pushed as a pair, and the router's ``pre`` mode serves it: the selector picks each ad's
creative, then the CACS ranker scores each ad with it. A bad teacher fails at pipeline construction."""

import copy
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import features as F
from serving.router import PeriCRRouter, RequestError, RouterConfig
from serving.router import model_contract as MC
from serving.router import request as R
from serving.router.core import ar_inputs, best_creatives, cr_inputs, top_ads
from serving.sample_requests import requests_from_world
from serving.standin import ModelServerStandIn
from simulator import SimulatorConfig, load_world, simulate
from tfx_pipeline import config as config_lib
from tfx_pipeline import local_runner
from tfx_pipeline.pipeline import create_pipeline
from trainer import testing
from trainer.cacs_teacher import TEACHER_DIR, TEACHER_SIGNATURE
from trainer.run import CONFIG_FILE

IMPRESSIONS = 6_000


def _cfg(root, variant, **model):
    model_config = dict(testing.TINY_MODEL, variant=variant, quantizer_r=30.0, **model)
    return config_lib.PipelineConfig(output_dir=str(root / "out"), data_dir=str(root / "data"), train_steps=30,
                                     eval_steps=5, model_config=model_config, auc_floor=0.0,
                                     nsctr_change_tolerance=1.0, enable_cache=True)


# ------------------------------------------------------------------------------ construction checks
def _saved_model(path, signature, spec, output="logit"):
    module = tf.Module()
    module.cardinality_rows = tf.Variable([1], dtype=tf.int64)
    module.f = tf.function(lambda x: {output: tf.cast(list(x.values())[0], tf.float32)}, input_signature=[spec],
                           autograph=False)
    tf.saved_model.save(module, str(path), signatures={signature: module.f})
    return str(path)


def test_a_model_without_the_teacher_signature_fails_at_construction(tmp_path):
    """E.g. a pushed online CR (cr/<version>): a SavedModel, but no teacher_logits signature."""
    path = _saved_model(tmp_path / "cr" / "1", F.RAW_SIGNATURE, {"pctr": tf.TensorSpec([None], tf.float32, "pctr")})
    with pytest.raises(ValueError) as info:
        create_pipeline(_cfg(tmp_path, "cacs", cacs_teacher_model=path))
    assert f"CACS teacher model {path!r}: has no {TEACHER_SIGNATURE!r} signature" in str(info.value)


def test_a_teacher_needing_an_input_the_candidates_lack_fails_at_construction(tmp_path):
    path = _saved_model(tmp_path / "model" / TEACHER_DIR, TEACHER_SIGNATURE,
                        {"query_text": tf.TensorSpec([None], tf.int64, "query_text")})
    with pytest.raises(ValueError) as info:  # given the model's directory, the teacher/ inside it is read
        create_pipeline(_cfg(tmp_path, "cacs", cacs_teacher_model=str(tmp_path / "model")))
    assert f"CACS teacher model {path!r}: its {TEACHER_SIGNATURE!r} signature needs the inputs ['query_text']" in str(
        info.value)


# ---------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cacs")
    simulate(SimulatorConfig(num_impressions=IMPRESSIONS, num_days=4, seed=11, calibration_impressions=IMPRESSIONS),
             str(root / "data"), progress=False)
    jac = local_runner.run(_cfg(root, "jac"))
    teacher = jac.output_uri("Trainer", "model")  # the JAC run's model artifact; its teacher/ is resolved
    cfg = _cfg(root, "cacs", cacs_teacher_model=teacher)
    cacs = local_runner.run(cfg)
    return cfg, jac, cacs


@pytest.mark.slow
def test_cacs_distils_from_the_jac_run_and_is_evaluated_blessed_and_pushed(runs):
    cfg, jac, cacs = runs
    assert jac.succeeded and cacs.succeeded, [(c.name, c.state) for c in cacs.components]
    assert cacs.component("Transform").state == "CACHED"  # the same Transform output as the teacher's
    with open(os.path.join(cacs.output_uri("Trainer", "model_run"), CONFIG_FILE)) as f:
        summary = json.load(f)
    assert summary["config"]["cacs_teacher_model"].endswith(os.path.join("Format-Serving", TEACHER_DIR))
    assert np.isfinite(summary["metrics"]["cr_distillation_loss"]) and summary["metrics"]["cr_distillation_loss"] > 0
    metrics = local_runner.overall_metrics(cacs.output_uri("Evaluator", "evaluation"))
    for key in (f"{F.PCTR_AD}/auc", f"{F.PCTR_C}/auc", "nsctr", "sctr"):
        assert any(k.lower().endswith(key) for k in metrics), (key, sorted(metrics))
    assert cacs.component("Evaluator").properties.get("blessed") == 1
    assert cacs.component("Pusher").properties.get("pushed") == 1


@pytest.mark.slow
def test_router_pre_mode_ranks_with_the_selector_and_its_ranker(runs):
    """Each shown creative is the selector's best of its ad; each pctr_ad is the CACS ranker's score of the ad
    with that creative (both computed here from the pushed SavedModels, loaded in this process)."""
    cfg, _, cacs = runs
    version = int(cacs.component("Pusher").properties["pushed_version"])
    paths = {m: os.path.join(cfg.serving_root, m) for m in (F.AR_MODEL_NAME, F.CR_MODEL_NAME)}
    loaded = {m: tf.saved_model.load(os.path.join(p, str(version))).signatures[F.RAW_SIGNATURE]
              for m, p in paths.items()}
    assert set(loaded[F.AR_MODEL_NAME].structured_input_signature[1]) == set(F.CACS_AR_SERVING_INPUTS)
    world = load_world(os.path.join(cfg.data_dir, "world.npz"))
    requests = [sim.request for sim in requests_from_world(world, 2, seed=3, slots=3)]
    server = ModelServerStandIn(paths, poll_seconds=0).start()
    try:
        with PeriCRRouter(RouterConfig(ar_address=server.grpc_address, ar_timeout_ms=30000,
                                       cr_timeout_ms=30000)) as router:
            for request in requests:
                req = R.parse_request(copy.deepcopy(request))
                pctr_c = loaded[F.CR_MODEL_NAME](**{k: tf.constant(v) for k, v in cr_inputs(req).items()})[F.PCTR_C]
                picked = best_creatives(req, np.arange(req.num_ads), pctr_c.numpy())
                inputs = dict(ar_inputs(req), **MC.creative_columns(req, picked, F.CREATIVE_FEATURES))
                pctr_ad = loaded[F.AR_MODEL_NAME](**{k: tf.constant(v) for k, v in inputs.items()})[F.PCTR_AD].numpy()
                response = router.rank(dict(copy.deepcopy(request), mode=R.PRE))
                assert not response["degraded"] and "note" not in response
                assert response["model_versions"] == {"ar": version, "cr": version}
                ads = list(req.ads[F.AD_ID])
                top = top_ads(pctr_ad, 3, req.ads.get(F.AD_BID))  # by eCPM when the request has bids
                assert [a[F.AD_ID] for a in response["ads"]] == [int(ads[i]) for i in top]
                for shown in response["ads"]:
                    i = ads.index(shown[F.AD_ID])
                    assert shown[F.CREATIVE_ID] == int(req.creatives[F.CREATIVE_ID][picked[i]])
                    assert shown[F.PCTR_AD] == pytest.approx(float(pctr_ad[i]), abs=1e-6)
                with pytest.raises(RequestError, match="creative-aware"):  # the ranker needs the picked creative
                    router.rank(dict(copy.deepcopy(request), mode=R.PERI))
    finally:
        server.stop()
