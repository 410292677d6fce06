r"""The training objective of GenCO (Gu et al., 2025, eqs. 11, 12, 20-23).

For a batch of logged impressions with click :math:`y_i`, logged combination :math:`c_i` (one element per
component :math:`j \in J_i` the ad has), combination logit :math:`s_i` and element logits :math:`p_{i,j,k}`:

.. math::
    \mathcal L_{comb} = \frac1B \sum_i \ell(y_i, s_i), \qquad
    \mathcal L_{ele} = \frac{1}{\sum_i |J_i|} \sum_i \sum_{j \in J_i} \ell(y_i, p_{i,j,c_{i,j}}), \qquad
    \mathcal L_{MIL} = \mathcal L_{comb} + \mathcal L_{ele}

with :math:`\ell(y, x) = -y \log\sigma(x) - (1 - y)\log(1 - \sigma(x))` (the paper's eqs. 11-12 print only the
positive term; the cross-entropy they name has both). The policy gradient (REINFORCE, eqs. 21-22), with reward :math:`r_i = r_+` for a click and :math:`r_-`
otherwise (+1 and -0.1), is estimated on the *logged* combinations, which the logging policy :math:`\mu` drew,
not :math:`\pi`. :math:`\mathbb E_{c \sim \pi}[r \nabla \log \pi(c)] = \mathbb E_{c \sim \mu}[\frac{\pi(c)}{\mu(c)}
r \nabla \log \pi(c)]`, so each logged element is weighted by its importance ratio, per component (the policy
factorises over components; the product over six components would be far too variable) and clipped at
:math:`\bar\rho`:

.. math::
    \mathcal L_{RL} = -\frac1B \sum_i r_i \sum_{j \in J_i} \rho_{i,j} \log \pi_j(c_{i,j}), \qquad
    \rho_{i,j} = \min\Big(\frac{\pi_j(c_{i,j})}{\mu_j(c_{i,j})}, \bar\rho\Big) \text{ (no gradient)}.

Without the ratio a negative reward pushes :math:`\log \pi_j(c_{i,j})` down at a rate that does not fade as
:math:`\pi_j(c_{i,j}) \to 0`, and the element logits (which are also the instance CTR logits of
:math:`\mathcal L_{ele}`) diverge; with it the push fades with :math:`\pi_j(c_{i,j})`, as it does on-policy.
``propensities=None`` drops the ratio (:math:`\rho = 1`, the plain estimator).

and the total (eq. 23) :math:`\mathcal L = \mathcal L_{MIL} + \lambda\, \mathcal L_{RL}`.

Shapes: ``labels [B]``; ``combination_logits [B]``; ``element_logits`` and ``mask`` ``[B, m, N]``;
``logged [B, m]`` (-1 for absent components); ``propensities [B, m]`` the logging policy's :math:`\mu_j` of
each logged element.
"""

from __future__ import annotations

import tensorflow as tf

from trainer.genco import sampling


def _bce(labels, logits):
    return tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(labels, logits.dtype), logits)


def combination_loss(labels, combination_logits) -> tf.Tensor:
    """:math:`\\mathcal L_{comb}`: mean cross-entropy of the logged combinations' logits."""
    return tf.reduce_mean(_bce(tf.reshape(labels, [-1]), combination_logits))


def logged_element_logits(element_logits, logged) -> tf.Tensor:
    """[B, m] :math:`p_{i,j,c_{i,j}}`, the logit of each logged element (0 where the component is absent)."""
    picked = tf.gather(element_logits, tf.maximum(logged, 0), axis=2, batch_dims=2)
    return tf.where(logged >= 0, picked, tf.zeros_like(picked))


def element_loss(labels, element_logits, logged) -> tf.Tensor:
    """:math:`\\mathcal L_{ele}`: mean cross-entropy of every logged element's logit, with the impression's click."""
    shown = tf.cast(logged >= 0, element_logits.dtype)
    labels = tf.broadcast_to(tf.reshape(tf.cast(labels, element_logits.dtype), [-1, 1]), tf.shape(shown))
    losses = _bce(labels, logged_element_logits(element_logits, logged)) * shown
    return tf.reduce_sum(losses) / tf.maximum(tf.reduce_sum(shown), 1.0)


def rewards(labels, click_reward: float = 1.0, no_click_reward: float = -0.1) -> tf.Tensor:
    """[B] :math:`r_i`: ``click_reward`` for a click, ``no_click_reward`` otherwise."""
    clicked = tf.cast(tf.reshape(labels, [-1]), tf.float32) > 0.5
    return tf.where(clicked, tf.constant(click_reward, tf.float32), tf.constant(no_click_reward, tf.float32))


def importance_ratios(element_logits, mask, logged, propensities, max_ratio: float) -> tf.Tensor:
    """[B, m] :math:`\rho_{i,j} = \min(\pi_j(c_{i,j}) / \mu_j(c_{i,j}), \bar\rho)` (no gradient; 0 where absent)."""
    log_pi = tf.nn.log_softmax(sampling.masked_logits(element_logits, mask), axis=-1)
    picked = tf.exp(tf.gather(log_pi, tf.maximum(logged, 0), axis=2, batch_dims=2))
    mu = tf.maximum(tf.cast(propensities, picked.dtype), 1e-6)
    ratio = tf.minimum(picked / mu, max_ratio)
    return tf.stop_gradient(tf.where(logged >= 0, ratio, tf.zeros_like(ratio)))


def reinforce_loss(labels, element_logits, mask, logged, click_reward: float = 1.0,
                   no_click_reward: float = -0.1, propensities=None, max_ratio: float = 10.0) -> tf.Tensor:
    """:math:`\mathcal L_{RL} = -\frac1B \sum_i r_i \sum_j \rho_{i,j} \log \pi_j(c_{i,j})` on the logged combinations."""
    log_pi = tf.nn.log_softmax(sampling.masked_logits(element_logits, mask), axis=-1)
    picked = tf.gather(log_pi, tf.maximum(logged, 0), axis=2, batch_dims=2)  # [B, m]
    if propensities is None:
        weight = tf.cast(logged >= 0, picked.dtype)
    else:
        weight = importance_ratios(element_logits, mask, logged, propensities, max_ratio)
    per_row = tf.reduce_sum(tf.where(logged >= 0, weight * picked, tf.zeros_like(picked)), axis=-1)
    return -tf.reduce_mean(rewards(labels, click_reward, no_click_reward) * per_row)
