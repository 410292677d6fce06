"""The CACS ablation (Lin et al., SIGIR 2022): the dual-tower selector alone, + list-wise distillation, + adaptive
ID dropout, and all three, trained on the same log; each judged on the evaluation day by NSCTR, sCTR and the
true CTR of the creatives it picks, overall and split by the ads' training frequency.

    python -m experiments.cacs_ablation --impressions 60000 --seeds 0 1 2 --steps 600 --out OUT

Per seed: the simulator writes a log (``--impressions`` over ``--days`` days, the last one the evaluation day),
Transform runs on it (``transform.local``), a JAC model is trained as the teacher (``--teacher-steps``; a
trained, frozen model, as a pipeline's ``--teacher-model`` gives one), then the four selectors, from the same
initial weights and batches (``--steps`` of ``--batch-size``):

==================  ================  ===============================================
arm                 distillation      ID dropout (ad id, creative id)
==================  ================  ===============================================
dual tower          --                none (rate 0)
+ distillation      from the teacher  none
+ adaptive dropout  --                :math:`\\rho\\, n_{1/2} / (n_{1/2} + n)` (``trainer.id_dropout``)
all three           from the teacher  adaptive
==================  ================  ===============================================

Metrics on the evaluation day (``creative_metrics``): NSCTR and sCTR (replay on the logged exposures) and the
true CTR of the picked creatives (the simulator's truth, ``truth_cand_ctrs``); beside the arms, the teacher's
own picks, a uniformly random candidate and the best candidate by the truth, for scale. Split: an ad is *low-frequency*
when its training impressions are below the median over the ads of the evaluation day (the threshold is printed),
*high-frequency* otherwise. Cells: the mean over seeds and, with two or more seeds, the 95 % Student-t half width
(``experiments.stats.over_seeds``). Prints one Markdown table; ``--out`` keeps the data and ``results.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

import features as F
from creative_metrics.replay import nsctr, sctr
from experiments.stats import over_seeds
from transform import names as N

ARMS = {  # label -> (distil from the teacher, ID dropout schedule or None)
    "dual tower": (False, None),
    "+ distillation": (True, None),
    "+ adaptive dropout": (False, "adaptive"),
    "all three": (True, "adaptive"),
}
SELECTOR = dict(dssm_embedding_dim=8, dssm_hidden_units=(32,), dssm_output_dim=16)
TEACHER = dict(ar_embedding_dim=8, transformer_ff_dim=16, num_cross_layers=1, cross_projection_dim=8,
               ar_hidden_units=(32, 16), quantizer_r=30.0)
METRICS = ("nsctr", "sctr", "true_ctr")
SPLITS = ("all", "low-frequency ads", "high-frequency ads")


def _data(out: str, impressions: int, days: int, seed: int):
    from simulator import SimulatorConfig, simulate
    from transform.local import TRANSFORM_GRAPH, analyze_and_transform

    raw = os.path.join(out, f"seed-{seed}", "raw")
    if not glob.glob(os.path.join(raw, F.TRAIN_SPLIT, "*")):
        simulate(SimulatorConfig(num_impressions=impressions, num_days=days, seed=seed,
                                 calibration_impressions=min(impressions, 20_000)), raw, progress=False)
    patterns = {s: os.path.join(raw, s, "*") for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT)}
    paths = analyze_and_transform(patterns[F.TRAIN_SPLIT], patterns[F.EVAL_SPLIT], os.path.join(out, f"seed-{seed}", "xf"))
    return patterns, paths[TRANSFORM_GRAPH], paths[F.TRAIN_SPLIT], paths[F.EVAL_SPLIT]


def _raw_columns(pattern: str, names) -> Dict[str, np.ndarray]:
    """Columns of raw tf.Examples (VarLen ones as lists), and the serialized examples."""
    spec = F.raw_feature_spec()
    out: Dict[str, list] = {n: [] for n in names}
    out["serialized"] = []
    for batch in tf.data.TFRecordDataset(sorted(glob.glob(pattern))).batch(2048):
        parsed = tf.io.parse_example(batch, {n: spec[n] for n in names})
        out["serialized"].append(batch.numpy())
        for n in names:
            v = parsed[n]
            out[n].extend(tf.RaggedTensor.from_sparse(v).to_list() if isinstance(v, tf.SparseTensor)
                          else v.numpy().reshape(len(batch), -1)[:, 0].tolist())
    return {n: (np.concatenate(v) if n == "serialized" else v) for n, v in out.items()}


def _train(config, cards, train, tft_output, steps, teacher=None):
    from trainer.creative_log import read_creative_log
    from trainer.data import make_dataset
    from trainer.jac_model import JACModel, make_optimizer
    from trainer.variants import build_cacs, build_model

    keras.utils.set_random_seed(config.seed)  # the same initial weights and batches for every arm of a seed
    if config.variant == "cacs":
        selector = build_cacs(config, cards, teacher)
        model = JACModel(config, cards, heads=(None, selector))
        if config.cacs_id_dropout_rate > 0:
            from trainer.cacs_model import fit_id_counts
            fit_id_counts(selector, read_creative_log(train, tft_output), tft_output, config)
    else:
        model = build_model(config, cards)
    model.compile(optimizer=make_optimizer(config))
    data = make_dataset(train, tft_output, model.feature_names, config.batch_size, seed=config.seed)
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return model


def _picks(model, tft_output, serialized: np.ndarray) -> np.ndarray:
    from trainer.export import EvalModule

    module = EvalModule(model, tft_output)
    out = [module.serve_examples({"examples": tf.constant(serialized[i:i + 2048])})[F.SELECTED_INDEX].numpy()
           for i in range(0, len(serialized), 2048)]
    return np.concatenate(out)


def _metrics(index: np.ndarray, log: Dict[str, list], masks: Dict[str, np.ndarray]) -> Dict[str, Dict[str, float]]:
    cands = log[F.CAND_CREATIVE_IDS]
    picked = np.array([c[i] for c, i in zip(cands, index)], np.int64)
    truth = np.array([t[i] for t, i in zip(log[F.TRUTH_CAND_CTRS], index)], np.float64)
    ads, exposed, clicks = (np.asarray(log[n]) for n in (F.AD_ID, F.CREATIVE_ID, F.LABEL))
    out = {}
    for split, m in masks.items():
        out[split] = {"nsctr": nsctr(ads[m], exposed[m], clicks[m], picked[m]),
                      "sctr": sctr(ads[m], exposed[m], clicks[m], picked[m]), "true_ctr": float(truth[m].mean())}
    return out


def run_seed(out: str, seed: int, impressions: int, days: int, steps: int, teacher_steps: int, batch_size: int,
             learning_rate: Optional[float]) -> Dict:
    import tensorflow_transform as tft

    from trainer.cacs_teacher import HeadTeacher
    from trainer.config import JACConfig

    patterns, graph, train, eval_ = _data(out, impressions, days, seed)
    tft_output = tft.TFTransformOutput(graph)
    cards = N.cardinalities(tft_output)
    base = dict(batch_size=batch_size, seed=seed, initial_ctr=None, **SELECTOR)
    if learning_rate:
        base["learning_rate"] = learning_rate
    train_log = _raw_columns(patterns[F.TRAIN_SPLIT], (F.AD_ID,))
    eval_log = _raw_columns(patterns[F.EVAL_SPLIT], (F.AD_ID, F.CREATIVE_ID, F.LABEL, F.CAND_CREATIVE_IDS,
                                                     F.TRUTH_CAND_CTRS))
    ctr = float(np.mean(eval_log[F.LABEL]))
    base["initial_ctr"] = ctr
    ids, counts = np.unique(train_log[F.AD_ID], return_counts=True)
    per_ad = dict(zip(ids.tolist(), counts.tolist()))
    eval_ads = np.asarray(eval_log[F.AD_ID])
    ad_counts = np.array([per_ad.get(a, 0) for a in eval_ads])
    threshold = float(np.median([per_ad.get(a, 0) for a in np.unique(eval_ads)]))
    masks = {"all": np.ones(len(eval_ads), bool), "low-frequency ads": ad_counts < threshold,
             "high-frequency ads": ad_counts >= threshold}

    t0 = time.time()
    teacher_model = _train(JACConfig.from_dict(dict(base, **TEACHER, variant="jac")), cards, train, tft_output,
                           teacher_steps)
    teacher = HeadTeacher(teacher_model.cr)
    results = {"teacher (JAC CR)": _metrics(_picks(teacher_model, tft_output, eval_log["serialized"]), eval_log, masks)}
    # References: a uniformly random candidate, and the best one by the truth (the true CTR's ceiling).
    rng = np.random.default_rng(seed)
    results["random creative"] = _metrics(np.array([rng.integers(len(c)) for c in eval_log[F.CAND_CREATIVE_IDS]]),
                                          eval_log, masks)
    results["best creative (truth)"] = _metrics(np.array([int(np.argmax(t)) for t in eval_log[F.TRUTH_CAND_CTRS]]),
                                                eval_log, masks)
    for arm, (distil, schedule) in ARMS.items():
        config = JACConfig.from_dict(dict(base, variant="cacs", cacs_id_dropout_rate=0.5 if schedule else 0.0,
                                          cacs_id_dropout_schedule=schedule or "adaptive"))
        model = _train(config, cards, train, tft_output, steps, teacher if distil else None)
        results[arm] = _metrics(_picks(model, tft_output, eval_log["serialized"]), eval_log, masks)
    return {"seed": seed, "results": results, "low_frequency_below": threshold, "seconds": time.time() - t0,
            "eval_impressions": {s: int(m.sum()) for s, m in masks.items()}}


def table(runs: List[Dict]) -> str:
    def cell(arm, split, metric):
        est = over_seeds([{"value": r["results"][arm][split][metric]} for r in runs])
        if est is None:
            return "–"
        if est["n_seeds"] < 2 or est["ci_low"] is None:
            return f"{est['mean']:.4f}"
        return f"{est['mean']:.4f} ± {(est['ci_high'] - est['ci_low']) / 2:.4f}"

    arms = list(runs[0]["results"])
    head = "| arm | " + " | ".join(f"{m} ({s})" for s in SPLITS for m in METRICS) + " |"
    lines = [head, "|" + "---|" * (1 + len(SPLITS) * len(METRICS))]
    for arm in arms:
        lines.append(f"| {arm} | " + " | ".join(cell(arm, s, m) for s in SPLITS for m in METRICS) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="working directory (data, results.json)")
    p.add_argument("--impressions", type=int, default=60_000)
    p.add_argument("--days", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=600, help="training steps of each selector")
    p.add_argument("--teacher-steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, help="Adagrad's rate (JACConfig's default when omitted)")
    a = p.parse_args(argv)
    if a.days < 2:
        p.error("--days must be at least 2 (the last day is the evaluation day)")
    os.makedirs(a.out, exist_ok=True)
    runs = [run_seed(a.out, s, a.impressions, a.days, a.steps, a.teacher_steps, a.batch_size, a.learning_rate)
            for s in a.seeds]
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"args": vars(a), "runs": runs}, f, indent=2)
    print(table(runs))
    print(f"\n{len(runs)} seed(s) {a.seeds}; low-frequency ads: training impressions below "
          f"{[r['low_frequency_below'] for r in runs]} (the median ad of the evaluation day, per seed); "
          f"evaluation impressions {[r['eval_impressions'] for r in runs]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
