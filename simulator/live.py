r"""Live traffic: the world as a serving system meets it — requests, their truth, and the log of what was shown.

A day of live traffic is drawn at once, vectorised (:func:`draw_requests`): per request a user (by activity),
the world's :math:`M` candidate ads (by popularity), every creative of each ad active that day, and each
ad's bid, history and the user's behaviour sequence from the world's current state. :class:`LiveRequests`
then gives, per request,

* :meth:`~LiveRequests.request` — the column-form router request (:mod:`serving.router.request`): what a
  ranker sees, never the truth;
* :meth:`~LiveRequests.true_ctr` — the true click probability of any of its creatives in any page position
  (:meth:`simulator.world.World.true_ctr`, from the logit parts kept per request and per creative);
* :meth:`~LiveRequests.impressions` — the impressions a ranker's choice makes, in the simulator's own
  :class:`~simulator.traffic.ImpressionBatch`, so :func:`simulator.traffic.to_columns` and the TFRecord
  encoder write them in the training format, with the serving policy's propensity.

``serving.sample_requests.requests_from_world`` (the demo's requests) and the online experiments
(``experiments``) both draw from here; :meth:`World.end_day` folds a day's shown impressions back in.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Sequence

import numpy as np

import features as F
from simulator import traffic
from simulator.arrays import offsets, ragged_positions, sigmoid
from simulator.world import USER_ATTRIBUTES, DayView, World

# Router request fields (serving.router.request spells the same names; the simulator imports no serving).
USER, SEQUENCE, ADS, CREATIVES, SLOTS, REQUEST_ID, NUM_CREATIVES = (
    "user", "sequence", "ads", "creatives", "slots", "request_id", "num_creatives")


@dataclasses.dataclass
class LiveRequests:
    """``n`` requests of one day, columnar; request ``r``'s ad ``j`` is pair ``r * M + j``.

    Attributes:
      world, view: the world and its day (active creatives, ad history through the previous day).
      users: [n] user indices.
      ads: [n, M] candidate ad indices (sorted within a request).
      ptr: [n * M + 1] offsets of each (request, ad) pair's creatives in ``creatives``.
      creatives: creative indices, pairs in order, each ad's in track order (the logged candidate order).
      base_logit: [n, M] the creative- and position-independent logit (bias, user, ad, interest).
      creative_logit: per entry of ``creatives``, its creative-dependent logit for the request's user.
    """

    world: World
    view: DayView
    users: np.ndarray
    ads: np.ndarray
    ptr: np.ndarray
    creatives: np.ndarray
    base_logit: np.ndarray
    creative_logit: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    @property
    def ads_per_request(self) -> int:
        return self.ads.shape[1]

    def creative_rows(self, r: int) -> slice:
        """Request ``r``'s creatives as a slice of ``creatives`` (its ads' in ad order)."""
        m = self.ads_per_request
        return slice(int(self.ptr[r * m]), int(self.ptr[(r + 1) * m]))

    def counts(self, r: int) -> np.ndarray:
        """[M] creatives of each of request ``r``'s ads."""
        m = self.ads_per_request
        return np.diff(self.ptr[r * m:(r + 1) * m + 1])

    # ---------------------------------------------------------------------------------------- request
    def request(self, r: int, request_id: Any = None, slots: int = None) -> Dict[str, Any]:
        """Request ``r`` as a column-form router request of plain JSON values (bids included)."""
        w, view = self.world, self.view
        u, ads = int(self.users[r]), self.ads[r]
        creatives = self.creatives[self.creative_rows(r)]
        seq, _ = w.sequences(np.array([u]))
        out = {
            USER: {F.USER_ID: u + 1, **{n: int(w.user_attrs[n][u]) for n in USER_ATTRIBUTES}},
            SEQUENCE: {F.SEQ_AD_IDS: (seq + 1).tolist(), F.SEQ_AD_CATEGORIES: w.ad_category[seq].tolist()},
            ADS: {F.AD_ID: (ads + 1).tolist(),
                  F.AD_ADVERTISER_ID: w.ad_advertiser[ads].tolist(),  # stored as ids already
                  F.AD_CATEGORY: w.ad_category[ads].tolist(),
                  F.AD_BRAND_ID: w.ad_brand[ads].tolist(),
                  F.AD_PRICE_BUCKET: w.ad_price[ads].tolist(),
                  F.AD_HIST_CTR: np.round(view.hist_ctr[ads].astype(np.float64), 6).tolist(),
                  F.AD_HIST_IMPS: view.hist_imps[ads].tolist(),
                  F.AD_BID: np.round(w.ad_bid[ads], 6).tolist(),
                  NUM_CREATIVES: self.counts(r).tolist()},
            CREATIVES: {F.CREATIVE_ID: (creatives + 1).tolist(),
                        F.CREATIVE_STYLE: w.creative_style[creatives].tolist(),
                        F.CREATIVE_COLOR_TONE: w.creative_tone[creatives].tolist(),
                        F.CREATIVE_PRICE_TAG: w.creative_price_tag[creatives].tolist(),
                        F.CREATIVE_TEXT_LENGTH: w.creative_text_length[creatives].tolist(),
                        F.CREATIVE_EMBEDDING: np.round(w.creative_embedding[creatives], 6).tolist()},
            SLOTS: w.config.slots if slots is None else slots,
        }
        if request_id is not None:
            out[REQUEST_ID] = request_id
        return out

    # ------------------------------------------------------------------------------------------ truth
    def true_ctr(self, requests, ad_index, creative_index, slot) -> np.ndarray:
        """True CTR of request ``requests[k]``'s ad ``ad_index[k]`` (0..M-1) showing its candidate
        ``creative_index[k]`` (0..N-1, track order) in page slot ``slot[k]``."""
        requests, ad_index, creative_index, slot = (np.asarray(x, np.int64)
                                                    for x in (requests, ad_index, creative_index, slot))
        rows = self.ptr[requests * self.ads_per_request + ad_index] + creative_index
        return sigmoid(self.base_logit[requests, ad_index] + self.world.position[slot] + self.creative_logit[rows])

    def true_ctr_table(self, r: int) -> np.ndarray:
        """[T, L]: the true CTR of each of request ``r``'s creatives in each page position."""
        rows = self.creative_rows(r)
        pair = np.repeat(np.arange(self.ads_per_request), self.counts(r))
        return sigmoid(self.base_logit[r, pair][:, None] + self.world.position[None, :]
                       + self.creative_logit[rows][:, None])

    # -------------------------------------------------------------------------------------------- log
    def impressions(self, requests: Sequence[int], ad_index, creative_index, slot,
                    propensity) -> traffic.ImpressionBatch:
        """The impressions of request ``requests[k]``'s ad ``ad_index[k]`` shown with its candidate
        ``creative_index[k]`` in page ``slot[k]``; ``propensity[k]``: the serving policy's probability of that
        creative (1 for a deterministic top-1, ``1/N`` for a uniformly random one)."""
        requests, ad_index, creative_index, slot = (np.asarray(x, np.int64)
                                                    for x in (requests, ad_index, creative_index, slot))
        pair = requests * self.ads_per_request + ad_index
        count = np.diff(self.ptr)[pair]
        rows, pos = ragged_positions(count)
        cand_rows = self.ptr[pair][rows] + pos
        cand_logit = (self.base_logit[requests, ad_index] + self.world.position[slot])[rows] \
            + self.creative_logit[cand_rows]
        return traffic.ImpressionBatch(
            request=requests, user=self.users[requests], ad=self.ads[requests, ad_index], slot=slot,
            num_candidates=count, cand_ptr=offsets(count), cand_creative=self.creatives[cand_rows],
            cand_logit=cand_logit, exposed_index=creative_index,
            propensity=np.asarray(propensity, np.float32), greedy_index=None)


def draw_requests(world: World, day: int, rng: np.random.Generator, num_requests: int) -> LiveRequests:
    """``num_requests`` requests of ``day`` from the world's current state (users first, then candidate ads,
    from ``rng``: the same draws as the logged traffic's)."""
    if not 0 <= day < world.num_days:
        raise ValueError(f"day: must be in [0, {world.num_days}), got {day}")
    view = world.day_view(day)
    users = traffic.draw_users(world, rng, num_requests)
    ads = traffic.draw_candidate_ads(world, rng, num_requests)
    flat_ads = ads.ravel()
    count = view.count[flat_ads]
    ptr = offsets(count)
    pair, pos = ragged_positions(count)
    creatives = view.creatives[view.ptr[flat_ads][pair] + pos]
    m = ads.shape[1]
    pair_user = np.repeat(users, m)
    base = world.impression_logit(pair_user, flat_ads, np.zeros(len(flat_ads), np.int64)) - world.position[0]
    creative_logit = world.creative_logit(pair_user[pair], flat_ads[pair], creatives)
    return LiveRequests(world, view, users, ads, ptr, creatives, base.reshape(ads.shape), creative_logit)
