"""Canary and rollback through version labels: the router's traffic split, and the drill under load.

The drill (BUILD.md, "Canary and rollback"): serve v1 (labels ``stable=1``, ``canary=1``); push v2; point
``canary`` at v2 with 10 % of users on it; promote (``stable=2``); roll back (``stable=1``) — each step an
edit of the model server's config file, picked up while the router is under load. No request may fail,
and every response names the versions that scored it and the label they were addressed by.
"""

import argparse
import os
import threading
import time

import numpy as np
import pytest

import features as F
from serving import testing as T
from serving.router import RouterClient, RouterServer
from serving.router.core import PeriCRRouter, RouterConfig
from serving.router import traffic_split as TS
from serving.router.traffic_split import TrafficSplit, user_fraction
from serving.sample_requests import random_request
from serving.standin import ModelServerStandIn

MODELS = (F.AR_MODEL_NAME, F.CR_MODEL_NAME)


# ------------------------------------------------------------------------------------- the split
def test_users_hash_uniformly_and_stay_in_their_arm():
    fractions = np.array([user_fraction(u) for u in range(20_000)])
    assert fractions.min() >= 0.0 and fractions.max() < 1.0
    assert np.histogram(fractions, bins=10, range=(0, 1))[0].min() > 1800  # ~2,000 a decile
    split = TrafficSplit(canary_share=0.1)
    arms = [split.label_for(u) for u in range(20_000)]
    assert 0.09 < arms.count("canary") / len(arms) < 0.11
    assert arms == [split.label_for(u) for u in range(20_000)]  # deterministic
    wider = TrafficSplit(canary_share=0.3)
    assert all(wider.label_for(u) == "canary" for u, arm in enumerate(arms) if arm == "canary")  # monotone
    salted = TrafficSplit(canary_share=0.1, salt="experiment-2")
    assert sum(a != salted.label_for(u) for u, a in enumerate(arms)) > 2000  # another set of users
    assert {TrafficSplit(canary_share=0.0).label_for(u) for u in range(1000)} == {"stable"}
    assert {TrafficSplit(canary_share=1.0).label_for(u) for u in range(1000)} == {"canary"}
    assert user_fraction(12345) == user_fraction(12345, "") != user_fraction(12345, "x")


@pytest.mark.parametrize("kwargs, message", [
    (dict(canary_share=1.5), "canary_share must be in [0, 1], got 1.5"),
    (dict(canary_share=-0.1), "canary_share must be in [0, 1], got -0.1"),
    (dict(stable_label="blue", canary_label="blue"), "stable_label and canary_label must differ"),
    (dict(canary_label="can ary"), "canary_label must be letters, digits and underscores"),
    (dict(stable_label=""), "stable_label must be letters, digits and underscores"),
])
def test_bad_splits_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrafficSplit(**kwargs)


def test_router_flags_make_the_split():
    parser = argparse.ArgumentParser()
    TS.add_arguments(parser)
    assert TS.from_args(parser.parse_args([])) is None
    assert TS.from_args(parser.parse_args(["--canary-share", "0.1"])) == TrafficSplit(canary_share=0.1)
    assert TS.from_args(parser.parse_args(["--stable-label", "blue", "--canary-label", "green",
                                           "--split-salt", "s"])) == TrafficSplit("blue", "green", 0.0, "s")


# ------------------------------------------------------------------------------------- the drill
def _config(versions, labels) -> str:
    """Both models under ``root``: ``specific`` versions, the same labels for each."""
    policy = "".join(f" versions: {v}" for v in versions)
    label_text = "".join(f' version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
    return "model_config_list {\n" + "".join(
        f'  config {{ name: "{m}" base_path: "{{root}}/{m}" model_platform: "tensorflow" '
        f'model_version_policy {{ specific {{{policy} }} }}{label_text} }}\n' for m in MODELS) + "}\n"


def _write(path, text):
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def _wait(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.05)


class _Load:
    """Two threads ranking requests of rotating users through the router until stopped."""

    def __init__(self, client: RouterClient, users: int = 400):
        self.client = client
        self.phase = "v1"
        self.results = []  # (phase when sent, phase when answered, user id, response or the exception)
        self._stop = threading.Event()
        self._requests = [random_request(12, 3, seed=i) for i in range(users)]
        for i, r in enumerate(self._requests):
            r["user"][F.USER_ID] = 10_000 + i
        self._threads = [threading.Thread(target=self._run, args=(k,)) for k in range(2)]

    def _run(self, k):
        i = k
        while not self._stop.is_set():
            request = self._requests[i % len(self._requests)]
            sent = self.phase
            try:
                response = self.client.rank(request)
            except Exception as e:  # a failed request: the drill fails
                response = e
            self.results.append((sent, self.phase, request["user"][F.USER_ID], response))
            i += 2

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def answered_in(self, phase):
        return sum(1 for s, a, _, _ in self.results if s == a == phase)


def test_canary_promote_rollback_drill_fails_no_request(tmp_path):
    root = str(tmp_path / "serving")
    T.make_fake_models(root, 1)
    config = str(tmp_path / "models.config")
    edit = lambda versions, labels: _write(config, _config(versions, labels).replace("{root}", root))  # noqa: E731
    edit([1], {"stable": 1, "canary": 1})
    server = ModelServerStandIn(model_config_file=config, config_poll_seconds=0.2, poll_seconds=0.2,
                                allow_version_labels_for_unavailable_models=True).start()
    split = TrafficSplit(canary_share=0.1)
    # Deadlines far above any latency: the drill checks that no request fails over a version change, and a
    # busy CI machine loading a version next to the load can take the default 2 s over one call.
    router = PeriCRRouter(RouterConfig(ar_address=server.grpc_address, traffic_split=split,
                                       ar_timeout_ms=20_000.0, cr_timeout_ms=20_000.0))
    http = RouterServer(router).start()
    expected = {}  # phase -> label -> version
    try:
        with _Load(RouterClient(http.url, timeout=30)) as load:
            def step(phase, versions, labels, ready=lambda: True):
                load.phase = f"to {phase}"  # responses straddling the edit are not checked for versions
                edit(versions, labels)
                _wait(lambda: ready() and all(server.labels(m) == labels for m in MODELS), f"labels {labels}")
                load.phase, expected[phase] = phase, labels
                _wait(lambda: load.answered_in(phase) >= 60, f"60 requests in phase {phase}")

            expected["v1"] = {"stable": 1, "canary": 1}
            _wait(lambda: load.answered_in("v1") >= 60, "60 requests on v1")
            T.push_version(root, 2)  # (the pipeline's Pusher: v2, blessed)
            step("v2 loaded", [1, 2], {"stable": 1, "canary": 1},
                 ready=lambda: all(2 in [s.version for s in server.model_status(m) if s.state == "AVAILABLE"]
                                   for m in MODELS))
            step("canary", [1, 2], {"stable": 1, "canary": 2})
            step("promoted", [1, 2], {"stable": 2, "canary": 2})
            step("rolled back", [1, 2], {"stable": 1, "canary": 2})
    finally:
        http.stop()
        router.close()
        server.stop()

    failed = [r for *_, r in load.results if isinstance(r, Exception)]
    assert not failed, failed[:3]
    checked = 0
    for sent, answered, user, response in load.results:
        label = split.label_for(user)
        assert response["version_label"] == label  # the user's arm, always
        assert not response["degraded"], response["degraded_reason"]
        versions = response["model_versions"]
        assert set(versions) == set(MODELS) and all(isinstance(v, int) for v in versions.values())
        if sent == answered and sent in expected:
            assert versions == {m: expected[sent][label] for m in MODELS}, (sent, label, versions)
            checked += 1
    assert checked >= 5 * 60
    canary_users = {u for s, a, u, r in load.results if r["version_label"] == "canary"}
    all_users = {u for *_, u, _ in load.results}
    assert 0.04 < len(canary_users) / len(all_users) < 0.18  # ~10 % of the users
    # The canary arm really ran v2 while stable ran v1, and the rollback brought stable back to v1.
    arms = {(s, r["version_label"]): r["model_versions"][F.AR_MODEL_NAME] for s, a, _, r in load.results if s == a}
    assert arms[("canary", "canary")] == 2 and arms[("canary", "stable")] == 1
    assert arms[("promoted", "stable")] == 2 and arms[("rolled back", "stable")] == 1
