"""The candidate-count buckets every slice by number of candidate creatives uses (one definition).

Gu et al., 2025 (GenCO), Table 4 report ads by the size of their candidate pool: fewer than 4, 4 to 8 and
more than 8 candidate creatives. The Evaluator's SQL slice (:func:`slice_sql`, column
:data:`NUM_CANDIDATES_BUCKET`) and the report's pooling of per-count slices (:func:`bucket_label`) both
read :data:`BUCKETS`, so the two always print the same labels for the same counts.
"""

from __future__ import annotations

from typing import Optional, Tuple

import features as F

__all__ = ["NUM_CANDIDATES_BUCKET", "BUCKETS", "LABELS", "SMALL_POOL_BUCKETS", "COMPONENT_BUCKETS", "bucket_label",
           "label_order", "slice_sql"]

# The slice column the SQL slice emits.
NUM_CANDIDATES_BUCKET = "num_candidates_bucket"

# (lowest count, highest count, label); bounds inclusive, None = open. Contiguous, in increasing order.
BUCKETS: Tuple[Tuple[Optional[int], Optional[int], str], ...] = (
    (None, 3, "<4"), (4, 8, "4-8"), (9, None, ">8"))
LABELS = tuple(label for _, _, label in BUCKETS)
# Gu et al., 2025, Table 4 buckets the small pools of title, image and marketing as <3, 3-5, >5 and the other
# components' pools as BUCKETS (<4, 4-8, >8).
SMALL_POOL_BUCKETS: Tuple[Tuple[Optional[int], Optional[int], str], ...] = (
    (None, 2, "<3"), (3, 5, "3-5"), (6, None, ">5"))
COMPONENT_BUCKETS = {c: SMALL_POOL_BUCKETS if c in ("title", "image", "marketing") else BUCKETS
                     for c in F.GENCO_COMPONENTS}


def _check_contiguous(buckets) -> None:
    # slice_sql's CASE and bucket_label both rely on every count falling in exactly one bucket.
    if buckets[0][0] is not None or buckets[-1][1] is not None:
        raise ValueError(f"the first bucket must be open below and the last open above: {buckets}")
    for (_, high, _), (low, _, _) in zip(buckets[:-1], buckets[1:]):
        if high is None or low != high + 1:
            raise ValueError(f"buckets must be contiguous: {buckets}")


_check_contiguous(BUCKETS)
_check_contiguous(SMALL_POOL_BUCKETS)


def bucket_label(num_candidates: int, buckets=BUCKETS) -> str:
    """The label of the bucket of ``buckets`` (default :data:`BUCKETS`) holding ``num_candidates``."""
    for _, high, label in buckets:
        if high is None or num_candidates <= high:
            return label
    raise AssertionError("unreachable: the last bucket is open above")


def label_order(label: str) -> Tuple[int, str]:
    """Sort key: the buckets in :data:`BUCKETS` order, any other label after them."""
    return (LABELS.index(label) if label in LABELS else len(LABELS), label)


def slice_sql() -> str:
    """A TFMA SQL slice that buckets ``num_candidates`` without a derived column in the data."""
    cases = [f"WHEN {F.NUM_CANDIDATES} <= {high} THEN '{label}'" for _, high, label in BUCKETS[:-1]]
    cases.append(f"ELSE '{BUCKETS[-1][2]}'")
    return (f"SELECT STRUCT(CASE {' '.join(cases)} END AS {NUM_CANDIDATES_BUCKET}) "
            f"FROM example.{F.NUM_CANDIDATES}")
