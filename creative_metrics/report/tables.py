"""The report's HTML tables: headline metrics of every model, and one table per slicing."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import features as F
from creative_metrics.report import models as roles
from creative_metrics.report.formats import difference, escape, number
from creative_metrics.report.slices import Rows, derived, impressions, is_number, metric, overall

Models = Dict[str, Dict[str, Any]]

# (label, metric names tried in order, format, higher is better?, tooltip)
HEADLINE = (
    ("NSCTR", ("nsctr",), "ctr", True,
     "Normalized simulated CTR of the CR top-1 choice (Yang et al., AAAI 2024, Alg. 1)"),
    ("sCTR", ("sctr",), "ctr", True, "Simulated CTR: CTR of the impressions where top-1 = exposed"),
    ("calibrated sCTR", ("calibrated_sctr",), "ctr", True,
     "Each match counts n times (Gu et al., 2025, Alg. 1)"),
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
    ("impressions", lambda m, d: impressions(m), "count"),
    ("coverage", lambda m, d: metric(m, "nsctr_coverage"), "share"),
    ("NSCTR", lambda m, d: metric(m, "nsctr"), "ctr"),
    ("sCTR", lambda m, d: metric(m, "sctr"), "ctr"),
    ("cal. sCTR", lambda m, d: metric(m, "calibrated_sctr"), "ctr"),
    ("true CTR", lambda m, d: metric(m, "true_ctr_selected"), "ctr"),
    ("random", lambda m, d: metric(m, "true_ctr_random"), "ctr"),
    ("oracle", lambda m, d: metric(m, "true_ctr_oracle"), "ctr"),
    ("true lift vs random", lambda m, d: d["true_lift"], "lift"),
    ("NSCTR lift vs logged", lambda m, d: d["est_lift"], "lift"),
    ("lift share", lambda m, d: metric(m, "lift_share"), "share"),
    ("GAUC", lambda m, d: metric(m, f"{F.PCTR_AD}/gauc", "gauc"), "auc"),
)


def headline_label(name: str) -> Tuple[str, str]:
    """``(label, format)`` of a metric name in the headline table, or ``(name, "")`` if it has none."""
    for label, keys, kind, _, _ in HEADLINE:
        if name in keys:
            return label, kind
    return name, ""


def headline_table(models: Models) -> str:
    names = list(models)
    overall_metrics = {n: overall(models[n]) for n in names}
    evaluated = roles.with_role(models, roles.CANDIDATE_MODEL) or names[0]
    baseline: Optional[str] = roles.with_role(models, roles.BASELINE_MODEL)
    head = "".join(f"<th>{escape(roles.title(n, models[n]))}</th>" for n in names)
    if baseline:
        head += "<th>difference vs baseline</th>"
    rows = []
    for label, keys, kind, better, tip in HEADLINE:
        values = [metric(overall_metrics[n], *keys) for n in names]
        if not any(is_number(v) for v in values):
            continue
        cells = "".join(f"<td>{number(v, kind)}</td>" for v in values)
        if baseline:
            diff = difference(metric(overall_metrics[evaluated], *keys),
                              metric(overall_metrics[baseline], *keys), kind, better)
            cells += f"<td>{diff}</td>"
        rows.append(f'<tr><td title="{escape(tip)}">{escape(label)}</td>{cells}</tr>')
    if not rows:
        return '<p class="note">No overall metrics found.</p>'
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def slice_table(title: str, rows_by_model: Dict[str, Rows], models: Models, first_header: str) -> str:
    labels = []
    for rows in rows_by_model.values():
        labels += [label for label, _ in rows if label not in labels]
    if not labels:
        return ""
    columns = [c for c in _SLICE_COLUMNS
               if any(is_number(c[1](m, derived(m))) for rows in rows_by_model.values() for _, m in rows)]
    head = "".join(f"<th>{escape(c[0])}</th>" for c in columns)
    body = []
    for label in labels:
        for name, rows in rows_by_model.items():
            m = dict(rows).get(label)
            if m is None:
                continue
            d = derived(m)
            cells = "".join(f"<td>{number(c[1](m, d), c[2])}</td>" for c in columns)
            role = escape(models[name].get("role", ""))
            body.append(f'<tr class="{role}"><td>{escape(label)}</td>'
                        f'<td class="name">{escape(roles.title(name, models[name]))}</td>{cells}</tr>')
    return (f"<h3>{escape(title)}</h3><table><tr><th>{escape(first_header)}</th><th>model</th>{head}</tr>"
            f"{''.join(body)}</table>")
