"""Reading a slice's metrics, and pooling per-count slices into the candidate-count buckets.

Slices by number of candidates: slices keyed ``num_candidates_bucket`` (the Evaluator's SQL slice) are
shown as they are; otherwise per-value ``features.NUM_CANDIDATES`` slices are pooled into the same
buckets (:mod:`creative_metrics.candidate_buckets`). Pooling is exact because ``num_candidates`` is a
property of the ad, so the slices split the ads, and every estimator here is a ratio whose numerator and
denominator the metrics emit (e.g. NSCTR's denominator is ``nsctr_coverage * nsctr_impressions``).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import features as F
from creative_metrics import candidate_buckets as CB

NAN = float("nan")

Rows = List[Tuple[str, Dict[str, float]]]  # [(slice label, metrics)]

# Display names of the codes of small categorical slicing columns.
_VALUE_NAMES = {
    F.USER_GENDER: F.GENDERS,
    F.USER_AGE_BUCKET: F.AGE_BUCKETS,
    F.USER_CITY_TIER: F.CITY_TIERS,
    F.USER_DEVICE: F.DEVICES,
    F.USER_OS: F.OSES,
    F.USER_ACTIVITY_LEVEL: F.ACTIVITY_LEVELS,
    F.USER_INCOME_BUCKET: F.INCOME_BUCKETS,
    F.USER_MEMBER_LEVEL: F.MEMBER_LEVELS,
    F.USER_PURCHASE_FREQ: F.PURCHASE_FREQS,
    F.AD_PRICE_BUCKET: F.PRICE_BUCKETS,
}

_TRUE_CTRS = ("true_ctr_selected", "true_ctr_random", "true_ctr_oracle", "true_ctr_logged")


# ------------------------------------------------------------------------------------- metric access
def metric(metrics: Mapping[str, float], *names: str) -> float:
    """The first of ``names`` present in ``metrics`` (NaN if none)."""
    for name in names:
        value = metrics.get(name)
        if value is not None:
            return float(value)
    return NAN


def is_number(x: Optional[float]) -> bool:
    return x is not None and not math.isnan(x)


def ratio(num: float, den: float) -> float:
    return num / den if is_number(num) and is_number(den) and den != 0 else NAN


def impressions(m: Mapping[str, float]) -> float:
    return metric(m, "example_count", f"{F.PCTR_AD}/example_count", "nsctr_impressions",
                  "true_ctr_impressions")


def derived(m: Mapping[str, float]) -> Dict[str, float]:
    """Lifts shown in the tables and plots, computed from a slice's metrics."""
    return {
        "true_lift": ratio(metric(m, "true_ctr_selected"), metric(m, "true_ctr_random")) - 1,
        "est_lift": ratio(metric(m, "nsctr"), metric(m, "nsctr_logged_ctr")) - 1,
    }


def overall(model: Mapping[str, Any]) -> Dict[str, float]:
    """The overall slice's metrics of a model of the report data (``{}`` if it has none)."""
    for s in model.get("slices", []):
        if not s["slice"]:
            return s["metrics"]
    return {}


# --------------------------------------------------------------------------------------------- pooling
def _single_column(s: Mapping[str, Any], column: str) -> bool:
    return len(s["slice"]) == 1 and s["slice"][0][0] == column


def pool_num_candidates_buckets(
    slices: Sequence[Mapping[str, Any]],
    buckets: Sequence[Tuple[Optional[int], Optional[int], str]] = CB.BUCKETS,
) -> Rows:
    """Pools per-value ``num_candidates`` slices into buckets; returns ``[(label, metrics)]``.

    Ratios are pooled through their numerators and denominators (NSCTR: ``nsctr * coverage *
    impressions`` over ``coverage * impressions``; sCTR over matched impressions; calibrated sCTR over
    its exposure; true CTRs over impressions). GAUC and AUC do not pool and are left out.
    """
    out = []
    for low, high, label in buckets:
        sums: Dict[str, float] = {}

        def add(name, value):
            if is_number(value):
                sums[name] = sums.get(name, 0.0) + value

        found = False
        for s in slices:
            if not _single_column(s, F.NUM_CANDIDATES):
                continue
            n = int(s["slice"][0][1])
            if (low is not None and n < low) or (high is not None and n > high):
                continue
            found = True
            m = s["metrics"]
            add("impressions", impressions(m))
            cov_imps = metric(m, "nsctr_coverage") * metric(m, "nsctr_impressions")
            add("nsctr_den", cov_imps)  # 0 for a slice without matches (its NSCTR is NaN)
            if is_number(metric(m, "nsctr")):
                add("nsctr_num", metric(m, "nsctr") * cov_imps)
                add("logged_num", metric(m, "nsctr_logged_ctr") * cov_imps)
            add("nsctr_imps", metric(m, "nsctr_impressions"))
            matched = metric(m, "sctr_matched_impressions")
            if is_number(metric(m, "sctr")):
                add("sctr_num", metric(m, "sctr") * matched)
                add("sctr_den", matched)
            exposure = metric(m, "calibrated_sctr_exposure")
            if is_number(metric(m, "calibrated_sctr")):
                add("cal_num", metric(m, "calibrated_sctr") * exposure)
                add("cal_den", exposure)
            t_imps = metric(m, "true_ctr_impressions")
            add("true_imps", t_imps)
            for name in _TRUE_CTRS:
                add(name, metric(m, name) * t_imps)
        if not found:
            continue
        g = lambda k: sums.get(k, NAN)  # noqa: E731
        pooled = {
            "example_count": g("impressions"),
            "nsctr": ratio(g("nsctr_num"), g("nsctr_den")),
            "nsctr_coverage": ratio(g("nsctr_den"), g("nsctr_imps")),
            "nsctr_impressions": g("nsctr_imps"),
            "nsctr_logged_ctr": ratio(g("logged_num"), g("nsctr_den")),
            "sctr": ratio(g("sctr_num"), g("sctr_den")),
            "sctr_matched_impressions": g("sctr_den"),
            "calibrated_sctr": ratio(g("cal_num"), g("cal_den")),
            "calibrated_sctr_exposure": g("cal_den"),
            "true_ctr_impressions": g("true_imps"),
        }
        for name in _TRUE_CTRS:
            pooled[name] = ratio(g(name), g("true_imps"))
        pooled["lift_share"] = ratio(pooled["true_ctr_selected"] - pooled["true_ctr_random"],
                                     pooled["true_ctr_oracle"] - pooled["true_ctr_random"])
        out.append((label, pooled))
    return out


def num_candidates_rows(slices: Sequence[Mapping[str, Any]]) -> Rows:
    """The candidate-count bucket rows: the SQL slice's if present, else pooled per-count slices."""
    direct = [(str(s["slice"][0][1]), s["metrics"]) for s in slices
              if _single_column(s, CB.NUM_CANDIDATES_BUCKET)]
    if direct:
        return sorted(direct, key=lambda r: CB.label_order(r[0]))
    return pool_num_candidates_buckets(slices)


# --------------------------------------------------------------------------------- other slice columns
def value_label(column: str, value) -> str:
    """The display name of a slice value (e.g. a gender code), or the value itself."""
    names = _VALUE_NAMES.get(column)
    try:
        if names is not None and 0 <= int(value) < len(names):
            return names[int(value)]
    except (TypeError, ValueError):
        pass
    return str(value)


def other_slice_columns(models: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """Single-column slicings other than the number of candidates, in order of appearance."""
    columns = []
    for model in models.values():
        for s in model["slices"]:
            if len(s["slice"]) == 1:
                col = s["slice"][0][0]
                if col not in (F.NUM_CANDIDATES, CB.NUM_CANDIDATES_BUCKET) and col not in columns:
                    columns.append(col)
    return columns


def column_rows(model: Mapping[str, Any], column: str) -> Rows:
    """The slices of one column of a model, sorted by value, labelled with display names."""
    found = [(s["slice"][0][1], s["metrics"]) for s in model["slices"] if _single_column(s, column)]
    found.sort(key=lambda r: (str(type(r[0])), r[0]))
    return [(value_label(column, v), m) for v, m in found]
