"""Soft-label list-wise distillation (CACS, Lin et al., SIGIR 2022): hand cases, KL + entropy, gradient, padding."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.config import JACConfig
from trainer.listwise_distillation import ListwiseDistillation, listwise_distillation, mean_listwise_distillation

LN3 = math.log(3.0)
# Teacher softmax p = (1/4, 3/4) at T = 1 for t = (0, ln 3), and at T = 2 for t = (0, 2 ln 3).
H_QUARTER = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))


@pytest.mark.parametrize("student, teacher, temperature, expected", [
    ([0.0, 0.0], [0.0, LN3], 1.0, math.log(2.0)),  # q = (1/2, 1/2): -(1/4 + 3/4) ln 1/2
    ([0.0, 2 * LN3], [0.0, 2 * LN3], 2.0, H_QUARTER),  # q = p: the teacher's entropy
    ([0.0, 0.0], [0.0, 2 * LN3], 2.0, math.log(2.0)),
    ([LN3, 0.0], [0.0, LN3], 1.0, -(0.25 * math.log(0.75) + 0.75 * math.log(0.25))),  # q reversed
    ([5.0, 1.0, -2.0], [0.0, 0.0, 0.0], 3.0,  # uniform teacher: -mean_k log q_k
     -np.mean(np.array([5.0, 1.0, -2.0]) / 3 - np.log(np.sum(np.exp(np.array([5.0, 1.0, -2.0]) / 3))))),
    ([7.0], [-3.0], 3.0, 0.0),  # one candidate: nothing to order
])
def test_hand_cases(student, teacher, temperature, expected):
    loss = listwise_distillation(tf.constant([student]), tf.constant([teacher]), temperature=temperature)
    np.testing.assert_allclose(loss.numpy(), [expected], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_equals_kl_plus_teacher_entropy(temperature):
    rng = np.random.default_rng(1)
    student, teacher = rng.normal(0, 2, (6, 5)), rng.normal(0, 2, (6, 5))
    p = tf.nn.softmax(teacher / temperature).numpy()
    log_q = tf.nn.log_softmax(student / temperature).numpy()
    kl = np.sum(p * (np.log(p) - log_q), axis=1)
    entropy = -np.sum(p * np.log(p), axis=1)
    loss = listwise_distillation(tf.constant(student, tf.float32), tf.constant(teacher, tf.float32), None, temperature)
    np.testing.assert_allclose(loss.numpy(), kl + entropy, rtol=1e-5)


def _student_gradient(student, teacher, mask=None, temperature=3.0):
    s = tf.Variable(student, dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(listwise_distillation(s, tf.constant(teacher, tf.float32), mask, temperature))
    return tape.gradient(loss, s).numpy()


def test_zero_gradient_when_student_equals_teacher_up_to_a_constant():
    teacher = np.array([[0.3, -1.0, 2.0, 0.0], [4.0, 4.5, -3.0, 1.0]], np.float32)
    shift = np.array([[10.0], [-7.5]], np.float32)  # a different constant per list
    np.testing.assert_allclose(_student_gradient(teacher + shift, teacher), 0.0, atol=1e-7)


def test_gradient_is_q_minus_p_over_t():
    student, teacher, t = np.array([[0.0, 0.0]]), np.array([[0.0, 2 * LN3]]), 2.0
    np.testing.assert_allclose(_student_gradient(student, teacher, temperature=t), [[(0.5 - 0.25) / t, (0.5 - 0.75) / t]],
                               rtol=1e-6)


def test_no_gradient_reaches_the_teacher():
    teacher = tf.Variable([[0.0, 1.0, 2.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(listwise_distillation(tf.constant([[1.0, 0.0, 0.0]]), teacher))
    assert tape.gradient(loss, teacher) is None


def test_padding_is_ignored():
    """Padded slots (any score, even NaN/inf) change neither the loss nor the real slots' gradient."""
    student, teacher = np.array([[0.0, 0.0]]), np.array([[0.0, LN3]])
    padded_student = np.array([[0.0, 50.0, 0.0, np.nan]], np.float32)
    padded_teacher = np.array([[0.0, np.inf, LN3, -80.0]], np.float32)
    mask = tf.constant([[True, False, True, False]])
    loss = listwise_distillation(tf.constant(padded_student), tf.constant(padded_teacher), mask, 1.0)
    np.testing.assert_allclose(loss.numpy(), [math.log(2.0)], rtol=1e-6)
    grad = _student_gradient(padded_student, padded_teacher, mask, 1.0)
    np.testing.assert_allclose(grad[:, [0, 2]], _student_gradient(student, teacher, temperature=1.0), rtol=1e-6)
    np.testing.assert_array_equal(grad[:, [1, 3]], 0.0)


def test_mean_leaves_out_lists_without_candidates():
    student = tf.constant([[0.0, 0.0], [0.0, 0.0], [9.0, 9.0]])
    teacher = tf.constant([[0.0, LN3], [0.0, 0.0], [1.0, 2.0]])
    mask = tf.constant([[1, 1], [1, 0], [0, 0]])  # second list: one candidate (loss 0); third: none
    mean = mean_listwise_distillation(student, teacher, mask, temperature=1.0)
    np.testing.assert_allclose(mean.numpy(), math.log(2.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(mean_listwise_distillation(student, teacher, tf.zeros([3, 2]), 1.0).numpy(), 0.0)


def test_weighted_term_and_config_round_trip():
    term = ListwiseDistillation(temperature=1.0, weight=0.5)
    value = term(tf.constant([[0.0, 0.0]]), tf.constant([[0.0, LN3]]))
    np.testing.assert_allclose(value.numpy(), 0.5 * math.log(2.0), rtol=1e-6)
    again = ListwiseDistillation.from_config(term.get_config())
    assert again.get_config() == {"temperature": 1.0, "weight": 0.5}


@pytest.mark.parametrize("make, message", [
    (lambda: ListwiseDistillation(temperature=0.0), "temperature: must be a finite positive number, got 0.0"),
    (lambda: ListwiseDistillation(temperature=float("inf")), "temperature: must be a finite positive"),
    (lambda: ListwiseDistillation(temperature="3"), "temperature: must be a finite positive number, got '3'"),
    (lambda: ListwiseDistillation(weight=-1.0), "weight: must be a finite non-negative number, got -1.0"),
    (lambda: listwise_distillation(tf.zeros([2, 3]), tf.zeros([2, 4])), "teacher_logits: shape (2, 4) does not match"),
    (lambda: listwise_distillation(tf.zeros([3]), tf.zeros([3])), "student_logits: must be [B, K]"),
    (lambda: listwise_distillation(tf.zeros([2, 3]), tf.zeros([2, 3]), tf.ones([2, 2])), "mask: shape (2, 2)"),
])
def test_bad_input(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)


def test_config_fields():
    config = JACConfig.from_dict({"cacs_distillation_temperature": 2.0, "cacs_distillation_weight": 0.25})
    term = ListwiseDistillation(config.cacs_distillation_temperature, config.cacs_distillation_weight)
    assert term.get_config() == {"temperature": 2.0, "weight": 0.25}
    assert (JACConfig().cacs_distillation_temperature, JACConfig().cacs_click_weight) == (3.0, 1.0)


@pytest.mark.parametrize("field, value, message", [
    ("cacs_distillation_temperature", 0.0, "must be positive, got 0.0"),
    ("cacs_distillation_weight", -0.1, "must be non-negative, got -0.1"),
    ("cacs_click_weight", -1.0, "must be non-negative, got -1.0"),
])
def test_config_bad_values(field, value, message):
    with pytest.raises(ValueError, match=f"JACConfig.{field}: {message}"):
        JACConfig.from_dict({field: value})
