"""Live traffic (simulator.live): days beyond the log, requests with their truth, and the log of what was shown."""

import os

import numpy as np
import pytest

import features as F
from serving.router.request import parse_request
from simulator import SimulatorConfig, build_world, live, load_world, simulate, traffic
from simulator.tfrecord import ShardedWriter, encode_tfrecords
from simulator.truth import read_split


@pytest.fixture(scope="module")
def world():
    return build_world(SimulatorConfig(num_impressions=20_000, num_days=4, live_days=2, seed=9))


def test_live_days_extend_the_world_but_not_the_log(tmp_path):
    config = SimulatorConfig(num_impressions=3000, num_days=3, live_days=2, seed=4)
    summary = simulate(config, str(tmp_path / "data"), progress=False)
    w = load_world(str(tmp_path / "data" / "world.npz"))
    assert w.num_days == 5 and summary["sizes"]["days"] == 3 and summary["sizes"]["live_days"] == 2
    assert summary["eval"]["impressions"] == len(np.array_split(np.arange(3000), 3)[-1])
    # Creatives keep churning on the live days.
    assert (w.track_day_creative[:, 4] != w.track_day_creative[:, 2]).any()
    with pytest.raises(ValueError, match="live_days: must be an integer >= 0"):
        SimulatorConfig(live_days=-1).validate()


def test_requests_are_valid_router_requests_with_the_worlds_bids_and_truth(world):
    batch = live.draw_requests(world, 4, np.random.default_rng(0), 5)
    for r in range(len(batch)):
        request = batch.request(r, request_id=f"q{r}")
        parsed = parse_request(request)
        ads = batch.ads[r]
        np.testing.assert_allclose(parsed.ads[F.AD_BID], world.ad_bid[ads], rtol=1e-5)
        assert parsed.num_ads == world.config.ads_per_request and parsed.slots == world.config.slots
        table = batch.true_ctr_table(r)
        assert table.shape == (parsed.num_creatives, world.config.slots)
        # The truth of ad j's candidate k in slot l is the world's click model for this user.
        j, k, slot = 3, int(batch.counts(r)[3]) - 1, 2
        c = batch.creatives[batch.ptr[r * len(ads) + j] + k]
        want = world.true_ctr([batch.users[r]], [ads[j]], [c], [slot])[0]
        assert batch.true_ctr([r], [j], [k], [slot])[0] == pytest.approx(want, rel=1e-12)
        assert table[int(parsed.offsets[j]) + k, slot] == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match=r"day: must be in \[0, 6\), got 6"):
        live.draw_requests(world, 6, np.random.default_rng(0), 1)


def test_draws_match_the_logged_traffics(world):
    """Users then candidate ads, from the same generator: the requests the logging ranker would see."""
    batch = live.draw_requests(world, 1, np.random.default_rng(3), 50)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(batch.users, traffic.draw_users(world, rng, 50))
    np.testing.assert_array_equal(batch.ads, traffic.draw_candidate_ads(world, rng, 50))


def test_shown_impressions_are_written_in_the_training_format(world, tmp_path):
    batch = live.draw_requests(world, 4, np.random.default_rng(1), 40)
    requests = np.repeat(np.arange(40), 2)
    ad_index = np.tile([0, 5], 40)
    counts = np.diff(batch.ptr)[requests * batch.ads_per_request + ad_index]
    creative_index = counts - 1
    slot = np.tile([0, 1], 40)
    shown = batch.impressions(requests, ad_index, creative_index, slot, 1.0 / counts)
    truth = batch.true_ctr([0], [0], [creative_index[0]], [0])[0]
    clicks = (np.arange(80) % 7 == 0).astype(np.int64)
    columns = traffic.to_columns(world, batch.view, shown, clicks, first_request_id=1000)
    with ShardedWriter(str(tmp_path / "eval"), 1) as writer:
        writer.write(*encode_tfrecords(columns))
    log = read_split(str(tmp_path), "eval")
    np.testing.assert_array_equal(log[F.REQUEST_ID], requests + 1000)
    np.testing.assert_array_equal(log[F.EXPOSED_INDEX], creative_index)
    np.testing.assert_allclose(log[F.PROPENSITY], 1.0 / counts, rtol=1e-6)
    np.testing.assert_array_equal(log[F.AD_ID], batch.ads[requests, ad_index] + 1)
    np.testing.assert_allclose(log[F.AD_BID], world.ad_bid[batch.ads[requests, ad_index]], rtol=1e-6)
    assert log[F.TRUTH_CTR][0] == pytest.approx(truth, rel=1e-6)
    cand, lengths = log[F.TRUTH_CAND_CTRS]
    np.testing.assert_array_equal(lengths, counts)
    assert cand[counts[0] - 1] == pytest.approx(truth, rel=1e-6)  # the exposed candidate's truth
    assert os.path.getsize(tmp_path / "eval" / "data-00000-of-00001.tfrecord") > 0
