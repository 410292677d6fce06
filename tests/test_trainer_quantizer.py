"""The pctr quantizer of eq. (5): codes, forward rows, straight-through gradient, and the choice of r."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import JACConfig
from trainer.info_gain import choose_r, mutual_information
from trainer.jac_model import JACModel
from trainer.quantizer import PctrQuantizer, RampInitializer, bucket_edges, code_slope, lookup_codes, quantize
from trainer.random_batch import random_transformed_batch, small_cardinalities
from transform import names as N


@pytest.mark.parametrize("pctr, r, k, code", [
    (0.0, 1.0, 8, 0),
    (1.0, 1.0, 8, 7),  # floor(8 * log2(2)) = 8, clipped to K - 1
    (0.5, 1.0, 8, 4),  # 8 * log2(1.5) = 4.68
    (0.05, 1.0, 8, 0),  # 0.563
    (0.1, 1.0, 8, 1),  # 1.10
    (0.1, 9.0, 10, 2),  # 10 * log10(1.9) = 2.79
    (1.0 / 90.0, 9.0, 10, 0),  # 10 * log10(1.1) = 0.41
    (0.9, 9.0, 10, 9),  # 10 * log10(9.1) = 9.59
    (-0.2, 9.0, 10, 0),  # clipped to 0
    (3.0, 9.0, 10, 9),  # clipped to 1
    (float("nan"), 9.0, 10, 0),
])
def test_codes_hand_computed(pctr, r, k, code):
    assert quantize([pctr], r, k)[0] == code
    layer = PctrQuantizer(k, 2, r)
    layer.build()
    assert int(layer.codes(tf.constant([pctr]))[0]) == code
    assert int(lookup_codes(tf.constant([pctr]), bucket_edges(r, k))[0]) == code


@pytest.mark.parametrize("k", [1, 4, 7])
def test_values_at_bucket_edges(k):
    """The edge t_k = ((1+r)^{k/K} - 1) / r is the first value of code k (here K=8, r=1: t_k = 2^{k/8} - 1)."""
    edges = bucket_edges(1.0, 8)
    np.testing.assert_allclose(edges[k - 1], 2 ** (k / 8) - 1, rtol=1e-6)
    at, below = edges[k - 1], np.nextafter(edges[k - 1], np.float32(0))
    assert quantize([at, below], 1.0, 8).tolist() == [k, k - 1]


@pytest.mark.parametrize("r, k", [(1.0, 8), (100.0, 8192), (3000.0, 512)])
def test_codes_equal_the_log_formula_away_from_edges(r, k):
    p = np.random.default_rng(0).uniform(0, 1, 20_000).astype(np.float32)
    u = k * np.log1p(r * p.astype(np.float64)) / math.log1p(r)
    away = np.abs(u - np.round(u)) > 1e-3
    expected = np.minimum(np.floor(u), k - 1).astype(np.int64)
    np.testing.assert_array_equal(quantize(p, r, k)[away], expected[away])
    layer = PctrQuantizer(k, 2, r)
    layer.build()
    np.testing.assert_array_equal(layer.codes(tf.constant(p)).numpy(), quantize(p, r, k))


def _layer(k=8, d=3, r=1.0, window=1):
    layer = PctrQuantizer(k, d, r, slope_window=window)
    layer.build()
    table = (np.arange(k * d, dtype=np.float32).reshape(k, d) ** 2) / 10.0  # non-linear in the code
    layer.table.assign(table)
    return layer, table


def test_forward_is_the_exact_table_row():
    layer, table = _layer()
    p = tf.constant([0.0, 0.1, 0.5, 1.0])
    np.testing.assert_array_equal(layer(p).numpy(), table[[0, 1, 4, 7]])


@pytest.mark.parametrize("pctr, window, lo, hi", [
    (0.5, 1, 3, 5),  # code 4: central difference over rows 3 and 5
    (1.0, 1, 6, 7),  # code 7 = K - 1: backward difference
    (0.0, 2, 0, 2),  # code 0, h = 2: forward secant over rows 0..2
    (0.5, 2, 2, 6),
])
def test_straight_through_gradient_matches_the_formula(pctr, window, lo, hi):
    """dL/dp = g . (E[hi] - E[lo]) / (hi - lo) * K r / ((1 + r p) ln(1 + r)); the table gets g in row c."""
    k, r = 8, 1.0
    layer, table = _layer(k=k, r=r, window=window)
    g = np.array([1.0, -2.0, 0.5], np.float32)
    p = tf.Variable([pctr])
    with tf.GradientTape(persistent=True) as tape:
        loss = tf.reduce_sum(layer(p) * g)
    du_dp = k * r / ((1 + r * pctr) * math.log(1 + r))
    expected = g @ (table[hi] - table[lo]) / (hi - lo) * du_dp
    np.testing.assert_allclose(tape.gradient(loss, p).numpy(), [expected], rtol=1e-5)
    table_grad = tf.convert_to_tensor(tape.gradient(loss, layer.table)).numpy()
    code = quantize([pctr], r, k)[0]
    expected_table = np.zeros_like(table)
    expected_table[code] = g
    np.testing.assert_allclose(table_grad, expected_table)
    assert float(code_slope(pctr, r, k)) == pytest.approx(du_dp)


def test_ramp_initialisation_makes_the_gradient_that_of_a_linear_code_embedding():
    """With E_c = A + c/(K-1) (B - A), the secant is (B - A)/(K-1) whatever c and h."""
    init = RampInitializer(stddev=1.0, seed=3)
    table = init((16, 4)).numpy()
    steps = np.diff(table, axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-5)
    assert RampInitializer(**init.get_config()).get_config() == {"stddev": 1.0, "seed": 3}


def test_quantizer_config_round_trip_and_shapes():
    layer = PctrQuantizer(64, 5, 30.0, slope_window=3, seed=1, name="q")
    out = layer(tf.constant([0.1, 0.2, 0.3]))
    assert out.shape == (3, 5)
    clone = PctrQuantizer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build()
    np.testing.assert_allclose(clone.table.numpy(), layer.table.numpy())  # same seed, same ramp


def test_nan_pctr_gets_code_zero_and_a_zero_gradient():
    """NaN is coded as 0 in the forward pass; its straight-through gradient is 0, not NaN (defect 8)."""
    layer, table = _layer(window=2)
    p = tf.Variable([np.nan, 0.5, np.nan, 0.1], dtype=tf.float32)
    with tf.GradientTape() as tape:
        out = layer(p)
        loss = tf.reduce_sum(out * np.array([1.0, -2.0, 0.5], np.float32))
    np.testing.assert_array_equal(out.numpy()[[0, 2]], table[[0, 0]])
    grad = tape.gradient(loss, p).numpy()
    assert np.isfinite(grad).all()
    assert grad[0] == grad[2] == 0.0
    assert grad[1] != 0.0 and grad[3] != 0.0  # the other rows keep their straight-through gradient


@pytest.mark.parametrize("kwargs, match", [
    (dict(r="auto"), r"r: must be a number \(resolve 'auto'"),
    (dict(r=0.0), r"r: must be a finite positive number, got 0.0"),
    (dict(r=-3.0), r"r: must be a finite positive number, got -3.0"),
    (dict(r=float("nan")), r"r: must be a finite positive number, got nan"),
    (dict(r=1.0, buckets=1), r"buckets: must be an integer >= 2, got 1"),
    (dict(r=1.0, buckets=8.0), r"buckets: must be an integer >= 2, got 8.0"),
    (dict(r=1.0, dim=0), r"dim: must be an integer >= 1, got 0"),
    (dict(r=1.0, slope_window=0), r"slope_window: must be an integer >= 1, got 0"),
    (dict(r=1.0, slope_window=1.5), r"slope_window: must be an integer >= 1, got 1.5"),
])
def test_quantizer_rejects_bad_parameters(kwargs, match):
    kwargs = dict(dict(buckets=8, dim=2), **kwargs)
    with pytest.raises(ValueError, match="PctrQuantizer " + match):
        PctrQuantizer(**kwargs)


@pytest.mark.parametrize("r, buckets, match", [(0.0, 8, "r must be positive, got 0.0"),
                                               (1.0, 1, "buckets must be at least 2, got 1")])
def test_bucket_edges_rejects_bad_parameters(r, buckets, match):
    with pytest.raises(ValueError, match=match):
        bucket_edges(r, buckets)


def test_cr_only_loss_trains_ar_through_the_quantizer():
    """In JAC the gradient of CR's loss reaches AR's weights (straight-through), with the documented slope."""
    config = JACConfig.from_dict(dict(variant="jac", quantizer_r=30.0, quantizer_buckets=64, quantizer_dim=4,
                                      ar_hidden_units=[8], cr_hidden_units=[4], cross_projection_dim=4))
    cards = small_cardinalities()
    model = JACModel(config, cards)
    batch = random_transformed_batch(cards, 32, seed=1, click_rate=0.5)
    labels = tf.cast(batch[N.LABEL_KEY], tf.float32)
    with tf.GradientTape() as tape:
        cr_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, model.logits(batch)["cr"]))
    grads = tape.gradient(cr_loss, model.ar.trainable_variables)
    logit_kernel = model.ar.logit_layer.kernel
    grad = dict(zip([v.ref() for v in model.ar.trainable_variables], grads))[logit_kernel.ref()]
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0

    # ... and the pctr gradient equals the formula: (dL/de) . secant * du/dp per row.
    pctr = tf.sigmoid(model.ar(batch))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(pctr)
        emb = model.cr.quantizer(pctr)
        loss = tf.reduce_sum(emb * tf.range(1.0, 5.0))
    q = model.cr.quantizer
    codes = q.codes(pctr).numpy()
    lo, hi = np.maximum(codes - q.slope_window, 0), np.minimum(codes + q.slope_window, q.buckets - 1)
    table = q.table.numpy()
    secant = (table[hi] - table[lo]) / (hi - lo)[:, None]
    expected = secant @ np.arange(1.0, 5.0) * code_slope(pctr.numpy(), q.r, q.buckets)
    np.testing.assert_allclose(tape.gradient(loss, pctr).numpy(), expected, rtol=1e-4)


# ------------------------------------------------------------------------------------- information gain
def test_mutual_information_hand_computed():
    perfect = ([0, 0, 1, 1], [0, 0, 1, 1])
    independent = ([0, 1, 0, 1], [0, 0, 1, 1])
    assert mutual_information(*perfect, bias_correction=False) == pytest.approx(1.0)
    assert mutual_information(*independent, bias_correction=False) == pytest.approx(0.0, abs=1e-12)
    # Miller-Madow: H += (m - 1) / 2N nats. Perfect: (ln 2 + 1/8 - 0) / ln 2.
    assert mutual_information(*perfect) == pytest.approx(1 + 0.125 / math.log(2))
    # Independent: (ln 2 + 1/8) - (ln 2 + 2 * 1/8) nats -> -1/8 nats.
    assert mutual_information(*independent) == pytest.approx(-0.125 / math.log(2))


def test_choose_r_prefers_resolution_where_the_ctrs_are():
    """CTRs in [0, 0.02] with the click decided at 0.01: r = 1 puts them all in code 0, r = 1e4 separates."""
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.02, 5000).astype(np.float32)
    y = (p > 0.01).astype(np.int64)
    r, scores = choose_r(p, y, buckets=16, grid=[1.0, 10_000.0])
    assert r == 10_000.0
    assert scores[1.0] == pytest.approx(0.0, abs=1e-3) and scores[10_000.0] > 0.5


def test_choose_r_breaks_ties_towards_the_first_grid_value():
    r, _ = choose_r(np.zeros(10, np.float32), np.zeros(10, np.int64), buckets=8, grid=[3.0, 1.0])
    assert r == 3.0


@pytest.mark.parametrize("codes, labels", [([0, 1], [0]), ([], []), ([0, 1], [0, 2])])
def test_mutual_information_rejects_bad_input(codes, labels):
    with pytest.raises(ValueError):
        mutual_information(codes, labels)
