"""``python -m experiments.run --profile small``: the pipeline trains JAC on a small simulated log, the real
router serves it over HTTP to three arms for two live days, the fidelity study runs on four small worlds,
and the results come out as JSON, Markdown and an HTML report that renders in headless Chromium."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import features as F
from creative_metrics.report import headless
from experiments.profiles import PROFILES
from simulator.truth import read_split

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = PROFILES["small"]
METRIC_KEYS = {"mean", "ci_low", "ci_high", "n_seeds"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment") / "small"
    proc = subprocess.run([sys.executable, "-m", "experiments.run", "--profile", "small", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "results.json") as fh:
        return out, json.load(fh), proc.stdout


def _metrics(row):
    return {k: v for k, v in row.items() if isinstance(v, dict)}


def test_the_console_shows_the_steps_and_nothing_else(run):
    _, _, console = run
    steps = re.findall(r"^==> (.*)$", console, flags=re.M)
    assert any(s.startswith("seed 0: training 'jac' through the pipeline") for s in steps)
    assert any("HTTP and in-process paths on 10 requests: identical" in s for s in steps)
    assert sum(s.startswith("A/B day") for s in steps) == 2
    assert sum(s.startswith("fidelity ") and "8 upgrades x 1 seeds; Pearson nsctr" in s for s in steps) == 4
    assert "WARNING" not in console and "cuda" not in console.lower()


def test_results_fill_todays_rows_with_cis_and_their_volume(run):
    _, results, _ = run
    assert {"table1", "table2", "table3", "table4", "fidelity", "world", "commands"} <= set(results)
    requests = PROFILE.requests_per_day * PROFILE.world_config(0).live_days
    assert sum(a["requests"] for a in results["arms"].values()) == requests
    t1 = results["table1"]["rows"]
    for row in ("no-CR", "Peri-CR+"):
        assert t1[row]["requests"] > 0.2 * requests and t1[row]["users"] > 0
        for name, metric in _metrics(t1[row]).items():
            assert set(metric) == METRIC_KEYS and metric["n_seeds"] == 1, name
            assert metric["ci_low"] <= metric["mean"] <= metric["ci_high"], name
        assert 0.002 < t1[row]["expected_ctr"]["mean"] < 0.1 and t1[row]["rt_p99_ms"]["mean"] > 0
    assert "expected_ctr_lift" in t1["Peri-CR+"] and "expected_ctr_lift" not in t1["no-CR"]
    assert t1["Post-CR"] is None and t1["Pre-CR"] is None and results["table1"]["pending"]["Pre-CR"]
    assert results["table2"]["rows"]["Post-CR+"]["requests"] > 0
    t3, t4 = results["table3"]["rows"]["CR+"], results["table4"]["rows"]["AR+"]
    assert 0 < t3["nsctr"]["mean"] < 1 and 0 < t3["true_ctr"]["mean"] < 1 and t3["ipw"]["mean"] >= 0
    assert 0.3 < t4["auc"]["mean"] < 1
    fidelity = results["fidelity"]
    assert [u["name"] for u in fidelity["upgrades"]][:2] == ["beta_ts", "hbm"] and len(fidelity["upgrades"]) >= 8
    assert list(fidelity["conditions"]) == [c.name for c in PROFILE.fidelity.conditions]
    for kind in ("pearson", "spearman"):
        assert set(fidelity[kind]) == {"nsctr", "sctr", "calibrated_sctr", "auc", "gauc", "ipw", "snipw", "dr"}
        for metric in fidelity[kind].values():
            assert metric["n_seeds"] == 1 and metric["ci_low"] <= metric["mean"] <= metric["ci_high"]
    assert all(0 < u["values"]["true_ctr"]["mean"] < 0.2 for u in fidelity["upgrades"])
    assert results["world"]["knobs"]["bid_std"] > 0
    (harness,) = results["harness"]
    assert harness["paths"]["identical"] and harness["noop"]["requests_per_second"] > 0
    commands = "\n".join(results["commands"])
    assert "-m simulator.cli" in commands and "--live-days 2" in commands
    assert "-m tfx_pipeline.local_runner" in commands


def test_each_days_log_is_in_the_training_format(run):
    out, results, _ = run
    logs = out / "seed-0" / "ab_logs"
    for label, arm in results["arms"].items():
        total = 0
        for day in results["harness"][0]["live_days"]:
            log = read_split(str(logs / f"day-{day:02d}"), label)
            assert set(log) == set(F.BY_NAME)
            np.testing.assert_array_equal(log[F.DAY], day)
            total += len(log[F.CLICK])
        assert total == arm["impressions"]


@pytest.mark.skipif(headless.chromium() is None, reason="needs a headless Chromium (apt-get install chromium)")
def test_the_report_renders_in_headless_chromium(run, tmp_path):
    from matplotlib import image

    out, results, _ = run
    url = (out / "report.html").as_uri()
    dom = headless.dump_dom(url, str(tmp_path / "profile"))
    assert "Table 1: online architectures" in dom and "Table 4: ad ranking" in dom and dom.count("<svg") == 4
    assert "Fidelity: Pearson r of offline lift with true lift" in dom
    assert "pending: an arm serving the DSSM two-tower CR after AR (the dssm variant; paper profile)" in dom
    png = headless.screenshot(url, str(tmp_path / "report.png"), str(tmp_path / "profile"))
    pixels = image.imread(png)[..., :3]
    # The expected-CTR lift bars (#1f6feb) were drawn.
    blue = np.all(np.abs(pixels - np.array([0x1F, 0x6F, 0xEB]) / 255) < 0.02, axis=-1)
    assert blue.sum() > 200
    md = (out / "results.md").read_text()
    assert "## Table 3: creative ranking, offline on the logged eval day" in md
