"""The GenCO experiment's tables in the form of Gu et al., 2025 (Tables 2-4, Fig. 3), with confidence intervals.

Every number is first computed per seed (a seed is a whole new world, log and training run); a table cell is
the mean over seeds with a 95 % Student-t interval, ``mean ± t_{0.975, s-1} * sd / sqrt(s)``
(:func:`experiments.stats.over_seeds`, as the online A/B harness reports its seeds).

* Table 2: the true CTR lift of each method over Uniform, from the simulator's truth (not estimated);
* Table 3: the change of each ablation's calibrated sCTR per component relative to the full GenCO (the paper's
  form), and of its true CTR;
* Table 4: GenCO's true-CTR lift over Uniform per component and pool-size bucket;
* Fig. 3: GenCO's learned multi-instance weight per component and ad-category group, beside the world's
  true component importance.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

import features as F
from creative_metrics import candidate_buckets as CB
from experiments.stats import over_seeds

TABLE2_ROWS = (("Uniform", "uniform"), ("+DCO", "dco"), ("+MLP", "mlp"), ("+f_ele", "f_ele"),
               ("+f_comb", "f_comb"), ("+GenCO", "genco"))
TABLE3_ROWS = (("w/o MIL", "no_mil"), ("w/o RL", "no_rl"), ("w/o context", "no_context"), ("w/o all", "no_all"))


def interval(values: Sequence[Optional[float]]) -> Optional[Dict[str, float]]:
    """The seeds' ``values`` (NaN and None skipped) as :func:`experiments.stats.over_seeds` reports a metric:
    ``{"mean", "ci_low", "ci_high", "n_seeds"}``, the 95 % Student-t interval (null with one seed), or None."""
    return over_seeds([{"value": v} for v in values if v is not None])


def aggregate(runs: List[dict]) -> dict:
    """Per-seed results -> the intervals of every table cell."""
    def over(fn):
        return interval([fn(r) for r in runs])

    methods = runs[0]["true_ctr"].keys()
    out = {
        "true_ctr": {m: over(lambda r, m=m: r["true_ctr"][m]) for m in methods},
        "lift": {m: over(lambda r, m=m: r["true_ctr"][m] / r["true_ctr"]["uniform"] - 1.0) for m in methods},
        "sctr": {m: {c: over(lambda r, m=m, c=c: r["sctr"][m][c]) for c in F.GENCO_COMPONENTS}
                 for m in runs[0]["sctr"]},
        "ablation_sctr_change": {
            m: {c: over(lambda r, m=m, c=c: r["sctr"][m][c] / r["sctr"]["genco"][c] - 1.0) for c in F.GENCO_COMPONENTS}
            for _, m in TABLE3_ROWS},
        "ablation_true_ctr_change": {
            m: over(lambda r, m=m: r["true_ctr"][m] / r["true_ctr"]["genco"] - 1.0) for _, m in TABLE3_ROWS},
        "table4": {c: {label: over(lambda r, c=c, b=label: r["table4"][c][b])
                       for _, _, label in CB.COMPONENT_BUCKETS[c]} for c in F.GENCO_COMPONENTS},
        "fig3_learned": np.nanmean([r["fig3_learned"] for r in runs], axis=0).tolist(),
        "fig3_truth": runs[0]["fig3_truth"],
    }
    return out


def _cell(iv: Optional[Dict[str, float]], percent: bool = True, digits: int = 2) -> str:
    """``mean ± half width`` of a symmetric interval (the mean alone without one, ``n/a`` without a value)."""
    if iv is None:
        return "n/a"
    scale, sign, unit, digits = (100.0, "+", "%", digits) if percent else (1.0, "", "", digits + 2)
    mean = f"{iv['mean'] * scale:{sign}.{digits}f}{unit}"
    if iv["ci_low"] is None:
        return mean
    return f"{mean} ± {(iv['ci_high'] - iv['ci_low']) / 2 * scale:.{digits}f}{unit}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(agg: dict, meta: dict) -> str:
    """The tables as Markdown (``meta``: the profile, seeds, sizes and notes printed above them)."""
    lines = [f"# GenCO experiments (profile `{meta['profile']}`)", "",
             f"{meta['seeds']} seeds; each a new simulated world and log "
             f"(`simulator.combinations`, {meta['impressions']:,} impressions: {meta['train_days']} production-logged "
             f"training days, {meta['test_days']} uniform-logged test days). Cells: mean ± 95% t-interval over seeds.",
             "", *[f"- {note}" for note in meta.get("notes", [])], ""]
    lines += ["## Table 2: CTR lift over Uniform (true CTR, from the simulator)", ""]
    rows = [[label, "–" if key == "uniform" else _cell(agg["lift"][key]), _cell(agg["true_ctr"][key], percent=False)]
            for label, key in TABLE2_ROWS]
    rows.append(["Oracle (best combination)", _cell(agg["lift"]["oracle"]), _cell(agg["true_ctr"]["oracle"], False)])
    lines += _table(["method", "CTR lift", "true CTR"], rows) + [""]

    lines += ["## Table 3: ablations, change of calibrated sCTR per component relative to GenCO", ""]
    header = ["ablation"] + list(F.GENCO_COMPONENTS) + ["true CTR"]
    rows = [[label] + [_cell(agg["ablation_sctr_change"][key][c], digits=1) for c in F.GENCO_COMPONENTS]
            + [_cell(agg["ablation_true_ctr_change"][key])] for label, key in TABLE3_ROWS]
    lines += _table(header, rows) + [""]
    lines += ["Calibrated sCTR per component (Gu et al., 2025, Algorithm 1) of each method:", ""]
    rows = [[key] + [_cell(agg["sctr"][key][c], percent=False) for c in F.GENCO_COMPONENTS] for key in agg["sctr"]]
    lines += _table(["method"] + list(F.GENCO_COMPONENTS), rows) + [""]

    lines += ["## Table 4: GenCO's CTR lift over Uniform by candidate count (true CTR)", ""]
    header = ["# candidates"] + list(F.GENCO_COMPONENTS)
    rows = []
    for k in range(3):
        row = [f"{CB.SMALL_POOL_BUCKETS[k][2]} ({CB.BUCKETS[k][2]})"]
        row += [_cell(agg["table4"][c][CB.COMPONENT_BUCKETS[c][k][2]]) for c in F.GENCO_COMPONENTS]
        rows.append(row)
    lines += _table(header, rows) + [""]

    lines += ["## Fig. 3: learned multi-instance weight by component and ad-category group", "",
              "Mean weight w of each component over the test impressions whose ad has it (GenCO, mean over seeds); "
              "in parentheses the world's true component importance (the weight omega of its click model, "
              "normalised to sum to 1 per group).", ""]
    learned, truth = np.asarray(agg["fig3_learned"]), np.asarray(agg["fig3_truth"])
    truth = truth / truth.sum(axis=1, keepdims=True)
    rows = [[g] + [f"{learned[i, j]:.3f} ({truth[i, j]:.3f})" for j in range(len(F.GENCO_COMPONENTS))]
            for i, g in enumerate(F.GENCO_CATEGORY_GROUPS)]
    lines += _table(["group"] + list(F.GENCO_COMPONENTS), rows) + [""]
    if meta.get("figure"):
        lines += [f"![Fig. 3]({meta['figure']})", ""]
    return "\n".join(lines)


def plot_fig3(agg: dict, path: str) -> str:
    """Grouped bars of the learned weights per category group and component (PNG at ``path``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned = np.asarray(agg["fig3_learned"])
    groups, comps = F.GENCO_CATEGORY_GROUPS, F.GENCO_COMPONENTS
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(comps)
    for j, c in enumerate(comps):
        ax.bar(np.arange(len(groups)) + (j - len(comps) / 2 + 0.5) * width, learned[:, j], width, label=c)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel("mean learned weight w")
    ax.set_title("GenCO: multi-instance weight by component and ad category")
    ax.legend(ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
