"""Router requests drawn from a simulated world, their ground truth, and the quiet serving demo that shows it."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import features as F
from serving.router import request as R
from serving.router.request import parse_request
from serving.sample_requests import SimulatedRequest, requests_from_world
from simulator import SimulatorConfig, load_world, simulate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "data"
    simulate(SimulatorConfig(num_impressions=3000, num_days=3, seed=11), str(out), progress=False)
    return out


@pytest.fixture(scope="module")
def world(sim_dir):
    return load_world(str(sim_dir / "world.npz"))


def test_world_requests_are_valid_column_form_router_requests_without_the_truth(world):
    sims = requests_from_world(world, 4, seed=3, slots=2)
    assert len(sims) == 4
    for k, sim in enumerate(sims):
        req = parse_request(sim.request)  # rejects unknown fields: no truth can ride along
        assert isinstance(sim.request[R.ADS], dict) and set(sim.request) == {
            R.USER, R.SEQUENCE, R.ADS, R.CREATIVES, R.SLOTS, R.REQUEST_ID}
        assert req.num_ads == world.config.ads_per_request and req.slots == 2
        assert sim.request[R.REQUEST_ID] == f"sim-{k + 1}"
        assert sim.true_ctr.shape == (req.num_creatives, world.config.slots)
        assert np.array_equal(sim.offsets, req.offsets)


def test_world_requests_hold_the_worlds_entities_and_true_ctr(world):
    sim = requests_from_world(world, 1, seed=5)[0]
    req = sim.request
    u = req[R.USER][F.USER_ID] - 1  # ids are index + 1
    assert req[R.USER][F.USER_GENDER] == world.user_attrs[F.USER_GENDER][u]
    seq, _ = world.sequences(np.array([u]))
    assert req[R.SEQUENCE][F.SEQ_AD_IDS] == (seq + 1).tolist()  # newest last, as logged
    view = world.day_view(world.num_days - 1)
    for i, ad_id in enumerate(req[R.ADS][F.AD_ID]):
        a = ad_id - 1
        lo, hi = sim.offsets[i], sim.offsets[i + 1]
        creatives = np.array(req[R.CREATIVES][F.CREATIVE_ID][lo:hi]) - 1
        assert creatives.tolist() == view.creatives[view.ptr[a]:view.ptr[a + 1]].tolist()
        assert req[R.ADS][F.AD_CATEGORY][i] == world.ad_category[a]
        assert req[R.ADS][F.AD_HIST_CTR][i] == pytest.approx(float(view.hist_ctr[a]), abs=1e-6)
        c = creatives[-1]
        for position in range(world.config.slots):
            expected = world.true_ctr([u], [a], [c], [position])[0]
            assert sim.true_ctr[hi - 1, position] == pytest.approx(expected, rel=1e-12)
    again = requests_from_world(world, 1, seed=5)[0]
    assert again.request == req and np.array_equal(again.true_ctr, sim.true_ctr)


def test_shown_truth_by_hand():
    # Ad 10 has creatives 100, 101; ad 20 has 200, 201, 202. Columns: page positions 0 and 1.
    sim = SimulatedRequest(
        request={R.ADS: {F.AD_ID: [10, 20]}, R.CREATIVES: {F.CREATIVE_ID: [100, 101, 200, 201, 202]}},
        true_ctr=np.array([[0.10, 0.05], [0.20, 0.10], [0.30, 0.15], [0.60, 0.30], [0.00, 0.00]]),
        offsets=np.array([0, 2, 5]))
    # Ad 20 on top showing 201 (its best there: 0.60); ad 10 second showing 100 (0.05 of 0.05 / 0.10).
    truth = sim.shown_truth([{F.AD_ID: 20, F.CREATIVE_ID: 201}, {F.AD_ID: 10, F.CREATIVE_ID: 100}])
    assert truth["shown"] == pytest.approx((0.60 + 0.05) / 2)
    assert truth["random"] == pytest.approx(((0.30 + 0.60 + 0.00) / 3 + (0.05 + 0.10) / 2) / 2)
    assert truth["best"] == pytest.approx((0.60 + 0.10) / 2)


@pytest.mark.parametrize("kwargs,match", [
    ({"slots": 0}, r"slots: the world models \d+ page positions, got 0"),
    ({"slots": 99}, r"slots: the world models \d+ page positions, got 99"),
    ({"day": 3}, r"day: must be in \[0, 3\), got 3"),
    ({"day": -1}, r"day: must be in \[0, 3\), got -1"),
])
def test_world_requests_reject_bad_arguments(world, kwargs, match):
    with pytest.raises(ValueError, match=match):
        requests_from_world(world, 1, **kwargs)


def test_quiet_demo_prints_tables_and_truth_and_logs_the_rest(sim_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "serving.demo", "--serving-root", str(tmp_path / "root"),
                        "--fake-models", "--data-dir", str(sim_dir), "--requests", "2", "--slots", "2",
                        "--backend", "stand-in"], capture_output=True, text=True, env=env, timeout=300,
                       cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stderr == ""
    out = r.stdout
    assert f"Requests drawn from the simulated world {sim_dir / 'world.npz'}" in out
    assert out.count("true CTR: shown random   best") == 2
    rows = re.findall(r"^  (peri|pre|post|no-cr)\s+[\d.]+\s+[\d.]+\s+no\s+(0\.\d{4}) (0\.\d{4}) (0\.\d{4})  ",
                      out, flags=re.M)
    assert len(rows) == 8
    for _, shown, random, best in rows:
        assert float(shown) <= float(best) + 1e-4 and float(random) <= float(best) + 1e-4
    assert "True CTR of the shown creatives, mean over 2 requests" in out
    assert len(out.splitlines()) < 30 and "WARNING" not in out and "cuda" not in out.lower()
    log = re.search(r"^Logs: (\S+serving-demo-\S+\.log)", out, flags=re.M).group(1)
    assert os.path.dirname(log) == str(tmp_path / "logs")
    server_logs = [f for f in os.listdir(tmp_path / "logs") if f.startswith("stand-in-")]
    assert len(server_logs) == 2  # one per model server, kept beside the demo's
    assert all(os.path.getsize(tmp_path / "logs" / f) > 0 for f in server_logs)
