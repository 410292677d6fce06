"""run_fn on simulated, transformed data (as the TFX Trainer calls it), and training on that data."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.v1.components import FnArgs

import features as F
from trainer import testing
from trainer.cacs_teacher import TEACHER_DIR
from trainer.config import MODEL_CONFIG_KEY, JACConfig, eval_steps_of
from trainer.data import make_dataset, read_column_sample
from trainer.jac_model import JACModel, make_optimizer
from trainer.run import CONFIG_FILE, run_fn
from trainer.warmup import WARMUP_FILE
from transform import names as N


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = testing.transformed_data()
    root = tmp_path_factory.mktemp("run")
    # eval_steps in both places: the model config's explicit override must win over the Trainer's EvalArgs.
    model_config = dict(testing.TINY_MODEL, variant="jac", quantizer_r="auto", r_grid=[1.0, 100.0, 10_000.0],
                        eval_steps=3)
    fn_args = FnArgs(
        train_files=[data.train], eval_files=[data.eval], transform_output=data.transform_graph,
        serving_model_dir=str(root / "serving"), model_run_dir=str(root / "run"), train_steps=30, eval_steps=2,
        custom_config={MODEL_CONFIG_KEY: model_config}, data_accessor=testing.data_accessor())
    return run_fn(fn_args), fn_args


def test_run_fn_applies_the_custom_config_and_chooses_r(run):
    summary, fn_args = run
    config = JACConfig.from_dict(summary["config"])
    assert config.quantizer_buckets == testing.TINY_MODEL["quantizer_buckets"]
    assert config.quantizer_r in (1.0, 100.0, 10_000.0)
    scores = {float(k): v for k, v in summary["r_information_bits"].items()}
    assert max(scores, key=scores.get) == config.quantizer_r
    with open(os.path.join(fn_args.model_run_dir, CONFIG_FILE)) as f:
        assert json.load(f)["config"] == summary["config"]
    # initial_ctr: the smoothed mean click of the training sample
    _, labels = read_column_sample(fn_args.train_files, testing.transformed_data().tft_output,
                                   N.AD_HIST_CTR_CLIPPED, config.r_sample_size)
    assert config.initial_ctr == pytest.approx((labels.sum() + 1) / (len(labels) + 2))


def test_run_fn_uses_the_model_config_eval_steps_over_the_trainers(run):
    summary, fn_args = run
    assert fn_args.eval_steps == 2 and summary["config"]["eval_steps"] == 3
    assert summary["steps"] == {"train": 30, "eval": 3}


@pytest.mark.parametrize("config_steps, trainer_steps, expected", [
    (None, 50, 50),  # no override: the Trainer's EvalArgs
    (7, 50, 7),  # an explicit model_config override wins
    (7, None, 7),
    (None, 0, None),  # neither: one full pass over the eval split
    (None, None, None),
])
def test_eval_steps_precedence(config_steps, trainer_steps, expected):
    assert eval_steps_of(JACConfig(eval_steps=config_steps), trainer_steps) == expected


def test_run_fn_logs_both_losses_and_aucs(run):
    metrics = run[0]["metrics"]
    for key in ("loss", "ar_loss", "cr_loss", "ar_auc", "cr_auc", "val_ar_loss", "val_cr_loss", "val_ar_auc",
                "val_cr_auc"):
        assert np.isfinite(metrics[key]), key
    assert metrics["loss"] == pytest.approx(metrics["ar_loss"] + metrics["cr_loss"], rel=1e-4)
    assert tf.io.gfile.glob(os.path.join(run[1].model_run_dir, "train", "*tfevents*"))  # TensorBoard logs


def test_run_fn_export_layout(run):
    serving = run[1].serving_model_dir
    assert os.path.isfile(os.path.join(serving, "saved_model.pb"))
    for name in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):
        assert os.path.isfile(os.path.join(serving, name, "saved_model.pb"))
        assert os.path.isdir(os.path.join(serving, name, "variables"))
        assert os.path.isfile(os.path.join(serving, name, WARMUP_FILE))
    assert set(run[0]["exported"]) == {"eval", F.AR_MODEL_NAME, F.CR_MODEL_NAME, TEACHER_DIR}  # jac: a CACS teacher


def test_run_fn_without_tf_config_trains_in_one_process_and_reports_its_throughput(run):
    summary, fn_args = run
    assert summary["cluster"] == {} and summary["sharded_tables"] == {}
    throughput = summary["throughput"]
    # 30 steps of 64 (run in calls of steps_per_execution = 25 and 5 steps)
    assert throughput["examples_per_second"] == pytest.approx(30 * 64 / throughput["train_seconds"], rel=0.01)
    assert throughput["steady_examples_per_second"] > 0


def test_data_reads_only_the_requested_columns_and_the_label():
    data = testing.transformed_data()
    ds = make_dataset(data.train, data.tft_output, N.CR_INPUTS, batch_size=32, num_epochs=1, shuffle=False)
    features, label = next(iter(ds))
    assert set(features) == set(N.CR_INPUTS)
    assert label.shape == (32,) and set(np.unique(label.numpy())) <= {0, 1}
    ctr, labels = read_column_sample(data.train, data.tft_output, N.AD_HIST_CTR_CLIPPED, 100)
    assert ctr.shape == labels.shape == (100,) and (0 <= ctr).all() and (ctr <= 1).all()
    with pytest.raises(ValueError, match=F.PROPENSITY):
        make_dataset(data.train, data.tft_output, [F.PROPENSITY], batch_size=8)


def _rows(batches):
    """Each row of ``batches`` as a hashable key: its sequence, ad and creative."""
    return [tuple(f[N.SEQ_AD_IDS][i].numpy()) + (int(f[N.xf(F.AD_ID)][i]), int(f[N.xf(F.CREATIVE_ID)][i]))
            for f, _ in batches for i in range(len(f[N.SEQ_AD_IDS]))]


def test_block_shuffle_moves_runs_of_consecutive_rows_and_keeps_requests_in_a_batch():
    data = testing.transformed_data()
    names = [N.SEQ_AD_IDS, N.xf(F.AD_ID), N.xf(F.CREATIVE_ID)]
    in_order = _rows(make_dataset(data.train, data.tft_output, names, 4096, num_epochs=1, shuffle=False))
    blocks = {tuple(in_order[i:i + 4]) for i in range(0, len(in_order), 4)}  # the last may be shorter
    batches = list(make_dataset(data.train, data.tft_output, names, 8, num_epochs=1, seed=0, shuffle_block_rows=4))
    assert all(len(f[N.SEQ_AD_IDS]) == 8 for f, _ in batches[:-1])
    shuffled = _rows(batches)
    assert sorted(shuffled) == sorted(in_order) and shuffled != in_order  # one epoch: every row once, moved
    position = 0  # the stream is the log's runs of 4 consecutive rows, in a new order
    while position < len(shuffled):
        run = next(n for n in (4, len(in_order) % 4) if n and tuple(shuffled[position:position + n]) in blocks)
        position += run

    def distinct_share(**kw):  # distinct sequences per row in batches of 64
        ds = make_dataset(data.train, data.tft_output, names, 64, num_epochs=1, seed=0, **kw)
        return np.mean([len(set(map(tuple, f[N.SEQ_AD_IDS].numpy()))) / len(f[N.SEQ_AD_IDS]) for f, _ in ds])
    # The simulator shows 3 ads per request: ~1/3 with blocks of 32 rows, near 1 with a row shuffle.
    assert distinct_share(shuffle_block_rows=32) < 0.45 and distinct_share() > 0.8
    with pytest.raises(ValueError, match="shuffle_block_rows"):
        make_dataset(data.train, data.tft_output, names, 8, shuffle_block_rows=0)


def test_short_training_lowers_both_losses():
    data = testing.transformed_data()
    config = JACConfig.from_dict(dict(testing.TINY_MODEL, variant="jac", quantizer_r=30.0))
    model = JACModel(config, N.cardinalities(data.tft_output))
    model.compile(optimizer=make_optimizer(config))
    evaluation = make_dataset(data.eval, data.tft_output, model.feature_names, 512, num_epochs=1, shuffle=False)
    before = model.evaluate(evaluation, return_dict=True, verbose=0)
    train = make_dataset(data.train, data.tft_output, model.feature_names, config.batch_size, seed=0)
    model.fit(train, steps_per_epoch=60, epochs=1, verbose=0)
    after = model.evaluate(evaluation, return_dict=True, verbose=0)
    assert after["ar_loss"] < before["ar_loss"] - 0.05
    assert after["cr_loss"] < before["cr_loss"] - 0.05
