"""``results.json``: every number of the experiment in the paper's tables, each with its CI and seeds.

Layout (every metric is ``{"mean", "ci_low", "ci_high", "n_seeds"}``, see :mod:`experiments.stats`)::

    {"profile", "seeds", "path", "statistics",
     "table1" .. "table4": {"title", "columns", "rows": {paper row: {metric: ...} | null},
                            "sources": {row: arm or training}, "lift_reference": {row: row},
                            "pending": {row: what it waits for}},
     "fidelity": {"upgrades": [{"name", "from", "description", "values": {metric: ...}, "lifts": {...}}],
                  "pearson": {metric: ...}, "spearman": {metric: ...}, "headline_condition",
                  "conditions": {name: {"simulator", "upgrades", "pearson", "spearman"}}, "seeds", ...,
                  "ab_ladder": the TF variants' offline vs online lifts (experiments.ab_ladder; with a ladder)},
     "arms": {label: {"mode", "ar", "cr", "requests", "users", "impressions", "failed", "degraded",
                      "metrics", "lifts": {other arm: {...}}}},
     "world": {"knobs", "simulator", "logged"}, "harness": {...}, "commands": [...], "seconds": {...}}

Rows are the paper's (Yang et al., AAAI 2024); a row no arm or training of the profile fills is ``null``
and ``pending`` says what it needs (the comparison variants join as profile entries). Online rows
(tables 1, 2) carry the arm's metrics and its lifts over the ``lift_reference`` row (Table 1: no-CR; Table
2: each pair's baseline); offline rows (tables 3, 4) the training's Evaluator metrics on the eval day.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from experiments import ab_ladder, stats
from experiments.config import TABLES, Profile
from experiments.fidelity import METRICS as FIDELITY_METRICS

TITLES = {
    "table1": "Table 1: online architectures (CTR, RPM, RT)",
    "table2": "Table 2: JAC's effect online",
    "table3": "Table 3: creative ranking, offline on the logged eval day",
    "table4": "Table 4: ad ranking, offline on the logged eval day",
}
PAPER_ROWS = {
    "table1": ("no-CR", "Post-CR", "Pre-CR", "Peri-CR+"),
    "table2": ("Post-CR", "Post-CR+", "Peri-CR", "Peri-CR+", "AR", "AR+"),
    "table3": ("VAM-HBM", "CACS", "CR", "CR+", "JAC"),
    "table4": ("AR", "AR+", "ACR"),
}
ONLINE_COLUMNS = ("ctr", "expected_ctr", "rpm", "expected_rpm", "rt_p50_ms", "rt_p99_ms", "ctr_lift",
                  "expected_ctr_lift", "rpm_lift", "expected_rpm_lift")
# results column -> the Evaluator's overall-slice metric (creative_metrics.tfma_metrics keys)
OFFLINE_COLUMNS = {
    "table3": {"sctr": "sctr", "nsctr": "nsctr", "calibrated_sctr": "calibrated_sctr", "ipw": "ipw",
               "snipw": "snipw", "dr": "dr", "true_ctr": "true_ctr_selected", "lift_share": "lift_share"},
    "table4": {"auc": "pctr_ad/auc", "gauc": "pctr_ad/gauc"},
}
LIFT_REFERENCE = {
    "table1": {"Post-CR": "no-CR", "Pre-CR": "no-CR", "Peri-CR+": "no-CR"},
    "table2": {"Post-CR+": "Post-CR", "Peri-CR+": "Peri-CR", "AR+": "AR"},
}
PENDING = {
    ("table1", "Post-CR"): "an arm serving the DSSM two-tower CR after AR (the dssm variant; paper profile)",
    ("table1", "Pre-CR"): "an arm serving CACS before the creative-aware AR (the cacs and acr variants; paper profile)",
    ("table2", "Post-CR"): "an arm serving the DSSM two-tower CR after AR (the dssm variant; paper profile)",
    ("table2", "Peri-CR"): "an arm serving the CR ablation (training variant 'cr', its cr-only/ model; paper profile)",
    ("table2", "AR"): "an arm serving the AR ablation (training variant 'ar', its ar-only/ model; paper profile)",
    ("table3", "VAM-HBM"): "a training of the VAM-HBM hybrid bandit (the hbm variant; paper profile)",
    ("table3", "CACS"): "a training of CACS (the cacs variant; paper profile)",
    ("table3", "CR"): "a training of the CR ablation (variant 'cr'; paper profile)",
    ("table3", "JAC"): "the joint model scoring creatives with its own pctr_ad (an eval-model output)",
    ("table4", "AR"): "a training of the AR ablation (variant 'ar'; paper profile)",
    ("table4", "ACR"): "a training of the creative-aware AR (the acr variant; paper profile)",
}
STATISTICS = ("Online metrics: ratios of sums over an arm's requests; 95% CIs by a percentile bootstrap over "
              "users (response times: over requests). Over seeds: the mean; with one seed its bootstrap CI, "
              "with n >= 2 seeds mean +- t(0.975, n-1) s / sqrt(n). Offline metrics: the Evaluator's overall "
              "slice; no CI with one seed. expected_* use the true click probability of what was shown.")


def _offline_row(table: str, per_seed: Sequence[Mapping[str, float]]) -> Dict[str, Any]:
    return {column: stats.over_seeds([{"value": seed.get(key)} if seed.get(key) is not None else None
                                      for seed in per_seed])
            for column, key in OFFLINE_COLUMNS[table].items()}


def _arms(profile: Profile, records: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    out = {}
    for arm in profile.arms:
        per_seed = [r["arms"][arm.label] for r in records]
        others = [a.label for a in profile.arms if a.label != arm.label]
        out[arm.label] = {
            "mode": arm.mode, "ar": dict(arm.ar.__dict__), "cr": dict(arm.cr.__dict__),
            **{k: sum(p[k] for p in per_seed) for k in ("requests", "users", "impressions", "failed", "degraded")},
            "metrics": stats.metrics_over_seeds([p["metrics"] for p in per_seed]),
            "lifts": {o: stats.metrics_over_seeds([p["lifts"][o] for p in per_seed]) for o in others},
        }
    return out


def _table(table: str, profile: Profile, arms: Mapping[str, Dict], records) -> Dict[str, Any]:
    rows: Dict[str, Optional[Dict]] = dict.fromkeys(PAPER_ROWS[table])
    sources, lift_reference = {}, {}
    arm_of_row = {row: arm.label for arm in profile.arms for t, row in arm.rows if t == table}
    for row, label in arm_of_row.items():
        metrics = {c: v for c, v in arms[label]["metrics"].items() if c in ONLINE_COLUMNS and not c.endswith("_lift")}
        reference = LIFT_REFERENCE.get(table, {}).get(row)
        if reference in arm_of_row:
            metrics.update(arms[label]["lifts"][arm_of_row[reference]])
            lift_reference[row] = reference
        rows[row] = {**metrics, "requests": arms[label]["requests"], "users": arms[label]["users"],
                     "impressions": arms[label]["impressions"]}
        sources[row] = label
    for training in profile.trainings:
        for t, row in training.offline_rows:
            if t == table:
                per_seed = [r["offline"][training.name] for r in records]
                rows[row] = {**_offline_row(table, per_seed),
                             "eval_impressions": per_seed[0].get("true_ctr_impressions")}
                sources[row] = f"training {training.name}"
    columns = list(OFFLINE_COLUMNS[table]) if table in OFFLINE_COLUMNS else list(ONLINE_COLUMNS)
    return {"title": TITLES[table], "columns": columns, "rows": rows, "sources": sources,
            "lift_reference": lift_reference,
            "pending": {row: PENDING.get((table, row), "not in this profile") for row, v in rows.items() if v is None}}


def build(profile: Profile, records: Sequence[Mapping[str, Any]], commands: List[str],
          seconds: Mapping[str, float], fidelity: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """``results.json`` from each seed's record (``{"arms": stats.arm_metrics(...), "offline": {training:
    {metric: value}}, "world": the log's summary, "harness": {...}}``) and the fidelity study's entry
    (:func:`experiments.fidelity.run`; ``None``: the profile has none)."""
    arms = _arms(profile, records)
    world_config = profile.world_config(profile.seeds[0])
    out: Dict[str, Any] = {"profile": profile.name, "seeds": list(profile.seeds), "path": profile.path,
                           "control": profile.control, "statistics": STATISTICS}
    out.update({table: _table(table, profile, arms, records) for table in TABLES})
    if fidelity is not None:
        out["fidelity"] = dict(fidelity)
    else:
        out["fidelity"] = {"upgrades": [], "pearson": dict.fromkeys(FIDELITY_METRICS),
                           "spearman": dict.fromkeys(FIDELITY_METRICS),
                           "pending": "this profile runs no fidelity study (Profile.fidelity)"}
    if profile.ab_ladder:
        out["fidelity"]["ab_ladder"] = ab_ladder.build(profile.ab_ladder, records, profile.bootstrap_replicates)
    out["arms"] = arms
    logged = [r["world"]["overall"] for r in records]
    out["world"] = {
        "knobs": {k: getattr(world_config, k) for k in ("relevance_style_scale", "creative_count_quality",
                                                         "bid_mean", "bid_std", "logging_policy", "target_ctr")},
        "simulator": {k: v for k, v in world_config.to_dict().items() if k != "seed"},
        "logged": {k: stats.over_seeds([{"value": s[k]} for s in logged])
                   for k in ("ctr", "expected_ctr_logged", "expected_ctr_oracle", "expected_ctr_random", "rpm")},
    }
    out["harness"] = [r["harness"] for r in records]
    out["commands"] = commands
    out["seconds"] = dict(seconds)
    return out
