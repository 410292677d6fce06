r"""Off-policy estimators of a creative ranker's CTR from the logged propensities: IPW, SNIPW and DR.

The estimators of Open Bandit Pipeline (Saito et al., NeurIPS 2021 Datasets and Benchmarks;
``obp.ope.estimators``: ``InverseProbabilityWeighting``, ``SelfNormalizedInverseProbabilityWeighting``,
``DoublyRobust``) for the policy of a creative ranker: on impression :math:`i` (context :math:`x_i`, an ad's
candidate creatives) it picks one creative :math:`\hat c_i` (its top-1), deterministically, so
:math:`\pi(a \mid x_i) = [a = \hat c_i]`. The log gives the exposed creative :math:`c_i`, its click
:math:`y_i` and the logging policy's propensity :math:`\mu_i = \mu(c_i \mid x_i)`
(``features.PROPENSITY``), hence the importance weight

.. math::
    w_i = \frac{\pi(c_i \mid x_i)}{\mu(c_i \mid x_i)} = \frac{[\hat c_i = c_i]}{\mu_i}.

* :func:`ipw` -- :math:`\hat V_{IPW} = \frac1n \sum_i w_i y_i`: unbiased when the propensities are right;
* :func:`snipw` -- :math:`\hat V_{SNIPW} = \sum_i w_i y_i / \sum_i w_i`: consistent, lower variance (under a
  uniform logging policy, :math:`\mu_i = 1/n_i`, it equals calibrated sCTR);
* :func:`dr` -- :math:`\hat V_{DR} = \frac1n \sum_i \big[\hat q(x_i, \hat c_i) + w_i (y_i - \hat q(x_i, c_i))\big]`
  with a reward model :math:`\hat q`: unbiased if either the propensities or :math:`\hat q` are right.

No clipping (OBP's ``lambda_ = inf``). Impressions may carry example weights :math:`\omega_i` (every
:math:`\frac1n \sum_i` becomes :math:`\sum_i \omega_i \cdot / \sum_i \omega_i`).

The reward model of :func:`dr` is either given per impression (``reward_selected`` :math:`= \hat q(x_i, \hat c_i)`
and ``reward_exposed`` :math:`= \hat q(x_i, c_i)`, e.g. a model's pCTR of both creatives) or, by default, the
*empirical* one, fitted on the evaluated impressions in the same pass: each (ad, creative)'s logged CTR
shrunk towards its ad's, itself shrunk towards the overall CTR :math:`\bar y`,

.. math::
    \hat q_a = \frac{C_a + s_a \bar y}{I_a + s_a}, \qquad \hat q_{ac} = \frac{C_{ac} + s_c \hat q_a}{I_{ac} + s_c},

(:math:`I, C`: impressions and clicks; :math:`s_a, s_c`: ``ad_prior_strength``, ``creative_prior_strength``).
It depends on the creative only, so DR's sums reduce to per-(ad, creative) counters: the memory of
:class:`OffPolicyAccumulator`, which also backs the TFMA metrics, grows with creatives, not impressions.

Every function validates its input (:mod:`creative_metrics.validation`) in chunks and returns NaN when no
impression matches (IPW is then 0 by its formula, and reported as such).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from creative_metrics import validation as V
from creative_metrics.keyed_counters import KeyedCounters

__all__ = ["OffPolicyEstimate", "OffPolicyAccumulator", "ipw", "snipw", "dr", "ipw_estimate",
           "snipw_estimate", "dr_estimate", "DEFAULT_AD_PRIOR_STRENGTH", "DEFAULT_CREATIVE_PRIOR_STRENGTH"]

# Pseudo-impressions of the empirical reward model's priors (an ad's CTR; a creative's, towards its ad's).
DEFAULT_AD_PRIOR_STRENGTH = 100.0
DEFAULT_CREATIVE_PRIOR_STRENGTH = 20.0


@dataclasses.dataclass(frozen=True)
class OffPolicyEstimate:
    """An off-policy estimate of a creative policy's CTR and its importance-weight diagnostics.

    Attributes:
      value: the estimate (NaN for SNIPW and DR when nothing matched).
      impressions: total (weighted) impressions :math:`\\sum \\omega_i`.
      matched_impressions: impressions whose selected creative is the exposed one.
      mean_weight: :math:`\\sum \\omega_i w_i / \\sum \\omega_i`; its expectation is 1 for any policy when
        the propensities are right, so a value far from 1 flags wrong propensities (or a small sample).
      effective_sample_size: :math:`(\\sum \\omega_i w_i)^2 / \\sum \\omega_i w_i^2`, the impressions the
        weighted estimate is worth (0 when nothing matched).
      direct: DR's reward-model term alone, :math:`\\sum \\omega_i \\hat q(x_i, \\hat c_i) / \\sum \\omega_i`
        (the direct method); NaN for IPW and SNIPW.
    """

    value: float
    impressions: float
    matched_impressions: float
    mean_weight: float
    effective_sample_size: float
    direct: float = math.nan


# Per-(ad, creative) columns: exposed impressions and clicks, selected impressions, matched impressions and
# the weight sums (w is non-zero only where the selected creative is the exposed one: at the exposed key).
_IMP, _CLK, _SEL, _MATCH, _W, _WY, _W2 = range(7)


class OffPolicyAccumulator:
    """Per-(ad, creative) counters behind IPW, SNIPW and DR; mergeable across chunks and Beam workers.

    With per-impression reward estimates (``reward_selected`` / ``reward_exposed``) it also keeps their two
    weighted sums for DR; they must be given on every update or on none.
    """

    def __init__(self):
        self._counters = KeyedCounters(7, key_width=2)
        self._reward_sums = np.zeros(2)  # sum omega q_sel, sum omega w q_exp (given rewards only)
        self._has_rewards: Optional[bool] = None
        self._rows = 0

    def update(self, ad_ids, exposed_creatives, clicks, selected_creatives, propensities, weights=None,
               reward_selected=None, reward_exposed=None, *, offset: int = 0) -> "OffPolicyAccumulator":
        """Adds one chunk of impressions (equal-length 1-D arrays, validated here; ``offset``: the log row of
        the chunk's first impression, so errors count from the start of the log)."""
        if (reward_selected is None) != (reward_exposed is None):
            raise ValueError("reward_selected and reward_exposed go together: give both or neither")
        has_rewards = reward_selected is not None
        if self._has_rewards is not None and has_rewards != self._has_rewards:
            raise ValueError("reward_selected / reward_exposed must be given on every update or on none")
        cols, n = V.columns(ad_ids=ad_ids, exposed_creatives=exposed_creatives, clicks=clicks,
                            selected_creatives=selected_creatives, propensities=propensities, weights=weights,
                            reward_selected=reward_selected, reward_exposed=reward_exposed)
        ads = V.ids("ad_ids", cols["ad_ids"], offset)
        exposed = V.ids("exposed_creatives", cols["exposed_creatives"], offset)
        selected = V.ids("selected_creatives", cols["selected_creatives"], offset)
        y = V.binary("clicks", cols["clicks"], offset)
        mu = V.propensities("propensities", cols["propensities"], offset)
        omega = V.weights("weights", cols.get("weights"), n, offset)
        match = exposed == selected
        w = match / mu
        rows = np.zeros((2 * n, 7))  # n rows at the exposed keys, then n at the selected keys
        rows[:n, _IMP] = omega
        rows[:n, _CLK] = omega * y
        rows[:n, _MATCH] = omega * match
        rows[:n, _W] = omega * w
        rows[:n, _WY] = omega * w * y
        rows[:n, _W2] = omega * w * w
        rows[n:, _SEL] = omega
        self._counters.add(np.concatenate([np.stack([ads, exposed], 1), np.stack([ads, selected], 1)]), rows)
        if has_rewards:
            q_sel = V.probabilities("reward_selected", cols["reward_selected"], offset)
            q_exp = V.probabilities("reward_exposed", cols["reward_exposed"], offset)
            self._reward_sums += (np.dot(omega, q_sel), np.dot(omega * w, q_exp))
        self._has_rewards = has_rewards
        self._rows += n
        return self

    def merge(self, other: "OffPolicyAccumulator") -> "OffPolicyAccumulator":
        if None not in (self._has_rewards, other._has_rewards) and self._has_rewards != other._has_rewards:
            raise ValueError("cannot merge accumulators with and without reward estimates")
        self._counters.merge(other._counters)
        self._reward_sums += other._reward_sums
        if self._has_rewards is None:
            self._has_rewards = other._has_rewards
        self._rows += other._rows
        return self

    @property
    def empty(self) -> bool:
        return self._rows == 0

    def _table(self):
        if self._rows == 0:
            raise ValueError("no impressions were added")
        return self._counters.table()

    @staticmethod
    def _estimate(t: np.ndarray, numerator: float, denominator: float, direct: float = math.nan):
        total, weight = t[:, _IMP].sum(), t[:, _W].sum()
        return OffPolicyEstimate(
            value=float(numerator / denominator) if denominator > 0 else math.nan,
            impressions=float(total),
            matched_impressions=float(t[:, _MATCH].sum()),
            mean_weight=float(weight / total) if total > 0 else math.nan,
            effective_sample_size=float(weight ** 2 / t[:, _W2].sum()) if weight > 0 else 0.0,
            direct=direct)

    def ipw(self) -> OffPolicyEstimate:
        """IPW (see :func:`ipw`)."""
        t = self._table()[1]
        return self._estimate(t, t[:, _WY].sum(), t[:, _IMP].sum())

    def snipw(self) -> OffPolicyEstimate:
        """SNIPW (see :func:`snipw`)."""
        t = self._table()[1]
        return self._estimate(t, t[:, _WY].sum(), t[:, _W].sum())

    def dr(self, ad_prior_strength: float = DEFAULT_AD_PRIOR_STRENGTH,
           creative_prior_strength: float = DEFAULT_CREATIVE_PRIOR_STRENGTH) -> OffPolicyEstimate:
        """DR (see :func:`dr`): with the given reward estimates if the updates had them, else the empirical
        reward model with these prior strengths."""
        keys, t = self._table()
        total = t[:, _IMP].sum()
        if self._has_rewards:
            q_selected, q_exposed = self._reward_sums
        else:
            q = empirical_rewards(keys[:, 0], t[:, _IMP], t[:, _CLK], ad_prior_strength, creative_prior_strength)
            q_selected, q_exposed = np.dot(t[:, _SEL], q), np.dot(t[:, _W], q)
        numerator = q_selected + t[:, _WY].sum() - q_exposed
        return self._estimate(t, numerator, total, direct=float(q_selected / total) if total > 0 else math.nan)


def empirical_rewards(ads: np.ndarray, impressions: np.ndarray, clicks: np.ndarray,
                      ad_prior_strength: float = DEFAULT_AD_PRIOR_STRENGTH,
                      creative_prior_strength: float = DEFAULT_CREATIVE_PRIOR_STRENGTH) -> np.ndarray:
    r"""The empirical reward model :math:`\hat q_{ac}` of each (ad, creative) row (see the module docstring).

    Args:
      ads: int ``[K]``, the ad of each (ad, creative) row.
      impressions, clicks: ``[K]`` (weighted) logged impressions and clicks of each row's creative.
      ad_prior_strength, creative_prior_strength: :math:`s_a`, :math:`s_c` (pseudo-impressions, > 0).
    """
    if not (ad_prior_strength > 0 and creative_prior_strength > 0):
        raise ValueError(f"ad_prior_strength and creative_prior_strength must be > 0, got "
                         f"{ad_prior_strength!r} and {creative_prior_strength!r}")
    total = impressions.sum()
    mean = clicks.sum() / total if total > 0 else 0.0
    _, ad_of_row = np.unique(ads, return_inverse=True)
    ad_imps = np.bincount(ad_of_row, weights=impressions)
    ad_clicks = np.bincount(ad_of_row, weights=clicks)
    q_ad = (ad_clicks + ad_prior_strength * mean) / (ad_imps + ad_prior_strength)
    return (clicks + creative_prior_strength * q_ad[ad_of_row]) / (impressions + creative_prior_strength)


def _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities, reward_selected=None,
                reward_exposed=None, chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> OffPolicyAccumulator:
    cols, n = V.columns(ad_ids=ad_ids, exposed_creatives=exposed_creatives, clicks=clicks,
                        selected_creatives=selected_creatives, propensities=propensities,
                        reward_selected=reward_selected, reward_exposed=reward_exposed)
    acc = OffPolicyAccumulator()
    for offset, chunk in V.chunks(cols, n, chunk_size):
        acc.update(**chunk, offset=offset)
    return acc


def ipw_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities, *,
                 chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> OffPolicyEstimate:
    """:func:`ipw` with its counts and weight diagnostics."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities,
                       chunk_size=chunk_size).ipw()


def snipw_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities, *,
                   chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> OffPolicyEstimate:
    """:func:`snipw` with its counts and weight diagnostics."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities,
                       chunk_size=chunk_size).snipw()


def dr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities, reward_selected=None,
                reward_exposed=None, *, ad_prior_strength: float = DEFAULT_AD_PRIOR_STRENGTH,
                creative_prior_strength: float = DEFAULT_CREATIVE_PRIOR_STRENGTH,
                chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> OffPolicyEstimate:
    """:func:`dr` with its counts, weight diagnostics and direct-method term."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities, reward_selected,
                       reward_exposed, chunk_size=chunk_size).dr(ad_prior_strength, creative_prior_strength)


def ipw(ad_ids, exposed_creatives, clicks, selected_creatives, propensities) -> float:
    r"""Inverse probability weighting (OBP's ``InverseProbabilityWeighting``) of a top-1 creative policy.

    .. math::
        \hat V_{IPW} = \frac{1}{n} \sum_i \frac{[\hat c_i = c_i]}{\mu_i}\, y_i

    Unbiased for the policy's CTR when the logged propensities :math:`\mu_i` are the logging policy's.

    Args:
      ad_ids: int ``[n]``, the ad of each impression.
      exposed_creatives: int ``[n]``, the creative shown online (:math:`c_i`).
      clicks: ``[n]`` in {0, 1}.
      selected_creatives: int ``[n]``, the policy's top-1 creative (:math:`\hat c_i`).
      propensities: ``[n]`` in (0, 1], the logging policy's probability of the exposed creative.

    Returns:
      IPW as a float (0 when nothing matches).

    Raises:
      ValueError: lengths differ, empty input, clicks outside {0, 1}, NaN or non-integer ids, propensities
        outside (0, 1]; the message names the field and the first offending row.
    """
    return ipw_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities).value


def snipw(ad_ids, exposed_creatives, clicks, selected_creatives, propensities) -> float:
    r"""Self-normalised IPW (OBP's ``SelfNormalizedInverseProbabilityWeighting``) of a top-1 creative policy.

    .. math::
        \hat V_{SNIPW} = \frac{\sum_i w_i y_i}{\sum_i w_i}, \qquad w_i = \frac{[\hat c_i = c_i]}{\mu_i}

    Consistent, not unbiased, and of lower variance than :func:`ipw`. With a uniform logging policy
    (:math:`\mu_i = 1/n_i`) it is calibrated sCTR (:func:`creative_metrics.replay.calibrated_sctr`).

    Args / Raises: as :func:`ipw`.

    Returns:
      SNIPW as a float; NaN when nothing matches.
    """
    return snipw_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities).value


def dr(ad_ids, exposed_creatives, clicks, selected_creatives, propensities, reward_selected=None,
       reward_exposed=None, *, ad_prior_strength: float = DEFAULT_AD_PRIOR_STRENGTH,
       creative_prior_strength: float = DEFAULT_CREATIVE_PRIOR_STRENGTH) -> float:
    r"""Doubly robust (OBP's ``DoublyRobust``) estimate of a top-1 creative policy's CTR.

    .. math::
        \hat V_{DR} = \frac{1}{n} \sum_i \Big[\hat q(x_i, \hat c_i)
            + \frac{[\hat c_i = c_i]}{\mu_i} \big(y_i - \hat q(x_i, c_i)\big)\Big]

    Args:
      ad_ids, exposed_creatives, clicks, selected_creatives, propensities: as :func:`ipw`.
      reward_selected, reward_exposed: optional ``[n]`` probabilities, the reward model's
        :math:`\hat q(x_i, \hat c_i)` and :math:`\hat q(x_i, c_i)`; without them the empirical reward model
        of the module docstring, fitted on these impressions.
      ad_prior_strength, creative_prior_strength: the empirical model's :math:`s_a`, :math:`s_c`.

    Returns:
      DR as a float.

    Raises:
      ValueError: as :func:`ipw`; reward estimates outside [0, 1], or only one of the two given.
    """
    return dr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, propensities, reward_selected,
                       reward_exposed, ad_prior_strength=ad_prior_strength,
                       creative_prior_strength=creative_prior_strength).value
