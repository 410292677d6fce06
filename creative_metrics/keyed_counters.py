"""Per-key float sums for int64 keys of any width, in memory that grows with distinct keys (NumPy only).

The replay estimators keep six sums per ad and GAUC two per (user, prediction bucket); both fold chunks of
rows into a :class:`KeyedCounters` table, merge tables across Beam workers and pickle them compactly.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["KeyedCounters"]


def _unique_rows(keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted unique rows of an ``[n, k]`` int64 array and the inverse index of every row."""
    if keys.shape[1] == 1:
        uniq, inverse = np.unique(keys[:, 0], return_inverse=True)
        return uniq[:, None], inverse.reshape(-1)
    order = np.lexsort(keys.T[::-1])  # lexsort's last key is primary: sort by column 0, then 1, ...
    ordered = keys[order]
    is_new = np.empty(len(ordered), dtype=bool)
    is_new[:1] = True
    np.any(ordered[1:] != ordered[:-1], axis=1, out=is_new[1:])
    inverse = np.empty(len(ordered), dtype=np.intp)
    inverse[order] = np.cumsum(is_new) - 1
    return ordered[is_new], inverse


def _reduce(keys: np.ndarray, values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    uniq, inverse = _unique_rows(keys)
    sums = np.empty((len(uniq), values.shape[1]))
    for c in range(values.shape[1]):
        sums[:, c] = np.bincount(inverse, weights=values[:, c], minlength=len(uniq))
    return uniq, sums


class KeyedCounters:
    """Per-key sums of a few float64 columns, for keys that are tuples of ``key_width`` int64 values.

    Keys are arbitrary int64 (no dense-id assumption). Each :meth:`add` reduces its rows to one row
    per distinct key (``np.unique`` + ``np.bincount``) and queues the result; queued rows are folded
    into the sorted table once they outnumber it, so the work is amortised O(n log n) and memory is
    O(distinct keys x columns) whatever the number of rows added.

    Args:
      num_columns: number of summed columns.
      key_width: number of int64 values in a key.
    """

    def __init__(self, num_columns: int, key_width: int = 1):
        self.num_columns = num_columns
        self.key_width = key_width
        self._keys = np.empty((0, key_width), dtype=np.int64)
        self._sums = np.empty((0, num_columns))
        self._pending = []
        self._pending_rows = 0

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Adds ``values[i]`` (shape ``[n, num_columns]``) to the counters of ``keys[i]``."""
        keys = np.asarray(keys, dtype=np.int64).reshape(len(values), self.key_width)
        if len(keys) == 0:
            return
        uniq, sums = _reduce(keys, np.asarray(values, dtype=np.float64))
        self._pending.append((uniq, sums))
        self._pending_rows += len(uniq)
        if self._pending_rows > max(len(self._keys), 1 << 16):
            self._consolidate()

    def merge(self, other: "KeyedCounters") -> None:
        """Adds every counter of ``other`` into this one."""
        if (other.num_columns, other.key_width) != (self.num_columns, self.key_width):
            raise ValueError("cannot merge KeyedCounters of different shapes")
        other._consolidate()
        if len(other._keys):
            self._pending.append((other._keys, other._sums))
            self._pending_rows += len(other._keys)
            self._consolidate()

    def _consolidate(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys] + [k for k, _ in self._pending])
        sums = np.concatenate([self._sums] + [s for _, s in self._pending])
        self._keys, self._sums = _reduce(keys, sums)
        self._pending, self._pending_rows = [], 0

    def table(self) -> Tuple[np.ndarray, np.ndarray]:
        """Returns ``(keys [K, key_width], sums [K, num_columns])``, keys sorted lexicographically."""
        self._consolidate()
        return self._keys, self._sums

    def __len__(self) -> int:
        return len(self.table()[0])

    def __getstate__(self):  # ship the compact table between Beam workers
        self._consolidate()
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)
