"""Drawing a :class:`~simulator.world.World` from a :class:`~simulator.config.SimulatorConfig`.

The entities and the click model are described in :mod:`simulator.world`. Everything is drawn from
``config.seed`` alone, in a fixed order (users, ads, creative tracks, creatives, interaction tables,
behaviour sequences; the bids from a stream of their own), so one config always gives the same world; the
global bias is then calibrated on simulated logged traffic (:func:`simulator.traffic.calibrate_bias`).
"""

from __future__ import annotations

import numpy as np

import features as F
from simulator.traffic import calibrate_bias
from simulator.arrays import categorical, offsets, ragged_positions, rowwise_categorical, thresholds
from simulator.config import SimulatorConfig
from simulator.world import USER_ATTRIBUTES, World

K = F.NUM_AD_CATEGORIES
NUM_STYLES = len(F.CREATIVE_STYLES)
EMB = F.CREATIVE_EMBEDDING_DIM

# Temperature of the interest distribution the behaviour sequences are drawn from.
SEQUENCE_TEMPERATURE = 0.6
_SEQ_MEAN_BY_ACTIVITY = np.array([2.0, 6.0, 12.0, 20.0, 28.0]) / 30.0
_TRAFFIC_BY_ACTIVITY = np.array([0.3, 0.7, 1.0, 1.5, 2.2])


def build_world(config: SimulatorConfig, calibrate: bool = True) -> World:
    """Draws every entity from ``config.seed`` and calibrates the global bias to ``config.target_ctr``.

    ``calibrate=False`` leaves the bias at 0 (for tests of the entities alone).
    """
    config = config.validate().resolved()
    rng = np.random.default_rng([config.seed, 0])
    num_users, num_ads = config.num_users, config.num_ads
    num_days = config.num_days + config.live_days  # the creative tracks cover the live days too

    # ---- users: observable features with mild dependencies (OS on device, member level on income...)
    attrs = {}
    attrs[F.USER_GENDER] = categorical(rng, [0.05, 0.50, 0.45], num_users)
    attrs[F.USER_AGE_BUCKET] = categorical(rng, [0.05, 0.20, 0.30, 0.22, 0.13, 0.10], num_users)
    attrs[F.USER_CITY_TIER] = categorical(rng, [0.15, 0.25, 0.25, 0.20, 0.15], num_users)
    attrs[F.USER_DEVICE] = categorical(rng, [0.80, 0.08, 0.12], num_users)
    os_given_device = np.array([[0.70, 0.29, 0.01], [0.30, 0.65, 0.05], [0.05, 0.15, 0.80]])
    attrs[F.USER_OS] = rowwise_categorical(rng, os_given_device, attrs[F.USER_DEVICE])
    attrs[F.USER_ACTIVITY_LEVEL] = categorical(rng, [0.15, 0.30, 0.30, 0.17, 0.08], num_users)
    attrs[F.USER_INCOME_BUCKET] = categorical(rng, [0.20, 0.25, 0.30, 0.15, 0.10], num_users)
    attrs[F.USER_MEMBER_LEVEL] = thresholds(
        attrs[F.USER_INCOME_BUCKET] * 0.4 + rng.normal(0, 0.7, num_users), [0.6, 1.2, 1.8])
    attrs[F.USER_PURCHASE_FREQ] = thresholds(
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
    traffic_cdf = np.cumsum(_TRAFFIC_BY_ACTIVITY[attrs[F.USER_ACTIVITY_LEVEL]])
    traffic_cdf /= traffic_cdf[-1]

    # ---- ads
    num_adv = config.num_advertisers
    adv_weight = 1.0 / (np.arange(num_adv) + 2.0) ** 0.7
    advertiser = rng.permutation(num_adv)[categorical(rng, adv_weight, num_ads)]
    adv_category = rng.integers(0, K, num_adv)
    category = np.where(rng.random(num_ads) < 0.8, adv_category[advertiser], rng.integers(0, K, num_ads))
    adv_brands = rng.integers(1, 4, num_adv)
    adv_brand_base = np.cumsum(adv_brands) - adv_brands
    brand = adv_brand_base[advertiser] + (rng.random(num_ads) * adv_brands[advertiser]).astype(np.int64) + 1
    price = categorical(rng, [0.15, 0.25, 0.30, 0.20, 0.10], num_ads)
    quality = np.array([0.1, 0.05, 0.0, -0.05, -0.1])[price] + rng.normal(0, config.ad_quality_std, num_ads)
    rank = rng.permutation(num_ads)
    popularity = np.cumsum(1.0 / (rank + config.popularity_offset) ** config.popularity_exponent)
    popularity /= popularity[-1]
    mean_extra = config.mean_creatives - config.min_creatives
    extra = rng.geometric(1.0 / (mean_extra + 1.0), num_ads) - 1
    num_tracks = np.minimum(config.min_creatives + extra, config.max_creatives).astype(np.int64)
    # Large advertisers make more creatives and better ads: q_a grows with the (standardised) log count.
    quality = quality + config.creative_count_quality * _standardised(np.log(num_tracks))

    # ---- creative tracks: open/close days and daily replacement of the creative they hold
    track_ad, track_k = ragged_positions(num_tracks)
    num_tracks_total = len(track_ad)
    # An ad's first min_creatives tracks are open every day, so it always has that many candidates.
    late = (track_k >= config.min_creatives) & (rng.random(num_tracks_total) < config.late_track_rate)
    birth = np.where(late, rng.integers(1, num_days, num_tracks_total), 0)
    early = (track_k >= config.min_creatives) & (rng.random(num_tracks_total) < config.early_retire_rate)
    end = np.where(early, np.maximum(rng.integers(1, num_days, num_tracks_total), birth + 1), num_days)
    days = np.arange(num_days)
    open_ = (days[None, :] >= birth[:, None]) & (days[None, :] < end[:, None])
    replace = (rng.random((num_tracks_total, num_days)) < config.creative_churn) & open_
    replace &= days[None, :] > birth[:, None]
    generation = np.cumsum(replace, axis=1)
    per_track = generation[:, -1] + 1
    first = np.cumsum(per_track) - per_track
    track_day_creative = np.where(open_, first[:, None] + generation, -1).astype(np.int64)
    num_creatives = int(per_track.sum())
    creative_track = np.repeat(np.arange(num_tracks_total), per_track)
    creative_ad = track_ad[creative_track]

    # ---- creatives: the ad's style mix, attributes, quality and content embedding
    style_mix = rng.dirichlet(np.full(NUM_STYLES, 0.8), num_ads)
    style = rowwise_categorical(rng, style_mix, creative_ad)
    tone = rng.integers(0, len(F.COLOR_TONES), num_creatives)
    price_tag = (rng.random(num_creatives) < 0.4).astype(np.int64)
    text_length = categorical(rng, [0.15, 0.35, 0.35, 0.15], num_creatives)
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
    seq_ptr = offsets(seq_len)

    world = World(
        config=config, user_attrs=attrs, user_interest=interest, user_propensity=propensity,
        user_traffic_cdf=traffic_cdf, ad_advertiser=advertiser + 1, ad_category=category, ad_brand=brand,
        ad_price=price, ad_quality=quality, ad_popularity_cdf=popularity, ad_num_tracks=num_tracks,
        ad_bid=_draw_bids(config, price), track_ad=track_ad, track_day_creative=track_day_creative,
        creative_ad=creative_ad, creative_style=style, creative_tone=tone, creative_price_tag=price_tag,
        creative_text_length=text_length, creative_quality=creative_quality, creative_embedding=embedding,
        creative_estimate=estimate, bias=0.0, gender_style=gender_style, age_style=age_style,
        income_price_tag=income_tag, category_style=category_style, position=position,
        affinity_mean=float(interest.mean()), affinity_std=float(interest.std()),
        seq_ptr=seq_ptr, seq_ads=seq_ads, ad_imps=np.zeros(num_ads), ad_clicks=np.zeros(num_ads))
    if calibrate:
        world.bias = calibrate_bias(world)
    return world


def _standardised(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std``; zeros when ``x`` is constant."""
    std = x.std()
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def _draw_bids(config: SimulatorConfig, price: np.ndarray) -> np.ndarray:
    """[A] CPC bids, log-normal with mean ``bid_mean``, half their log-spread from the price bucket.

    Drawn from their own stream (``[seed, 3]``) so the bids never change any other entity of the world.
    """
    rng = np.random.default_rng([config.seed, 3])
    noise = 0.5 * _standardised(price.astype(np.float64)) + np.sqrt(0.75) * rng.standard_normal(len(price))
    sigma = config.bid_std
    return config.bid_mean * np.exp(sigma * noise - 0.5 * sigma ** 2)


def _draw_ads_by_interest(rng, interest, users, category, rank, config) -> np.ndarray:
    """One ad per entry of ``users``: category ~ softmax(z_u / tau) over non-empty categories, then an ad
    of that category by popularity."""
    present = np.bincount(category, minlength=K) > 0
    logits = interest / SEQUENCE_TEMPERATURE
    probs = np.exp(logits - logits.max(axis=1, keepdims=True)) * present[None, :]
    cats = rowwise_categorical(rng, probs, users)
    order = np.lexsort((rank, category))  # ads grouped by category
    # Half the popularity exponent: a user's history is more varied than the global traffic.
    weight = 1.0 / (rank[order] + config.popularity_offset) ** (0.5 * config.popularity_exponent)
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    bounds = np.searchsorted(category[order], np.arange(K + 1))  # ads of category k: order[b[k]:b[k+1]]
    lo, hi = cum[bounds[cats]], cum[bounds[cats + 1]]
    pick = np.searchsorted(cum, lo + rng.random(len(users)) * (hi - lo), side="right") - 1
    pick = np.clip(pick, bounds[cats], bounds[cats + 1] - 1)
    return order[pick].astype(np.int64)
