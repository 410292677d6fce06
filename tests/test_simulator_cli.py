"""Options, the command line, determinism and atomic output of the simulator."""

import glob
import hashlib
import json
import os

import pytest

from simulator import OutputExistsError, SimulatorConfig, cli, generate, simulate

SMALL = dict(num_impressions=4000, chunk_size=1024)


def _digest(out_dir):
    """Hash of every TFRecord file, by relative path."""
    files = sorted(glob.glob(os.path.join(out_dir, "*", "*.tfrecord")))
    assert files
    return {os.path.relpath(p, out_dir): hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files}


@pytest.mark.parametrize("kwargs, option", [
    (dict(num_impressions=0), "num_impressions"),
    (dict(num_impressions=-5), "num_impressions"),
    (dict(num_days=1), "num_days"),
    (dict(num_users=0), "num_users"),
    (dict(num_ads=-1), "num_ads"),
    (dict(min_creatives=0), "min_creatives"),
    (dict(max_creatives=0), "max_creatives"),
    (dict(mean_creatives=30.0), "mean_creatives"),
    (dict(ads_per_request=0), "ads_per_request"),
    (dict(slots=0), "slots"),
    (dict(slots=5, ads_per_request=4), "slots"),
    (dict(num_ads=50, ads_per_request=60, slots=3), "ads_per_request"),
    (dict(logging_policy="thompson"), "logging_policy"),
    (dict(epsilon=-0.1), "epsilon"),
    (dict(epsilon=1.5), "epsilon"),
    (dict(target_ctr=0.0), "target_ctr"),
    (dict(target_ctr=1.0), "target_ctr"),
    (dict(target_ctr=float("nan")), "target_ctr"),
    (dict(creative_churn=1.0), "creative_churn"),
    (dict(train_shards=0), "train_shards"),
    (dict(seed=-1), "seed"),
    (dict(num_impressions=2.5), "num_impressions"),
    (dict(relevance_style_scale=-0.1), "relevance_style_scale"),
    (dict(creative_count_quality=float("inf")), "creative_count_quality"),
    (dict(bid_std=-1.0), "bid_std"),
    (dict(bid_mean=0.0), "bid_mean"),
    (dict(live_days=-1), "live_days"),
    (dict(live_days=1.5), "live_days"),
])
def test_validate_names_the_bad_option(kwargs, option):
    with pytest.raises(ValueError, match=rf"SimulatorConfig\.{option}: must"):
        SimulatorConfig(**kwargs).validate()


def test_defaults_are_valid_and_scale_with_impressions():
    config = SimulatorConfig().validate()
    assert config.num_impressions >= 200_000 and config.logging_policy == "uniform"
    assert config.max_creatives >= 20 and config.min_creatives == 1 and 6 <= config.mean_creatives <= 8
    r = SimulatorConfig(num_impressions=1_000_000).resolved()
    assert (r.num_users, r.num_ads, r.num_advertisers) == (100_000, 25_000, 5_000)
    assert SimulatorConfig(num_ads=77).resolved().num_ads == 77


@pytest.mark.parametrize("argv, flag", [
    (["--impressions", "0"], "--impressions"),
    (["--users", "-3"], "--users"),
    (["--ads", "0"], "--ads"),
    (["--days", "1"], "--days"),
    (["--min-creatives", "0"], "--min-creatives"),
    (["--max-creatives", "0", "--min-creatives", "1"], "--max-creatives"),
    (["--mean-creatives", "0.5"], "--mean-creatives"),
    (["--slots", "0"], "--slots"),
    (["--ads-per-request", "-1"], "--ads-per-request"),
    (["--policy", "greedy"], "--policy"),
    (["--epsilon", "2"], "--epsilon"),
    (["--target-ctr", "1.5"], "--target-ctr"),
    (["--target-ctr", "-0.1"], "--target-ctr"),
    (["--shards", "0"], "--shards"),
    (["--bid-mean", "0"], "--bid-mean"),
    (["--bid-std", "-0.5"], "--bid-std"),
    (["--relevance-style-scale", "-1"], "--relevance-style-scale"),
    (["--creative-count-quality", "nan"], "--creative-count-quality"),
    (["--live-days", "-2"], "--live-days"),
])
def test_cli_rejects_bad_options_before_writing(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(out), "--quiet"] + argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {flag} (" in err and "must" in err
    assert os.listdir(tmp_path) == []  # nothing written, not even a temp dir


def test_cli_writes_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "data"
    assert cli.main(["--out", str(out), "--impressions", "3000", "--days", "3", "--shards", "2",
                     "--policy", "epsilon_greedy", "--epsilon", "0.3", "--seed", "4", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "impressions 3,000" in printed and "CTR" in printed and "impressions/creative" in printed
    assert sorted(os.listdir(out)) == ["eval", "summary.json", "train", "world.npz"]
    assert len(os.listdir(out / "train")) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["logging_policy"] == "epsilon_greedy"
    assert summary["options"]["epsilon"] == 0.3 and summary["seed"] == 4
    assert summary["sizes"]["train_days"] == 2
    assert summary["files"]["train"] == ["train/data-00000-of-00002.tfrecord",
                                         "train/data-00001-of-00002.tfrecord"]


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a = simulate(SimulatorConfig(seed=11, **SMALL), str(tmp_path / "a"), progress=False)
    simulate(SimulatorConfig(seed=11, **SMALL), str(tmp_path / "b"), progress=False)
    c = simulate(SimulatorConfig(seed=12, **SMALL), str(tmp_path / "c"), progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    digest_c = _digest(tmp_path / "c")
    assert all(digest_c[k] != v for k, v in _digest(tmp_path / "a").items())
    assert a["overall"]["clicks"] != c["overall"]["clicks"] or a["global_bias"] != c["global_bias"]


def test_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "data"
    simulate(SimulatorConfig(seed=1, **SMALL), str(out), progress=False)
    before = _digest(out)
    with pytest.raises(OutputExistsError, match="--force"):
        simulate(SimulatorConfig(seed=2, **SMALL), str(out), progress=False)
    assert _digest(out) == before
    simulate(SimulatorConfig(seed=2, **SMALL), str(out), progress=False, force=True)
    assert _digest(out) != before
    assert json.loads((out / "summary.json").read_text())["seed"] == 2
    assert sorted(os.listdir(tmp_path)) == ["data"]  # the replaced data and temp dirs are gone


def test_empty_existing_directory_is_used(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    simulate(SimulatorConfig(**SMALL), str(out), progress=False)
    assert (out / "train").is_dir() and (out / "eval").is_dir()


def _fail_on_call(monkeypatch, k, exc):
    real = generate.encode_tfrecords
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, "encode_tfrecords", flaky)
    return calls


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, exc):
    calls = _fail_on_call(monkeypatch, 3, exc)
    out = tmp_path / "data"
    with pytest.raises(type(exc)):
        simulate(SimulatorConfig(**SMALL), str(out), progress=False)
    assert len(calls) == 3  # it failed mid-way, after writing some records
    assert os.listdir(tmp_path) == []  # no split, no half-written temp dir


def test_interrupted_forced_run_keeps_existing_data(tmp_path, monkeypatch):
    out = tmp_path / "data"
    simulate(SimulatorConfig(seed=1, **SMALL), str(out), progress=False)
    before = _digest(out)
    _fail_on_call(monkeypatch, 2, RuntimeError("killed"))
    with pytest.raises(RuntimeError):
        simulate(SimulatorConfig(seed=2, **SMALL), str(out), progress=False, force=True)
    assert _digest(out) == before
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_command_for_a_config_round_trips_through_the_parser():
    config = SimulatorConfig(num_impressions=12_345, num_days=3, live_days=2, bid_std=0.0, seed=8,
                             relevance_style_scale=0.3, logging_policy="epsilon_greedy", write_world=False)
    argv = cli.command_for(config, "out/x")
    assert argv[:2] == ["--out", "out/x"] and "--chunk-size" not in argv  # defaults are not spelled out
    assert cli.config_from_args(cli.build_parser().parse_args(argv)) == config
    with pytest.raises(ValueError, match="SimulatorConfig.ranker_noise: the command line has no flag"):
        cli.command_for(SimulatorConfig(ranker_noise=0.1), "out/x")
