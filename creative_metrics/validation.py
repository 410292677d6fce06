"""Input checks shared by the estimators: one entry per impression, named fields, errors that name the row.

Every check raises ``ValueError`` naming the field, the requirement, the first offending value and its row
*in the whole log*: the array front-ends validate a log in chunks (:data:`DEFAULT_CHUNK_SIZE` rows) and pass
each chunk's first row as ``offset``, so row 57 is reported as row 57 whichever chunk holds it.

* :func:`columns` -- named equal-length, non-empty, numeric 1-D arrays (``None`` entries are skipped).
* :func:`chunks` -- those columns in slices of ``chunk_size`` rows, with each slice's offset.
* :func:`ids`, :func:`binary`, :func:`positive_counts`, :func:`weights`, :func:`finite`,
  :func:`probabilities`, :func:`propensities` -- one field each.
* :func:`reject_first` -- the one "first bad row" error every check above raises.
"""

from __future__ import annotations

from typing import Dict, Iterator, Mapping, Optional, Tuple

import numpy as np

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "as_1d",
    "check_lengths",
    "columns",
    "chunks",
    "reject_first",
    "check_no_nan",
    "ids",
    "binary",
    "positive_counts",
    "weights",
    "finite",
    "probabilities",
    "propensities",
]

# Rows validated and reduced at a time by the array front-ends: bounds the temporaries to O(chunk)
# (~60 MiB at 2**18 rows, and no slower than larger chunks).
DEFAULT_CHUNK_SIZE = 1 << 18


def as_1d(name: str, values) -> np.ndarray:
    """``values`` as a numeric 1-D array (one entry per impression)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (one entry per impression), got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def check_lengths(arrays: Mapping[str, np.ndarray]) -> int:
    """The common length of ``arrays``; raises when two differ or the first is empty."""
    lengths = {name: len(a) for name, a in arrays.items()}
    first_name, n = next(iter(lengths.items()))
    for name, length in lengths.items():
        if length != n:
            raise ValueError(f"length mismatch: {first_name} has {n} entries but {name} has {length}")
    if n == 0:
        raise ValueError(f"{first_name} is empty: need at least one impression")
    return n


def columns(**arrays) -> Tuple[Dict[str, np.ndarray], int]:
    """The given arrays (``None`` skipped) as named 1-D columns of one length, and that length."""
    out = {name: as_1d(name, values) for name, values in arrays.items() if values is not None}
    return out, check_lengths(out)


def chunks(arrays: Mapping[str, np.ndarray], n: int,
           chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[Tuple[int, Dict[str, np.ndarray]]]:
    """``(offset, {name: rows offset .. offset + chunk_size})`` over ``n`` rows."""
    for start in range(0, n, chunk_size):
        yield start, {k: v[start:start + chunk_size] for k, v in arrays.items()}


def reject_first(bad: np.ndarray, name: str, values: np.ndarray, requirement: str, offset: int = 0,
                 where: str = "index") -> None:
    """Raises ``"<name> <requirement>, found <value> at <where> <row>"`` for the first ``bad`` row, if any."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} {requirement}, found {values[i].item()!r} at {where} {offset + i}")


def check_no_nan(name: str, arr: np.ndarray, offset: int = 0) -> None:
    if arr.dtype.kind == "f":
        reject_first(np.isnan(arr), name, arr, "must not be NaN", offset)


def ids(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    """Integer ids as int64; float arrays are accepted when every value is a whole number."""
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64, copy=False)
    check_no_nan(name, arr, offset)
    reject_first(~np.isfinite(arr) | (arr != np.floor(arr)), name, arr, "must hold integer ids", offset)
    return arr.astype(np.int64)


def binary(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    """A {0, 1} label as float64."""
    check_no_nan(name, arr, offset)
    reject_first((arr != 0) & (arr != 1), name, arr, "must be 0 or 1", offset)
    return arr.astype(np.float64)


def positive_counts(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    """Whole counts >= 1 as float64."""
    arr = ids(name, arr, offset)
    reject_first(arr < 1, name, arr, "must be >= 1", offset)
    return arr.astype(np.float64)


def weights(name: str, arr: Optional[np.ndarray], n: int, offset: int = 0) -> np.ndarray:
    """Finite example weights >= 0 as float64; ``None`` means a weight of 1 on each of ``n`` rows."""
    if arr is None:
        return np.ones(n)
    check_no_nan(name, arr, offset)
    reject_first(~np.isfinite(arr) | (arr < 0), name, arr, "must be finite and >= 0", offset)
    return arr.astype(np.float64)


def finite(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    """Finite scores as float64."""
    check_no_nan(name, arr, offset)
    reject_first(~np.isfinite(arr), name, arr, "must be finite", offset)
    return arr.astype(np.float64)


def probabilities(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    """Probabilities in [0, 1] (predicted or true CTRs) as float64."""
    arr = finite(name, arr, offset)
    reject_first((arr < 0) | (arr > 1), name, arr, "must be probabilities in [0, 1]", offset)
    return arr


def propensities(name: str, arr: np.ndarray, offset: int = 0) -> np.ndarray:
    """Logging propensities in (0, 1] as float64: an exposed creative had a positive chance of being shown."""
    arr = finite(name, arr, offset)
    reject_first((arr <= 0) | (arr > 1), name, arr, "must be in (0, 1]", offset)
    return arr
