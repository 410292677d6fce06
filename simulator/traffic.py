r"""Logged traffic: requests, the logging ad ranker, the logging creative policy and the clicks.

One request: a user (drawn by activity), :math:`M` distinct candidate ads (Zipf-like popularity), a
logging ad ranker that shows the top :math:`L` by a noisy log-eCPM (for CTRs of a few percent
:math:`\log(p\, b) \approx \mathrm{logit}\, p + \log b`, and the user's terms are common to the row)

.. math::
    \mathrm{score}_a = q_a + \alpha\, z_u[k_a] + \overline{(q_c + H[k_a, s_c])}_{c \in a} + \log b_a
        + \mathcal{N}(0, \sigma_r^2),

and, for each shown ad with :math:`N` active creatives, a logged creative from the logging policy:

* ``uniform``: :math:`\mu(c) = 1/N`;
* ``epsilon_greedy``: greedy on the production estimate :math:`\hat q_c = q_c + \mathcal{N}(0, \sigma_e^2)`
  (fixed per creative) with probability :math:`1-\epsilon`, uniform otherwise, so
  :math:`\mu(c^\ast) = 1 - \epsilon + \epsilon/N` and :math:`\mu(c) = \epsilon/N` for the others.

Everything is vectorised over a chunk of requests; randomness comes only from the ``rng`` passed in.

The global bias :math:`b` of the click model is calibrated here too (:func:`calibrate_bias`): it is the one
parameter of the world fixed by the traffic, so that the *logged* CTR, after this ranker and policy, hits
the target.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

import features as F
from simulator.arrays import bias_for_target, offsets, ragged_positions, segment_argmax, sigmoid
from simulator.config import EPSILON_GREEDY
from simulator.world import USER_ATTRIBUTES, DayView, World

# A column: (flat values, per-row lengths or None for one value per row).
Column = Tuple[np.ndarray, Optional[np.ndarray]]

_MAX_REDRAWS = 32


def draw_users(world: World, rng: np.random.Generator, num_requests: int) -> np.ndarray:
    """[num_requests] user indices, drawn by traffic share (more active users request more often)."""
    cdf = world.user_traffic_cdf
    return np.minimum(np.searchsorted(cdf, rng.random(num_requests), side="right"), len(cdf) - 1)


def draw_candidate_ads(world: World, rng: np.random.Generator, num_requests: int) -> np.ndarray:
    """[num_requests, M] distinct ad indices per row (sorted), drawn by popularity (duplicates are redrawn).

    ``M`` is ``world.config.ads_per_request``; the logging ad ranker then shows the top ``L`` of each row.
    """
    cdf = world.ad_popularity_cdf
    m = world.config.ads_per_request

    def draw(size):
        return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)

    ads = np.sort(draw((num_requests, m)), axis=1)
    for _ in range(_MAX_REDRAWS):
        dup = np.zeros(ads.shape, bool)
        dup[:, 1:] = ads[:, 1:] == ads[:, :-1]
        n_dup = int(dup.sum())
        if n_dup == 0:
            return ads
        ads[dup] = draw(n_dup)
        ads.sort(axis=1)
    # Very popular heads can still collide: fall back to exact sampling without replacement per row.
    dup = np.zeros(ads.shape, bool)
    dup[:, 1:] = ads[:, 1:] == ads[:, :-1]
    pdf = np.diff(np.concatenate([[0.0], cdf]))
    for row in np.flatnonzero(dup.any(axis=1)):
        ads[row] = np.sort(rng.choice(len(cdf), m, replace=False, p=pdf))
    return ads


@dataclasses.dataclass
class ImpressionBatch:
    """Impressions of a chunk of requests, with their candidate lists (CSR by impression)."""

    request: np.ndarray  # [n] request index within the chunk
    user: np.ndarray  # [n]
    ad: np.ndarray  # [n]
    slot: np.ndarray  # [n] page slot (rank among the shown ads)
    num_candidates: np.ndarray  # [n]
    cand_ptr: np.ndarray  # [n + 1]
    cand_creative: np.ndarray  # [total] creative index
    cand_logit: np.ndarray  # [total] true logit of each candidate
    exposed_index: np.ndarray  # [n]
    propensity: np.ndarray  # [n]
    greedy_index: Optional[np.ndarray]  # [n] the greedy candidate (epsilon-greedy only)

    @property
    def exposed_logit(self) -> np.ndarray:
        return self.cand_logit[self.cand_ptr[:-1] + self.exposed_index]

    @property
    def exposed_creative(self) -> np.ndarray:
        return self.cand_creative[self.cand_ptr[:-1] + self.exposed_index]


def draw_impressions(world: World, view: DayView, rng: np.random.Generator, num_requests: int,
                     max_impressions: Optional[int] = None) -> ImpressionBatch:
    """Requests -> ranked, shown ads -> candidate lists -> logged creatives (clicks are drawn later)."""
    cfg = world.config
    m, num_slots = cfg.ads_per_request, cfg.slots
    users = draw_users(world, rng, num_requests)
    ads = draw_candidate_ads(world, rng, num_requests)

    # The logging ad ranker: noisy log-eCPM (true ad-level logit + log bid); the user's propensity is
    # common to the row.
    score = (world.ad_quality[ads]
             + cfg.interest_scale * world.user_interest[users[:, None], world.ad_category[ads]]
             + view.ad_creative_mean[ads] + np.log(world.ad_bid[ads])
             + rng.normal(0.0, cfg.ranker_noise, (num_requests, m)))
    top = np.argsort(-score, axis=1, kind="stable")[:, :num_slots]
    shown = np.take_along_axis(ads, top, axis=1)

    n = num_requests * num_slots if max_impressions is None else min(max_impressions, num_requests * num_slots)
    request = np.repeat(np.arange(num_requests), num_slots)[:n]
    user = users[request]
    ad = shown.ravel()[:n]
    slot = np.tile(np.arange(num_slots), num_requests)[:n]

    count = view.count[ad]
    ptr = offsets(count)
    rows, pos = ragged_positions(count)
    cand = view.creatives[view.ptr[ad][rows] + pos]
    logit = world.impression_logit(user, ad, slot)[rows] + world.creative_logit(user[rows], ad[rows], cand)

    uniform_pick = np.minimum((rng.random(n) * count).astype(np.int64), count - 1)
    greedy = None
    if cfg.logging_policy == EPSILON_GREEDY:
        eps = cfg.epsilon
        greedy = segment_argmax(world.creative_estimate[cand], ptr)
        explore = rng.random(n) < eps
        exposed = np.where(explore, uniform_pick, greedy)
        propensity = np.where(exposed == greedy, 1.0 - eps + eps / count, eps / count)
    else:
        exposed = uniform_pick
        propensity = 1.0 / count
    return ImpressionBatch(request, user, ad, slot, count, ptr, cand, logit, exposed,
                           propensity.astype(np.float32), greedy)


def to_columns(world: World, view: DayView, batch: ImpressionBatch, clicks: np.ndarray,
               first_request_id: int) -> Dict[str, Column]:
    """The impression log columns of ``batch``, keyed by feature name (every name of features.FEATURES)."""
    n = len(batch.user)
    user, ad = batch.user, batch.ad
    cand = batch.cand_creative
    exposed = batch.exposed_creative
    count = batch.num_candidates
    cand_ctr = sigmoid(batch.cand_logit)
    seq_ads, seq_len = world.sequences(user)

    cols: Dict[str, Column] = {
        F.REQUEST_ID: (batch.request + first_request_id, None),
        F.DAY: (np.full(n, view.day, np.int64), None),
        F.SLOT: (batch.slot, None),
        F.USER_ID: (user + 1, None),
    }
    for name in USER_ATTRIBUTES:
        cols[name] = (world.user_attrs[name][user], None)
    cols.update({
        F.AD_ID: (ad + 1, None),
        F.AD_ADVERTISER_ID: (world.ad_advertiser[ad], None),
        F.AD_CATEGORY: (world.ad_category[ad], None),
        F.AD_BRAND_ID: (world.ad_brand[ad], None),
        F.AD_PRICE_BUCKET: (world.ad_price[ad], None),
        F.AD_HIST_CTR: (view.hist_ctr[ad], None),
        F.AD_HIST_IMPS: (view.hist_imps[ad], None),
        F.SEQ_AD_IDS: (seq_ads + 1, seq_len),
        F.SEQ_AD_CATEGORIES: (world.ad_category[seq_ads], seq_len),
        F.CREATIVE_ID: (exposed + 1, None),
        F.CREATIVE_STYLE: (world.creative_style[exposed], None),
        F.CREATIVE_COLOR_TONE: (world.creative_tone[exposed], None),
        F.CREATIVE_PRICE_TAG: (world.creative_price_tag[exposed], None),
        F.CREATIVE_TEXT_LENGTH: (world.creative_text_length[exposed], None),
        F.CREATIVE_EMBEDDING: (world.creative_embedding[exposed].ravel(), np.full(n, F.CREATIVE_EMBEDDING_DIM)),
        F.CAND_CREATIVE_IDS: (cand + 1, count),
        F.CAND_STYLES: (world.creative_style[cand], count),
        F.CAND_COLOR_TONES: (world.creative_tone[cand], count),
        F.CAND_PRICE_TAGS: (world.creative_price_tag[cand], count),
        F.CAND_TEXT_LENGTHS: (world.creative_text_length[cand], count),
        F.CAND_EMBEDDINGS: (world.creative_embedding[cand].ravel(), count * F.CREATIVE_EMBEDDING_DIM),
        F.NUM_CANDIDATES: (count, None),
        F.PROPENSITY: (batch.propensity, None),
        F.EXPOSED_INDEX: (batch.exposed_index, None),
        F.AD_BID: (world.ad_bid[ad].astype(np.float32), None),
        F.CLICK: (clicks.astype(np.int64), None),
        F.TRUTH_CTR: (cand_ctr[batch.cand_ptr[:-1] + batch.exposed_index].astype(np.float32), None),
        F.TRUTH_CAND_CTRS: (cand_ctr.astype(np.float32), count),
    })
    missing = set(F.BY_NAME) - set(cols)
    assert not missing, missing
    return cols


def calibrate_bias(world: World) -> float:
    """Solves :math:`\\bar p(b) = ` ``target_ctr`` over simulated logged traffic, by bisection.

    The ad ranker and the logging policies do not depend on :math:`b` (it shifts every logit equally), so
    the logged impressions are fixed and :math:`\\bar p(b)` is monotone in :math:`b`. The traffic is
    ``calibration_impressions`` impressions of day 0 from its own random stream (``[seed, 1]``); ``world``
    is left as it was.
    """
    saved, world.bias = world.bias, 0.0
    try:
        rng = np.random.default_rng([world.config.seed, 1])
        batch = draw_impressions(world, world.day_view(0), rng,
                                 -(-world.config.calibration_impressions // world.config.slots))
        logits = batch.exposed_logit
    finally:
        world.bias = saved
    return bias_for_target(logits, world.config.target_ctr)
