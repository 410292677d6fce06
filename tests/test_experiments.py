"""The A/B harness without training: arm assignment, the closed loop and its logs, statistics, the two
paths to the router answering alike, the configuration's checks and the rendered results."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest

import features as F
from experiments import abtest, report, results, stats
from experiments.config import Arm, ModelRef, Profile, Training
from experiments.deployments import HttpDeployment, InProcessDeployment, NoopDeployment
from experiments.profiles import PROFILES
from experiments.run import check_paths
from serving import testing as T
from serving.router.request import NO_CR, PERI, POST
from simulator import SimulatorConfig, build_world
from simulator.truth import read_split

ARMS = (Arm("control", NO_CR, ModelRef(path="/m/ar"), ModelRef(path="/m/cr"), rows=(("table1", "no-CR"),)),
        Arm("peri", PERI, ModelRef(path="/m/ar"), ModelRef(path="/m/cr"), rows=(("table1", "Peri-CR+"),)),
        Arm("post", POST, ModelRef(path="/m/ar"), ModelRef(path="/m/cr2"), rows=(("table2", "Post-CR+"),)))


@pytest.fixture()
def world():
    return build_world(SimulatorConfig(num_impressions=6000, num_days=3, live_days=2, seed=2))


# ------------------------------------------------------------------------------------------ arms
def test_arm_assignment_is_stable_balanced_and_salted():
    users = np.arange(1, 30_001)
    arms = abtest.assign_arms(users, 3, "ab")
    np.testing.assert_array_equal(arms, abtest.assign_arms(users, 3, "ab"))  # every day, every run
    shares = np.bincount(arms, minlength=3) / len(users)
    assert np.all(np.abs(shares - 1 / 3) < 0.01)
    assert np.mean(arms != abtest.assign_arms(users, 3, "other")) > 0.6  # a new salt reshuffles
    np.testing.assert_array_equal(abtest.assign_arms(users[::-1], 3, "ab"), arms[::-1])  # a function of the id


def test_one_deployment_per_model_pair(world):
    made = []
    deployments = abtest.deployments_by_arm(ARMS, lambda ar, cr: made.append((ar, cr)) or object(), {})
    assert made == [("/m/ar", "/m/cr"), ("/m/ar", "/m/cr2")]
    assert deployments["control"] is deployments["peri"] is not deployments["post"]


# ------------------------------------------------------------------------------------- the loop
def test_a_day_shows_l_ads_per_request_draws_clicks_from_the_truth_and_logs_them(world, tmp_path):
    imps_before = world.ad_imps.sum()
    noop = NoopDeployment()
    day = world.config.num_days
    traffic = abtest.run_day(world, day, ARMS, dict.fromkeys([a.label for a in ARMS], noop), 120, seed=1,
                             salt="ab", log_dir=str(tmp_path))
    slots = world.config.slots
    np.testing.assert_array_equal(traffic.impressions, slots)
    assert not traffic.failed.any() and np.isfinite(traffic.rt_ms).all()
    assert world.ad_imps.sum() == imps_before + 120 * slots  # the day is folded into the world
    logged = {}
    for arm in ARMS:
        log = read_split(str(tmp_path / f"day-{day:02d}"), arm.label)
        logged[arm.label] = log
        mine = traffic.arm == ARMS.index(arm)
        assert len(log[F.CLICK]) == mine.sum() * slots
        assert log[F.CLICK].sum() == traffic.clicks[mine].sum()
        assert log[F.TRUTH_CTR].sum() == pytest.approx(traffic.expected_clicks[mine].sum(), rel=1e-5)
        np.testing.assert_array_equal(log[F.DAY], day)
        np.testing.assert_array_equal(log[F.SLOT], np.tile(np.arange(slots), mine.sum()))
    # no-cr shows a uniformly random creative (propensity 1/N), the model modes their top-1 (propensity 1).
    control = logged["control"]
    np.testing.assert_allclose(control[F.PROPENSITY], 1.0 / control[F.NUM_CANDIDATES], rtol=1e-6)
    np.testing.assert_array_equal(logged["peri"][F.PROPENSITY], 1.0)
    # The no-op models score every ad alike: eCPM ranks by bid.
    bids = logged["peri"][F.AD_BID].reshape(-1, slots)
    assert np.all(np.diff(bids, axis=1) <= 1e-6)
    # An arm's days as the pipeline's data directory, for an arm that retrains on its own traffic.
    data = abtest.training_data(str(tmp_path), "peri", [day], day, str(tmp_path / "retrain"))
    for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT):
        np.testing.assert_array_equal(read_split(data, split)[F.CREATIVE_ID], logged["peri"][F.CREATIVE_ID])


def test_clicks_and_revenue_follow_the_truth_on_average(world):
    noop = NoopDeployment()
    traffic = abtest.run(world, ARMS, dict.fromkeys([a.label for a in ARMS], noop), [3, 4], 400, seed=3, salt="s")
    assert len(traffic.arm) == 800 and set(traffic.day) == {3, 4}
    assert traffic.clicks.sum() == pytest.approx(traffic.expected_clicks.sum(), abs=4 * traffic.expected_clicks.sum() ** 0.5)
    assert traffic.revenue.sum() == pytest.approx(traffic.expected_revenue.sum(), rel=0.35)
    with pytest.raises(ValueError, match=r"no deployment for arm\(s\) \['post'\]"):
        abtest.run(world, ARMS, {"control": noop, "peri": noop}, [3], 10, seed=0, salt="s")


# ----------------------------------------------------------------------------------- statistics
def _traffic(arm, user, clicks, expected, revenue, impressions=None):
    n = len(arm)
    ones = np.ones(n)
    return abtest.Traffic(labels=["a", "b"], arm=np.array(arm), user=np.array(user), day=np.zeros(n, int),
                          impressions=ones * 2 if impressions is None else np.array(impressions, float),
                          clicks=np.array(clicks, float), expected_clicks=np.array(expected, float),
                          revenue=np.array(revenue, float), expected_revenue=np.array(expected, float) * 2,
                          rt_ms=np.arange(n, dtype=float) + 10, roundtrip_ms=ones, degraded=np.zeros(n, bool),
                          failed=np.zeros(n, bool))


def test_arm_metrics_by_hand():
    # arm a: users 1 (2 requests), 2; arm b: users 3, 4. Two impressions per request.
    t = _traffic(arm=[0, 0, 0, 1, 1], user=[1, 1, 2, 3, 4], clicks=[1, 0, 1, 1, 2], expected=[0.1, 0.2, 0.3, 0.5, 0.5],
                 revenue=[2.0, 0, 1.0, 3.0, 3.0])
    m = stats.arm_metrics(t, control="a", replicates=200, seed=0)
    a, b = m["a"]["metrics"], m["b"]["metrics"]
    assert a["ctr"]["value"] == pytest.approx(2 / 6) and b["ctr"]["value"] == pytest.approx(3 / 4)
    assert a["expected_ctr"]["value"] == pytest.approx(0.6 / 6) and a["rpm"]["value"] == pytest.approx(1000)
    assert a["expected_rpm"]["value"] == pytest.approx(1000 * 1.2 / 3)
    assert b["ctr_lift"]["value"] == pytest.approx((3 / 4) / (2 / 6) - 1)
    assert "ctr_lift" not in a  # the control has no lift over itself
    assert m["a"]["lifts"]["b"]["ctr_lift"]["value"] == pytest.approx((2 / 6) / (3 / 4) - 1)
    assert a["rt_p50_ms"]["value"] == pytest.approx(11.0)  # percentile of 10, 11, 12
    assert (m["a"]["requests"], m["a"]["users"], m["b"]["impressions"]) == (3, 2, 4)
    for metric in list(a.values()) + list(b.values()):
        assert metric["ci_low"] <= metric["value"] + 1e-12 and metric["value"] <= metric["ci_high"] + 1e-12


def test_bootstrap_resamples_users_whole():
    """A user with all the clicks: every replicate's CTR is one of the values resampling whole users gives."""
    t = _traffic(arm=[0, 0, 0, 1], user=[1, 1, 2, 3], clicks=[2, 2, 0, 1], expected=[1, 1, 0, 1], revenue=[0] * 4)
    sums = stats.user_sums(t, 0)
    np.testing.assert_array_equal(sums[:, :3], [[2, 4, 4], [1, 2, 0]])  # requests, impressions, clicks per user
    reps = stats.bootstrap_sums(sums, 300, np.random.default_rng(0))
    ctr = reps[:, 2] / reps[:, 1]
    assert set(np.round(ctr, 6)) <= {0.0, 1.0, round(4 / 6, 6), round(8 / 10, 6), round(4 / 8, 6)}


def test_over_seeds_by_hand():
    one = stats.over_seeds([{"value": 0.5, "ci_low": 0.4, "ci_high": 0.7}])
    assert one == {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.7, "n_seeds": 1}
    three = stats.over_seeds([{"value": v, "ci_low": 0, "ci_high": 9} for v in (1.0, 2.0, 3.0)])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd 1 / sqrt(3)
    assert three == pytest.approx({"mean": 2.0, "ci_low": 2.0 - half, "ci_high": 2.0 + half, "n_seeds": 3})
    assert stats.over_seeds([None, {"value": float("nan")}]) is None
    assert stats.over_seeds([{"value": 0.7}])["ci_low"] is None  # offline: no interval with one seed


# ------------------------------------------------------------------------------------ the two paths
def test_http_and_in_process_paths_answer_identically(world, tmp_path):
    root = str(tmp_path / "models")
    T.make_fake_models(root, 1)
    ar, cr = os.path.join(root, F.AR_MODEL_NAME), os.path.join(root, F.CR_MODEL_NAME)
    profile = dataclasses.replace(PROFILES["small"], check_requests=12)
    http = HttpDeployment(ar, cr, str(tmp_path / "logs"), kind="stand-in")
    try:
        in_process = InProcessDeployment(ar, cr)
        checked = check_paths(world, profile, http, in_process, world.config.num_days, seed=0)
        in_process.close()
    finally:
        http.close()
    assert checked == {"requests": 12, "identical": True, "differing_requests": 0, "max_abs_score_difference": 0.0}
    assert http.router_process is None and not http.servers


def test_a_labelled_arm_serves_its_version_by_label_on_both_paths(world, tmp_path):
    import orjson

    from serving.router.request import MODE
    from simulator import live

    root = str(tmp_path / "models")
    for version in (1, 2):  # the MLP term's weights differ by seed: the two versions score differently
        T.make_fake_models(root, version, ar_hidden_units=(8,), cr_hidden_units=(8,), seed=version)
    ar, cr = ModelRef(path=os.path.join(root, F.AR_MODEL_NAME)), ModelRef(path=os.path.join(root, F.CR_MODEL_NAME))
    pinned = Arm("pinned", PERI, dataclasses.replace(ar, version=1, label="stable"),
                 dataclasses.replace(cr, version=1, label="stable"))
    latest = Arm("latest", PERI, ar, cr)
    assert pinned.serving() == {"versions": {"ar": 1, "cr": 1}, "label": "stable"} and latest.serving() == {}
    batch = live.draw_requests(world, world.config.num_days, np.random.default_rng(0), 4)
    bodies = [orjson.dumps({**batch.request(r, request_id=f"r{r}"), MODE: PERI}) for r in range(4)]

    def answers(deployment):
        try:
            return [deployment.rank(b)[0] for b in bodies]
        finally:
            deployment.close()

    made = abtest.deployments_by_arm((pinned, latest), InProcessDeployment, {})
    assert made["pinned"] is not made["latest"]
    got = {label: answers(d) for label, d in made.items()}
    assert {(a["model_versions"]["ar"], a["model_versions"]["cr"], a["version_label"]) for a in got["pinned"]} \
        == {(1, 1, "stable")}
    assert {(a["model_versions"]["ar"], a["version_label"]) for a in got["latest"]} == {(2, None)}
    over_http = answers(HttpDeployment(root + "/ar", root + "/cr", str(tmp_path / "logs"), kind="stand-in",
                                       **pinned.serving()))
    for a, b in zip(got["pinned"], over_http):
        assert a["version_label"] == b["version_label"] == "stable" and a["model_versions"] == b["model_versions"]
        assert [(x["ad_id"], x["creative_id"], x["pctr_ad"]) for x in a["ads"]] == \
            [(x["ad_id"], x["creative_id"], x["pctr_ad"]) for x in b["ads"]]
    # The two versions score differently: the label chose the model.
    assert [x["pctr_ad"] for x in got["pinned"][0]["ads"]] != [x["pctr_ad"] for x in got["latest"][0]["ads"]]


# -------------------------------------------------------------------------------- configuration
def _profile(**changes):
    base = dict(name="p", simulator={"num_impressions": 5000, "num_days": 3, "live_days": 1}, seeds=(0,),
                trainings=(Training("jac"),), arms=ARMS, control="control", requests_per_day=10,
                train_steps=1, eval_steps=1)
    return Profile(**{**base, **changes})


@pytest.mark.parametrize("changes,match", [
    (dict(control="nobody"), "control 'nobody' is not an arm"),
    (dict(arms=ARMS + (ARMS[0],)), "arm labels must be unique"),
    (dict(arms=(Arm("x", PERI, ModelRef("cr"), ModelRef("cr")),), control="x"),
     "serves a model of training 'cr', which the profile does not train"),
    (dict(arms=(Arm("x", PERI, ModelRef(path="/a"), ModelRef(path="/c"), rows=(("table9", "AR"),)),), control="x"),
     "unknown table 'table9'"),
    (dict(path="carrier-pigeon"), "path must be one of"),
    (dict(seeds=()), "needs at least one seed"),
    (dict(simulator={"num_impressions": 5000, "num_days": 3}), "simulator.live_days must be >= 1"),
    (dict(trainings=(Training("cacs", teacher="jac"), Training("jac"))),
     r"training 'cacs' has teacher 'jac', which is not trained before it \(\[\]\)"),
])
def test_bad_profiles_name_the_problem(changes, match):
    with pytest.raises(ValueError, match=match):
        _profile(**changes)


@pytest.mark.parametrize("make,match", [
    (lambda: Arm("x", "sideways", ModelRef(path="/a"), ModelRef(path="/c")), "Arm 'x': mode must be one of"),
    (lambda: ModelRef("jac", path="/a"), "give exactly one of training and path"),
    (lambda: ModelRef("jac").base_path({"cr": "/r"}), "no training named 'jac'"),
    (lambda: ModelRef("jac", label="stable"), "label 'stable' needs the version it names"),
    (lambda: ModelRef("jac", version=0), "version must be a positive integer"),
    (lambda: ModelRef("jac", version=2, label="new-model"), "label must be letters, digits and underscores"),
    (lambda: Arm("x", PERI, ModelRef("jac", version=1, label="a"), ModelRef("jac", "cr")),
     "Arm 'x': the AR and CR must carry the same version label"),
])
def test_bad_arms_name_the_problem(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_every_training_of_a_seed_shares_the_data_steps_and_pushes_to_its_own_dir():
    from experiments import run

    cmd = run.pipeline_command(PROFILES["paper"], PROFILES["paper"].trainings[0], 2, "D", "P", "S/jac", "T/model")
    flags = dict(zip(cmd, cmd[1:]))
    assert flags["--output-dir"] == "P" and flags["--serving-dir"] == "S/jac" and flags["--teacher-model"] == "T/model"
    assert {"--enable-cache", "--no-baseline"} <= set(cmd)
    assert json.loads(flags["--model-config"])["seed"] == 2
    cacs = next(t for t in PROFILES["paper"].trainings if t.name == "cacs")
    assert cacs.teacher == "jac"  # CACS distils from the seed's JAC run
    assert "--teacher-model" not in run.pipeline_command(PROFILES["paper"], cacs, 0, "D", "P", "S")


def test_every_named_profile_is_valid():
    for profile in PROFILES.values():
        profile.world_config(profile.seeds[0])
        assert profile.control in [a.label for a in profile.arms]


# -------------------------------------------------------------------------------------- results
def _record(arm_metrics):
    offline = {"sctr": 0.02, "nsctr": 0.025, "true_ctr_selected": 0.026, "pctr_ad/auc": 0.61,
               "true_ctr_impressions": 5000.0}
    return {"arms": arm_metrics, "offline": {"jac": offline}, "harness": {"requests": 5},
            "world": {"overall": {"ctr": 0.024, "expected_ctr_logged": 0.024, "expected_ctr_oracle": 0.03,
                                  "expected_ctr_random": 0.024, "rpm": 90.0}}}


def test_results_hold_the_papers_rows_and_render(tmp_path):
    arms = ARMS[:2]
    t = _traffic(arm=[0, 0, 1, 1], user=[1, 2, 3, 4], clicks=[1, 0, 1, 1], expected=[0.1, 0.2, 0.3, 0.5],
                 revenue=[1, 0, 2, 2])
    profile = _profile(arms=arms, trainings=(Training("jac", offline_rows=(("table3", "CR+"), ("table4", "AR+"))),))
    t.labels = [a.label for a in arms]
    out = results.build(profile, [_record(stats.arm_metrics(t, "control", 50))], ["python -m x"], {"total": 1.0})
    assert set(out) >= {"table1", "table2", "table3", "table4", "fidelity", "world", "commands"}
    t1 = out["table1"]
    assert list(t1["rows"]) == ["no-CR", "Post-CR", "Pre-CR", "Peri-CR+"]
    assert t1["rows"]["Post-CR"] is None and "DSSM" in t1["pending"]["Post-CR"]
    assert t1["lift_reference"] == {"Peri-CR+": "no-CR"}
    assert set(t1["rows"]["Peri-CR+"]["expected_ctr_lift"]) == {"mean", "ci_low", "ci_high", "n_seeds"}
    assert t1["rows"]["Peri-CR+"]["requests"] == 2
    assert out["table3"]["rows"]["CR+"]["nsctr"] == {"mean": 0.025, "ci_low": None, "ci_high": None, "n_seeds": 1}
    assert out["table3"]["rows"]["CR+"]["ipw"] is None  # the run did not report it
    assert out["table4"]["rows"]["AR+"]["auc"]["mean"] == 0.61
    assert out["fidelity"]["pearson"] == dict.fromkeys(results.FIDELITY_METRICS)
    assert out["world"]["knobs"]["bid_std"] == SimulatorConfig().bid_std
    paths = report.write(out, str(tmp_path))
    md = open(paths["results.md"]).read()
    assert "| Post-CR | pending: an arm serving the DSSM two-tower CR after AR (the dssm variant; paper profile) |" in md
    assert "| Peri-CR+ | peri (lifts vs no-CR) |" in md
    html = open(paths["report.html"]).read()
    assert html.count("<svg") == 2 and "Table 4: ad ranking" in html and "<script" not in html


def test_the_paper_profile_fills_the_baseline_rows_and_runs_the_fidelity_study():
    paper = PROFILES["paper"]
    online = {row for arm in paper.arms for row in arm.rows}
    offline = {row for training in paper.trainings for row in training.offline_rows}
    assert {("table1", row) for row in results.PAPER_ROWS["table1"]} <= online
    assert {("table2", "Post-CR"), ("table3", "VAM-HBM"), ("table3", "CACS"), ("table4", "ACR")} <= online | offline
    pre = next(arm for arm in paper.arms if ("table1", "Pre-CR") in arm.rows)
    assert (pre.mode, pre.ar.training, pre.cr.training) == ("pre", "acr", "cacs")
    variants = {t.name: t.model_config.get("variant", "jac") for t in paper.trainings}
    assert variants["dssm"] == "dssm" and variants["hbm"] == "hbm" and variants["cacs"] == "cacs"
    for name in ("small", "paper"):
        study = PROFILES[name].fidelity
        assert [c.simulator.get("logging_policy") for c in study.conditions] == \
            ["uniform", "epsilon_greedy", "uniform", "epsilon_greedy"]
        assert [c.simulator.get("creative_count_quality") for c in study.conditions] == [None, None, 0.0, 0.0]
    assert PROFILES["paper"].fidelity.seeds == (0, 1, 2)
