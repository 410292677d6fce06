"""A small generator of impression logs in the shape of BUILD.md's worked feature spec ("shop_logs"): no
behaviour sequence, no content embedding, two creative attributes, up to 80 candidates, uniform logging, no
truth. Clicks depend on the ad, the user's platform and the creative's layout x the user's age band, so a
trained AR beats chance and a CR that picks layouts well beats the logging policy."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def _int(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in np.ravel(values)]))


def _float(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in np.ravel(values)]))


def write(out_dir: str, impressions: int = 6000, days: int = 3, seed: int = 0) -> None:
    """Writes ``<out_dir>/train/`` (every day but the last) and ``<out_dir>/eval/`` (the last day)."""
    rng = np.random.default_rng(seed)
    num_ads, num_users = 60, 400
    ad_campaign = rng.integers(0, 15, num_ads)
    ad_category = rng.integers(0, 12, num_ads)
    ad_base = rng.normal(-2.2, 0.5, num_ads)
    ad_ctr_7d = 1 / (1 + np.exp(-ad_base))
    pools, next_id = [], 1
    for _ in range(num_ads):
        n = int(rng.integers(1, 81))
        pools.append((np.arange(next_id, next_id + n), rng.integers(0, 3, n), rng.integers(0, 2, n)))
        next_id += n
    user_age = rng.integers(0, 4, num_users)
    user_region = rng.integers(0, 50, num_users)
    user_platform = rng.integers(0, 3, num_users)
    user_segment = rng.integers(0, 1000, num_users)
    writers = {}
    for split in ("train", "eval"):
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        writers[split] = tf.io.TFRecordWriter(os.path.join(out_dir, split, "part-0.tfrecord"))
    for i in range(impressions):
        day = i * days // impressions
        u, a = int(rng.integers(num_users)), int(rng.integers(num_ads))
        ids, layouts, prices = pools[a]
        k = int(rng.integers(len(ids)))  # uniform logging policy
        logit = (ad_base[a] + 0.4 * (user_platform[u] == 0) + 1.4 * (layouts[k] == user_age[u] % 3)
                 + 0.5 * prices[k])
        click = int(rng.random() < 1 / (1 + np.exp(-logit)))
        ex = tf.train.Example(features=tf.train.Features(feature={
            "request_id": _int([i]), "day": _int([day]), "visitor_id": _int([u]), "age_band": _int([user_age[u]]),
            "region": _int([user_region[u]]), "platform": _int([user_platform[u]]),
            "segment_hash": _int([user_segment[u]]), "adgroup_id": _int([a]), "campaign_id": _int([ad_campaign[a]]),
            "shop_category": _int([ad_category[a]]), "ctr_7d": _float([ad_ctr_7d[a]]),
            "creative_id": _int([ids[k]]), "layout": _int([layouts[k]]), "shows_price": _int([prices[k]]),
            "cand_creative_ids": _int(ids), "cand_layouts": _int(layouts), "cand_shows_price": _int(prices),
            "n_candidates": _int([len(ids)]), "propensity": _float([1.0 / len(ids)]), "exposed_index": _int([k]),
            "clicked": _int([click]),
        }))
        writers["eval" if day == days - 1 else "train"].write(ex.SerializeToString())
    for w in writers.values():
        w.close()
