"""NumPy helpers the simulator's modules share: the logistic function, categorical draws, ragged rows.

A *ragged* table here is the CSR layout used throughout the simulator: a flat array of values and either the
length of every row or the row offsets ``ptr`` (``ptr[0] = 0``, row ``i`` is ``values[ptr[i]:ptr[i + 1]]``).
Every function is vectorised and draws randomness only from the ``rng`` passed in.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """:math:`1 / (1 + e^{-x})`, elementwise."""
    return 1.0 / (1.0 + np.exp(-x))


def categorical(rng: np.random.Generator, probs, size) -> np.ndarray:
    """``size`` int64 codes drawn from one probability vector ``probs`` (normalised here)."""
    probs = np.asarray(probs, np.float64)
    cdf = np.cumsum(probs / probs.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(probs) - 1).astype(np.int64)


def rowwise_categorical(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One int64 code per entry of ``rows``, drawn from ``probs[rows]`` (each row of ``probs`` sums to > 0).

    Offsetting row ``r``'s CDF by ``r`` makes one global, sorted CDF, so a single searchsorted serves all.
    """
    n_rows, width = probs.shape
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    glob = (cdf + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(glob, rows + rng.random(len(rows)) * (1 - 1e-12), side="right")
    return np.clip(idx - rows * width, 0, width - 1).astype(np.int64)


def thresholds(score: np.ndarray, cuts) -> np.ndarray:
    """Code of each score: how many of the increasing ``cuts`` lie below it (int64)."""
    return np.searchsorted(np.asarray(cuts), score).astype(np.int64)


def offsets(lengths: np.ndarray) -> np.ndarray:
    """Row offsets ``ptr`` ``[len(lengths) + 1]`` (int64) of rows with these lengths."""
    ptr = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=ptr[1:])
    return ptr


def ragged_positions(lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """For rows of ``lengths``: (row of every flat entry, position of the entry inside its row)."""
    lengths = np.asarray(lengths, np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(len(rows)) - starts[rows]


def segment_argmax(values: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Position (within its row) of the first maximum of every row of the ragged ``values`` / ``ptr``.

    Every row must be non-empty.
    """
    rows, _ = ragged_positions(np.diff(ptr))
    order = np.lexsort((-np.asarray(values), rows))  # by row, then descending value (stable: first max wins)
    return order[ptr[:-1]] - ptr[:-1]


def bias_for_target(logits: np.ndarray, target: float) -> float:
    """The shift :math:`b` with :math:`\overline{\sigma(b + \text{logits})}` = ``target``, by bisection on [-30, 30]
    (the mean is increasing in :math:`b`)."""
    low, high = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        if sigmoid(mid + logits).mean() < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)
