"""``results.json`` rendered: a Markdown page (``results.md``) and a self-contained HTML report (``report.html``).

Both show the four tables in the paper's form (rows no profile entry fills say what they wait for), the arms
with the requests each used, the harness's checks and the commands. The HTML page inlines its stylesheet
(the evaluation report's) and its plots (SVG drawn by matplotlib): the lift of each arm over the control with
its 95% CI, realised and expected CTR and RPM, and the router's response time.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional

from creative_metrics.report.formats import escape
from creative_metrics.report.plots import figure, inline_svg
from creative_metrics.report.style import CSS
from creative_metrics.report.write import write_atomically
from experiments.config import TABLES

LABELS = {
    "ctr": "CTR", "expected_ctr": "expected CTR", "rpm": "RPM", "expected_rpm": "expected RPM",
    "rt_p50_ms": "RT p50 ms", "rt_p99_ms": "RT p99 ms", "ctr_lift": "CTR lift", "expected_ctr_lift": "exp. CTR lift",
    "rpm_lift": "RPM lift", "expected_rpm_lift": "exp. RPM lift", "sctr": "sCTR", "nsctr": "NSCTR",
    "calibrated_sctr": "cal. sCTR", "ipw": "IPW", "snipw": "SNIPW", "dr": "DR", "true_ctr": "true CTR",
    "lift_share": "lift share", "auc": "AUC", "gauc": "GAUC",
}
_COLORS = {"ctr_lift": "#cf222e", "expected_ctr_lift": "#1f6feb", "rpm_lift": "#d29922",
           "expected_rpm_lift": "#116329"}


def _format(name: str, value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name.endswith("_lift") or name == "lift_share":
        return f"{value:+.2%}" if name.endswith("_lift") else f"{value:.1%}"
    if name.endswith("_ms"):
        return f"{value:.1f}"
    if "rpm" in name:
        return f"{value:.2f}"
    if name in ("auc", "gauc"):
        return f"{value:.4f}"
    return f"{value:.5f}"


def cell(name: str, metric: Optional[Mapping[str, Any]]) -> str:
    """``mean [ci_low, ci_high]`` of one metric (``-`` when absent; no interval when there is none)."""
    if not metric:
        return "-"
    text = _format(name, metric["mean"])
    if metric.get("ci_low") is not None:
        text += f" [{_format(name, metric['ci_low'])}, {_format(name, metric['ci_high'])}]"
    return text


def _count(row: Mapping[str, Any]) -> str:
    if "requests" in row:
        return f"{row['requests']:,} req, {row['users']:,} users"
    return f"{row['eval_impressions']:,.0f} imp" if row.get("eval_impressions") else "-"


def table_rows(table: Mapping[str, Any]) -> List[List[str]]:
    """The table as text cells: row, source, each column, the volume behind it (pending rows say why)."""
    out = []
    for name, row in table["rows"].items():
        if row is None:
            out.append([name, "pending: " + table["pending"][name]] + [""] * (len(table["columns"]) + 1))
            continue
        ref = table["lift_reference"].get(name)
        source = table["sources"][name] + (f" (lifts vs {ref})" if ref else "")
        out.append([name, source] + [cell(c, row.get(c)) for c in table["columns"]] + [_count(row)])
    return out


def _header(table: Mapping[str, Any]) -> List[str]:
    return ["row", "source"] + [LABELS.get(c, c) for c in table["columns"]] + ["volume"]


def render_markdown(results: Mapping[str, Any]) -> str:
    lines = [f"# Online and offline results: profile `{results['profile']}`", "",
             f"Seeds {results['seeds']}, path `{results['path']}`, control arm `{results['control']}`. "
             f"{results['statistics']}", ""]
    for t in TABLES:
        table = results[t]
        lines += [f"## {table['title']}", "", "| " + " | ".join(_header(table)) + " |",
                  "|" + "---|" * len(_header(table))]
        lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(table)]
        lines.append("")
    lines += ["## Fidelity study", ""] + fidelity_markdown(results["fidelity"]) + ["", "## Arms", "",
              "| arm | mode | requests | users | impressions | failed | degraded | CTR | expected CTR | RPM |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, arm in results["arms"].items():
        m = arm["metrics"]
        lines.append(f"| {label} | {arm['mode']} | {arm['requests']:,} | {arm['users']:,} | {arm['impressions']:,} "
                     f"| {arm['failed']} | {arm['degraded']} | {cell('ctr', m['ctr'])} | "
                     f"{cell('expected_ctr', m['expected_ctr'])} | {cell('rpm', m['rpm'])} |")
    lines += ["", "## Harness", "", "```json", json.dumps(results["harness"], indent=1), "```", "",
              "## World", "", "```json", json.dumps(results["world"]["knobs"]), "```", "", "## Commands", "",
              "```"] + results["commands"] + ["```", ""]
    return "\n".join(lines)


def lift_plot(results: Mapping[str, Any]) -> Optional[str]:
    """Each arm's lifts over the control with 95% CIs (SVG), or ``None`` with a single arm."""
    arms = [(label, a) for label, a in results["arms"].items() if label != results["control"]]
    if not arms:
        return None
    fig, ax = figure(6.8, 3.6)
    names = list(_COLORS)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        for i, (_, arm) in enumerate(arms):
            m = arm["metrics"].get(name)
            if not m:
                continue
            x = i + (k - (len(names) - 1) / 2) * width
            err = [[m["mean"] - m["ci_low"]], [m["ci_high"] - m["mean"]]] if m.get("ci_low") is not None else None
            ax.bar(x, m["mean"], width, color=_COLORS[name], label=LABELS[name] if i == 0 else None,
                   yerr=err, capsize=2, error_kw={"linewidth": 0.8})
    ax.axhline(0, color="#57606a", linewidth=0.8)
    ax.set_xticks(range(len(arms)), [label for label, _ in arms])
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:+.0%}")
    ax.set_ylabel(f"lift over {results['control']}")
    ax.legend(fontsize=8, frameon=False)
    return inline_svg(fig, "lifts")


def latency_plot(results: Mapping[str, Any]) -> str:
    """The router's response time p50 / p99 of each arm (SVG)."""
    fig, ax = figure(5.2, 3.6)
    labels = list(results["arms"])
    for k, (name, color) in enumerate((("rt_p50_ms", "#1f6feb"), ("rt_p99_ms", "#cf222e"))):
        values = [results["arms"][a]["metrics"][name]["mean"] for a in labels]
        ax.bar([i + (k - 0.5) * 0.38 for i in range(len(labels))], values, 0.38, color=color, label=LABELS[name])
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("router response time (ms)")
    ax.legend(fontsize=8, frameon=False)
    return inline_svg(fig, "latency")


FIDELITY_NOTE = ("Each upgrade's offline lift over its predecessor on the logged eval day against its true lift "
                 "(the mean true CTR of its picks); fidelity = the correlation over the upgrades, mean over seeds "
                 "with a 95% bootstrap CI resampling upgrades.")
_METRIC_COLORS = {"nsctr": "#1f6feb", "sctr": "#cf222e", "calibrated_sctr": "#d29922", "auc": "#8250df",
                  "gauc": "#bf3989", "ipw": "#116329", "snipw": "#1b7c83", "dr": "#953800"}


def _correlation_rows(fidelity: Mapping[str, Any]) -> List[List[str]]:
    rows = []
    for name, condition in fidelity["conditions"].items():
        for kind in ("pearson", "spearman"):
            rows.append([name, kind] + [_corr_cell(condition[kind].get(m)) for m in _METRIC_COLORS])
    return rows


def _corr_cell(c: Optional[Mapping[str, Any]]) -> str:
    if not c:
        return "-"
    return f"{c['mean']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}]" if c.get("ci_low") is not None \
        else f"{c['mean']:+.2f}"


def _upgrade_rows(fidelity: Mapping[str, Any]) -> List[List[str]]:
    return [[f"{u['from']} -> {u['name']}", u["description"]]
            + [cell("true_ctr_lift", u["lifts"]["true_ctr"])]
            + [cell("metric_lift", u["lifts"].get(m)) for m in _METRIC_COLORS] for u in fidelity["upgrades"]]


_CORR_HEADER = ["world", "correlation"] + [LABELS[m] for m in _METRIC_COLORS]
_UPGRADE_HEADER = ["upgrade", "ranker", "true CTR lift"] + [f"{LABELS[m]} lift" for m in _METRIC_COLORS]


_LADDER_METRICS = [m for m in _METRIC_COLORS if m != "gauc"]  # GAUC of pctr_c: not an Evaluator metric
_LADDER_UPGRADE_HEADER = ["upgrade", "online expected-CTR lift"] + [f"{LABELS[m]} lift" for m in _LADDER_METRICS]
_LADDER_CORR_HEADER = ["correlation"] + [LABELS[m] for m in _LADDER_METRICS]


def _ladder_tables(ladder: Mapping[str, Any]):
    upgrades = [[f"{u['from']} -> {u['name']}", cell("true_ctr_lift", u["lifts"].get("true_ctr"))]
                + [cell("metric_lift", u["lifts"].get(m)) for m in _LADDER_METRICS] for u in ladder["upgrades"]]
    corr = [[kind] + [_corr_cell(ladder[kind].get(m)) for m in _LADDER_METRICS] for kind in ("pearson", "spearman")]
    title = (f"A/B ladder: the trained variants, {len(ladder['upgrades'])} upgrades x {ladder['n_seeds']} "
             "seed(s), online lifts from the A/B test")
    return title, upgrades, corr


def _md_table(header, rows) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def fidelity_markdown(fidelity: Mapping[str, Any]) -> List[str]:
    ladder: List[str] = []
    if fidelity.get("ab_ladder"):
        title, upgrades, corr = _ladder_tables(fidelity["ab_ladder"])
        ladder = (["", f"### {title}", "", fidelity["ab_ladder"]["note"], ""]
                  + _md_table(_LADDER_UPGRADE_HEADER, upgrades) + [""] + _md_table(_LADDER_CORR_HEADER, corr))
    if not fidelity.get("upgrades"):
        return [fidelity.get("pending", "")] + ladder
    return ([FIDELITY_NOTE, f"Seeds {fidelity['seeds']}; upgrades of world `{fidelity['headline_condition']}`:", ""]
            + _md_table(_UPGRADE_HEADER, _upgrade_rows(fidelity))
            + ["", "Correlation of offline lift with true lift:", ""]
            + _md_table(_CORR_HEADER, _correlation_rows(fidelity)) + ladder)


def _ladder_html(fidelity: Mapping[str, Any]) -> List[str]:
    if not fidelity.get("ab_ladder"):
        return []
    title, upgrades, corr = _ladder_tables(fidelity["ab_ladder"])
    return [f"<h3>{escape(title)}</h3>", f'<p class="note">{escape(fidelity["ab_ladder"]["note"])}</p>',
            _html_table(_LADDER_CORR_HEADER, corr), _html_table(_LADDER_UPGRADE_HEADER, upgrades)]


def fidelity_lift_plot(fidelity: Mapping[str, Any]) -> Optional[str]:
    """Fig. 4's view: every metric's lift per upgrade beside the true lift (SVG)."""
    upgrades = fidelity.get("upgrades")
    if not upgrades:
        return None
    fig, ax = figure(7.2, 3.8)
    x = range(len(upgrades))
    for m, color in _METRIC_COLORS.items():
        ax.plot(x, [(u["lifts"].get(m) or {}).get("mean", math.nan) for u in upgrades], marker="o", markersize=3,
                linewidth=1, color=color, label=LABELS[m])
    ax.plot(x, [u["lifts"]["true_ctr"]["mean"] for u in upgrades], color="#000000", linewidth=2.4,
            marker="s", label="true CTR")
    ax.axhline(0, color="#57606a", linewidth=0.8)
    ax.set_xticks(list(x), [u["name"] for u in upgrades], rotation=30, ha="right", fontsize=8)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:+.0%}")
    ax.set_ylabel("lift over the previous ranker")
    ax.legend(fontsize=7, frameon=False, ncol=3)
    return inline_svg(fig, "fidelity-lifts")


def fidelity_correlation_plot(fidelity: Mapping[str, Any]) -> Optional[str]:
    """Pearson correlation of each metric's lift with the true lift, per world, with 95% CIs (SVG)."""
    conditions = fidelity.get("conditions")
    if not conditions:
        return None
    fig, ax = figure(7.2, 3.6)
    metrics = list(_METRIC_COLORS)
    width = 0.8 / len(conditions)
    hatches = ["", "//", "..", "xx", "\\\\", "--"]
    for k, (name, condition) in enumerate(conditions.items()):
        for i, m in enumerate(metrics):
            c = condition["pearson"].get(m)
            if not c:
                continue
            err = [[c["mean"] - c["ci_low"]], [c["ci_high"] - c["mean"]]] if c.get("ci_low") is not None else None
            ax.bar(i + (k - (len(conditions) - 1) / 2) * width, c["mean"], width, color=_METRIC_COLORS[m],
                   hatch=hatches[k % len(hatches)], edgecolor="#ffffff", yerr=err, capsize=1.5,
                   error_kw={"linewidth": 0.7})
    ax.axhline(0, color="#57606a", linewidth=0.8)
    ax.set_xticks(range(len(metrics)), [LABELS[m] for m in metrics], fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Pearson r with the true lift")
    from matplotlib.patches import Patch  # one grey swatch per world: the colour is the metric's

    ax.legend(handles=[Patch(facecolor="#8c959f", edgecolor="#ffffff", hatch=hatches[k % len(hatches)], label=name)
                       for k, name in enumerate(conditions)], fontsize=7, frameon=False, ncol=2, loc="lower left")
    return inline_svg(fig, "fidelity-pearson")


def fidelity_html(fidelity: Mapping[str, Any]) -> List[str]:
    if not fidelity.get("upgrades"):
        return [f'<p class="note">{escape(fidelity.get("pending", ""))}</p>'] + _ladder_html(fidelity)
    figures = [("Offline and true lift per upgrade (world " + fidelity["headline_condition"] + ")",
                fidelity_lift_plot(fidelity)),
               ("Fidelity: Pearson r of offline lift with true lift (95% CI)", fidelity_correlation_plot(fidelity))]
    return ([f'<p class="note">{escape(FIDELITY_NOTE)} Seeds {escape(fidelity["seeds"])}.</p>',
             '<div class="grid">' + "".join(f'<div class="card"><h3>{escape(t)}</h3>{svg}</div>'
                                           for t, svg in figures if svg) + "</div>",
             _html_table(_CORR_HEADER, _correlation_rows(fidelity)),
             _html_table(_UPGRADE_HEADER, _upgrade_rows(fidelity))] + _ladder_html(fidelity))


def _html_table(header: List[str], rows: List[List[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=name" if j == 1 else ""}>{escape(c)}</td>'
                                    for j, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(results: Mapping[str, Any]) -> str:
    sections = [f"<h1>Online and offline results: profile {escape(results['profile'])}</h1>",
                f'<p class="sub">Seeds {escape(results["seeds"])}, path {escape(results["path"])}, control arm '
                f'{escape(results["control"])}.</p><p class="note">{escape(results["statistics"])}</p>']
    figures = [("Lifts over the control arm (95% CI)", lift_plot(results)),
               ("Router response time", latency_plot(results))]
    sections.append('<div class="grid">' + "".join(f'<div class="card"><h3>{escape(t)}</h3>{svg}</div>'
                                                   for t, svg in figures if svg) + "</div>")
    for t in TABLES:
        table = results[t]
        sections += [f"<h2>{escape(table['title'])}</h2>", _html_table(_header(table), table_rows(table))]
    sections += ["<h2>Fidelity study</h2>"] + fidelity_html(results["fidelity"])
    sections += [
                 "<h2>Harness</h2>", f"<pre>{escape(json.dumps(results['harness'], indent=1))}</pre>",
                 "<h2>World</h2>", f"<pre>{escape(json.dumps(results['world'], indent=1))}</pre>",
                 "<h2>Commands</h2>", "<pre>" + escape("\n".join(results["commands"])) + "</pre>"]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Experiment results</title>"
            f"<style>{CSS}</style></head><body><main>{''.join(sections)}</main></body></html>")


def write(results: Mapping[str, Any], out_dir: str) -> Dict[str, str]:
    """Writes ``results.json``, ``results.md`` and ``report.html`` into ``out_dir``; returns their paths."""
    import os

    paths = {name: os.path.join(out_dir, name) for name in ("results.json", "results.md", "report.html")}
    results = _finite(results)
    write_atomically(json.dumps(results, indent=1, allow_nan=False, default=_json_default), paths["results.json"])
    write_atomically(render_markdown(results), paths["results.md"])
    write_atomically(render_html(results), paths["report.html"])
    return paths


def _finite(value):
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
