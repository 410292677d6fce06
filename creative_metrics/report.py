"""A static, self-contained HTML report of a creative-ranking evaluation (one file, inline CSS and SVG).

Two layers:

* :func:`render_report` -- a pure function from plain, JSON-able *report data* to HTML (testable without
  TFMA);
* :func:`report_data_from_eval_dir` -- a thin loader turning the Evaluator's output (``tfma.load_eval_result``
  per model, ``tfma.load_validation_result``) into report data.

:func:`write_report` / :func:`write_report_from_eval_dir` glue them together, and
``python -m creative_metrics.report --eval-dir DIR --out report.html`` runs them from the command line.

Report data::

    {
      "title": "Creative ranking evaluation",
      "subtitle": "data: ...",                         # optional
      "blessed": True,                                 # optional: the Evaluator's verdict
      "blessing_rule": "NSCTR > 0 and >= baseline - 0.002",   # optional
      "validation": {"ok": True, "failures": []},      # optional
      "generated": "2026-01-31 08:00 UTC",             # optional
      "models": {                                      # the candidate first
        "candidate": {
          "role": "candidate",                         # or "baseline"
          "slices": [                                  # one entry per TFMA slice; [] = overall
            {"slice": [], "metrics": {"nsctr": 0.031, "pctr_ad/auc": 0.71, ...}},
            {"slice": [["num_candidates_bucket", "4-8"]], "metrics": {...}},
          ],
          "calibration": [                             # optional: pctr_ad calibration buckets (overall)
            {"count": 10.0, "label_sum": 0.3, "prediction_sum": 0.28}, ...],
        },
        "baseline": {...},                             # optional
      },
    }

Metric names are TFMA's, prefixed with ``"<output>/"`` for metrics of a named model output (e.g.
``pctr_ad/auc``); the keys of :mod:`creative_metrics.tfma_metrics` are used as emitted.

Slices by number of candidates: slices keyed ``num_candidates_bucket`` (a SQL slice) are shown as they
are; otherwise per-value ``features.NUM_CANDIDATES`` slices are pooled into the buckets of seed 002
Table 4 (``<4``, ``4-8``, ``>8``). Pooling is exact because ``num_candidates`` is a property of the ad,
so the slices split the ads, and every estimator here is a ratio whose numerator and denominator the
metrics emit (e.g. NSCTR's denominator is ``nsctr_coverage * nsctr_impressions``).
"""

from __future__ import annotations

import argparse
import datetime
import html
import io
import math
import os
import re
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import features as F

__all__ = [
    "render_report",
    "report_data_from_eval_dir",
    "write_report",
    "write_report_from_eval_dir",
    "pool_num_candidates_buckets",
    "main",
]

NUM_CANDIDATES_BUCKET = "num_candidates_bucket"
# seed 002, Table 4: [<4, 4-8, >8]; (low, high) inclusive, None = open.
DEFAULT_BUCKETS: Tuple[Tuple[Optional[int], Optional[int], str], ...] = (
    (None, 3, "<4"), (4, 8, "4-8"), (9, None, ">8"))

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

_NAN = float("nan")


# ------------------------------------------------------------------------------------------ metrics
def _get(metrics: Mapping[str, float], *names: str) -> float:
    """The first of ``names`` present in ``metrics`` (NaN if none)."""
    for name in names:
        value = metrics.get(name)
        if value is not None:
            return float(value)
    return _NAN


def _ok(x: float) -> bool:
    return x is not None and not math.isnan(x)


def _ratio(num: float, den: float) -> float:
    return num / den if _ok(num) and _ok(den) and den != 0 else _NAN


def _impressions(m: Mapping[str, float]) -> float:
    return _get(m, "example_count", f"{F.PCTR_AD}/example_count", "nsctr_impressions",
                "true_ctr_impressions")


def _derived(m: Mapping[str, float]) -> Dict[str, float]:
    """Lifts shown in the tables and plots, computed from a slice's metrics."""
    sel, rnd = _get(m, "true_ctr_selected"), _get(m, "true_ctr_random")
    return {
        "true_lift": _ratio(sel, rnd) - 1,
        "est_lift": _ratio(_get(m, "nsctr"), _get(m, "nsctr_logged_ctr")) - 1,
    }


def pool_num_candidates_buckets(
    slices: Sequence[Mapping[str, Any]],
    buckets: Sequence[Tuple[Optional[int], Optional[int], str]] = DEFAULT_BUCKETS,
) -> List[Tuple[str, Dict[str, float]]]:
    """Pools per-value ``num_candidates`` slices into buckets; returns ``[(label, metrics)]``.

    Ratios are pooled through their numerators and denominators (NSCTR: ``nsctr * coverage *
    impressions`` over ``coverage * impressions``; sCTR over matched impressions; calibrated sCTR over
    its exposure; true CTRs over impressions). GAUC and AUC do not pool and are left out.
    """
    out = []
    for low, high, label in buckets:
        sums: Dict[str, float] = {}

        def add(name, value):
            if _ok(value):
                sums[name] = sums.get(name, 0.0) + value

        found = False
        for s in slices:
            key = s["slice"]
            if len(key) != 1 or key[0][0] != F.NUM_CANDIDATES:
                continue
            n = int(key[0][1])
            if (low is not None and n < low) or (high is not None and n > high):
                continue
            found = True
            m = s["metrics"]
            imps = _impressions(m)
            add("impressions", imps)
            cov_imps = _get(m, "nsctr_coverage") * _get(m, "nsctr_impressions")
            add("nsctr_den", cov_imps)  # 0 for a slice without matches (its NSCTR is NaN)
            if _ok(_get(m, "nsctr")):
                add("nsctr_num", _get(m, "nsctr") * cov_imps)
                add("logged_num", _get(m, "nsctr_logged_ctr") * cov_imps)
            add("nsctr_imps", _get(m, "nsctr_impressions"))
            matched = _get(m, "sctr_matched_impressions")
            if _ok(_get(m, "sctr")):
                add("sctr_num", _get(m, "sctr") * matched)
                add("sctr_den", matched)
            exposure = _get(m, "calibrated_sctr_exposure")
            if _ok(_get(m, "calibrated_sctr")):
                add("cal_num", _get(m, "calibrated_sctr") * exposure)
                add("cal_den", exposure)
            t_imps = _get(m, "true_ctr_impressions")
            add("true_imps", t_imps)
            for name in ("true_ctr_selected", "true_ctr_random", "true_ctr_oracle", "true_ctr_logged"):
                add(name, _get(m, name) * t_imps)
        if not found:
            continue
        g = lambda k: sums.get(k, _NAN)  # noqa: E731
        pooled = {
            "example_count": g("impressions"),
            "nsctr": _ratio(g("nsctr_num"), g("nsctr_den")),
            "nsctr_coverage": _ratio(g("nsctr_den"), g("nsctr_imps")),
            "nsctr_impressions": g("nsctr_imps"),
            "nsctr_logged_ctr": _ratio(g("logged_num"), g("nsctr_den")),
            "sctr": _ratio(g("sctr_num"), g("sctr_den")),
            "sctr_matched_impressions": g("sctr_den"),
            "calibrated_sctr": _ratio(g("cal_num"), g("cal_den")),
            "calibrated_sctr_exposure": g("cal_den"),
            "true_ctr_impressions": g("true_imps"),
        }
        for name in ("true_ctr_selected", "true_ctr_random", "true_ctr_oracle", "true_ctr_logged"):
            pooled[name] = _ratio(g(name), g("true_imps"))
        pooled["lift_share"] = _ratio(pooled["true_ctr_selected"] - pooled["true_ctr_random"],
                                      pooled["true_ctr_oracle"] - pooled["true_ctr_random"])
        out.append((label, pooled))
    return out


def _bucket_order(label: str) -> Tuple[float, str]:
    digits = "".join(ch if ch.isdigit() else " " for ch in label).split()
    first = float(digits[0]) if digits else math.inf
    if label.startswith("<"):
        first -= 0.5
    return first, label


def _num_candidates_rows(slices) -> List[Tuple[str, Dict[str, float]]]:
    direct = [(str(s["slice"][0][1]), s["metrics"]) for s in slices
              if len(s["slice"]) == 1 and s["slice"][0][0] == NUM_CANDIDATES_BUCKET]
    if direct:
        return sorted(direct, key=lambda r: _bucket_order(r[0]))
    return pool_num_candidates_buckets(slices)


def _value_label(column: str, value) -> str:
    names = _VALUE_NAMES.get(column)
    try:
        if names is not None and 0 <= int(value) < len(names):
            return names[int(value)]
    except (TypeError, ValueError):
        pass
    return str(value)


# ------------------------------------------------------------------------------------------ formats
def _fmt(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&mdash;"
    if kind == "ctr":
        return f"{value:.5f}"
    if kind == "share":
        return f"{value:.1%}"
    if kind == "lift":
        return f"{value:+.2%}"
    if kind == "count":
        return f"{value:,.0f}"
    return f"{value:.4f}"


def _fmt_diff(cand: float, base: float, kind: str, higher_is_better: Optional[bool] = None) -> str:
    if not (_ok(cand) and _ok(base)):
        return "&mdash;"
    d = cand - base
    cls = ""
    if higher_is_better is not None and d != 0:
        cls = "pos" if (d > 0) == higher_is_better else "neg"
    if kind == "count":
        text = f"{d:+,.0f}"
    elif kind in ("share", "lift"):
        text = f"{d * 100:+.2f} pt"
    else:
        text = f"{d:+.5f}" if kind == "ctr" else f"{d:+.4f}"
        if base != 0 and kind == "ctr":
            text += f" ({d / abs(base):+.1%})"
    return f'<span class="{cls}">{text}</span>'


# (label, metric names tried in order, format, higher is better?, tooltip)
_HEADLINE = (
    ("NSCTR", ("nsctr",), "ctr", True, "Normalized simulated CTR of the CR top-1 choice (JAC Alg. 1)"),
    ("sCTR", ("sctr",), "ctr", True, "Simulated CTR: CTR of the impressions where top-1 = exposed"),
    ("calibrated sCTR", ("calibrated_sctr",), "ctr", True, "Each match counts n times (GenCO Alg. 1)"),
    ("NSCTR coverage", ("nsctr_coverage",), "share", None, "Share of impressions whose ad had a match"),
    ("logged CTR (covered ads)", ("nsctr_logged_ctr",), "ctr", None, "Observed CTR of the logging policy"),
    ("true CTR: selected", ("true_ctr_selected",), "ctr", True, "Mean true CTR of the top-1 creatives"),
    ("true CTR: random", ("true_ctr_random",), "ctr", None, "Mean true CTR over all candidates"),
    ("true CTR: oracle", ("true_ctr_oracle",), "ctr", None, "Mean true CTR of the best candidate"),
    ("true CTR: logged", ("true_ctr_logged",), "ctr", None, "Mean true CTR of the exposed creatives"),
    ("lift share", ("lift_share",), "share", True, "(selected - random) / (oracle - random)"),
    ("GAUC (pctr_ad)", (f"{F.PCTR_AD}/gauc", "gauc"), "auc", True, "Impression-weighted per-user AUC"),
    ("AUC (pctr_ad)", (f"{F.PCTR_AD}/auc",), "auc", True, "AR's AUC"),
    ("AUC (pctr_c)", (f"{F.PCTR_C}/auc",), "auc", True, "CR's AUC on the exposed creatives"),
    ("calibration (pctr_ad)", (f"{F.PCTR_AD}/calibration",), "auc", None,
     "Mean prediction / mean label (1 = calibrated)"),
    ("mean label", (f"{F.PCTR_AD}/mean_label", "mean_label"), "ctr", None, "Observed CTR of the eval split"),
    ("mean pctr_ad", (f"{F.PCTR_AD}/mean_prediction",), "ctr", None, "AR's mean prediction"),
    ("impressions", ("example_count", f"{F.PCTR_AD}/example_count", "nsctr_impressions",
                     "true_ctr_impressions"), "count", None, "Eval impressions"),
)

# Columns of the per-slice tables: (header, getter(metrics, derived), format).
_SLICE_COLUMNS = (
    ("impressions", lambda m, d: _impressions(m), "count"),
    ("coverage", lambda m, d: _get(m, "nsctr_coverage"), "share"),
    ("NSCTR", lambda m, d: _get(m, "nsctr"), "ctr"),
    ("sCTR", lambda m, d: _get(m, "sctr"), "ctr"),
    ("cal. sCTR", lambda m, d: _get(m, "calibrated_sctr"), "ctr"),
    ("true CTR", lambda m, d: _get(m, "true_ctr_selected"), "ctr"),
    ("random", lambda m, d: _get(m, "true_ctr_random"), "ctr"),
    ("oracle", lambda m, d: _get(m, "true_ctr_oracle"), "ctr"),
    ("true lift vs random", lambda m, d: d["true_lift"], "lift"),
    ("NSCTR lift vs logged", lambda m, d: d["est_lift"], "lift"),
    ("lift share", lambda m, d: _get(m, "lift_share"), "share"),
    ("GAUC", lambda m, d: _get(m, f"{F.PCTR_AD}/gauc", "gauc"), "auc"),
)


# ------------------------------------------------------------------------------------------- plots
_COLORS = {"candidate": "#1f6feb", "baseline": "#8b949e"}
_EST_COLOR = "#d29922"


def _svg(fig, salt: str) -> str:
    import matplotlib

    buf = io.StringIO()
    # A distinct hash salt per figure keeps the element ids of several inline SVGs from colliding.
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # creator/date block: not needed
    return text[text.index("<svg"):]


def _figure(width=6.4, height=3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e5e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _plot_lift_by_bucket(models: Dict[str, Dict[str, Any]]) -> Optional[str]:
    series = []  # (label, color, hatch, {bucket: value})
    for name, model in models.items():
        rows = _num_candidates_rows(model["slices"])
        true = {b: _derived(m)["true_lift"] for b, m in rows}
        est = {b: _derived(m)["est_lift"] for b, m in rows}
        color = _COLORS.get(model.get("role"), "#6e7781")
        if any(_ok(v) for v in true.values()):
            series.append((f"{name}: true CTR / random - 1", color, None, true))
        if any(_ok(v) for v in est.values()):
            series.append((f"{name}: NSCTR / logged CTR - 1 (estimate)", color, "//", est))
    if not series:
        return None
    buckets = []
    for _, _, _, values in series:
        buckets += [b for b in values if b not in buckets]
    fig, ax = _figure()
    width = 0.8 / len(series)
    for i, (label, color, hatch, values) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(buckets))]
        ys = [values.get(b, _NAN) * 100 for b in buckets]
        ax.bar(xs, ys, width=width * 0.95, color=color if hatch is None else "white",
               edgecolor=color, hatch=hatch, label=label)
    ax.axhline(0, color="#57606a", linewidth=0.8)
    ax.set_xticks(range(len(buckets)), [f"{b} candidates" for b in buckets])
    ax.set_ylabel("lift over random (%)")
    ax.legend(fontsize=7, frameon=False, loc="best")
    return _svg(fig, "lift")


def _plot_estimates_vs_truth(models: Dict[str, Dict[str, Any]]) -> Optional[str]:
    points = {"NSCTR": ([], [], "o"), "sCTR": ([], [], "x"), "calibrated sCTR": ([], [], "^")}
    keys = {"NSCTR": "nsctr", "sCTR": "sctr", "calibrated sCTR": "calibrated_sctr"}
    for model in models.values():
        rows = [m["metrics"] for m in model["slices"] if not (
            len(m["slice"]) == 1 and m["slice"][0][0] == F.NUM_CANDIDATES)]
        rows += [m for _, m in _num_candidates_rows(model["slices"])]
        for m in rows:
            truth = _get(m, "true_ctr_selected")
            for label, key in keys.items():
                est = _get(m, key)
                if _ok(truth) and _ok(est):
                    points[label][0].append(truth)
                    points[label][1].append(est)
    if not any(xs for xs, _, _ in points.values()):
        return None
    fig, ax = _figure(5.2, 4.2)
    every = [v for xs, ys, _ in points.values() for v in xs + ys]
    lo, hi = min(every), max(every)
    pad = (hi - lo) * 0.08 or hi * 0.1 or 0.01
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#57606a", linewidth=0.8,
            linestyle="--", label="estimate = truth")
    colors = {"NSCTR": "#1f6feb", "sCTR": "#cf222e", "calibrated sCTR": _EST_COLOR}
    for label, (xs, ys, marker) in points.items():
        if xs:
            ax.scatter(xs, ys, marker=marker, s=28, color=colors[label], label=label,
                       facecolors="none" if marker == "o" else None)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("true CTR of the selected creatives")
    ax.set_ylabel("estimate from clicks")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return _svg(fig, "truth")


def _rebin(buckets: Sequence[Mapping[str, float]],
           max_bins: int = 15) -> List[Tuple[float, float, float]]:
    """Merges adjacent calibration buckets into <= max_bins of similar weight: [(mean p, mean y, n)]."""
    nonempty = [b for b in buckets if b.get("count", 0) > 0]
    total = sum(b["count"] for b in nonempty)
    out, acc = [], [0.0, 0.0, 0.0]
    for b in nonempty:
        acc[0] += b["count"]
        acc[1] += b.get("label_sum", 0.0)
        acc[2] += b.get("prediction_sum", 0.0)
        if acc[0] >= total / max_bins:
            out.append((acc[2] / acc[0], acc[1] / acc[0], acc[0]))
            acc = [0.0, 0.0, 0.0]
    if acc[0] > 0:
        out.append((acc[2] / acc[0], acc[1] / acc[0], acc[0]))
    return out


def _plot_calibration(models: Dict[str, Dict[str, Any]]) -> Optional[str]:
    curves = {name: _rebin(m.get("calibration") or []) for name, m in models.items()}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    fig, ax = _figure(5.2, 4.2)
    every = [v for pts in curves.values() for p in pts for v in p[:2] if v > 0]
    lo, hi = (min(every), max(every)) if every else (1e-3, 1.0)
    log = lo > 0 and hi / lo > 20
    ax.plot([lo, hi], [lo, hi], color="#57606a", linewidth=0.8, linestyle="--", label="calibrated")
    for name, pts in curves.items():
        total = sum(p[2] for p in pts)
        color = _COLORS.get(models[name].get("role"), "#6e7781")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, linewidth=1, marker=None)
        ax.scatter([p[0] for p in pts], [max(p[1], lo / 2) if log else p[1] for p in pts],
                   s=[10 + 200 * p[2] / total for p in pts], color=color, alpha=0.75, label=name)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"mean {F.PCTR_AD} (bins of similar weight)")
    ax.set_ylabel("observed CTR")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return _svg(fig, "calibration")


# ------------------------------------------------------------------------------------------- render
_CSS = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;
 margin:0;background:#f6f8fa}
main{max-width:1220px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;
 padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#57606a;font-size:13px;margin:0 0 12px}
.badge{display:inline-block;padding:4px 12px;border-radius:14px;font-weight:600;font-size:13px;
 margin-right:8px}
.badge.ok{background:#dafbe1;color:#116329}.badge.no{background:#ffebe9;color:#a40e26}
.badge.na{background:#eaeef2;color:#57606a}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 4px;font-variant-numeric:tabular-nums}
th,td{padding:4px 9px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th{background:#f6f8fa;font-weight:600;color:#424a53}
td:first-child,th:first-child{text-align:left}td.name{text-align:left;color:#424a53}
tr.baseline td{color:#57606a}
.pos{color:#116329}.neg{color:#a40e26}
.grid{display:flex;flex-wrap:wrap;gap:18px}.card{flex:1 1 520px;min-width:0}
.card svg{max-width:100%;height:auto}
.note{color:#57606a;font-size:12.5px;max-width:980px}
ul.fail{color:#a40e26;font-size:13px}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px;font-size:12px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _ordered_models(models: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    items = sorted(models.items(), key=lambda kv: kv[1].get("role") != "candidate")
    return {name: dict(m) for name, m in items}


def _overall(model: Mapping[str, Any]) -> Dict[str, float]:
    for s in model.get("slices", []):
        if not s["slice"]:
            return s["metrics"]
    return {}


def _headline_table(models: Dict[str, Dict[str, Any]]) -> str:
    names = list(models)
    overall = {n: _overall(models[n]) for n in names}
    cand = next((n for n in names if models[n].get("role") == "candidate"), names[0])
    base = next((n for n in names if models[n].get("role") == "baseline"), None)
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    if base:
        head += f"<th>{_e(cand)} &minus; {_e(base)}</th>"
    rows = []
    for label, keys, kind, better, tip in _HEADLINE:
        values = [_get(overall[n], *keys) for n in names]
        if not any(_ok(v) for v in values):
            continue
        cells = "".join(f"<td>{_fmt(v, kind)}</td>" for v in values)
        if base:
            diff = _fmt_diff(_get(overall[cand], *keys), _get(overall[base], *keys), kind, better)
            cells += f"<td>{diff}</td>"
        rows.append(f'<tr><td title="{_e(tip)}">{_e(label)}</td>{cells}</tr>')
    if not rows:
        return '<p class="note">No overall metrics found.</p>'
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _slice_table(title: str, rows_by_model: Dict[str, List[Tuple[str, Dict[str, float]]]],
                 models: Dict[str, Dict[str, Any]], first_header: str) -> str:
    labels = []
    for rows in rows_by_model.values():
        labels += [label for label, _ in rows if label not in labels]
    if not labels:
        return ""
    columns = [c for c in _SLICE_COLUMNS
               if any(_ok(c[1](m, _derived(m))) for rows in rows_by_model.values() for _, m in rows)]
    head = "".join(f"<th>{_e(c[0])}</th>" for c in columns)
    body = []
    for label in labels:
        for name, rows in rows_by_model.items():
            m = dict(rows).get(label)
            if m is None:
                continue
            d = _derived(m)
            cells = "".join(f"<td>{_fmt(c[1](m, d), c[2])}</td>" for c in columns)
            role = _e(models[name].get("role", ""))
            body.append(f'<tr class="{role}"><td>{_e(label)}</td><td class="name">{_e(name)}</td>'
                        f"{cells}</tr>")
    return (f"<h3>{_e(title)}</h3><table><tr><th>{_e(first_header)}</th><th>model</th>{head}</tr>"
            f"{''.join(body)}</table>")


def _other_slice_columns(models: Dict[str, Dict[str, Any]]) -> List[str]:
    columns = []
    for model in models.values():
        for s in model["slices"]:
            if len(s["slice"]) == 1:
                col = s["slice"][0][0]
                if col not in (F.NUM_CANDIDATES, NUM_CANDIDATES_BUCKET) and col not in columns:
                    columns.append(col)
    return columns


def render_report(data: Mapping[str, Any]) -> str:
    """Renders report data (see the module docstring) to one self-contained HTML page.

    Raises:
      ValueError: ``data`` has no models, or a model without slices.
    """
    if not data.get("models"):
        raise ValueError("report data has no models")
    for name, model in data["models"].items():
        if "slices" not in model:
            raise ValueError(f"model {name!r} of the report data has no 'slices'")
    models = _ordered_models(data["models"])
    title = data.get("title") or "Creative ranking evaluation"

    parts = [f"<h1>{_e(title)}</h1>"]
    if data.get("subtitle"):
        parts.append(f'<p class="sub">{_e(data["subtitle"])}</p>')
    blessed = data.get("blessed")
    badge = ('<span class="badge ok">Blessed</span>' if blessed is True else
             '<span class="badge no">Not blessed</span>' if blessed is False else
             '<span class="badge na">Blessing not evaluated</span>')
    rule = f'<span class="sub">rule: {_e(data["blessing_rule"])}</span>' if data.get("blessing_rule") else ""
    parts.append(f"<p>{badge}{rule}</p>")
    validation = data.get("validation") or {}
    if validation.get("failures"):
        items = "".join(f"<li>{_e(f)}</li>" for f in validation["failures"])
        parts.append(f'<ul class="fail">{items}</ul>')

    parts.append("<h2>Headline metrics (all eval impressions)</h2>")
    parts.append(_headline_table(models))
    parts.append(
        '<p class="note">NSCTR, sCTR and calibrated sCTR estimate the CTR of the CR model\'s top-1 creative '
        'from logged clicks on the impressions where it matches the exposed creative; the <em>true CTR</em> '
        "rows are the simulator's ground truth for the same choice. NSCTR is computed over the ads with at "
        "least one match (coverage). Lift share = (selected &minus; random) / (oracle &minus; random).</p>")

    parts.append("<h2>Slices</h2>")
    nc_rows = {name: _num_candidates_rows(m["slices"]) for name, m in models.items()}
    parts.append(_slice_table("By number of candidate creatives (seed 002, Table 4 buckets)", nc_rows,
                              models, "candidates"))
    for column in _other_slice_columns(models):
        rows = {}
        for name, model in models.items():
            found = [(s["slice"][0][1], s["metrics"]) for s in model["slices"]
                     if len(s["slice"]) == 1 and s["slice"][0][0] == column]
            found.sort(key=lambda r: (str(type(r[0])), r[0]))
            rows[name] = [(_value_label(column, v), m) for v, m in found]
        parts.append(_slice_table(f"By {column}", rows, models, column))
    parts.append(
        '<p class="note">&ldquo;true lift vs random&rdquo; = true CTR of the selected creatives / mean true '
        "CTR of all candidates &minus; 1. &ldquo;NSCTR lift vs logged&rdquo; = NSCTR / logged CTR of the "
        "covered ads &minus; 1: the same lift estimated from clicks (relative to the logging policy, which is "
        "the random policy when creatives were logged uniformly). GAUC does not pool across slices and is "
        "shown only where TFMA computed it.</p>")

    plots = [
        ("Lift over random by number of candidates", _plot_lift_by_bucket(models)),
        ("Estimates vs true CTR (every slice and model)", _plot_estimates_vs_truth(models)),
        (f"Calibration of {F.PCTR_AD}", _plot_calibration(models)),
    ]
    cards = [f'<div class="card"><h3>{_e(t)}</h3>{svg}</div>' for t, svg in plots if svg]
    if cards:
        parts.append("<h2>Plots</h2>")
        parts.append(f'<div class="grid">{"".join(cards)}</div>')
    missing = [t for t, svg in plots if not svg]
    if missing:
        parts.append(f'<p class="note">Not plotted (no data): {_e(", ".join(missing))}.</p>')

    stamp = f" {_e(data['generated'])}" if data.get("generated") else ""
    parts.append(f'<p class="note">Generated{stamp} by <code>creative_metrics.report</code>.</p>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>\n")


# ------------------------------------------------------------------------------------------- loader
def _metric_value(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Mapping):
        if "doubleValue" in value:
            return float(value["doubleValue"])
        bounded = value.get("boundedValue")
        if isinstance(bounded, Mapping) and "value" in bounded:
            return float(bounded["value"])
    return None  # arrays, confusion matrices, ...


def _flatten_metrics(by_output: Mapping[str, Any]) -> Dict[str, float]:
    out = {}
    for output, by_sub_key in (by_output or {}).items():
        for sub_key, by_name in by_sub_key.items():
            if sub_key:  # class / top-k sub keys: not shown
                continue
            for name, value in by_name.items():
                v = _metric_value(value)
                if v is not None:
                    out[f"{output}/{name}" if output else name] = v
    return out


def _calibration_buckets(plots) -> List[Dict[str, float]]:
    for slice_key, by_output in plots or []:
        if slice_key:
            continue
        for output in (F.PCTR_AD, ""):
            plot = ((by_output or {}).get(output) or {}).get("") or {}
            buckets = (plot.get("calibrationHistogramBuckets") or {}).get("buckets")
            if buckets:
                return [{"count": float(b.get("numWeightedExamples", 0.0)),
                         "label_sum": float(b.get("totalWeightedLabel", 0.0)),
                         "prediction_sum": float(b.get("totalWeightedRefinedPrediction", 0.0))}
                        for b in buckets]
    return []


def _model_data(eval_result, role: str) -> Dict[str, Any]:
    slices = []
    for slice_key, by_output in eval_result.slicing_metrics:
        if slice_key and not isinstance(slice_key[0], tuple):  # cross-slice keys: not shown
            continue
        slices.append({"slice": [[col, val] for col, val in slice_key],
                       "metrics": _flatten_metrics(by_output)})
    return {"role": role, "slices": slices, "calibration": _calibration_buckets(eval_result.plots)}


def _validation(eval_dir: str) -> Optional[Dict[str, Any]]:
    import tensorflow_model_analysis as tfma

    try:
        result = tfma.load_validation_result(eval_dir)
    except Exception:  # no validations file: an evaluation without thresholds
        return None
    failures = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            failures.append(f"{failure.metric_key.model_name or 'model'} {failure.metric_key.name}"
                            f"{' (diff)' if failure.metric_key.is_diff else ''}: {failure.message}")
    return {"ok": bool(result.validation_ok), "failures": failures}


def report_data_from_eval_dir(eval_dir: str, baseline_eval_dir: Optional[str] = None, *,
                              blessed: Optional[bool] = None, blessing_rule: str = "",
                              title: Optional[str] = None) -> Dict[str, Any]:
    """Loads the Evaluator's output into report data.

    Args:
      eval_dir: the TFMA output directory (a TFX ``ModelEvaluation`` artifact's uri). When it holds a
        candidate and a baseline model (``ModelSpec.is_baseline``), both are loaded.
      baseline_eval_dir: optional separate evaluation of a baseline model.
      blessed: the Evaluator's verdict; defaults to the validation result of ``eval_dir``.
      blessing_rule: human-readable blessing rule shown next to the verdict.
      title: report title.

    Raises:
      FileNotFoundError: ``eval_dir`` holds no TFMA evaluation.
    """
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.writers import eval_config_writer

    eval_config, data_location, _, _ = eval_config_writer.load_eval_run(eval_dir)
    if eval_config is None:
        raise FileNotFoundError(f"no TFMA evaluation (eval_config.json) in {eval_dir}")
    models: Dict[str, Dict[str, Any]] = {}
    specs = list(eval_config.model_specs) or [None]
    for spec in specs:
        name = spec.name if spec is not None else ""
        role = "baseline" if spec is not None and spec.is_baseline else "candidate"
        result = tfma.load_eval_result(eval_dir, model_name=name or None)
        models[name or "candidate"] = _model_data(result, role)
    if baseline_eval_dir:
        result = tfma.load_eval_result(baseline_eval_dir)
        models.setdefault("baseline", _model_data(result, "baseline"))
    validation = _validation(eval_dir)
    if blessed is None and validation is not None:
        blessed = validation["ok"]
    return {
        "title": title or "Creative ranking evaluation",
        "subtitle": f"evaluation: {eval_dir}" + (f" | data: {data_location}" if data_location else ""),
        "blessed": blessed,
        "blessing_rule": blessing_rule,
        "validation": validation,
        "models": models,
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _write(text: str, out_path: str) -> str:
    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out_path)  # never leave a half-written report behind
    return out_path


def write_report(source: Any, out_path: str, *, baseline: Any = None, blessed: Optional[bool] = None,
                 blessing_rule: str = "", title: Optional[str] = None) -> str:
    """Writes the HTML report; returns ``out_path``.

    Args:
      source: report data (a dict), a TFMA output directory, or a ``tfma.EvalResult``.
      out_path: the HTML file to write (directories are created).
      baseline: with a directory or ``EvalResult`` source, an optional separate baseline evaluation (a
        directory or ``EvalResult``).
      blessed, blessing_rule, title: as :func:`report_data_from_eval_dir`.
    """
    if isinstance(source, Mapping):
        data = dict(source)
    elif isinstance(source, (str, os.PathLike)):
        data = report_data_from_eval_dir(
            os.fspath(source), baseline if isinstance(baseline, (str, os.PathLike)) else None,
            blessed=blessed, blessing_rule=blessing_rule, title=title)
        if baseline is not None and not isinstance(baseline, (str, os.PathLike)):
            data["models"].setdefault("baseline", _model_data(baseline, "baseline"))
    elif hasattr(source, "slicing_metrics"):
        data = {"title": title, "blessed": blessed, "blessing_rule": blessing_rule,
                "models": {"candidate": _model_data(source, "candidate")}}
        if baseline is not None:
            other = (baseline if hasattr(baseline, "slicing_metrics")
                     else __import__("tensorflow_model_analysis").load_eval_result(os.fspath(baseline)))
            data["models"]["baseline"] = _model_data(other, "baseline")
    else:
        raise ValueError(
            f"source must be report data, an eval directory or an EvalResult, got {type(source)}")
    if title:
        data["title"] = title
    return _write(render_report(data), out_path)


def write_report_from_eval_dir(eval_dir: str, out_path: str, *, baseline_eval_dir: Optional[str] = None,
                               blessed: Optional[bool] = None, blessing_rule: str = "",
                               title: Optional[str] = None) -> str:
    """:func:`write_report` from a TFMA output directory (what the pipeline calls after the Evaluator)."""
    return write_report(eval_dir, out_path, baseline=baseline_eval_dir, blessed=blessed,
                        blessing_rule=blessing_rule, title=title)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m creative_metrics.report",
                                description="Render the creative-ranking evaluation report (HTML).")
    p.add_argument("--eval-dir", required=True, help="TFMA output directory (the Evaluator's evaluation)")
    p.add_argument("--baseline-eval-dir", help="optional separate evaluation of the baseline model")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--title", help="report title")
    p.add_argument("--blessing-rule", default="", help="blessing rule shown next to the verdict")
    args = p.parse_args(argv)
    try:
        path = write_report_from_eval_dir(
            args.eval_dir, args.out, baseline_eval_dir=args.baseline_eval_dir,
            blessing_rule=args.blessing_rule, title=args.title)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
