"""The GenCO pipeline (the same TFX components) on a small simulated log: trained, evaluated on calibrated
sCTR, blessed and pushed as <serving_root>/genco/<version>, which the model server stand-in then serves;
the pusher's rules on fake models; and the blessing thresholds of the eval config."""

import json
import os

import numpy as np
import pytest

import features as F
from serving.clients import GrpcServingClient
from serving.standin import ModelServerStandIn
from simulator.combinations import CombinationConfig, simulate_combinations
from tfx_pipeline import genco_pusher, pair_pusher
from tfx_pipeline.genco_pipeline import GenCOPipelineConfig, build_genco_eval_config
from transform import genco as G
from trainer.genco import data as D
from trainer.genco.serving_inputs import example_request

SIMULATOR = dict(num_impressions=6000, num_days=4, test_days=1, seed=9, calibration_impressions=2000)


def test_push_genco_model_publishes_a_new_version_beside_the_served_ones(tmp_path):
    model = tmp_path / "model" / F.GENCO_MODEL_NAME
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"pb")
    (model / "variables" / "v").write_bytes(b"v")
    base = tmp_path / "serving"
    (base / F.GENCO_MODEL_NAME / "1700000000").mkdir(parents=True)
    (base / F.AR_MODEL_NAME / "5").mkdir(parents=True)
    targets, version = genco_pusher.push_genco_model(str(tmp_path / "model"), str(base), now=1600000000)
    assert targets == {F.GENCO_MODEL_NAME: F.GENCO_MODEL_NAME} and version == 1700000001
    assert (base / F.GENCO_MODEL_NAME / str(version) / "saved_model.pb").read_bytes() == b"pb"
    assert pair_pusher.served_versions(str(base), F.AR_MODEL_NAME) == [5]  # the AR/CR layout is untouched
    assert not [d for d in os.listdir(base / F.GENCO_MODEL_NAME) if d.startswith(".")]
    with pytest.raises(FileNotFoundError, match="has no genco/ SavedModel to push"):
        genco_pusher.push_genco_model(str(tmp_path / "nothing"), str(base), now=1)


def test_the_eval_config_blesses_on_the_mean_calibrated_sctr_and_the_reward_models_auc():
    config = build_genco_eval_config(GenCOPipelineConfig(sctr_floor=0.03, sctr_change_tolerance=0.004, auc_floor=0.55))
    by_class = {m.class_name: m for spec in config.metrics_specs for m in spec.metrics}
    sctr = by_class["GenCOCalibratedSCTR"].per_slice_thresholds[0].threshold
    assert sctr.value_threshold.lower_bound.value == 0.03
    assert sctr.change_threshold.absolute.value == pytest.approx(-0.004)
    assert by_class["AUC"].per_slice_thresholds[0].threshold.value_threshold.lower_bound.value == 0.55
    assert [list(s.output_names) for s in config.metrics_specs] == [[F.GENCO_LOGGED_PCTR], []]


@pytest.mark.slow
def test_the_pipeline_trains_blesses_and_pushes_a_model_the_standin_serves(tmp_path):
    from tfx_pipeline import genco_runner

    data = str(tmp_path / "data")
    simulate_combinations(CombinationConfig(**SIMULATOR), data, progress=False)
    # Forty steps make no reward model worth an AUC floor (test_the_eval_config... checks that gate): here the
    # blessing rests on the calibrated sCTR.
    cfg = GenCOPipelineConfig(output_dir=str(tmp_path / "out"), data_dir=data, train_steps=40, eval_steps=5,
                              auc_floor=0.0, model_config={"batch_size": 128, "optimizer": "adam",
                                                           "learning_rate": 3e-3})
    summary = genco_runner.run(cfg)
    assert summary.succeeded, [(c.name, c.state) for c in summary.components]
    evaluator, pusher = summary.component("Evaluator"), summary.component("Pusher")
    assert evaluator.properties.get("blessed") == 1
    assert pusher.properties.get("pushed") == 1 and pusher.properties.get("push_layout") == "genco"
    versions = pair_pusher.served_versions(cfg.serving_root, F.GENCO_MODEL_NAME)
    assert versions == [int(pusher.properties["pushed_version"])]
    assert not os.path.exists(os.path.join(cfg.serving_root, F.AR_MODEL_NAME))
    with open(os.path.join(summary.output_uri("Trainer", "model_run"), "genco_config.json")) as f:
        trained = json.load(f)
    assert trained["steps"]["train"] == 40 and 0.03 < trained["config"]["initial_ctr"] < 0.12
    # The hash sizes from the Transform's vocabularies: the distinct ids of the training split.
    assert trained["hash_sizes"] == G.hash_sizes_of(D.read_log(os.path.join(data, F.TRAIN_SPLIT, "*")))

    server = ModelServerStandIn({F.GENCO_MODEL_NAME: os.path.join(cfg.serving_root, F.GENCO_MODEL_NAME)},
                                poll_seconds=0).start()
    try:
        with GrpcServingClient(server.grpc_address) as client:
            request = example_request(5, seed=2)
            out = client.predict(F.GENCO_MODEL_NAME, request, F.RAW_SIGNATURE, timeout=60)
    finally:
        server.stop()
    for c in F.GENCO_COMPONENTS:
        index, ids = out[F.GENCO_CHOSEN_INDEX[c]], request[F.GENCO_CAND_IDS[c]]
        has = (ids >= 0).any(axis=1)
        assert ((index >= 0) == has).all() and (ids[np.arange(5), np.maximum(index, 0)][has] >= 0).all()
    assert np.isfinite(out[F.GENCO_SCORE]).all()
