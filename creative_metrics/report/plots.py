"""The report's three plots, drawn with matplotlib and returned as inline SVG (``None``: nothing to plot).

* :func:`lift_by_bucket` -- true and estimated lift over random, by candidate-count bucket and model;
* :func:`estimates_vs_truth` -- NSCTR, sCTR and calibrated sCTR against the true CTR, every slice;
* :func:`calibration` -- observed CTR against mean ``pctr_ad`` in bins of similar weight.
"""

from __future__ import annotations

import io
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import features as F
from creative_metrics.report import models as roles
from creative_metrics.report.slices import NAN, derived, is_number, metric, num_candidates_rows

Models = Dict[str, Dict[str, Any]]

_ESTIMATE_COLORS = {"NSCTR": "#1f6feb", "sCTR": "#cf222e", "calibrated sCTR": "#d29922"}
_ESTIMATE_KEYS = {"NSCTR": "nsctr", "sCTR": "sctr", "calibrated sCTR": "calibrated_sctr"}
_ESTIMATE_MARKERS = {"NSCTR": "o", "sCTR": "x", "calibrated sCTR": "^"}
_REFERENCE_LINE = dict(color="#57606a", linewidth=0.8)


def inline_svg(fig, salt: str) -> str:
    import matplotlib

    buf = io.StringIO()
    # A distinct hash salt per figure keeps the element ids of several inline SVGs from colliding.
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # creator/date block: not needed
    return text[text.index("<svg"):]


def figure(width=6.4, height=3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e5e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def lift_by_bucket(models: Models) -> Optional[str]:
    series = []  # (label, color, hatch, {bucket: value})
    for name, model in models.items():
        rows = num_candidates_rows(model["slices"])
        true = {b: derived(m)["true_lift"] for b, m in rows}
        est = {b: derived(m)["est_lift"] for b, m in rows}
        color, title = roles.color(model), roles.title(name, model)
        if any(is_number(v) for v in true.values()):
            series.append((f"{title}: true CTR / random - 1", color, None, true))
        if any(is_number(v) for v in est.values()):
            series.append((f"{title}: NSCTR / logged CTR - 1 (estimate)", color, "//", est))
    if not series:
        return None
    buckets = []
    for _, _, _, values in series:
        buckets += [b for b in values if b not in buckets]
    fig, ax = figure()
    width = 0.8 / len(series)
    for i, (label, color, hatch, values) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(buckets))]
        ys = [values.get(b, NAN) * 100 for b in buckets]
        ax.bar(xs, ys, width=width * 0.95, color=color if hatch is None else "white",
               edgecolor=color, hatch=hatch, label=label)
    ax.axhline(0, **_REFERENCE_LINE)
    ax.set_xticks(range(len(buckets)), [f"{b} candidates" for b in buckets])
    ax.set_ylabel("lift over random (%)")
    ax.legend(fontsize=7, frameon=False, loc="best")
    return inline_svg(fig, "lift")


def estimates_vs_truth(models: Models) -> Optional[str]:
    points = {label: ([], []) for label in _ESTIMATE_KEYS}
    for model in models.values():
        rows = [s["metrics"] for s in model["slices"] if not (
            len(s["slice"]) == 1 and s["slice"][0][0] == F.NUM_CANDIDATES)]
        rows += [m for _, m in num_candidates_rows(model["slices"])]
        for m in rows:
            truth = metric(m, "true_ctr_selected")
            for label, key in _ESTIMATE_KEYS.items():
                est = metric(m, key)
                if is_number(truth) and is_number(est):
                    points[label][0].append(truth)
                    points[label][1].append(est)
    if not any(xs for xs, _ in points.values()):
        return None
    fig, ax = figure(5.2, 4.2)
    every = [v for xs, ys in points.values() for v in xs + ys]
    lo, hi = min(every), max(every)
    pad = (hi - lo) * 0.08 or hi * 0.1 or 0.01
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], linestyle="--", label="estimate = truth",
            **_REFERENCE_LINE)
    for label, (xs, ys) in points.items():
        marker = _ESTIMATE_MARKERS[label]
        if xs:
            ax.scatter(xs, ys, marker=marker, s=28, color=_ESTIMATE_COLORS[label], label=label,
                       facecolors="none" if marker == "o" else None)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("true CTR of the selected creatives")
    ax.set_ylabel("estimate from clicks")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return inline_svg(fig, "truth")


def rebin(buckets: Sequence[Mapping[str, float]], max_bins: int = 15) -> List[Tuple[float, float, float]]:
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


def calibration(models: Models) -> Optional[str]:
    curves = {name: rebin(m.get("calibration") or []) for name, m in models.items()}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    fig, ax = figure(5.2, 4.2)
    every = [v for pts in curves.values() for p in pts for v in p[:2] if v > 0]
    lo, hi = (min(every), max(every)) if every else (1e-3, 1.0)
    log = lo > 0 and hi / lo > 20
    ax.plot([lo, hi], [lo, hi], linestyle="--", label="calibrated", **_REFERENCE_LINE)
    for name, pts in curves.items():
        total = sum(p[2] for p in pts)
        color = roles.color(models[name])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, linewidth=1, marker=None)
        ax.scatter([p[0] for p in pts], [max(p[1], lo / 2) if log else p[1] for p in pts],
                   s=[10 + 200 * p[2] / total for p in pts], color=color, alpha=0.75,
                   label=roles.title(name, models[name]))
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"mean {F.PCTR_AD} (bins of similar weight)")
    ax.set_ylabel("observed CTR")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return inline_svg(fig, "calibration")
