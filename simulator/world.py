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
* **Creatives.** Each ad owns ``N_a`` creative *slots* (``min_creatives <= N_a <= max_creatives``). A slot
  holds one creative at a time; each day a slot's creative is retired and replaced with probability
  ``creative_churn``, and some slots open late or close early, so the candidate list of an ad (its active
  creatives that day, in slot order) changes across days. A creative has a style :math:`s_c`
  (:data:`features.CREATIVE_STYLES`), a colour tone, a price tag (hidden/shown), a text-length bucket, a
  hidden quality :math:`q_c` and a dense content embedding :math:`e_c \in \mathbb{R}^{8}` (a stand-in for
  image/text features) that carries a noisy projection of the creative's style, tone and quality:

  .. math::
      e_c = P_{s_c} + T_{t_c} + 0.7\,\frac{r_c}{\sigma_c}\,v + \varepsilon_c,\qquad
      \varepsilon_c \sim \mathcal{N}(0, 0.35^2 I),

  where :math:`r_c` is the part of :math:`q_c` not explained by the categorical attributes and
  :math:`v` a fixed unit vector.

Ground-truth click model. User :math:`u` sees creative :math:`c` of ad :math:`a` in slot :math:`l`:

.. math::
    \mathrm{logit}\,p(\mathrm{click}) = b
      + \beta_u
      + q_a
      + \alpha\, z_u[k_a]
      + q_c
      + G[g_u, s_c] + A[\mathrm{age}_u, s_c] + I[\mathrm{income}_u, \mathrm{tag}_c]
      + H[k_a, s_c]
      + \pi_l

with

* :math:`b` the global bias, solved numerically at world-build time so the *logged* CTR (after the ad
  ranker's selection and the logging policy) equals ``target_ctr`` (2.4 % by default, as in the seed
  paper's data);
* :math:`\beta_u = w^{act}_{activity} + w^{dev}_{device} + w^{age}_{age} + \mathcal{N}(0, \sigma_u^2)`
  the user propensity; :math:`q_a = w^{price}_{price} + \mathcal{N}(0, \sigma_a^2)` the ad quality;
* :math:`\alpha\, z_u[k_a]` the user-interest x ad-category affinity;
* :math:`q_c = w^{tone}_{t_c} + w^{text}_{x_c} + w^{tag}_{\mathrm{tag}_c} + r_c`,
  :math:`r_c \sim \mathcal{N}(0, \sigma_c^2)` the creative quality;
* :math:`G, A, I` the *personalised* creative effects: user segment (gender, age, income) x creative
  style / price tag (seed paper Fig. 1: the best creative differs by gender);
* :math:`H` the ad-category x creative-style effect;
* :math:`\pi_l = -\delta \log(1 + l)` the position effect of slot :math:`l`.

All arrays are NumPy; every function is vectorised over impressions.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Optional

import numpy as np

import features as F
from simulator.config import SimulatorConfig

K = F.NUM_AD_CATEGORIES
NUM_STYLES = len(F.CREATIVE_STYLES)
EMB = F.CREATIVE_EMBEDDING_DIM

# Observable user features, in the order of features.USER_FEATURES (user_id excluded).
USER_ATTRIBUTES = tuple(name for name in F.USER_FEATURES if name != F.USER_ID)

# Temperature of the interest distribution the behaviour sequences are drawn from.
SEQUENCE_TEMPERATURE = 0.6
_SEQ_MEAN_BY_ACTIVITY = np.array([2.0, 6.0, 12.0, 20.0, 28.0]) / 30.0
_TRAFFIC_BY_ACTIVITY = np.array([0.3, 0.7, 1.0, 1.5, 2.2])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _categorical(rng: np.random.Generator, probs, size) -> np.ndarray:
    """Draws codes from one probability vector."""
    probs = np.asarray(probs, np.float64)
    cdf = np.cumsum(probs / probs.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(probs) - 1).astype(np.int64)


def _rowwise_categorical(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Draws one code per entry of ``rows`` from ``probs[rows]`` (rows of ``probs`` sum to 1).

    Offsetting row ``r``'s CDF by ``r`` makes one global, sorted CDF, so a single searchsorted serves all.
    """
    n_rows, width = probs.shape
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    glob = (cdf + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(glob, rows + rng.random(len(rows)) * (1 - 1e-12), side="right")
    return np.clip(idx - rows * width, 0, width - 1).astype(np.int64)


def _thresholds(score: np.ndarray, cuts) -> np.ndarray:
    return np.searchsorted(np.asarray(cuts), score).astype(np.int64)


def ragged_positions(lengths: np.ndarray) -> (np.ndarray, np.ndarray):
    """For rows of ``lengths``: (row of every flat entry, position of the entry inside its row)."""
    lengths = np.asarray(lengths, np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(len(rows)) - starts[rows]


@dataclasses.dataclass
class DayView:
    """The active creatives of every ad on one day (CSR by ad, slot order) and ad-level aggregates."""

    day: int
    creatives: np.ndarray  # [num active] creative index, grouped by ad, in slot order
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
    ad_num_slots: np.ndarray  # [A]
    # slots and creatives
    slot_ad: np.ndarray  # [S]
    slot_day_creative: np.ndarray  # [S, D] creative index or -1 when the slot is closed
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
        return self.slot_day_creative.shape[1]

    # ----------------------------------------------------------------------------------- click model
    def impression_logit(self, users: np.ndarray, ads: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """The creative-independent part of the logit (bias included), one per impression."""
        return (self.bias + self.user_propensity[users] + self.ad_quality[ads]
                + self.config.interest_scale * self.user_interest[users, self.ad_category[ads]]
                + self.position[slots])

    def creative_logit(self, users: np.ndarray, ads: np.ndarray, creatives: np.ndarray) -> np.ndarray:
        """The creative-dependent part of the logit, one per (user, ad, creative) row."""
        style = self.creative_style[creatives]
        return (self.creative_quality[creatives]
                + self.gender_style[self.user_attrs[F.USER_GENDER][users], style]
                + self.age_style[self.user_attrs[F.USER_AGE_BUCKET][users], style]
                + self.income_price_tag[self.user_attrs[F.USER_INCOME_BUCKET][users],
                                        self.creative_price_tag[creatives]]
                + self.category_style[self.ad_category[ads], style])

    def true_ctr(self, users, ads, creatives, slots) -> np.ndarray:
        """Ground-truth click probability of each (user, ad, creative, slot) row."""
        users, ads, creatives, slots = (np.asarray(x, np.int64) for x in (users, ads, creatives, slots))
        return _sigmoid(self.impression_logit(users, ads, slots) + self.creative_logit(users, ads, creatives))

    # ------------------------------------------------------------------------------------------ days
    def day_view(self, day: int) -> DayView:
        column = self.slot_day_creative[:, day]
        active = column >= 0
        creatives = column[active].astype(np.int64)
        count = np.bincount(self.slot_ad[active], minlength=self.num_ads)
        ptr = np.zeros(self.num_ads + 1, np.int64)
        np.cumsum(count, out=ptr[1:])
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

    def sequences(self, users: np.ndarray) -> (np.ndarray, np.ndarray):
        """Behaviour sequences of ``users``: (flat ad indices, lengths)."""
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
                    kwargs["config"] = SimulatorConfig(**json.loads(str(data[key])))
                elif key.startswith("user_attrs/"):
                    kwargs["user_attrs"][key.split("/", 1)[1]] = data[key]
                elif key == "bias":
                    kwargs[key] = float(data[key])
                else:
                    kwargs[key] = data[key]
        return cls(**kwargs)


def _append_sequences(ptr, ads, new_users, new_ads, max_len):
    """Appends ``new_ads`` (time order) to the users' sequences and keeps the newest ``max_len`` of each."""
    num_users = len(ptr) - 1
    old_users = np.repeat(np.arange(num_users), np.diff(ptr))
    users = np.concatenate([old_users, new_users])
    order = np.argsort(users, kind="stable")  # old entries first, then new ones in time order
    users, merged = users[order], np.concatenate([ads, new_ads])[order]
    count = np.bincount(users, minlength=num_users)
    start = np.cumsum(count) - count
    pos = np.arange(len(users)) - start[users]
    keep = pos >= count[users] - max_len
    new_count = np.minimum(count, max_len)
    new_ptr = np.zeros(num_users + 1, np.int64)
    np.cumsum(new_count, out=new_ptr[1:])
    return new_ptr, merged[keep]


# ------------------------------------------------------------------------------------------ building
def build_world(config: SimulatorConfig, calibrate: bool = True) -> World:
    """Draws every entity from ``config.seed`` and calibrates the global bias to ``config.target_ctr``."""
    config = config.validate().resolved()
    rng = np.random.default_rng([config.seed, 0])
    num_users, num_ads, num_days = config.num_users, config.num_ads, config.num_days

    # ---- users: observable features with mild dependencies (OS on device, member level on income...)
    attrs = {}
    attrs[F.USER_GENDER] = _categorical(rng, [0.05, 0.50, 0.45], num_users)
    attrs[F.USER_AGE_BUCKET] = _categorical(rng, [0.05, 0.20, 0.30, 0.22, 0.13, 0.10], num_users)
    attrs[F.USER_CITY_TIER] = _categorical(rng, [0.15, 0.25, 0.25, 0.20, 0.15], num_users)
    attrs[F.USER_DEVICE] = _categorical(rng, [0.80, 0.08, 0.12], num_users)
    os_given_device = np.array([[0.70, 0.29, 0.01], [0.30, 0.65, 0.05], [0.05, 0.15, 0.80]])
    attrs[F.USER_OS] = _rowwise_categorical(rng, os_given_device, attrs[F.USER_DEVICE])
    attrs[F.USER_ACTIVITY_LEVEL] = _categorical(rng, [0.15, 0.30, 0.30, 0.17, 0.08], num_users)
    attrs[F.USER_INCOME_BUCKET] = _categorical(rng, [0.20, 0.25, 0.30, 0.15, 0.10], num_users)
    attrs[F.USER_MEMBER_LEVEL] = _thresholds(
        attrs[F.USER_INCOME_BUCKET] * 0.4 + rng.normal(0, 0.7, num_users), [0.6, 1.2, 1.8])
    attrs[F.USER_PURCHASE_FREQ] = _thresholds(
        attrs[F.USER_ACTIVITY_LEVEL] * 0.5 + rng.normal(0, 0.7, num_users), [0.5, 1.2, 1.9])
    for name in USER_ATTRIBUTES:
        assert attrs[name].max(initial=0) < F.BY_NAME[name].domain, name
    attrs = {name: attrs[name] for name in USER_ATTRIBUTES}

    # Interests: a segment (gender x age) tendency, individual noise, and two favourite categories.
    segment = rng.normal(0, 0.5, (len(F.GENDERS), len(F.AGE_BUCKETS), K))
    interest = segment[attrs[F.USER_GENDER], attrs[F.USER_AGE_BUCKET]] + rng.normal(0, 1.0, (num_users, K))
    favourites = rng.integers(0, K, (num_users, 2))
    interest[np.arange(num_users)[:, None], favourites] += 1.5
    interest = interest.astype(np.float32)

    propensity = (np.linspace(-0.3, 0.3, len(F.ACTIVITY_LEVELS))[attrs[F.USER_ACTIVITY_LEVEL]]
                  + np.array([0.0, 0.1, -0.15])[attrs[F.USER_DEVICE]]
                  + np.array([0.1, 0.15, 0.05, 0.0, -0.05, -0.1])[attrs[F.USER_AGE_BUCKET]]
                  + rng.normal(0, config.user_propensity_std, num_users))
    traffic = np.cumsum(_TRAFFIC_BY_ACTIVITY[attrs[F.USER_ACTIVITY_LEVEL]])
    traffic /= traffic[-1]

    # ---- ads
    num_adv = config.num_advertisers
    adv_weight = 1.0 / (np.arange(num_adv) + 2.0) ** 0.7
    advertiser = rng.permutation(num_adv)[_categorical(rng, adv_weight, num_ads)]
    adv_category = rng.integers(0, K, num_adv)
    category = np.where(rng.random(num_ads) < 0.8, adv_category[advertiser], rng.integers(0, K, num_ads))
    adv_brands = rng.integers(1, 4, num_adv)
    adv_brand_base = np.cumsum(adv_brands) - adv_brands
    brand = adv_brand_base[advertiser] + (rng.random(num_ads) * adv_brands[advertiser]).astype(np.int64) + 1
    price = _categorical(rng, [0.15, 0.25, 0.30, 0.20, 0.10], num_ads)
    quality = np.array([0.1, 0.05, 0.0, -0.05, -0.1])[price] + rng.normal(0, config.ad_quality_std, num_ads)
    rank = rng.permutation(num_ads)
    popularity = np.cumsum(1.0 / (rank + config.popularity_offset) ** config.popularity_exponent)
    popularity /= popularity[-1]
    mean_extra = config.mean_creatives - config.min_creatives
    extra = rng.geometric(1.0 / (mean_extra + 1.0), num_ads) - 1
    num_slots = np.minimum(config.min_creatives + extra, config.max_creatives).astype(np.int64)

    # ---- slots: open/close days and daily replacement of the creative they hold
    slot_ad = np.repeat(np.arange(num_ads), num_slots)
    _, slot_k = ragged_positions(num_slots)
    num_slots_total = len(slot_ad)
    late = (slot_k >= config.min_creatives) & (rng.random(num_slots_total) < config.late_slot_rate)
    birth = np.where(late, rng.integers(1, num_days, num_slots_total), 0)
    early = (slot_k >= config.min_creatives) & (rng.random(num_slots_total) < config.early_retire_rate)
    end = np.where(early, np.maximum(rng.integers(1, num_days, num_slots_total), birth + 1), num_days)
    days = np.arange(num_days)
    open_ = (days[None, :] >= birth[:, None]) & (days[None, :] < end[:, None])
    replace = (rng.random((num_slots_total, num_days)) < config.creative_churn) & open_
    replace &= days[None, :] > birth[:, None]
    generation = np.cumsum(replace, axis=1)
    per_slot = generation[:, -1] + 1
    first = np.cumsum(per_slot) - per_slot
    slot_day_creative = np.where(open_, first[:, None] + generation, -1).astype(np.int64)
    num_creatives = int(per_slot.sum())
    creative_slot = np.repeat(np.arange(num_slots_total), per_slot)
    creative_ad = slot_ad[creative_slot]

    # ---- creatives: the ad's style mix, attributes, quality and content embedding
    style_mix = rng.dirichlet(np.full(NUM_STYLES, 0.8), num_ads)
    style = _rowwise_categorical(rng, style_mix, creative_ad)
    tone = rng.integers(0, len(F.COLOR_TONES), num_creatives)
    price_tag = (rng.random(num_creatives) < 0.4).astype(np.int64)
    text_length = _categorical(rng, [0.15, 0.35, 0.35, 0.15], num_creatives)
    tone_effect = rng.normal(0, 0.1, len(F.COLOR_TONES))
    text_effect = np.array([-0.1, 0.05, 0.05, -0.05])
    tag_effect = np.array([0.0, 0.08])
    resid = rng.normal(0, config.creative_quality_std, num_creatives)
    creative_quality = tone_effect[tone] + text_effect[text_length] + tag_effect[price_tag] + resid
    style_proto = rng.normal(0, 0.6, (NUM_STYLES, EMB))
    tone_proto = rng.normal(0, 0.3, (len(F.COLOR_TONES), EMB))
    direction = rng.normal(0, 1, EMB)
    direction /= np.linalg.norm(direction)
    scaled = resid / max(config.creative_quality_std, 1e-9)
    embedding = (style_proto[style] + tone_proto[tone] + 0.7 * scaled[:, None] * direction[None, :]
                 + rng.normal(0, 0.35, (num_creatives, EMB))).astype(np.float32)
    estimate = creative_quality + rng.normal(0, config.estimate_noise, num_creatives)

    # ---- interaction tables and position effect
    ps = config.personal_scale
    gender_style = rng.normal(0, ps, (len(F.GENDERS), NUM_STYLES))
    age_style = rng.normal(0, 0.6 * ps, (len(F.AGE_BUCKETS), NUM_STYLES))
    income_tag = rng.normal(0, 0.6 * ps, (len(F.INCOME_BUCKETS), len(F.PRICE_TAGS)))
    category_style = rng.normal(0, config.category_style_scale, (K, NUM_STYLES))
    position = -config.position_decay * np.log1p(np.arange(config.slots))

    # ---- behaviour sequences drawn from the interests
    seq_len = np.minimum(rng.poisson(_SEQ_MEAN_BY_ACTIVITY[attrs[F.USER_ACTIVITY_LEVEL]] * config.max_seq_len),
                         config.max_seq_len)
    seq_user = np.repeat(np.arange(num_users), seq_len)
    seq_ads = _draw_ads_by_interest(rng, interest, seq_user, category, rank, config)
    seq_ptr = np.zeros(num_users + 1, np.int64)
    np.cumsum(seq_len, out=seq_ptr[1:])

    world = World(
        config=config, user_attrs=attrs, user_interest=interest, user_propensity=propensity,
        user_traffic_cdf=traffic, ad_advertiser=advertiser + 1, ad_category=category, ad_brand=brand,
        ad_price=price, ad_quality=quality, ad_popularity_cdf=popularity, ad_num_slots=num_slots,
        slot_ad=slot_ad, slot_day_creative=slot_day_creative, creative_ad=creative_ad, creative_style=style,
        creative_tone=tone, creative_price_tag=price_tag, creative_text_length=text_length,
        creative_quality=creative_quality, creative_embedding=embedding, creative_estimate=estimate,
        bias=0.0, gender_style=gender_style, age_style=age_style, income_price_tag=income_tag,
        category_style=category_style, position=position, seq_ptr=seq_ptr, seq_ads=seq_ads,
        ad_imps=np.zeros(num_ads), ad_clicks=np.zeros(num_ads))
    if calibrate:
        world.bias = calibrate_bias(world)
    return world


def _draw_ads_by_interest(rng, interest, users, category, rank, config) -> np.ndarray:
    """One ad per entry of ``users``: category ~ softmax(z_u / tau) over non-empty categories, then an ad
    of that category by popularity."""
    present = np.bincount(category, minlength=K) > 0
    logits = interest / SEQUENCE_TEMPERATURE
    probs = np.exp(logits - logits.max(axis=1, keepdims=True)) * present[None, :]
    cats = _rowwise_categorical(rng, probs, users)
    order = np.lexsort((rank, category))  # ads grouped by category
    # Half the popularity exponent: a user's history is more varied than the global traffic.
    weight = 1.0 / (rank[order] + config.popularity_offset) ** (0.5 * config.popularity_exponent)
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    bounds = np.searchsorted(category[order], np.arange(K + 1))  # ads of category k: order[b[k]:b[k+1]]
    lo, hi = cum[bounds[cats]], cum[bounds[cats + 1]]
    pick = np.searchsorted(cum, lo + rng.random(len(users)) * (hi - lo), side="right") - 1
    pick = np.clip(pick, bounds[cats], bounds[cats + 1] - 1)
    return order[pick].astype(np.int64)


def calibrate_bias(world: World) -> float:
    """Solves :math:`\\bar p(b) = ` ``target_ctr`` over simulated logged traffic, by bisection.

    The ad ranker and the logging policies do not depend on :math:`b` (it shifts every logit equally), so
    the logged impressions are fixed and :math:`\\bar p(b)` is monotone in :math:`b`.
    """
    from simulator import traffic  # local import: traffic builds on this module

    saved, world.bias = world.bias, 0.0
    try:
        rng = np.random.default_rng([world.config.seed, 1])
        batch = traffic.draw_impressions(world, world.day_view(0), rng,
                                         -(-world.config.calibration_impressions // world.config.slots))
        logits = batch.exposed_logit
    finally:
        world.bias = saved
    low, high = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        if _sigmoid(mid + logits).mean() < world.config.target_ctr:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


# --------------------------------------------------------------------------------- serving requests
def sample_requests(world: World, num_requests: int, seed: int = 0, day: Optional[int] = None) -> List[dict]:
    """Realistic requests for serving demos and tests: a user, their sequence and M candidate ads.

    Each request is a JSON-friendly dict::

        {"user": {user feature: int},                       # features.USER_FEATURES
         "sequence": {seq feature: [int, ...]},             # features.SEQUENCE_FEATURES, newest last
         "ads": [{ad feature: int, AD_HIST_CTR: float, AD_HIST_IMPS: int,
                  "candidates": {creative feature: [...]},  # keyed by features.CREATIVE_FEATURES;
                                                            # the embedding as N lists of dim floats
                  TRUTH_CAND_CTRS: [float, ...]}, ...]}     # true CTR of each candidate in slot 0

    ``day`` picks the candidate lists (default: the last, evaluation day).
    """
    from simulator import traffic

    day = world.num_days - 1 if day is None else day
    if not 0 <= day < world.num_days:
        raise ValueError(f"day: must be in [0, {world.num_days}), got {day}")
    view = world.day_view(day)
    rng = np.random.default_rng([seed, 7])
    users = traffic.draw_users(world, rng, num_requests)
    ads = traffic.draw_candidate_ads(world, rng, num_requests)
    seq_ads, seq_len = world.sequences(users)
    seq_ptr = np.concatenate([[0], np.cumsum(seq_len)])
    out = []
    for r, u in enumerate(users):
        user = {F.USER_ID: int(u) + 1}
        user.update({name: int(world.user_attrs[name][u]) for name in USER_ATTRIBUTES})
        seq = seq_ads[seq_ptr[r]:seq_ptr[r + 1]]
        request = {"user": user,
                   "sequence": {F.SEQ_AD_IDS: (seq + 1).tolist(),
                                F.SEQ_AD_CATEGORIES: world.ad_category[seq].tolist()},
                   "ads": []}
        for a in ads[r]:
            cands = view.creatives[view.ptr[a]:view.ptr[a + 1]]
            ctr = world.true_ctr(np.full(len(cands), u), np.full(len(cands), a), cands, np.zeros(len(cands)))
            request["ads"].append({
                F.AD_ID: int(a) + 1,
                F.AD_ADVERTISER_ID: int(world.ad_advertiser[a]),
                F.AD_CATEGORY: int(world.ad_category[a]),
                F.AD_BRAND_ID: int(world.ad_brand[a]),
                F.AD_PRICE_BUCKET: int(world.ad_price[a]),
                F.AD_HIST_CTR: float(view.hist_ctr[a]),
                F.AD_HIST_IMPS: int(view.hist_imps[a]),
                "candidates": {
                    F.CREATIVE_ID: (cands + 1).tolist(),
                    F.CREATIVE_STYLE: world.creative_style[cands].tolist(),
                    F.CREATIVE_COLOR_TONE: world.creative_tone[cands].tolist(),
                    F.CREATIVE_PRICE_TAG: world.creative_price_tag[cands].tolist(),
                    F.CREATIVE_TEXT_LENGTH: world.creative_text_length[cands].tolist(),
                    F.CREATIVE_EMBEDDING: world.creative_embedding[cands].tolist(),
                },
                F.TRUTH_CAND_CTRS: ctr.tolist(),
            })
        out.append(request)
    return out


def load_world(path: str) -> World:
    """Loads a world saved by :meth:`World.save` (``<out>/world.npz`` of a simulation)."""
    return World.load(path)
