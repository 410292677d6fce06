r"""The simulated world: users, ads, creatives, and the ground-truth click model.

Entities (ids are ``index + 1``; ``0`` and :data:`features.SEQUENCE_PAD` never occur):

* **Users** carry the observable features of :data:`features.USER_FEATURES` (gender, age bucket, city
  tier, device, OS, activity level, income, member level, purchase frequency) and two hidden quantities:
  a propensity to click :math:`\beta_u` and an interest vector :math:`z_u \in \mathbb{R}^{K}` over the
  :math:`K` = :data:`features.NUM_AD_CATEGORIES` ad categories. Users also have a behaviour sequence
  (last ads clicked, newest last) whose categories are drawn from :math:`\mathrm{softmax}(z_u/\tau)` and
  which grows with the user's logged clicks day by day.
* **Ads** have an advertiser, a category :math:`k_a`, a brand, a price bucket, a hidden quality
  :math:`q_a` and a Zipf-like popularity (how often they enter a request's candidate set).
* **Creatives.** Each ad owns ``N_a`` creative *tracks* (``min_creatives <= N_a <= max_creatives``). A
  track holds one creative at a time; each day a track's creative is retired and replaced with probability
  ``creative_churn``, and some tracks open late or close early, so the candidate list of an ad (its active
  creatives that day, in track order) changes across days. (A track is the ad's own bookkeeping; a *slot* is
  always a page position, :data:`features.SLOT`.) A creative has a style :math:`s_c`
  (:data:`features.CREATIVE_STYLES`), a colour tone, a price tag (hidden/shown), a text-length bucket, a
  hidden quality :math:`q_c` and a dense content embedding :math:`e_c \in \mathbb{R}^{8}` (a stand-in for
  image/text features) that carries a noisy projection of the creative's style, tone and quality:

  .. math::
      e_c = P_{s_c} + T_{t_c} + 0.7\,\frac{r_c}{\sigma_c}\,v + \varepsilon_c,\qquad
      \varepsilon_c \sim \mathcal{N}(0, 0.35^2 I),

  where :math:`r_c` is the part of :math:`q_c` not explained by the categorical attributes and
  :math:`v` a fixed unit vector.

Ground-truth click model. User :math:`u` sees creative :math:`c` of ad :math:`a` in page slot :math:`l`
(:data:`features.SLOT`, the ad's rank among the :math:`L` shown):

.. math::
    \mathrm{logit}\,p(\mathrm{click}) = b
      + \beta_u
      + q_a
      + \alpha\, z_u[k_a]
      + q_c
      + G[g_u, s_c] + A[\mathrm{age}_u, s_c] + I[\mathrm{income}_u, \mathrm{tag}_c]
      + H[k_a, s_c]
      + \gamma\, \rho_{ua}\, R[s_c]
      + \pi_l

with

* :math:`b` the global bias, solved numerically at world-build time so the *logged* CTR (after the ad
  ranker's selection and the logging policy) equals ``target_ctr`` (2.4 % by default, the CTR of the
  production log of Yang et al., AAAI 2024), see :func:`simulator.traffic.calibrate_bias`;
* :math:`\beta_u = w^{act}_{activity} + w^{dev}_{device} + w^{age}_{age} + \mathcal{N}(0, \sigma_u^2)`
  the user propensity;
* :math:`q_a = w^{price}_{price} + \mathcal{N}(0, \sigma_a^2) + \kappa\, \nu_a` the ad quality, with
  :math:`\nu_a` the standardised :math:`\log N_a` (``N_a`` creative tracks): large advertisers make more
  creatives and better ads, so an ad's CTR grows with its number of creatives (``creative_count_quality``
  :math:`= \kappa`; the condition under which sCTR is biased and NSCTR is not);
* :math:`\alpha\, z_u[k_a]` the user-interest x ad-category affinity;
* :math:`q_c = w^{tone}_{t_c} + w^{text}_{x_c} + w^{tag}_{\mathrm{tag}_c} + r_c`,
  :math:`r_c \sim \mathcal{N}(0, \sigma_c^2)` the creative quality;
* :math:`G, A, I` the *personalised* creative effects: user segment (gender, age, income) x creative
  style / price tag (Yang et al., AAAI 2024, Fig. 1: the best creative differs by gender);
* :math:`H` the ad-category x creative-style effect;
* :math:`\gamma\, \rho_{ua}\, R[s_c]` the ad relevance x creative interaction: :math:`\rho_{ua} =
  (z_u[k_a] - \bar z) / s_z` is the user's standardised affinity to the ad's category and
  :math:`R` (:data:`RELEVANCE_STYLE_SLOPE`) a fixed slope per style, positive for product-only shots and
  comparisons, negative for lifestyle and price-promotion creatives: the best creative of an ad depends on
  how relevant the ad is to the user (``relevance_style_scale`` :math:`= \gamma`), so a CR that knows
  pctr_ad (JAC's quantized pctr input) can pick better creatives than one that does not;
* :math:`\pi_l = -\delta \log(1 + l)` the position effect of page slot :math:`l`.

Bids. Each ad has a cost-per-click bid :math:`b_a = \bar b\, \exp(\sigma_b \epsilon_a - \sigma_b^2/2)`,
:math:`\epsilon_a = 0.5\, \tilde p_a + \sqrt{0.75}\, \mathcal{N}(0, 1)` (:math:`\tilde p_a` the
standardised price bucket: dearer products pay more per click), so :math:`E[b_a] \approx \bar b` (``bid_mean``)
and ``bid_std`` :math:`= \sigma_b`. Ads are ranked by eCPM :math:`= p \cdot b_a`; a click earns the ad's bid
(first-price CPC), so RPM :math:`= 1000 \sum \text{clicks} \cdot b / \text{requests}`.

All arrays are NumPy; every function is vectorised over impressions. A :class:`World` is drawn by
:func:`simulator.build.build_world`; its logged traffic comes from :mod:`simulator.traffic`, and live
requests (a serving system's view, with their truth) from :mod:`simulator.live`. The world covers
``num_days + live_days`` days (:attr:`World.num_days`): the log holds the first ``num_days``, the live days
are for online experiments. Arrays are indexed by entity *index*; the logged id of an entity is ``index + 1``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Tuple

import numpy as np

import features as F
from simulator.arrays import offsets, ragged_positions, sigmoid
from simulator.config import SimulatorConfig

# Observable user features, in the order of features.USER_FEATURES (user_id excluded).
USER_ATTRIBUTES = tuple(name for name in F.USER_FEATURES if name != F.USER_ID)

# R[s] of the ad relevance x creative term, in the order of features.CREATIVE_STYLES ("product_only",
# "usage_scene", "price_promotion", "model_shot", "lifestyle", "comparison"): for users who like the ad's
# category a plain product shot or a comparison works best, for the others a lifestyle scene or a promotion
# (mean 0, so the term moves no ad's mean CTR).
RELEVANCE_STYLE_SLOPE = np.array([1.0, 0.25, -1.0, 0.0, -0.75, 0.5])

# world.npz keys written before the creative "slots" were renamed "tracks"; read under the new names.
_LEGACY_KEYS = {"ad_num_slots": "ad_num_tracks", "slot_ad": "track_ad", "slot_day_creative": "track_day_creative"}
_LEGACY_OPTIONS = {"late_slot_rate": "late_track_rate"}
# Effects a world.npz written before they existed was built without: loading it sets them to 0.
_ABSENT_EFFECTS = {"relevance_style_scale": 0.0, "creative_count_quality": 0.0, "bid_std": 0.0}


@dataclasses.dataclass
class DayView:
    """The active creatives of every ad on one day and ad-level aggregates (all indexed by ad index).

    The candidate creatives of ad ``a`` that day are ``creatives[ptr[a]:ptr[a + 1]]`` (creative indices, in
    track order: the order of the logged candidate lists).
    """

    day: int
    creatives: np.ndarray  # [num active] creative index, grouped by ad, in track order
    ptr: np.ndarray  # [num_ads + 1] offsets into `creatives`
    count: np.ndarray  # [num_ads] active creatives per ad (>= 1)
    ad_creative_mean: np.ndarray  # [num_ads] mean non-personalised creative effect (the ranker's view)
    hist_ctr: np.ndarray  # [num_ads] smoothed logged CTR through the previous day
    hist_imps: np.ndarray  # [num_ads] logged impressions through the previous day


@dataclasses.dataclass
class World:
    """Entity tables, click-model parameters and the evolving state (sequences, ad history)."""

    config: SimulatorConfig
    # users
    user_attrs: Dict[str, np.ndarray]
    user_interest: np.ndarray  # [U, K] float32
    user_propensity: np.ndarray  # [U]
    user_traffic_cdf: np.ndarray  # [U]
    # ads
    ad_advertiser: np.ndarray  # [A] advertiser id (>= 1)
    ad_category: np.ndarray  # [A]
    ad_brand: np.ndarray  # [A] brand id (>= 1)
    ad_price: np.ndarray  # [A]
    ad_quality: np.ndarray  # [A]
    ad_popularity_cdf: np.ndarray  # [A]
    ad_num_tracks: np.ndarray  # [A] creative tracks of each ad
    ad_bid: np.ndarray  # [A] cost-per-click bid b_a
    # creative tracks and creatives
    track_ad: np.ndarray  # [S] the ad owning each track (tracks grouped by ad)
    track_day_creative: np.ndarray  # [S, D] creative index, or -1 while the track is closed
    creative_ad: np.ndarray  # [C]
    creative_style: np.ndarray
    creative_tone: np.ndarray
    creative_price_tag: np.ndarray
    creative_text_length: np.ndarray
    creative_quality: np.ndarray  # [C] q_c
    creative_embedding: np.ndarray  # [C, EMB] float32
    creative_estimate: np.ndarray  # [C] the production system's noisy quality estimate
    # click model
    bias: float
    gender_style: np.ndarray  # [3, styles]
    age_style: np.ndarray  # [6, styles]
    income_price_tag: np.ndarray  # [5, 2]
    category_style: np.ndarray  # [K, styles]
    position: np.ndarray  # [L]
    affinity_mean: float  # z-bar and s_z: the standardisation of the user x ad-category affinity rho_ua
    affinity_std: float
    # state
    seq_ptr: np.ndarray  # [U + 1]
    seq_ads: np.ndarray  # [T] ad index, newest last within a user
    ad_imps: np.ndarray  # [A] logged impressions so far
    ad_clicks: np.ndarray  # [A] logged clicks so far

    @property
    def num_users(self) -> int:
        return len(self.user_propensity)

    @property
    def num_ads(self) -> int:
        return len(self.ad_category)

    @property
    def num_creatives(self) -> int:
        return len(self.creative_ad)

    @property
    def num_days(self) -> int:
        return self.track_day_creative.shape[1]

    # ----------------------------------------------------------------------------------- click model
    def impression_logit(self, users: np.ndarray, ads: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """The creative-independent part of the logit (bias included), one per impression in page ``slots``."""
        return (self.bias + self.user_propensity[users] + self.ad_quality[ads]
                + self.config.interest_scale * self.user_interest[users, self.ad_category[ads]]
                + self.position[slots])

    def relevance(self, users: np.ndarray, ads: np.ndarray) -> np.ndarray:
        """:math:`\\rho_{ua}`: the users' standardised affinity to the ads' categories, one per row."""
        affinity = self.user_interest[users, self.ad_category[ads]]
        return (affinity - self.affinity_mean) / self.affinity_std

    def creative_logit(self, users: np.ndarray, ads: np.ndarray, creatives: np.ndarray) -> np.ndarray:
        """The creative-dependent part of the logit, one per (user, ad, creative) row."""
        style = self.creative_style[creatives]
        logit = (self.creative_quality[creatives]
                 + self.gender_style[self.user_attrs[F.USER_GENDER][users], style]
                 + self.age_style[self.user_attrs[F.USER_AGE_BUCKET][users], style]
                 + self.income_price_tag[self.user_attrs[F.USER_INCOME_BUCKET][users],
                                         self.creative_price_tag[creatives]]
                 + self.category_style[self.ad_category[ads], style])
        gamma = self.config.relevance_style_scale
        if gamma:
            logit = logit + gamma * self.relevance(users, ads) * RELEVANCE_STYLE_SLOPE[style]
        return logit

    def true_ctr(self, users, ads, creatives, slots) -> np.ndarray:
        """Ground-truth click probability of each (user, ad, creative, page slot) row (entity indices)."""
        users, ads, creatives, slots = (np.asarray(x, np.int64) for x in (users, ads, creatives, slots))
        return sigmoid(self.impression_logit(users, ads, slots) + self.creative_logit(users, ads, creatives))

    # ------------------------------------------------------------------------------------------ days
    def day_view(self, day: int) -> DayView:
        """Each ad's active creatives on ``day`` and its history through the previous day."""
        column = self.track_day_creative[:, day]
        active = column >= 0
        creatives = column[active].astype(np.int64)
        count = np.bincount(self.track_ad[active], minlength=self.num_ads)
        ptr = offsets(count)
        effect = (self.creative_quality[creatives]
                  + self.category_style[self.ad_category[self.creative_ad[creatives]],
                                        self.creative_style[creatives]])
        ad_mean = np.add.reduceat(effect, ptr[:-1]) / count
        prior = self.config.target_ctr
        strength = self.config.hist_ctr_prior_strength
        hist_ctr = (self.ad_clicks + strength * prior) / (self.ad_imps + strength)
        return DayView(day, creatives, ptr, count, ad_mean, hist_ctr.astype(np.float32),
                       self.ad_imps.astype(np.int64))

    def end_day(self, users: np.ndarray, ads: np.ndarray, clicks: np.ndarray) -> None:
        """Folds one day's log into the state: ad history, and clicked ads appended to sequences."""
        self.ad_imps += np.bincount(ads, minlength=self.num_ads)
        self.ad_clicks += np.bincount(ads, weights=clicks, minlength=self.num_ads)
        clicked = clicks.astype(bool)
        self.seq_ptr, self.seq_ads = _append_sequences(
            self.seq_ptr, self.seq_ads, users[clicked], ads[clicked], self.config.max_seq_len)

    def sequences(self, users: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Behaviour sequences of ``users`` (user indices): (flat ad indices, newest last per user; lengths)."""
        lengths = self.seq_ptr[users + 1] - self.seq_ptr[users]
        rows, pos = ragged_positions(lengths)
        return self.seq_ads[self.seq_ptr[users][rows] + pos], lengths

    # ------------------------------------------------------------------------------------ save / load
    def save(self, path: str) -> None:
        arrays = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "config":
                arrays["config_json"] = np.array(json.dumps(value.to_dict()))
            elif field.name == "user_attrs":
                for name, column in value.items():
                    arrays[f"user_attrs/{name}"] = column
            else:
                arrays[field.name] = np.asarray(value)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str) -> "World":
        with np.load(path) as data:
            kwargs: Dict[str, Any] = {"user_attrs": {}}
            for key in data.files:
                if key == "config_json":
                    options = json.loads(str(data[key]))
                    options = {**_ABSENT_EFFECTS, **{_LEGACY_OPTIONS.get(k, k): v for k, v in options.items()}}
                    kwargs["config"] = SimulatorConfig(**options)
                elif key.startswith("user_attrs/"):
                    kwargs["user_attrs"][key.split("/", 1)[1]] = data[key]
                elif key in ("bias", "affinity_mean", "affinity_std"):
                    kwargs[key] = float(data[key])
                else:
                    kwargs[_LEGACY_KEYS.get(key, key)] = data[key]
        # Worlds saved before bids and the relevance term: one bid for all, and rho unused (gamma = 0).
        kwargs.setdefault("ad_bid", np.full(len(kwargs["ad_category"]), kwargs["config"].bid_mean))
        kwargs.setdefault("affinity_mean", 0.0)
        kwargs.setdefault("affinity_std", 1.0)
        return cls(**kwargs)


def _append_sequences(ptr, ads, new_users, new_ads, max_len):
    """Appends ``new_ads`` (time order) to the users' sequences and keeps the newest ``max_len`` of each."""
    num_users = len(ptr) - 1
    old_users, _ = ragged_positions(np.diff(ptr))
    users = np.concatenate([old_users, new_users])
    order = np.argsort(users, kind="stable")  # old entries first, then new ones in time order
    users, merged = users[order], np.concatenate([ads, new_ads])[order]
    count = np.bincount(users, minlength=num_users)
    _, pos = ragged_positions(count)  # users are sorted: position of each entry in its user's sequence
    keep = pos >= count[users] - max_len
    return offsets(np.minimum(count, max_len)), merged[keep]


def load_world(path: str) -> World:
    """Loads a world saved by :meth:`World.save` (``<out>/world.npz`` of a simulation)."""
    return World.load(path)
