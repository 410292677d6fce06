r"""The fidelity study (Fig. 4 of Yang et al., AAAI 2024, with the truth the paper lacked): do offline
creative-ranking metrics move with the true CTR when a creative ranker is upgraded?

For each world of a condition (a logging policy, the sCTR-bias knob :math:`\kappa` on or off) and seed:

1. the simulator writes a log (``simulator.simulate``); its last day is the eval day;
2. a ladder of creative rankers (:data:`UPGRADES`, from random to an ID + content model) is fitted on the
   training days, each one an "upgrade" of the one before;
3. each ranker picks a creative for every logged eval impression (its top-1 among the ad's candidates) and
   scores the exposed one (``pctr_c``). Offline: NSCTR, sCTR, calibrated sCTR (:mod:`creative_metrics.replay`),
   IPW, SNIPW, DR (:mod:`creative_metrics.off_policy`, the logged propensities), AUC and GAUC of ``pctr_c``
   on the clicks. Truth: the mean true CTR of its picks (the simulator's ``truth_cand_ctrs``), the expected
   CTR the ranker would get online on the eval day's requests;
4. each upgrade's lift over its predecessor, :math:`m_k / m_{k-1} - 1`, of every metric and of the truth.

The fidelity of an offline metric is the correlation, over the upgrades, of its lift with the true lift
(Pearson and Spearman); its mean over seeds, with a 95% percentile-bootstrap CI that resamples upgrades
within each seed.

The rankers are NumPy / scikit-learn models of the variants' ideas, fitted in seconds so that a study has
many upgrades under four conditions (the TensorFlow variants take minutes each through the pipeline):

===================  ===========================================================================
``random``           a uniformly random creative
``beta_ts``          posterior mean CTR of each creative id, Beta prior fitted to the log (Beta-TS)
``hbm``              Beta posterior per creative around a content-model prior (VAM-HBM's idea)
``cr_no_embedding``  logistic CR on the creative's attributes (style, tone, price tag, text length)
``cr``               + the creative's content embedding
``cr_context``       + ad category x style
``dssm``             + user attributes x style and x price tag (a user x creative interaction)
``jac``              + the quantized pCTR of an ad ranker x style (JAC's quantized pctr_ad input)
``cacs``             + the creative id's leave-one-out posterior (ID and content together, as CACS)
===================  ===========================================================================
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

import features as F
from creative_metrics import calibrated_sctr, dr, gauc, ipw, nsctr, sctr, snipw
from simulator.arrays import offsets, segment_argmax

METRICS = ("nsctr", "sctr", "calibrated_sctr", "auc", "gauc", "ipw", "snipw", "dr")
_USER_ATTRS = (F.USER_GENDER, F.USER_AGE_BUCKET, F.USER_CITY_TIER, F.USER_DEVICE, F.USER_OS,
               F.USER_ACTIVITY_LEVEL, F.USER_INCOME_BUCKET, F.USER_MEMBER_LEVEL, F.USER_PURCHASE_FREQ)
_USER_SIZES = {F.USER_GENDER: len(F.GENDERS), F.USER_AGE_BUCKET: len(F.AGE_BUCKETS),
               F.USER_CITY_TIER: len(F.CITY_TIERS), F.USER_DEVICE: len(F.DEVICES), F.USER_OS: len(F.OSES),
               F.USER_ACTIVITY_LEVEL: len(F.ACTIVITY_LEVELS), F.USER_INCOME_BUCKET: len(F.INCOME_BUCKETS),
               F.USER_MEMBER_LEVEL: len(F.MEMBER_LEVELS), F.USER_PURCHASE_FREQ: len(F.PURCHASE_FREQS)}
_CREATIVE_ATTRS = {F.CREATIVE_STYLE: (F.CAND_STYLES, len(F.CREATIVE_STYLES)),
                   F.CREATIVE_COLOR_TONE: (F.CAND_COLOR_TONES, len(F.COLOR_TONES)),
                   F.CREATIVE_PRICE_TAG: (F.CAND_PRICE_TAGS, len(F.PRICE_TAGS)),
                   F.CREATIVE_TEXT_LENGTH: (F.CAND_TEXT_LENGTHS, len(F.TEXT_LENGTHS))}
_PCTR_BUCKETS = 5
_READ = (F.SLOT, F.USER_ID, F.AD_ID, F.AD_CATEGORY, F.AD_HIST_CTR, F.SEQ_AD_CATEGORIES, F.CREATIVE_ID,
         F.CREATIVE_EMBEDDING, F.CAND_CREATIVE_IDS, F.CAND_EMBEDDINGS, F.NUM_CANDIDATES, F.PROPENSITY,
         F.EXPOSED_INDEX, F.CLICK, F.TRUTH_CAND_CTRS) + _USER_ATTRS + tuple(_CREATIVE_ATTRS) + tuple(
             c for c, _ in _CREATIVE_ATTRS.values())


# ------------------------------------------------------------------------------------------ the log
@dataclasses.dataclass
class Split:
    """A read split: ``imp`` columns per impression, ``cand`` columns per candidate (``ptr`` rows)."""

    imp: Dict[str, np.ndarray]
    cand: Dict[str, np.ndarray]
    ptr: np.ndarray

    def __len__(self) -> int:
        return len(self.imp[F.CLICK])

    @property
    def cand_row(self) -> np.ndarray:
        """The impression of each candidate."""
        return np.repeat(np.arange(len(self)), np.diff(self.ptr))


def read(data_dir: str, split: str) -> Split:
    """The columns the rankers and the metrics read, from ``data_dir/<split>/``."""
    from simulator.truth import read_split

    cols = read_split(data_dir, split, _READ)
    n = len(cols[F.CLICK])
    imp = {k: v for k, v in cols.items() if not isinstance(v, tuple)}
    seq, seq_len = cols[F.SEQ_AD_CATEGORIES]
    seq_row = np.repeat(np.arange(n), seq_len)
    same = np.bincount(seq_row, weights=seq == imp[F.AD_CATEGORY][seq_row], minlength=n)
    imp["category_affinity"] = same / np.maximum(seq_len, 1)  # the user's share of behaviour in the ad's category
    cand = {}
    for name in (F.CAND_CREATIVE_IDS, F.TRUTH_CAND_CTRS) + tuple(c for c, _ in _CREATIVE_ATTRS.values()):
        cand[name] = cols[name][0]
    cand[F.CAND_EMBEDDINGS] = cols[F.CAND_EMBEDDINGS][0].reshape(-1, F.CREATIVE_EMBEDDING_DIM)
    return Split(imp, cand, offsets(imp[F.NUM_CANDIDATES]))


# ---------------------------------------------------------------------------------- design matrices
def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


@dataclasses.dataclass
class _Rows:
    """Rows to score: per-row impression features and creative features (exposed or candidate)."""

    imp: Dict[str, np.ndarray]  # impression columns taken per row
    creative: Dict[str, np.ndarray]  # creative attribute name (CREATIVE_*) -> value per row
    embedding: np.ndarray
    creative_id: np.ndarray
    id_logit: Optional[np.ndarray] = None
    pctr_bucket: Optional[np.ndarray] = None


def _exposed_rows(split: Split) -> _Rows:
    return _Rows(split.imp, {a: split.imp[a] for a in _CREATIVE_ATTRS}, split.imp[F.CREATIVE_EMBEDDING],
                 split.imp[F.CREATIVE_ID])


def _candidate_rows(split: Split) -> _Rows:
    row = split.cand_row
    return _Rows({k: v[row] for k, v in split.imp.items() if v.ndim == 1},
                 {a: split.cand[c] for a, (c, _) in _CREATIVE_ATTRS.items()}, split.cand[F.CAND_EMBEDDINGS],
                 split.cand[F.CAND_CREATIVE_IDS])


def _design(rows: _Rows, blocks: Sequence[str]):
    """A sparse design matrix of the named feature blocks (see :data:`UPGRADES`)."""
    from scipy import sparse

    n = len(rows.creative_id)
    parts = []

    def onehot(index, size):
        parts.append(sparse.csr_matrix((np.ones(n), (np.arange(n), index)), shape=(n, size)))

    style = rows.creative[F.CREATIVE_STYLE]
    num_styles = len(F.CREATIVE_STYLES)
    onehot(rows.imp[F.SLOT], 3 if rows.imp[F.SLOT].max() < 3 else int(rows.imp[F.SLOT].max()) + 1)
    parts.append(sparse.csr_matrix(_logit(rows.imp[F.AD_HIST_CTR])[:, None]))
    for block in blocks:
        if block == "content":
            for attr, (_, size) in _CREATIVE_ATTRS.items():
                onehot(rows.creative[attr], size)
        elif block == "embedding":
            parts.append(sparse.csr_matrix(rows.embedding.astype(np.float64)))
        elif block == "context":
            onehot(rows.imp[F.AD_CATEGORY] * num_styles + style, F.NUM_AD_CATEGORIES * num_styles)
        elif block == "user":
            tag = rows.creative[F.CREATIVE_PRICE_TAG]
            for attr in _USER_ATTRS:
                size = _USER_SIZES[attr]
                onehot(rows.imp[attr] * num_styles + style, size * num_styles)
                onehot(rows.imp[attr] * len(F.PRICE_TAGS) + tag, size * len(F.PRICE_TAGS))
        elif block == "pctr":
            onehot(rows.pctr_bucket * num_styles + style, _PCTR_BUCKETS * num_styles)
        elif block == "id":
            parts.append(sparse.csr_matrix(rows.id_logit[:, None]))
        else:
            raise ValueError(f"unknown feature block {block!r}")
    return sparse.hstack(parts, format="csr")


def _fit_logistic(x, y, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=300, random_state=seed).fit(x, y)


# ------------------------------------------------------------------------------------ creative ids
@dataclasses.dataclass
class _IdCounts:
    """Clicks and impressions of each creative id on the training days, and the fitted Beta prior."""

    clicks: Dict[int, float]
    imps: Dict[int, float]
    alpha: float
    beta: float

    @classmethod
    def of(cls, train: Split) -> "_IdCounts":
        from trainer.creative_log import fit_beta_prior

        ids, inverse = np.unique(train.imp[F.CREATIVE_ID], return_inverse=True)
        imps = np.bincount(inverse).astype(np.float64)
        clicks = np.bincount(inverse, weights=train.imp[F.CLICK])
        alpha, beta = fit_beta_prior(clicks, imps)
        return cls(dict(zip(ids.tolist(), clicks)), dict(zip(ids.tolist(), imps)), alpha, beta)

    def counts(self, creative_ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        c = np.array([self.clicks.get(int(k), 0.0) for k in creative_ids])
        n = np.array([self.imps.get(int(k), 0.0) for k in creative_ids])
        return c, n

    def posterior_mean(self, creative_ids, prior_mean=None, minus_click=None) -> np.ndarray:
        """:math:`(c + s m) / (n + s)` with the prior's strength :math:`s = \\alpha + \\beta` and mean ``m``
        (the prior's own by default); ``minus_click``: leave each training row's own impression out."""
        c, n = self.counts(creative_ids)
        if minus_click is not None:
            c, n = c - minus_click, n - 1
        s = self.alpha + self.beta
        m = self.alpha / s if prior_mean is None else prior_mean
        return (c + s * m) / (n + s)


# ----------------------------------------------------------------------------------- the rankers
# A ranker: fit(train, eval, seed) -> (score of every eval candidate, pctr_c of every eval exposed creative).
Ranker = Callable[[Split, Split, int], Tuple[np.ndarray, np.ndarray]]


def _random(train: Split, eval_: Split, seed: int):
    rng = np.random.default_rng([seed, 70])
    return rng.random(len(eval_.cand_row)), np.full(len(eval_), train.imp[F.CLICK].mean())


def _beta_ts(train: Split, eval_: Split, seed: int):
    ids = _IdCounts.of(train)
    return (ids.posterior_mean(eval_.cand[F.CAND_CREATIVE_IDS]), ids.posterior_mean(eval_.imp[F.CREATIVE_ID]))


def _hbm(train: Split, eval_: Split, seed: int):
    ids = _IdCounts.of(train)
    model = _fit_logistic(_design(_exposed_rows(train), ("content",)), train.imp[F.CLICK], seed)

    def posterior(rows):  # the content model's CTR as each creative's prior mean
        prior = model.predict_proba(_design(rows, ("content",)))[:, 1]
        return ids.posterior_mean(rows.creative_id, prior_mean=prior)

    return posterior(_candidate_rows(eval_)), posterior(_exposed_rows(eval_))


def _pctr_buckets(train: Split, eval_: Split, seed: int):
    """A small ad ranker (historical CTR, the user's affinity to the ad's category, slot) and the training
    quantiles of its pCTR: each row's bucket, for train and eval impressions."""
    def x(split):
        return np.column_stack([_logit(split.imp[F.AD_HIST_CTR]), split.imp["category_affinity"],
                                np.eye(3)[np.minimum(split.imp[F.SLOT], 2)]])

    ar = _fit_logistic(x(train), train.imp[F.CLICK], seed)
    p_train, p_eval = (ar.predict_proba(x(s))[:, 1] for s in (train, eval_))
    edges = np.quantile(p_train, np.linspace(0, 1, _PCTR_BUCKETS + 1)[1:-1])
    return np.searchsorted(edges, p_train), np.searchsorted(edges, p_eval)


def _logistic_cr(blocks: Tuple[str, ...]) -> Ranker:
    def fit(train: Split, eval_: Split, seed: int):
        tr, cand, exp = _exposed_rows(train), _candidate_rows(eval_), _exposed_rows(eval_)
        if "pctr" in blocks:
            tr.pctr_bucket, exp.pctr_bucket = _pctr_buckets(train, eval_, seed)
            cand.pctr_bucket = exp.pctr_bucket[eval_.cand_row]
        if "id" in blocks:
            ids = _IdCounts.of(train)
            tr.id_logit = _logit(ids.posterior_mean(tr.creative_id, minus_click=train.imp[F.CLICK]))
            cand.id_logit, exp.id_logit = (_logit(ids.posterior_mean(r.creative_id)) for r in (cand, exp))
        model = _fit_logistic(_design(tr, blocks), train.imp[F.CLICK], seed)
        return (model.predict_proba(_design(cand, blocks))[:, 1], model.predict_proba(_design(exp, blocks))[:, 1])

    return fit


@dataclasses.dataclass(frozen=True)
class Upgrade:
    name: str
    description: str
    fit: Ranker


_CONTENT = ("content",)
UPGRADES: Tuple[Upgrade, ...] = (
    Upgrade("random", "a uniformly random creative", _random),
    Upgrade("beta_ts", "Beta posterior mean CTR of each creative id (Beta-TS)", _beta_ts),
    Upgrade("hbm", "Beta posterior per creative around a content-model prior (VAM-HBM's idea)", _hbm),
    Upgrade("cr_no_embedding", "logistic CR on the creative's attributes", _logistic_cr(_CONTENT)),
    Upgrade("cr", "+ content embedding", _logistic_cr(_CONTENT + ("embedding",))),
    Upgrade("cr_context", "+ ad category x style", _logistic_cr(_CONTENT + ("embedding", "context"))),
    Upgrade("dssm", "+ user attributes x creative (user x creative interaction)",
            _logistic_cr(_CONTENT + ("embedding", "context", "user"))),
    Upgrade("jac", "+ quantized ad-ranker pCTR x style (JAC's input)",
            _logistic_cr(_CONTENT + ("embedding", "context", "user", "pctr"))),
    Upgrade("cacs", "+ the creative id's posterior (ID and content, as CACS)",
            _logistic_cr(_CONTENT + ("embedding", "context", "user", "pctr", "id"))),
)


# ------------------------------------------------------------------------------------- the metrics
def evaluate(eval_: Split, scores: np.ndarray, pctr_exposed: np.ndarray) -> Dict[str, float]:
    """The offline metrics of a ranker's picks (top-1 of ``scores`` per impression) and its true CTR."""
    from sklearn.metrics import roc_auc_score

    imp = eval_.imp
    pick = segment_argmax(scores, eval_.ptr)
    selected = eval_.cand[F.CAND_CREATIVE_IDS][eval_.ptr[:-1] + pick]
    args = (imp[F.AD_ID], imp[F.CREATIVE_ID], imp[F.CLICK], selected)
    propensity = np.clip(imp[F.PROPENSITY].astype(np.float64), 1e-9, 1.0)
    return {
        "nsctr": nsctr(*args), "sctr": sctr(*args),
        "calibrated_sctr": calibrated_sctr(*args, imp[F.NUM_CANDIDATES]),
        "auc": float(roc_auc_score(imp[F.CLICK], pctr_exposed)),
        "gauc": gauc(imp[F.USER_ID], imp[F.CLICK], pctr_exposed),
        "ipw": ipw(*args, propensity), "snipw": snipw(*args, propensity), "dr": dr(*args, propensity),
        "true_ctr": float(eval_.cand[F.TRUTH_CAND_CTRS][eval_.ptr[:-1] + pick].mean()),
    }


def lifts(values: Sequence[Mapping[str, float]]) -> List[Dict[str, float]]:
    """Each upgrade's relative lift over its predecessor, ``m_k / m_{k-1} - 1``, of every metric."""
    out = []
    for before, after in zip(values[:-1], values[1:]):
        out.append({k: (after[k] / before[k] - 1.0) if before[k] and math.isfinite(before[k]) else math.nan
                    for k in after})
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def _rank(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    return _pearson(_rank(x[ok]), _rank(y[ok])) if ok.sum() >= 3 else math.nan


CORRELATIONS = {"pearson": _pearson, "spearman": _spearman}


def correlations(per_seed_lifts: Sequence[Sequence[Mapping[str, float]]], replicates: int, seed: int
                 ) -> Dict[str, Dict[str, Optional[Dict[str, float]]]]:
    """``{"pearson"|"spearman": {metric: {"mean", "ci_low", "ci_high", "n_seeds"}}}``: the correlation over
    upgrades of each metric's lift with the true lift, averaged over seeds; the CI is a percentile bootstrap
    resampling the upgrades of every seed (the same resample for every metric)."""
    rng = np.random.default_rng([seed, 71])
    truth = [np.array([u["true_ctr"] for u in s]) for s in per_seed_lifts]
    resamples = [rng.integers(0, len(t), (replicates, len(t))) for t in truth]
    out: Dict[str, Dict[str, Optional[Dict[str, float]]]] = {}
    for kind, corr in CORRELATIONS.items():
        out[kind] = {}
        for metric in METRICS:
            lift = [np.array([u[metric] for u in s]) for s in per_seed_lifts]
            point = [corr(m, t) for m, t in zip(lift, truth)]
            if not np.isfinite(point).any():
                out[kind][metric] = None
                continue
            with warnings.catch_warnings():  # a replicate undefined in every seed is NaN, dropped below
                warnings.simplefilter("ignore", RuntimeWarning)
                reps = np.nanmean([[corr(m[idx], t[idx]) for idx in r] for m, t, r in zip(lift, truth, resamples)],
                                  axis=0) if replicates else np.array([])
            reps = reps[np.isfinite(reps)]
            lo, hi = np.percentile(reps, [2.5, 97.5]) if len(reps) else (math.nan, math.nan)
            out[kind][metric] = {"mean": float(np.nanmean(point)), "ci_low": float(lo), "ci_high": float(hi),
                                 "n_seeds": int(np.isfinite(point).sum())}
    return out


# -------------------------------------------------------------------------------------- the study
def study_world(data_dir: str, seed: int, upgrades: Sequence[Upgrade] = UPGRADES) -> List[Dict[str, float]]:
    """Every upgrade's metrics on a simulated log's eval day (``data_dir``, ``simulator.simulate``'s layout)."""
    import warnings

    train, eval_ = read(data_dir, F.TRAIN_SPLIT), read(data_dir, F.EVAL_SPLIT)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence notes on the widest models
        for upgrade in upgrades:
            scores, pctr = upgrade.fit(train, eval_, seed)
            out.append(evaluate(eval_, scores, pctr))
    return out


def _mean_ci(values: Sequence[float]) -> Optional[Dict[str, float]]:
    from experiments.stats import over_seeds

    return over_seeds([{"value": v} for v in values])


def _slug(name: str) -> str:
    """A condition's name as a directory name ("uniform, kappa=0" -> "uniform-kappa-0")."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-") or "world"


def run(study, out_dir: str, say: Callable[[str], None] = lambda _: None,
        commands: Optional[List[str]] = None) -> Dict[str, Any]:
    """The study of ``study`` (an :class:`experiments.config.FidelityStudy`) into ``out_dir``; returns the
    ``fidelity`` entry of ``results.json`` (the headline condition's upgrades and correlations, and every
    condition's)."""
    from simulator import SimulatorConfig, simulate
    from simulator import cli as simulator_cli

    conditions = {}
    for condition in study.conditions:
        per_seed = []
        for seed in study.seeds:
            config = SimulatorConfig(**{**study.simulator, **condition.simulator, "seed": seed,
                                        "write_world": False}).validate()
            data_dir = os.path.join(out_dir, f"{_slug(condition.name)}-seed-{seed}")
            if commands is not None:
                commands.append(shlex.join(["python", "-m", "simulator.cli"]
                                           + simulator_cli.command_for(config, data_dir)))
            simulate(config, data_dir, progress=False, force=True)
            per_seed.append(study_world(data_dir, seed))
        per_seed_lifts = [lifts(v) for v in per_seed]
        corr = correlations(per_seed_lifts, study.bootstrap_replicates, study.seeds[0])
        names = [u.name for u in UPGRADES]
        upgrades = []
        for k in range(1, len(names)):
            upgrades.append({
                "name": names[k], "from": names[k - 1], "description": UPGRADES[k].description,
                "values": {m: _mean_ci([s[k][m] for s in per_seed]) for m in METRICS + ("true_ctr",)},
                "lifts": {m: _mean_ci([s[k - 1][m] for s in per_seed_lifts]) for m in METRICS + ("true_ctr",)},
            })
        conditions[condition.name] = {"simulator": dict(condition.simulator), "upgrades": upgrades,
                                      "random": {m: _mean_ci([s[0][m] for s in per_seed]) for m in ("true_ctr",)},
                                      **corr}
        best = max((m for m in METRICS if corr["pearson"][m]), key=lambda m: corr["pearson"][m]["mean"],
                   default=None)
        say(f"==> fidelity {condition.name}: {len(upgrades)} upgrades x {len(study.seeds)} seeds; Pearson "
            + ", ".join(f"{m} {corr['pearson'][m]['mean']:+.2f}" for m in METRICS if corr["pearson"][m])
            + (f" (best: {best})" if best else ""))
    head = conditions[study.conditions[0].name]
    return {"upgrades": head["upgrades"], "pearson": head["pearson"], "spearman": head["spearman"],
            "headline_condition": study.conditions[0].name, "conditions": conditions,
            "seeds": list(study.seeds), "eval": "the logged eval day of each world; the true lift is the "
            "relative change of the mean true CTR of the ranker's picks on it (its expected online CTR on those "
            "requests)", "rankers": {u.name: u.description for u in UPGRADES}}


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m experiments.fidelity --profile NAME --out DIR``: a profile's fidelity study alone, written
    as ``DIR/fidelity.json`` (the ``fidelity`` entry of ``results.json``), ``DIR/fidelity.md`` and
    ``DIR/fidelity.html``."""
    import argparse
    import json
    import sys
    import time

    from creative_metrics.report.style import CSS
    from creative_metrics.report.write import write_atomically
    from experiments import report
    from experiments.profiles import PROFILES

    parser = argparse.ArgumentParser(prog="python -m experiments.fidelity", description=main.__doc__.split("\n")[0])
    parser.add_argument("--profile", required=True, choices=sorted(p for p in PROFILES if PROFILES[p].fidelity))
    parser.add_argument("--out", required=True, help="output directory (fidelity.json, fidelity.md, fidelity.html)")
    parser.add_argument("--seeds", help="override the study's seeds (comma-separated)")
    args = parser.parse_args(argv)
    study = PROFILES[args.profile].fidelity
    if args.seeds:
        study = dataclasses.replace(study, seeds=tuple(int(s) for s in args.seeds.split(",")))
    out = os.path.abspath(args.out)
    commands = [shlex.join([sys.executable, "-m", "experiments.fidelity"] + list(argv if argv is not None
                                                                                 else sys.argv[1:]))]
    started = time.perf_counter()
    got = run(study, os.path.join(out, "worlds"), lambda line: print(line, flush=True), commands)
    got = report._finite({**got, "commands": commands, "seconds": time.perf_counter() - started})
    write_atomically(json.dumps(got, indent=1, allow_nan=False), os.path.join(out, "fidelity.json"))
    write_atomically("\n".join(["# Fidelity study: profile `" + args.profile + "`", ""]
                               + report.fidelity_markdown(got) + ["", "```"] + commands + ["```", ""]),
                     os.path.join(out, "fidelity.md"))
    write_atomically("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Fidelity study</title>"
                     f"<style>{CSS}</style></head><body><main><h1>Fidelity study: profile {args.profile}</h1>"
                     + "".join(report.fidelity_html(got)) + "</main></body></html>", os.path.join(out, "fidelity.html"))
    print(f"==> {os.path.join(out, 'fidelity.json')} ({got['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
