"""Adaptive ID dropout (CACS, Lin et al., SIGIR 2022): the schedule's rates by hand, the draws, inference."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.config import JACConfig
from trainer.id_dropout import AdaptiveIdDropout, drop_rates

COUNTS = [0, 10, 30, 90, 990]  # ids 0..4; OOV indices start at 5


@pytest.mark.parametrize("rate, half_count, schedule, expected", [
    # p = rate * n0 / (n0 + n): n0 = 10 -> 0.5 * (1, 1/2, 1/4, 1/10, 1/100)
    (0.5, 10.0, "adaptive", [0.5, 0.25, 0.125, 0.05, 0.005]),
    (1.0, 30.0, "adaptive", [1.0, 0.75, 0.5, 0.25, 30 / 1020]),
    (0.3, 10.0, "fixed", [0.3] * 5),
    (0.0, 10.0, "adaptive", [0.0] * 5),
])
def test_rates_by_hand(rate, half_count, schedule, expected):
    np.testing.assert_allclose(drop_rates(COUNTS, rate, half_count, schedule), expected, rtol=1e-6)
    layer = AdaptiveIdDropout(COUNTS, num_oov_buckets=3, rate=rate, half_count=half_count, schedule=schedule)
    np.testing.assert_allclose(layer.rates.numpy(), expected, rtol=1e-6)


def test_rare_ids_are_dropped_more_often_at_the_scheduled_rates():
    """20,000 rows per id: each id's drop frequency is its rate within 4 standard errors; OOV ids never drop."""
    layer = AdaptiveIdDropout(COUNTS, num_oov_buckets=3, rate=0.5, half_count=10.0, seed=7)
    rows = 20_000
    ids = np.repeat(np.arange(7), rows)  # 5, 6: already OOV
    out = layer(tf.constant(ids), training=True).numpy()
    frequency = (out != ids).reshape(7, rows).mean(axis=1)
    expected = np.array([0.5, 0.25, 0.125, 0.05, 0.005, 0.0, 0.0])
    assert np.all(np.abs(frequency - expected) <= 4 * np.sqrt(expected * (1 - expected) / rows) + 1e-9), frequency
    assert np.all(np.diff(frequency[:5]) < 0)


def test_a_dropped_id_becomes_its_oov_bucket():
    """Dropped index i -> V + (i mod B), what an unseen id looks like after the transform."""
    layer = AdaptiveIdDropout([0] * 7, num_oov_buckets=3, rate=1.0, half_count=1.0)  # unseen ids: always dropped
    ids = tf.constant([[0, 1, 2], [3, 4, 6]], tf.int32)
    out = layer(ids, training=True)
    assert out.dtype == tf.int32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out.numpy(), [[7, 8, 9], [7, 8, 7]])
    np.testing.assert_array_equal(layer(tf.constant([7, 9]), training=True).numpy(), [7, 9])  # OOV stays


def test_fixed_schedule_ignores_counts():
    layer = AdaptiveIdDropout(COUNTS, num_oov_buckets=2, rate=0.2, half_count=10.0, schedule="fixed", seed=3)
    ids = np.repeat(np.arange(5), 20_000)
    frequency = (layer(tf.constant(ids), training=True).numpy() != ids).reshape(5, -1).mean(axis=1)
    np.testing.assert_allclose(frequency, 0.2, atol=4 * np.sqrt(0.2 * 0.8 / 20_000))


@pytest.mark.parametrize("training", [False, None])
def test_inactive_at_inference(training):
    layer = AdaptiveIdDropout([0, 0, 0], num_oov_buckets=2, rate=1.0)
    ids = tf.constant([0, 1, 2, 4])
    np.testing.assert_array_equal(layer(ids, training=training).numpy(), [0, 1, 2, 4])
    # Inside a Keras model, predict() runs with training=False.
    inputs = keras.Input([], dtype=tf.int64)
    model = keras.Model(inputs, layer(inputs))
    np.testing.assert_array_equal(model.predict(np.array([0, 1, 2]), verbose=0), [0, 1, 2])


def test_config_round_trip():
    layer = AdaptiveIdDropout(COUNTS, num_oov_buckets=3, rate=0.5, half_count=10.0, schedule="fixed", seed=1)
    again = AdaptiveIdDropout.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    np.testing.assert_array_equal(again.rates.numpy(), layer.rates.numpy())


def test_config_fields_give_the_layer_its_schedule():
    config = JACConfig.from_dict({"cacs_id_dropout_rate": 0.4, "cacs_id_dropout_half_count": 10.0})
    rates = drop_rates(COUNTS, config.cacs_id_dropout_rate, config.cacs_id_dropout_half_count,
                       config.cacs_id_dropout_schedule)
    np.testing.assert_allclose(rates, [0.4, 0.2, 0.1, 0.04, 0.004], rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"rate": 1.5}, "rate: must be a number in [0, 1], got 1.5"),
    ({"rate": float("nan")}, "rate: must be a number in [0, 1]"),
    ({"half_count": 0.0}, "half_count: must be a finite positive number, got 0.0"),
    ({"schedule": "linear"}, "schedule: must be one of ('adaptive', 'fixed'), got 'linear'"),
    ({"counts": [3, -1, 2]}, "counts: must be finite and non-negative; id 1 has -1.0"),
    ({"counts": []}, "counts: must be a non-empty 1-D sequence"),
    ({"num_oov_buckets": 0}, "num_oov_buckets: must be a positive integer, got 0"),
])
def test_bad_input(kwargs, message):
    arguments = {"counts": COUNTS, "num_oov_buckets": 2, "rate": 0.5, **kwargs}
    with pytest.raises(ValueError) as info:
        AdaptiveIdDropout(**arguments)
    assert message in str(info.value)


@pytest.mark.parametrize("field, value, message", [
    ("cacs_id_dropout_rate", 1.2, "must lie in [0, 1], got 1.2"),
    ("cacs_id_dropout_half_count", 0.0, "must be positive, got 0.0"),
    ("cacs_id_dropout_schedule", "step", "must be one of ('adaptive', 'fixed'), got 'step'"),
])
def test_config_bad_values(field, value, message):
    with pytest.raises(ValueError) as info:
        JACConfig.from_dict({field: value})
    assert f"JACConfig.{field}: {message}" in str(info.value)


def test_set_counts_replaces_the_rates_and_checks_the_vocabulary_size():
    layer = AdaptiveIdDropout([0] * 5, num_oov_buckets=2, rate=0.5, half_count=10.0)
    np.testing.assert_allclose(layer.rates.numpy(), 0.5)
    layer.set_counts(COUNTS)
    np.testing.assert_allclose(layer.rates.numpy(), [0.5, 0.25, 0.125, 0.05, 0.005], rtol=1e-6)
    assert layer.get_config()["counts"] == COUNTS
    assert layer.rates in layer.non_trainable_weights and not layer.trainable_weights
    with pytest.raises(ValueError, match="has 5 in-vocabulary ids, got \\(4,\\) counts"):
        layer.set_counts([1, 2, 3, 4])
