"""Options of the multi-component world (:class:`CombinationConfig`): sizes, pools, churn, logging, truth scales."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

import features as F

# Gu et al., 2025 (GenCO), Table 1: average candidates per ad and share of ads with the component, in the order
# of features.GENCO_COMPONENTS (title, image, marketing, highlight, attribute, structure_attribute).
PAPER_MEAN_CANDIDATES = (6.3, 3.4, 2.2, 7.0, 2.3, 8.1)
PAPER_COVERAGE = (1.0, 1.0, 0.39, 0.956, 0.583, 0.678)


@dataclasses.dataclass(frozen=True)
class CombinationConfig:
    """Everything that determines a simulated GenCO log. Same config (seed included) -> identical bytes.

    Attributes:
      num_impressions: impressions over all days (one ad shown to one user each).
      num_days: days of traffic.
      test_days: the last days, logged by the uniform random policy: the evaluation split (Gu et al., 2025,
        collect two such days); the earlier days, logged by the production policy, are the training split.
      num_users: users (default ``num_impressions // 20``, at least 200).
      num_ads: ads (default ``num_impressions // 60``, at least 50).
      mean_candidates: per component, mean pool size of the ads that have it (pools are capped at
        ``features.GENCO_MAX_CANDIDATES``; the geometric draw is solved so the *capped* mean is this).
      coverage: per component, the share of ads that have it.
      element_churn: daily probability that an element of a pool is retired and replaced by a new one.
      popularity_exponent, popularity_offset: Zipf-like ad popularity ``(rank + offset)^-exponent``.
      production_temperature: the production policy samples each component's element from
        ``softmax(estimate / temperature)`` over the pool (with the default noise it is a few percent better
        than uniform: a production system that still explores, so the log is not one favourite per ad).
      estimate_noise: std of the production system's noisy estimate of an element's quality.
      target_ctr: the logged CTR of the training days the global bias is calibrated to (6.84 %: the training
        data of Gu et al., 2025).
      calibration_impressions: impressions simulated to calibrate the bias.
      user_propensity_std, ad_quality_std, element_quality_std, personal_scale, category_scale, pair_scale:
        scales of the click model's terms (see :mod:`simulator.combinations.world`).
      train_shards, eval_shards: files per split.
      chunk_size: impressions generated and encoded at a time (part of the random stream).
      seed: the random seed.
    """

    num_impressions: int = 200_000
    num_days: int = 8
    test_days: int = 2
    num_users: Optional[int] = None
    num_ads: Optional[int] = None
    mean_candidates: Tuple[float, ...] = PAPER_MEAN_CANDIDATES
    coverage: Tuple[float, ...] = PAPER_COVERAGE
    element_churn: float = 0.05
    popularity_exponent: float = 0.9
    popularity_offset: float = 10.0
    production_temperature: float = 0.3
    estimate_noise: float = 0.2
    target_ctr: float = 0.0684
    calibration_impressions: int = 50_000
    user_propensity_std: float = 0.3
    ad_quality_std: float = 0.4
    element_quality_std: float = 0.05
    personal_scale: float = 0.12
    category_scale: float = 0.1
    pair_scale: float = 0.18
    train_shards: int = 4
    eval_shards: int = 1
    chunk_size: int = 16_384
    seed: int = 0

    def resolved(self) -> "CombinationConfig":
        """A copy with the ``None`` sizes filled in from ``num_impressions``."""
        users = self.num_users if self.num_users is not None else max(200, self.num_impressions // 20)
        ads = self.num_ads if self.num_ads is not None else max(50, self.num_impressions // 60)
        return dataclasses.replace(self, num_users=users, num_ads=ads, mean_candidates=tuple(self.mean_candidates),
                                   coverage=tuple(self.coverage))

    def to_dict(self) -> Dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, options: Dict[str, Any]) -> "CombinationConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    def validate(self) -> "CombinationConfig":
        """Raises ``ValueError`` naming the first bad option; returns ``self``."""

        def fail(option, problem):
            raise ValueError(f"CombinationConfig.{option}: {problem}")

        def integer(option, minimum):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                fail(option, f"must be an integer >= {minimum}, got {value!r}")

        def number(option, value, low, high, what):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low(value) or not high(value):
                fail(option, f"must be {what}, got {value!r}")

        for option, minimum in (("num_impressions", 1), ("num_days", 2), ("test_days", 1), ("train_shards", 1),
                                ("eval_shards", 1), ("chunk_size", 1), ("calibration_impressions", 1000),
                                ("seed", 0)):
            integer(option, minimum)
        if self.test_days >= self.num_days:
            fail("test_days", f"must leave at least one training day (< num_days = {self.num_days}), "
                              f"got {self.test_days}")
        if self.num_impressions < self.num_days:
            fail("num_impressions", f"must be >= num_days ({self.num_days}), got {self.num_impressions}")
        for option in ("num_users", "num_ads"):
            if getattr(self, option) is not None:
                integer(option, 1)
        m = len(F.GENCO_COMPONENTS)
        for option in ("mean_candidates", "coverage"):
            values = getattr(self, option)
            if len(values) != m:
                fail(option, f"needs one value per component {F.GENCO_COMPONENTS}, got {len(values)}")
        for c, value in zip(F.GENCO_COMPONENTS, self.mean_candidates):
            number(f"mean_candidates[{c}]", value, lambda v: v >= 1.0,
                   lambda v: v < F.GENCO_MAX_CANDIDATES, f"in [1, {F.GENCO_MAX_CANDIDATES})")
        for c, value in zip(F.GENCO_COMPONENTS, self.coverage):
            number(f"coverage[{c}]", value, lambda v: v >= 0.0, lambda v: v <= 1.0, "in [0, 1]")
        if max(self.coverage) < 1.0:
            fail("coverage", "at least one component must be on every ad (an ad needs a creative)")
        unit = (lambda v: v >= 0.0, lambda v: v < 1.0, "in [0, 1)")
        number("element_churn", self.element_churn, *unit)
        number("target_ctr", self.target_ctr, lambda v: v > 0.0, lambda v: v < 1.0, "in (0, 1)")
        positive = (lambda v: v > 0.0, lambda v: True, "positive and finite")
        for option in ("popularity_exponent", "popularity_offset", "production_temperature"):
            number(option, getattr(self, option), *positive)
        non_negative = (lambda v: v >= 0.0, lambda v: True, ">= 0 and finite")
        for option in ("estimate_noise", "user_propensity_std", "ad_quality_std", "element_quality_std",
                       "personal_scale", "category_scale", "pair_scale"):
            number(option, getattr(self, option), *non_negative)
        return self
