"""Options of the click simulator: sizes, traffic shape, logging policy and click-model scales."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional

UNIFORM = "uniform"
EPSILON_GREEDY = "epsilon_greedy"
LOGGING_POLICIES = (UNIFORM, EPSILON_GREEDY)


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    r"""Everything that determines the simulated log. Same config (seed included) -> identical bytes.

    Sizes left as ``None`` scale with ``num_impressions`` (see :meth:`resolved`) so that any run keeps the
    sparsity of a real creative log: a creative is shown only a handful of times (~6 in the production log of
    Yang et al., AAAI 2024).

    Attributes:
      num_impressions: total impressions over all days (training days + the evaluation day).
      num_days: days of traffic; the last one is the evaluation split, the others the training split.
      num_users: users in the world (default ``num_impressions // 10``, at least 200).
      num_ads: ads in the world (default ``num_impressions // 40``, at least 50).
      num_advertisers: advertisers owning the ads (default ``num_ads // 5``, at least 1).
      min_creatives: fewest creative tracks an ad has (>= 1: every ad can always be shown). A *track* is
        one of an ad's creative positions: it holds one creative at a time (see ``simulator.world``).
      mean_creatives: mean number of creative tracks per ad (geometric above ``min_creatives``).
      max_creatives: most creative tracks an ad has.
      creative_churn: daily probability that a track's creative is retired and replaced by a new one.
      late_track_rate: probability that a track (other than an ad's first ``min_creatives``) opens only on
        a later day.
      early_retire_rate: probability that a track (other than an ad's first ``min_creatives``) closes
        before the last day.
      ads_per_request: M, candidate ads per request (drawn by Zipf-like popularity).
      slots: L, ads shown per request (top L of the logging ad ranker): the page slots of
        ``features.SLOT``.
      popularity_exponent: Zipf exponent ``s`` of the ad popularity ``(rank + popularity_offset)^-s``.
      popularity_offset: flattens the head of the popularity curve.
      ranker_noise: std of the logging ad ranker's noise on the true ad logit.
      logging_policy: ``"uniform"`` (propensity ``1/N``) or ``"epsilon_greedy"``.
      epsilon: exploration rate of ``"epsilon_greedy"``.
      estimate_noise: std of the production creative-quality estimate the greedy choice uses.
      target_ctr: the logged CTR the global bias is calibrated to.
      calibration_impressions: impressions simulated to calibrate the global bias.
      hist_ctr_prior_strength: pseudo-impressions of the prior in the smoothed historical ad CTR.
      max_seq_len: longest behaviour sequence kept per user (newest last).
      user_propensity_std, ad_quality_std, interest_scale, creative_quality_std, personal_scale,
      category_style_scale, position_decay: scales of the click-model terms (see ``simulator.world``).
      relevance_style_scale: :math:`\gamma`, the ad relevance x creative style effect: how much a user's
        affinity to the ad changes which creative style wins (product-only shots for high-affinity users,
        lifestyle and promotion creatives for low-affinity ones). 0: the best creative of an ad does not
        depend on the user's affinity to it.
      creative_count_quality: :math:`\kappa`, ad quality gained per standard deviation of the log number of
        creative tracks (large advertisers make more creatives and better ads: the condition under which
        sCTR is biased and NSCTR is not). 0: an ad's CTR does not depend on its number of creatives.
      bid_mean: mean cost-per-click bid of an ad (currency units; revenue per click).
      bid_std: :math:`\sigma_b`, spread of the log-normal CPC bids (partly tied to the price bucket). The
        logging ad ranker and the router rank by eCPM = pCTR x bid. 0: every ad bids ``bid_mean``, so eCPM
        ranks as pCTR does and RPM is proportional to CTR.
      live_days: days of the world beyond the logged ``num_days`` (creative tracks keep opening, closing and
        churning): the days an online experiment (``experiments``) serves after the training log.
      train_shards: files of the training split.
      eval_shards: files of the evaluation split.
      chunk_size: impressions generated and encoded at a time (bounds memory; part of the RNG stream).
      seed: the random seed.
      write_world: also save the entity tables as ``world.npz``.
    """

    num_impressions: int = 200_000
    num_days: int = 8
    num_users: Optional[int] = None
    num_ads: Optional[int] = None
    num_advertisers: Optional[int] = None
    min_creatives: int = 1
    mean_creatives: float = 7.5
    max_creatives: int = 24
    creative_churn: float = 0.1
    late_track_rate: float = 0.1
    early_retire_rate: float = 0.1
    ads_per_request: int = 10
    slots: int = 3
    popularity_exponent: float = 0.9
    popularity_offset: float = 10.0
    ranker_noise: float = 0.5
    logging_policy: str = UNIFORM
    epsilon: float = 0.1
    estimate_noise: float = 0.3
    target_ctr: float = 0.024
    calibration_impressions: int = 100_000
    hist_ctr_prior_strength: float = 100.0
    max_seq_len: int = 30
    user_propensity_std: float = 0.3
    ad_quality_std: float = 0.4
    interest_scale: float = 0.4
    creative_quality_std: float = 0.2
    personal_scale: float = 0.2
    category_style_scale: float = 0.15
    position_decay: float = 0.3
    relevance_style_scale: float = 0.15
    creative_count_quality: float = 0.2
    bid_mean: float = 1.0
    bid_std: float = 0.5
    live_days: int = 0
    train_shards: int = 4
    eval_shards: int = 1
    chunk_size: int = 32_768
    seed: int = 0
    write_world: bool = True

    # ------------------------------------------------------------------------------------------ sizes
    def resolved(self) -> "SimulatorConfig":
        """A copy with every ``None`` size filled in from ``num_impressions``."""
        users = self.num_users if self.num_users is not None else max(200, self.num_impressions // 10)
        ads = self.num_ads if self.num_ads is not None else max(50, self.num_impressions // 40)
        advertisers = self.num_advertisers if self.num_advertisers is not None else max(1, ads // 5)
        return dataclasses.replace(self, num_users=users, num_ads=ads, num_advertisers=advertisers)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------------------------- validation
    def validate(self) -> "SimulatorConfig":
        """Raises ``ValueError`` naming the first bad option; returns ``self`` for chaining."""

        def fail(option: str, problem: str):
            raise ValueError(f"SimulatorConfig.{option}: {problem}")

        def positive_int(option: str, minimum: int = 1):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                fail(option, f"must be an integer >= {minimum}, got {value!r}")

        def finite(option: str, low: float, high: float, low_open: bool, high_open: bool):
            value = getattr(self, option)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if ok:
                ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
            if not ok:
                interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
                fail(option, f"must be in {interval}, got {value!r}")

        positive_int("num_impressions")
        positive_int("num_days", 2)
        if self.num_impressions < self.num_days:
            fail("num_impressions", f"must be >= num_days ({self.num_days}) so every day has traffic, "
                                    f"got {self.num_impressions}")
        for option in ("num_users", "num_ads", "num_advertisers"):
            if getattr(self, option) is not None:
                positive_int(option)
        positive_int("min_creatives")
        positive_int("max_creatives")
        if self.max_creatives < self.min_creatives:
            fail("max_creatives", f"must be >= min_creatives ({self.min_creatives}), got {self.max_creatives}")
        finite("mean_creatives", self.min_creatives, self.max_creatives, False, False)
        for option in ("creative_churn", "late_track_rate", "early_retire_rate"):
            finite(option, 0.0, 1.0, False, True)
        positive_int("ads_per_request")
        positive_int("slots")
        if self.slots > self.ads_per_request:
            fail("slots", f"must be <= ads_per_request ({self.ads_per_request}), got {self.slots}")
        resolved = self.resolved()
        if resolved.ads_per_request > resolved.num_ads:
            fail("ads_per_request", f"must be <= num_ads ({resolved.num_ads}), got {self.ads_per_request}")
        if resolved.num_advertisers > resolved.num_ads:
            fail("num_advertisers", f"must be <= num_ads ({resolved.num_ads}), got {resolved.num_advertisers}")
        finite("popularity_exponent", 0.0, math.inf, False, True)
        finite("popularity_offset", 0.0, math.inf, False, True)
        if self.logging_policy not in LOGGING_POLICIES:
            fail("logging_policy", f"must be one of {', '.join(LOGGING_POLICIES)}, got {self.logging_policy!r}")
        finite("epsilon", 0.0, 1.0, False, False)
        finite("target_ctr", 0.0, 1.0, True, True)
        positive_int("calibration_impressions", 1000)
        finite("hist_ctr_prior_strength", 0.0, math.inf, True, True)
        positive_int("max_seq_len")
        for option in ("estimate_noise", "ranker_noise", "user_propensity_std", "ad_quality_std",
                       "interest_scale", "creative_quality_std", "personal_scale", "category_style_scale",
                       "position_decay", "relevance_style_scale", "creative_count_quality", "bid_std"):
            finite(option, 0.0, math.inf, False, True)
        finite("bid_mean", 0.0, math.inf, True, True)
        positive_int("live_days", 0)
        positive_int("train_shards")
        positive_int("eval_shards")
        positive_int("chunk_size", self.slots)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            fail("seed", f"must be an integer >= 0, got {self.seed!r}")
        return self
