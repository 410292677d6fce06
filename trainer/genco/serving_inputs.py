"""The raw serving contract of the GenCO SavedModel (NumPy only), and valid example requests.

``features.RAW_SIGNATURE`` takes ``features.GENCO_SERVING_INPUTS``, one row per ad:

* ``features.GENCO_USER_FEATURES``: int64 ``[1]`` (one user for the request, broadcast) or ``[B]``;
* ``features.GENCO_AD_FEATURES``: int64 ``[B]``;
* per component: ``genco_<c>_ids`` and ``genco_<c>_styles``, int64 ``[B, W]`` with ``W <=``
  ``features.GENCO_MAX_CANDIDATES``, right-padded with ``features.GENCO_PAD``; a row of pads is a component the
  ad lacks. Ids are >= 0, styles in ``[0, features.GENCO_NUM_STYLES)``.

It returns ``features.GENCO_CHOSEN_INDEX`` / ``GENCO_CHOSEN_ID`` per component (int64 ``[B]``, -1 where the ad
lacks the component) and ``features.GENCO_SCORE`` (float32 ``[B]``). The SavedModel checks the contract itself
(``INVALID_ARGUMENT`` naming the input); :func:`example_request` builds valid requests for warm-up records,
tests and benchmarks.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

import features as F

N = F.GENCO_MAX_CANDIDATES


def pad_pools(pools: Sequence[Sequence[int]], width: int = N) -> np.ndarray:
    """Lists of ids (or styles) -> int64 ``[B, width]`` right-padded with ``features.GENCO_PAD``."""
    out = np.full((len(pools), width), F.GENCO_PAD, np.int64)
    for i, pool in enumerate(pools):
        out[i, :len(pool)] = pool
    return out


def example_request(batch_size: int, seed: int = 0, user_batch_size: int = 1, width: int = N,
                    pool_sizes: Optional[Dict[str, int]] = None) -> Dict[str, np.ndarray]:
    """A valid random raw request of ``batch_size`` ads.

    Each ad has each component with probability 0.8 (the first always), with 1 to ``width`` candidates, unless
    ``pool_sizes`` fixes the size per component (0: no ad has it).
    """
    rng = np.random.default_rng(seed)
    out: Dict[str, np.ndarray] = {
        F.USER_ID: rng.integers(1, 10_000, user_batch_size),
        F.USER_GENDER: rng.integers(0, len(F.GENDERS), user_batch_size),
        F.USER_AGE_BUCKET: rng.integers(0, len(F.AGE_BUCKETS), user_batch_size),
        F.AD_ID: rng.integers(1, 100_000, batch_size),
        F.AD_CATEGORY: rng.integers(0, F.NUM_AD_CATEGORIES, batch_size),
    }
    for j, c in enumerate(F.GENCO_COMPONENTS):
        if pool_sizes is not None:
            sizes = np.full(batch_size, pool_sizes[c])
        else:
            sizes = np.where((rng.random(batch_size) < 0.8) | (j == 0), rng.integers(1, width + 1, batch_size), 0)
        ids = rng.integers(1, 1_000_000, (batch_size, width))
        styles = rng.integers(0, F.GENCO_NUM_STYLES, (batch_size, width))
        pad = np.arange(width)[None, :] >= sizes[:, None]
        out[F.GENCO_CAND_IDS[c]] = np.where(pad, F.GENCO_PAD, ids).astype(np.int64)
        out[F.GENCO_CAND_STYLES[c]] = np.where(pad, F.GENCO_PAD, styles).astype(np.int64)
    return {k: v.astype(np.int64) for k, v in out.items()}
