"""The report page: verdict and the thresholds behind it, headline metrics, slice tables, plots."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import features as F
from creative_metrics.report import models as roles
from creative_metrics.report import plots, slices
from creative_metrics.report.formats import MISSING, escape, number
from creative_metrics.report.style import CSS
from creative_metrics.report.tables import headline_label, headline_table, slice_table

DEFAULT_TITLE = "Creative ranking evaluation"


# ------------------------------------------------------------------------------------------ blessing
def _badge(blessed: Optional[bool], validation: Mapping[str, Any]) -> str:
    if blessed is True:
        return '<span class="badge ok">Blessed</span>'
    if blessed is False:
        return '<span class="badge no">Not blessed</span>'
    if validation.get("error"):
        return '<span class="badge na">Blessing unknown</span>'
    return '<span class="badge na">Blessing not evaluated</span>'


def _observed(check: Mapping[str, Any]) -> str:
    value = check.get("value")
    if not slices.is_number(value):
        return MISSING
    kind = headline_label(check["metric"].removesuffix("_diff"))[1] or "auc"
    if check.get("kind") == "change":
        return f"{value:+.5f}" if kind == "ctr" else f"{value:+.4f}"
    return number(value, kind)


def _rule(text: str) -> str:
    return escape(text).replace("&gt;=", "&ge;").replace("&lt;=", "&le;")


def _check_rows(checks: List[Mapping[str, Any]], models: Dict[str, Dict[str, Any]]) -> str:
    rows = []
    for c in checks:
        label = headline_label(c["metric"].removesuffix("_diff"))[0]
        if c.get("kind") == "change":
            label += " vs baseline"
        model = models.get(c.get("model"), {"role": roles.CANDIDATE_MODEL})
        status = c.get("status", "")
        cls = status if status in ("passed", "failed") else "unknown"
        message = f" ({escape(' '.join(c['message'].split()))})" if c.get("message") else ""
        rows.append(
            f'<tr class="check {cls}"><td>{escape(label)}</td>'
            f'<td class="name">{escape(roles.title(c.get("model") or roles.CANDIDATE_MODEL, model))}</td>'
            f"<td>{escape(c.get('slice', ''))}</td><td>{_rule(c.get('rule', ''))}</td>"
            f'<td>{_observed(c)}</td><td class="{cls}">{escape(status)}{message}</td></tr>')
    return ("<table><tr><th>threshold</th><th>model</th><th>slice</th><th>rule</th><th>observed</th>"
            f"<th>status</th></tr>{''.join(rows)}</table>")


def blessing_section(data: Mapping[str, Any], models: Dict[str, Dict[str, Any]]) -> str:
    """The Evaluator's verdict, every threshold it applied (passed / failed), and any other failure."""
    validation = data.get("validation") or {}
    parts = [f"<p>{_badge(data.get('blessed'), validation)}</p>"]
    if validation.get("error"):
        parts.append(f'<p class="error">{escape(validation["error"])}</p>')
    if validation.get("checks"):
        parts.append("<h3>Thresholds the Evaluator applied</h3>")
        parts.append(_check_rows(validation["checks"], models))
    if validation.get("no_baseline"):
        parts.append('<p class="note">No baseline (latest blessed) model was evaluated (a first model), so '
                     "no threshold compared this model against one.</p>")
    if validation.get("failures"):
        items = "".join(f"<li>{escape(f)}</li>" for f in validation["failures"])
        parts.append(f'<ul class="fail">{items}</ul>')
    return "".join(parts)


# ---------------------------------------------------------------------------------------------- page
def has_truth(models: Mapping[str, Any]) -> bool:
    """Whether any slice of any model has a ground-truth metric (the logs had truth columns)."""
    return any(slices.is_number(slices.metric(s["metrics"], "true_ctr_selected"))
               for m in models.values() for s in m["slices"])


def render_report(data: Mapping[str, Any]) -> str:
    """Renders report data (see :mod:`creative_metrics.report`) to one self-contained HTML page.

    Raises:
      ValueError: ``data`` has no models, or a model without slices.
    """
    if not data.get("models"):
        raise ValueError("report data has no models")
    for name, model in data["models"].items():
        if "slices" not in model:
            raise ValueError(f"model {name!r} of the report data has no 'slices'")
    models = roles.ordered(data["models"])
    title = data.get("title") or DEFAULT_TITLE

    parts = [f"<h1>{escape(title)}</h1>"]
    if data.get("subtitle"):
        parts.append(f'<p class="sub">{escape(data["subtitle"])}</p>')
    parts.append(blessing_section(data, models))

    parts.append("<h2>Headline metrics (all eval impressions)</h2>")
    parts.append(headline_table(models))
    estimators = ('<p class="note">NSCTR, sCTR and calibrated sCTR estimate the CTR of the CR model\'s top-1 '
                  "creative from logged clicks on the impressions where it matches the exposed creative")
    if has_truth(models):
        parts.append(
            f"{estimators}; the <em>true CTR</em> rows are the simulator's ground truth for the same choice. "
            "NSCTR is computed over the ads with at least one match (coverage). Lift share = (selected &minus; "
            "random) / (oracle &minus; random).</p>")
    else:
        parts.append(
            f"{estimators}. NSCTR is computed over the ads with at least one match (coverage). These logs have "
            "no ground-truth columns (their feature spec declares no truth group), so every figure here is an "
            "estimate from clicks: there is no true CTR to compare with.</p>")

    parts.append("<h2>Slices</h2>")
    nc_rows = {name: slices.num_candidates_rows(m["slices"]) for name, m in models.items()}
    parts.append(slice_table("By number of candidate creatives (Gu et al., 2025, Table 4 buckets)",
                             nc_rows, models, "candidates"))
    for column in slices.other_slice_columns(models):
        rows = {name: slices.column_rows(model, column) for name, model in models.items()}
        parts.append(slice_table(f"By {column}", rows, models, column))
    parts.append(
        '<p class="note">&ldquo;true lift vs random&rdquo; = true CTR of the selected creatives / mean true '
        "CTR of all candidates &minus; 1. &ldquo;NSCTR lift vs logged&rdquo; = NSCTR / logged CTR of the "
        "covered ads &minus; 1: the same lift estimated from clicks (relative to the logging policy, which is "
        "the random policy when creatives were logged uniformly). GAUC does not pool across slices and is "
        "shown only where TFMA computed it.</p>")

    figures = [
        ("Lift over random by number of candidates", plots.lift_by_bucket(models)),
        ("Estimates vs true CTR (every slice and model)", plots.estimates_vs_truth(models)),
        (f"Calibration of {F.PCTR_AD}", plots.calibration(models)),
    ]
    cards = [f'<div class="card"><h3>{escape(t)}</h3>{svg}</div>' for t, svg in figures if svg]
    if cards:
        parts.append("<h2>Plots</h2>")
        parts.append(f'<div class="grid">{"".join(cards)}</div>')
    missing = [t for t, svg in figures if not svg]
    if missing:
        parts.append(f'<p class="note">Not plotted (no data): {escape(", ".join(missing))}.</p>')

    stamp = f" {escape(data['generated'])}" if data.get("generated") else ""
    parts.append(f'<p class="note">Generated{stamp} by <code>creative_metrics.report</code>.</p>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>\n")
