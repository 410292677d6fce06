"""Router requests for demos, tests and the benchmark: random ones, drawn from a simulated world, or rebuilt
from logged impressions.

:func:`random_request` draws every feature from its ``features`` domain. :func:`requests_from_world` draws
requests as the simulator's traffic does (a user by activity, M candidate ads by popularity, each ad's
creatives active that day, their bids) and returns each beside its ground truth, which the router never sees.
:func:`requests_from_tfrecords` groups logged impressions (``tf.Example`` TFRecords, e.g. the eval split)
by ``request_id`` and then by ``ad_id``; each ad's candidate creatives come from its ``cand_*`` lists.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

import features as F
from serving.router import request as R


def _int(rng: np.random.Generator, name: str, high_if_open: int) -> int:
    return int(rng.integers(0, F.BY_NAME[name].domain or high_if_open))


def random_request(num_ads: int = 20, num_creatives: int = 5, *, seed: int = 0, seq_len: int = 20,
                   slots: Optional[int] = None, mode: Optional[str] = None, hist_ctr: bool = False,
                   request_id: Any = None) -> Dict[str, Any]:
    """A valid router request with ``num_ads`` ads of ``num_creatives`` creatives each.

    Ad ids are distinct (``1000 * k + random``); creative ids are distinct within an ad. Embedding
    values are rounded to 4 decimals (compact JSON). ``hist_ctr`` adds each creative's historical CTR.
    """
    rng = np.random.default_rng(seed)
    user = {n: _int(rng, n, 100_000) for n in F.USER_FEATURES}
    seq_ids = rng.integers(0, 1000 * num_ads + 1000, size=seq_len)
    sequence = {F.SEQ_AD_IDS: seq_ids.tolist(),
                F.SEQ_AD_CATEGORIES: rng.integers(0, F.NUM_AD_CATEGORIES, size=seq_len).tolist()}
    ads = []
    for k in range(num_ads):
        ad = {n: _int(rng, n, 5_000) for n in F.AD_FEATURES}
        ad[F.AD_ID] = 1000 * k + int(rng.integers(0, 1000))
        ad[F.AD_HIST_CTR] = round(float(rng.uniform(0.002, 0.08)), 5)
        ad[F.AD_HIST_IMPS] = int(rng.integers(0, 100_000))
        creatives = []
        for j in range(num_creatives):
            c = {n: _int(rng, n, 1) for n in F.CREATIVE_ATTRIBUTES}
            c[F.CREATIVE_ID] = ad[F.AD_ID] * 100 + j
            c[F.CREATIVE_EMBEDDING] = np.round(rng.normal(size=F.CREATIVE_EMBEDDING_DIM), 4).tolist()
            if hist_ctr:
                c[R.HIST_CTR] = round(float(rng.uniform(0.002, 0.08)), 5)
            creatives.append(c)
        ad[R.CREATIVES] = creatives
        ads.append(ad)
    out: Dict[str, Any] = {R.USER: user, R.SEQUENCE: sequence, R.ADS: ads}
    if slots is not None:
        out[R.SLOTS] = slots
    if mode is not None:
        out[R.MODE] = mode
    if request_id is not None:
        out[R.REQUEST_ID] = request_id
    return out


@dataclasses.dataclass
class SimulatedRequest:
    """A router request drawn from a simulated world, and the truth kept beside it (never sent).

    Attributes:
      request: the router request in column form (:func:`serving.router.request.to_column_form`).
      true_ctr: [T, L] float64: the true click probability of creative ``t`` (column order of
        ``request["creatives"]``) shown in page position ``l`` (0 = top) — :meth:`World.true_ctr`.
      offsets: [M + 1]; ad ``i``'s creatives are rows ``offsets[i]:offsets[i + 1]``.
    """

    request: Dict[str, Any]
    true_ctr: np.ndarray
    offsets: np.ndarray

    def shown_truth(self, shown_ads: List[Mapping[str, Any]]) -> Dict[str, float]:
        """True CTR of what a response shows, next to what a random or the best creative would get.

        ``shown_ads``: a response's ``ads`` (each with ``ad_id`` and ``creative_id``), in page order: the
        ``l``-th is shown in position ``l``. Returns the mean over those ads of the true CTR of the shown
        creative (``shown``), of a uniformly random creative of the same ad (``random``, its expectation)
        and of the ad's best creative (``best``).
        """
        ad_row = {int(a): i for i, a in enumerate(self.request[R.ADS][F.AD_ID])}
        creative_ids = np.asarray(self.request[R.CREATIVES][F.CREATIVE_ID])
        shown, random, best = [], [], []
        for position, ad in enumerate(shown_ads):
            i = ad_row[int(ad[F.AD_ID])]
            rows = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
            ctr = self.true_ctr[rows, position]
            shown.append(ctr[int(np.flatnonzero(creative_ids[rows] == int(ad[F.CREATIVE_ID]))[0])])
            random.append(ctr.mean())
            best.append(ctr.max())
        return {"shown": float(np.mean(shown)), "random": float(np.mean(random)), "best": float(np.mean(best))}


def requests_from_world(world, num_requests: int, *, seed: int = 0, day: Optional[int] = None,
                        slots: Optional[int] = None, request_id_prefix: str = "sim") -> List[SimulatedRequest]:
    """Router requests as the simulator's traffic draws them, each with its ground truth beside it.

    ``world``: a :class:`simulator.World` (``simulator.load_world("<data_dir>/world.npz")``). Each request
    has a user drawn by activity, the world's M (``ads_per_request``) distinct candidate ads drawn by
    popularity with their bids, and every creative active on ``day`` (default: the last logged day, the
    evaluation day) for each ad; the behaviour sequence and ad history are the world's saved state
    (:mod:`simulator.live`). Ids are index + 1, as in the logs. ``slots``: the ``slots`` field (at most the
    world's page positions; default: the world's L).
    """
    from simulator import live

    positions = world.config.slots
    slots = positions if slots is None else slots
    if not 1 <= slots <= positions:
        raise ValueError(f"slots: the world models {positions} page positions, got {slots}")
    day = world.config.num_days - 1 if day is None else day
    batch = live.draw_requests(world, day, np.random.default_rng([seed, 7]), num_requests)
    return [SimulatedRequest(batch.request(r, f"{request_id_prefix}-{r + 1}", slots), batch.true_ctr_table(r),
                             np.concatenate([[0], np.cumsum(batch.counts(r))]))
            for r in range(num_requests)]


def _tfrecord_files(path: str) -> List[str]:
    if os.path.isfile(path):
        return [path]
    files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                   if os.path.isfile(f) and not os.path.basename(f).startswith(".")
                   and ("tfrecord" in os.path.basename(f) or f.endswith(".gz")))
    if not files:
        raise FileNotFoundError(f"no TFRecord files (*tfrecord*, *.gz) under {path}")
    return files


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def requests_from_tfrecords(path: str, max_requests: int = 3, max_records: int = 20000,
                            slots: Optional[int] = None) -> List[Dict[str, Any]]:
    """Rebuilds router requests from logged impressions under ``path`` (a file or a directory).

    Reads at most ``max_records`` impressions, groups them by ``request_id`` then ``ad_id``, and returns
    the ``max_requests`` requests with the most distinct ads (ties: first seen).
    """
    import tensorflow as tf

    names = (F.REQUEST_ID,) + F.USER_FEATURES + F.SEQUENCE_FEATURES + F.AD_FEATURES + \
        F.AD_HISTORY_FEATURES + tuple(F.CANDIDATE_OF.values())
    spec = F.raw_feature_spec(names)
    grouped: Dict[int, Dict[int, Dict[str, Any]]] = collections.OrderedDict()
    users: Dict[int, Dict[str, Any]] = {}
    seen = 0
    for f in _tfrecord_files(path):
        ds = tf.data.TFRecordDataset(f, compression_type="GZIP" if _is_gzip(f) else "")
        for record in ds.batch(256):
            parsed = tf.io.parse_example(record, spec)
            dense = {k: (tf.sparse.to_dense(v).numpy(), tf.sparse.to_dense(
                tf.sparse.map_values(tf.ones_like, v)).numpy() > 0) if isinstance(v, tf.SparseTensor)
                else (v.numpy(), None) for k, v in parsed.items()}
            rows = dense[F.REQUEST_ID][0].shape[0]
            for i in range(rows):
                def val(n, i=i):
                    arr, mask = dense[n]
                    return arr[i] if mask is None else arr[i][mask[i]]

                rid = int(val(F.REQUEST_ID))
                ad_id = int(val(F.AD_ID))
                if rid not in users:
                    users[rid] = {
                        R.USER: {n: int(val(n)) for n in F.USER_FEATURES},
                        R.SEQUENCE: {n: val(n).astype(np.int64).tolist() for n in F.SEQUENCE_FEATURES},
                    }
                ads = grouped.setdefault(rid, collections.OrderedDict())
                if ad_id not in ads:
                    ad = {n: int(val(n)) for n in F.AD_FEATURES}
                    ad[F.AD_HIST_CTR] = float(val(F.AD_HIST_CTR))
                    ad[F.AD_HIST_IMPS] = int(val(F.AD_HIST_IMPS))
                    ad[R.CREATIVES] = _candidates(val)
                    if ad[R.CREATIVES]:
                        ads[ad_id] = ad
                seen += 1
                if seen >= max_records:
                    break
            if seen >= max_records:
                break
        if seen >= max_records:
            break
    ranked = sorted((rid for rid in grouped if grouped[rid]), key=lambda r: -len(grouped[r]))
    out = []
    for rid in ranked[:max_requests]:
        req = dict(users[rid])
        req[R.ADS] = list(grouped[rid].values())
        req[R.REQUEST_ID] = rid
        if slots is not None:
            req[R.SLOTS] = slots
        out.append(req)
    return out


def _candidates(val) -> List[Dict[str, Any]]:
    ids = val(F.CAND_CREATIVE_IDS).astype(np.int64)
    emb = val(F.CAND_EMBEDDINGS).astype(np.float64)
    n = len(ids)
    if emb.size != n * F.CREATIVE_EMBEDDING_DIM:
        return []
    emb = emb.reshape(n, F.CREATIVE_EMBEDDING_DIM)
    columns = {name: val(F.CANDIDATE_OF[name]).astype(np.int64) for name in F.CREATIVE_ATTRIBUTES}
    out, seen = [], set()
    for k in range(n):
        if int(ids[k]) in seen:
            continue
        seen.add(int(ids[k]))
        c = {F.CREATIVE_ID: int(ids[k])}
        c.update({name: int(columns[name][k]) for name in F.CREATIVE_ATTRIBUTES})
        c[F.CREATIVE_EMBEDDING] = [round(float(v), 6) for v in emb[k]]
        out.append(c)
    return out
