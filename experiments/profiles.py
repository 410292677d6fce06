"""The named experiment profiles (``python -m experiments.run --profile NAME``).

* ``small`` -- the end-to-end check (a test runs it): one seed, one small pipeline run of JAC, its three
  router modes as arms, two live days, and the fidelity study on four 40,000-impression worlds with one
  seed. Minutes on a 2-core machine; its numbers are a smoke test, not results.
* ``paper`` -- the study's size: three seeds; JAC, its CR and AR ablations and the comparison systems
  (DSSM, VAM-HBM, CACS, the creative-aware AR) trained on the default-size log; JAC's arms, the ablations'
  and the baselines' (Post-CR: DSSM; Pre-CR: CACS before the creative-aware AR); two days of 20,000 live
  requests; the A/B ladder (VAM-HBM -> DSSM -> CACS -> CR -> CR+, each CR after JAC's AR+ in post,
  :mod:`experiments.ab_ladder`). Its fidelity study: four 200,000-impression worlds x three seeds.

Rows are the paper's (Yang et al., AAAI 2024): Table 1 compares architectures (no-CR, Post-CR, Pre-CR,
Peri-CR+), Table 2 JAC's effect (Post-CR vs Post-CR+, Peri-CR vs Peri-CR+, AR vs AR+), Tables 3 and 4 the
offline creative and ad ranking metrics. ``+`` marks a model trained jointly by JAC.
"""

from __future__ import annotations

from typing import Dict

import features as F
from experiments.config import Arm, FidelityCondition, FidelityStudy, LadderStep, ModelRef, Profile, Training
from serving.router.request import NO_CR, PERI, POST, PRE



def ablation_model(name: str) -> str:
    """Where the Pusher puts an ablation's lone model (``tfx_pipeline.pair_pusher.single_model_name``, not
    imported here: it pulls in TFX; a test checks the two agree)."""
    return f"{name}-only"


# JAC's served sub-models are CR+ and AR+ (the paper's names); its Evaluator scores CR+'s creative choice.
JAC = Training("jac", offline_rows=(("table3", "CR+"), ("table4", "AR+")))
CR_ALONE = Training("cr", {"variant": "cr"}, offline_rows=(("table3", "CR"),))
AR_ALONE = Training("ar", {"variant": "ar"}, offline_rows=(("table4", "AR"),))

JAC_AR, JAC_CR = ModelRef("jac", F.AR_MODEL_NAME), ModelRef("jac", F.CR_MODEL_NAME)
CR_ONLY = ModelRef("cr", ablation_model(F.CR_MODEL_NAME))
AR_ONLY = ModelRef("ar", ablation_model(F.AR_MODEL_NAME))

JAC_ARMS = (
    Arm("jac-no-cr", NO_CR, JAC_AR, JAC_CR, rows=(("table1", "no-CR"),)),
    Arm("jac-post", POST, JAC_AR, JAC_CR, rows=(("table2", "Post-CR+"),)),
    Arm("jac-peri", PERI, JAC_AR, JAC_CR,
        rows=(("table1", "Peri-CR+"), ("table2", "Peri-CR+"), ("table2", "AR+"))),
)
# The ablations beside JAC's other half: JAC's effect on one ranker at a time (Table 2's pairs). The paper's
# Post-CR is DSSM (the dssm variant); cr-post (the CR trained alone, after AR) is reported as an arm only.
ABLATION_ARMS = (
    Arm("cr-post", POST, JAC_AR, CR_ONLY),
    Arm("cr-peri", PERI, JAC_AR, CR_ONLY, rows=(("table2", "Peri-CR"),)),
    Arm("ar-peri", PERI, AR_ONLY, JAC_CR, rows=(("table2", "AR"),)),
)

# The fidelity study's four worlds: uniform and epsilon-greedy logging, the sCTR-bias knob (kappa, ad CTR
# correlated with the number of creatives) at its default and off. The first is the headline.
FIDELITY_CONDITIONS = (
    FidelityCondition("uniform", {"logging_policy": "uniform"}),
    FidelityCondition("epsilon-greedy", {"logging_policy": "epsilon_greedy"}),
    FidelityCondition("uniform, kappa=0", {"logging_policy": "uniform", "creative_count_quality": 0.0}),
    FidelityCondition("epsilon-greedy, kappa=0", {"logging_policy": "epsilon_greedy", "creative_count_quality": 0.0}),
)

# The comparison systems (trainer.variants), each a pipeline run on the same log. DSSM's run pushes its own
# pair (its CR beside the AR trained alongside); Pre-CR pairs CACS with the creative-aware AR, which scores an
# ad with the creative CACS picked first (the router allows only the pre and no-cr orders for it). CACS
# distils from the same seed's JAC run (its teacher).
DSSM = Training("dssm", {"variant": "dssm"})
HBM = Training("hbm", {"variant": "hbm"}, offline_rows=(("table3", "VAM-HBM"),))
CACS = Training("cacs", {"variant": "cacs"}, offline_rows=(("table3", "CACS"),), teacher="jac")
ACR = Training("acr", {"variant": "acr"}, offline_rows=(("table4", "ACR"),))
BASELINE_ARMS = (
    Arm("dssm-post", POST, ModelRef("dssm", F.AR_MODEL_NAME), ModelRef("dssm", F.CR_MODEL_NAME),
        rows=(("table1", "Post-CR"), ("table2", "Post-CR"))),
    Arm("cacs-pre", PRE, ModelRef("acr", F.AR_MODEL_NAME), ModelRef("cacs", F.CR_MODEL_NAME),
        rows=(("table1", "Pre-CR"),)),
)

# The A/B ladder: each creative ranker's CR served in post after JAC's AR+, so only the creative differs;
# its offline lifts (the trainings' Evaluators) against its online ones (the arms' expected CTR).
LADDER_ARMS = (
    Arm("hbm-post", POST, JAC_AR, ModelRef("hbm", F.CR_MODEL_NAME)),
    Arm("dssm-cr-post", POST, JAC_AR, ModelRef("dssm", F.CR_MODEL_NAME)),
    Arm("cacs-cr-post", POST, JAC_AR, ModelRef("cacs", F.CR_MODEL_NAME)),
)
AB_LADDER = (LadderStep("VAM-HBM", "hbm", "hbm-post"), LadderStep("DSSM", "dssm", "dssm-cr-post"),
             LadderStep("CACS", "cacs", "cacs-cr-post"), LadderStep("CR", "cr", "cr-post"),
             LadderStep("CR+", "jac", "jac-post"))

# A model small enough to train in a minute on 2 cores (the architecture's shape, narrower).
SMALL_MODEL = {"batch_size": 256, "ar_hidden_units": [64, 32], "transformer_layers": 1, "cr_hidden_units": [32, 16],
               "quantizer_buckets": 512, "quantizer_dim": 16, "r_sample_size": 20_000}

PROFILES: Dict[str, Profile] = {p.name: p for p in (
    Profile(
        name="small",
        simulator={"num_impressions": 20_000, "num_days": 4, "live_days": 2},
        seeds=(0,), trainings=(JAC,), arms=JAC_ARMS, control="jac-no-cr",
        requests_per_day=750, train_steps=60, eval_steps=5, model_config=SMALL_MODEL,
        bootstrap_replicates=500, check_requests=10, noop_requests=300,
        fidelity=FidelityStudy({"num_impressions": 40_000, "num_days": 4}, FIDELITY_CONDITIONS, seeds=(0,),
                               bootstrap_replicates=300)),
    Profile(
        name="paper",
        simulator={"num_impressions": 200_000, "num_days": 8, "live_days": 2},
        seeds=(0, 1, 2), trainings=(JAC, CR_ALONE, AR_ALONE, DSSM, HBM, CACS, ACR),
        arms=JAC_ARMS + ABLATION_ARMS + BASELINE_ARMS + LADDER_ARMS, control="jac-no-cr", ab_ladder=AB_LADDER,
        requests_per_day=20_000, train_steps=400, eval_steps=50,
        bootstrap_replicates=1000, check_requests=50, noop_requests=2000,
        fidelity=FidelityStudy({"num_impressions": 200_000, "num_days": 8}, FIDELITY_CONDITIONS, seeds=(0, 1, 2),
                               bootstrap_replicates=1000)),
)}
