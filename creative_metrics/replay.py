r"""Replay estimators of a creative ranker's CTR on logged impressions: NSCTR, sCTR, calibrated sCTR.

A creative ranker picks one creative per impression (its top-1 among the ad's candidates). Offline we
only see the click of the creative that was *exposed* online, so the estimators below keep the
impressions where the ranker's choice matches the exposed creative and estimate the CTR the ranker
would have had:

* :func:`sctr` -- simulated CTR (Wang et al., WWW 2021): clicks / impressions over the matched impressions.
* :func:`nsctr` -- normalized sCTR (Yang et al., AAAI 2024, Algorithm 1): the matched CTR of every ad,
  re-weighted by the ad's share of *all* impressions, so ads with many candidates (and hence few matches)
  keep their weight.
* :func:`calibrated_sctr` -- calibrated sCTR (Gu et al., 2025, Algorithm 1): every match counts ``n``
  times, ``n`` being the number of candidates, which undoes the ``1/n`` match rate of a uniform logging
  policy.

Each named function takes equal-length 1-D arrays (one entry per impression) and returns a float.
The ``*_estimate`` companions return the value with its coverage and counts. Inputs are processed in
chunks through :class:`CreativeMatchAccumulator`, whose memory grows with the number of ads, not of
impressions; the same accumulator backs the TFMA metrics in :mod:`creative_metrics.tfma_metrics`.

Ads with no match (:math:`Imp^s_m = 0`) carry no information about the ranker's choice for them; they
are left out of both the numerator and the denominator of NSCTR, so NSCTR is the estimate over the
*covered* ads and :attr:`PolicyEstimate.coverage` says which share of impressions that is. When nothing
matches at all every estimator returns NaN (coverage 0).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from creative_metrics import validation as V
from creative_metrics.keyed_counters import KeyedCounters

__all__ = [
    "PolicyEstimate",
    "CreativeMatchAccumulator",
    "nsctr",
    "sctr",
    "calibrated_sctr",
    "nsctr_estimate",
    "sctr_estimate",
    "calibrated_sctr_estimate",
]


@dataclasses.dataclass(frozen=True)
class PolicyEstimate:
    """An estimated CTR of a creative policy and the data behind it.

    Attributes:
      value: the estimate; NaN when no impression matched.
      coverage: share of the (weighted) impressions whose ad had at least one match -- the part of
        the traffic the estimate speaks for.
      impressions: total (weighted) impressions.
      matched_impressions: impressions where the policy's creative equals the exposed one.
      ads: distinct ads.
      covered_ads: ads with at least one match.
      denominator: the estimate's denominator -- covered impressions (NSCTR), matched impressions
        (sCTR) or candidate-weighted matched impressions (calibrated sCTR); ``value * denominator`` is
        its numerator, so estimates over disjoint sets of ads can be pooled.
      logged_ctr: the logged CTR (all clicks / all impressions) of the covered ads -- what the
        logging policy achieved on the same traffic, for the lift ``value / logged_ctr - 1``.
    """

    value: float
    coverage: float
    impressions: float
    matched_impressions: float
    ads: int
    covered_ads: int
    denominator: float
    logged_ctr: float


# Columns of the per-ad table.
_IMP, _CLK, _IMP_S, _CLK_S, _EXP_N, _CLK_N = range(6)


class CreativeMatchAccumulator:
    r"""Per-ad counters behind sCTR, NSCTR and calibrated sCTR; memory grows with ads, not impressions.

    For every ad :math:`m` it keeps the (weighted) impressions :math:`Imp_m` and clicks, the matched
    impressions :math:`Imp^s_m` (policy's creative = exposed creative), the matched clicks
    :math:`Clk^s_m`, and for calibrated sCTR the candidate-count-weighted matches :math:`\sum n_i` and
    clicks :math:`\sum n_i y_i`. Accumulators built on disjoint parts of the log can be merged.
    """

    def __init__(self):
        self._counters = KeyedCounters(6)
        self._all_have_num_candidates = True
        self._rows = 0

    def update(self, ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates=None,
               weights=None, *, offset: int = 0) -> "CreativeMatchAccumulator":
        """Adds one chunk of impressions (equal-length 1-D arrays; validated here).

        ``offset`` is the log row of the chunk's first impression: error messages count from there.
        """
        cols, n = V.columns(ad_ids=ad_ids, exposed_creatives=exposed_creatives, clicks=clicks,
                            selected_creatives=selected_creatives, num_candidates=num_candidates,
                            weights=weights)
        ads = V.ids("ad_ids", cols["ad_ids"], offset)
        match = (V.ids("exposed_creatives", cols["exposed_creatives"], offset)
                 == V.ids("selected_creatives", cols["selected_creatives"], offset))
        y = V.binary("clicks", cols["clicks"], offset)
        w = V.weights("weights", cols.get("weights"), n, offset)
        values = np.zeros((n, 6))
        values[:, _IMP] = w
        values[:, _CLK] = w * y
        values[:, _IMP_S] = w * match
        values[:, _CLK_S] = values[:, _IMP_S] * y
        if num_candidates is None:
            self._all_have_num_candidates = False
        else:
            cands = V.positive_counts("num_candidates", cols["num_candidates"], offset)
            values[:, _EXP_N] = values[:, _IMP_S] * cands
            values[:, _CLK_N] = values[:, _EXP_N] * y
        self._counters.add(ads, values)
        self._rows += n
        return self

    def merge(self, other: "CreativeMatchAccumulator") -> "CreativeMatchAccumulator":
        self._counters.merge(other._counters)
        self._all_have_num_candidates &= other._all_have_num_candidates
        self._rows += other._rows
        return self

    @property
    def num_ads(self) -> int:
        return len(self._counters)

    @property
    def empty(self) -> bool:
        return self.num_ads == 0

    def _table(self) -> np.ndarray:
        if self._rows == 0:
            raise ValueError("no impressions were added")
        return self._counters.table()[1]

    @staticmethod
    def _result(value_num: float, value_den: float, t: np.ndarray) -> PolicyEstimate:
        covered = t[:, _IMP_S] > 0
        total = float(t[:, _IMP].sum())
        covered_imps = float(t[covered, _IMP].sum())
        return PolicyEstimate(
            value=float(value_num / value_den) if value_den > 0 else math.nan,
            coverage=covered_imps / total if total > 0 else math.nan,
            impressions=total,
            matched_impressions=float(t[:, _IMP_S].sum()),
            ads=int(len(t)),
            covered_ads=int(covered.sum()),
            denominator=float(value_den),
            logged_ctr=float(t[covered, _CLK].sum() / covered_imps) if covered_imps > 0 else math.nan,
        )

    def nsctr(self) -> PolicyEstimate:
        """NSCTR over the covered ads (see :func:`nsctr`)."""
        t = self._table()
        covered = t[:, _IMP_S] > 0
        clicks = np.sum(t[covered, _CLK_S] * t[covered, _IMP] / t[covered, _IMP_S])
        return self._result(clicks, t[covered, _IMP].sum(), t)

    def sctr(self) -> PolicyEstimate:
        """sCTR (see :func:`sctr`)."""
        t = self._table()
        return self._result(t[:, _CLK_S].sum(), t[:, _IMP_S].sum(), t)

    def calibrated_sctr(self) -> PolicyEstimate:
        """Calibrated sCTR (see :func:`calibrated_sctr`); needs ``num_candidates`` on every update."""
        if not self._all_have_num_candidates:
            raise ValueError("calibrated sCTR needs num_candidates for every impression")
        t = self._table()
        return self._result(t[:, _CLK_N].sum(), t[:, _EXP_N].sum(), t)


def _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates=None,
                chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> CreativeMatchAccumulator:
    cols, n = V.columns(ad_ids=ad_ids, exposed_creatives=exposed_creatives, clicks=clicks,
                        selected_creatives=selected_creatives, num_candidates=num_candidates)
    acc = CreativeMatchAccumulator()
    for offset, chunk in V.chunks(cols, n, chunk_size):
        acc.update(**chunk, offset=offset)
    return acc


def nsctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, *,
                   chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> PolicyEstimate:
    """:func:`nsctr` with its coverage and counts."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives,
                       chunk_size=chunk_size).nsctr()


def sctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, *,
                  chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> PolicyEstimate:
    """:func:`sctr` with its coverage and counts."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives,
                       chunk_size=chunk_size).sctr()


def calibrated_sctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates, *,
                             chunk_size: int = V.DEFAULT_CHUNK_SIZE) -> PolicyEstimate:
    """:func:`calibrated_sctr` with its coverage and counts."""
    return _accumulate(ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates,
                       chunk_size=chunk_size).calibrated_sctr()


def nsctr(ad_ids, exposed_creatives, clicks, selected_creatives) -> float:
    r"""Normalized simulated CTR (NSCTR) of a creative policy.

    Yang et al., AAAI 2024 (JAC), Algorithm 1, "Quality of the Implicit Sub-Ranking". For every ad
    :math:`m` count its impressions :math:`Imp_m`, the impressions where the policy's top-1 creative
    equals the exposed one :math:`Imp^s_m`, and their clicks :math:`Clk^s_m`. Each covered ad's matched
    CTR is scaled back to all of the ad's impressions:

    .. math::

        \mathrm{NSCTR} = \frac{\sum_{m: Imp^s_m > 0} Clk^s_m \, Imp_m / Imp^s_m}
                              {\sum_{m: Imp^s_m > 0} Imp_m}

    Ads without any match are left out of numerator and denominator (the paper's formula divides by
    :math:`Imp^s_m = 0`); :func:`nsctr_estimate` reports the share of impressions covered. Unlike
    :func:`sctr`, the ad mix of the estimate is the ad mix of the log: with two ads of CTR 0.2 (2
    creatives) and 0.3 (3 creatives), equal traffic and uniformly random policies, sCTR tends to 0.24
    while NSCTR tends to the true 0.25.

    Args:
      ad_ids: int ``[n]``, the ad of each impression.
      exposed_creatives: int ``[n]``, the creative shown online.
      clicks: ``[n]`` in {0, 1}.
      selected_creatives: int ``[n]``, the policy's top-1 creative for the impression.

    Returns:
      NSCTR as a float; NaN if no impression matches.

    Raises:
      ValueError: lengths differ, input is empty, clicks outside {0, 1}, NaN or non-integer ids.
    """
    return nsctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives).value


def sctr(ad_ids, exposed_creatives, clicks, selected_creatives) -> float:
    r"""Simulated CTR (sCTR, Wang et al., WWW 2021): the CTR of the impressions the policy agrees with.

    .. math::

        \mathrm{sCTR} = \frac{\sum_i y_i \, [\hat c_i = c_i]}{\sum_i [\hat c_i = c_i]}

    with :math:`c_i` the exposed and :math:`\hat c_i` the selected creative. Biased toward ads with few
    candidates (they match more often); see :func:`nsctr`. ``ad_ids`` only feed the coverage reported by
    :func:`sctr_estimate`.

    Returns:
      sCTR as a float; NaN if no impression matches.

    Raises:
      ValueError: as :func:`nsctr`.
    """
    return sctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives).value


def calibrated_sctr(ad_ids, exposed_creatives, clicks, selected_creatives, num_candidates) -> float:
    r"""Calibrated sCTR (Gu et al., 2025, Algorithm 1): each match counts once per candidate of the ad.

    .. math::

        \mathrm{sCTR}_{cal} = \frac{\sum_i n_i \, y_i \, [\hat c_i = c_i]}{\sum_i n_i \, [\hat c_i = c_i]}

    Under a uniform logging policy a match happens with probability :math:`1/n_i`, so the weight
    :math:`n_i` restores each ad's share of traffic in expectation (unbiased only for a uniform logging
    policy; NSCTR uses the realised counts instead).

    Args:
      ad_ids, exposed_creatives, clicks, selected_creatives: as :func:`nsctr`.
      num_candidates: int ``[n]`` >= 1, the ad's number of candidate creatives.

    Returns:
      Calibrated sCTR as a float; NaN if no impression matches.

    Raises:
      ValueError: as :func:`nsctr`, or ``num_candidates`` < 1.
    """
    return calibrated_sctr_estimate(ad_ids, exposed_creatives, clicks, selected_creatives,
                                    num_candidates).value
