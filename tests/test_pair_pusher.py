"""What the Pusher publishes: a complete AR/CR pair into the served layout, an ablation's lone model beside it.

Fake SavedModel directories (files with known bytes) stand in for the Trainer output: the executor only copies.
"""

import json
import logging
import os

import pytest
from tfx.types import standard_artifacts

import features as F
from tfx_pipeline import pair_pusher

AR, CR = F.AR_MODEL_NAME, F.CR_MODEL_NAME
# A SavedModel's files, relative to its directory (the graph is copied last, see publish_saved_model).
FILES = ("saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001",
         "assets.extra/tf_serving_warmup_requests")


def _content(model, name, file):
    return f"{model}:{name}:{file}".encode()


def _trainer_output(tmp_path, names, tag="m"):
    """A Trainer-shaped Model artifact: an eval model on top, the online models ``names`` nested below it."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / f"model-{tag}")
    serving = os.path.join(model.uri, "Format-Serving")
    for name in ("",) + tuple(names):
        for file in FILES:
            path = os.path.join(serving, name, file)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(_content(tag, name or "eval", file))
    return model


def _push(tmp_path, model, serving_root, tag, blessed=True):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / f"blessing-{tag}")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed-{tag}")
    destination = json.dumps({"filesystem": {"base_directory": serving_root}})
    pair_pusher.PairPusherExecutor().Do({"model": [model], "model_blessing": [blessing]},
                                        {"pushed_model": [pushed]}, {"push_destination": destination})
    return pushed


def _assert_published(root, served_as, version, tag, source):
    for file in FILES:
        with open(os.path.join(root, served_as, str(version), file), "rb") as f:
            assert f.read() == _content(tag, source, file), (served_as, file)
    assert not [d for d in os.listdir(os.path.join(root, served_as)) if d.startswith(".")]  # no staging left


@pytest.mark.parametrize("present, targets", [
    ((AR, CR), {AR: AR, CR: CR}),
    ((CR, AR), {AR: AR, CR: CR}),
    ((AR,), {AR: "ar-only"}),
    ((CR,), {CR: "cr-only"}),
])
def test_push_targets(present, targets):
    assert pair_pusher.push_targets(present) == targets


def test_push_targets_needs_a_model():
    with pytest.raises(ValueError, match="no online model"):
        pair_pusher.push_targets(())


def test_a_complete_pair_is_pushed_into_the_pair_layout_with_one_version(tmp_path):
    root = str(tmp_path / "serving")
    pushed = _push(tmp_path, _trainer_output(tmp_path, (AR, CR)), root, "a")
    version = int(pushed.get_string_custom_property("pushed_version"))
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_models") == "ar,cr"
    assert pushed.get_string_custom_property("push_layout") == "pair"
    assert pushed.get_string_custom_property("pushed_destination") == root
    assert sorted(os.listdir(root)) == [AR, CR]
    for name in (AR, CR):
        assert pair_pusher.served_versions(root, name) == [version]
        _assert_published(root, name, version, "m", name)


@pytest.mark.parametrize("variant", [AR, CR])
def test_an_ablation_is_pushed_on_its_own_and_the_served_pair_is_untouched(tmp_path, variant, caplog):
    root = str(tmp_path / "serving")
    pair = int(_push(tmp_path, _trainer_output(tmp_path, (AR, CR), "pair"), root, "a")
               .get_string_custom_property("pushed_version"))
    with caplog.at_level(logging.WARNING):
        pushed = _push(tmp_path, _trainer_output(tmp_path, (variant,), "ablation"), root, "b")

    single = f"{variant}-only"
    version = int(pushed.get_string_custom_property("pushed_version"))
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_models") == single
    assert pushed.get_string_custom_property("push_layout") == "single"
    _assert_published(root, single, version, "ablation", variant)
    # The pair keeps serving one run: the first push's AR and CR, nothing of the ablation.
    assert sorted(os.listdir(root)) == sorted([AR, CR, single])
    for name in (AR, CR):
        assert pair_pusher.served_versions(root, name) == [pair]
        _assert_published(root, name, pair, "pair", name)
    assert any(single in r.getMessage() and "outside the served" in r.getMessage() for r in caplog.records)


def test_a_first_push_of_an_ablation_creates_no_pair(tmp_path):
    root = str(tmp_path / "serving")
    first = int(_push(tmp_path, _trainer_output(tmp_path, (CR,)), root, "a").get_string_custom_property(
        "pushed_version"))
    second = int(_push(tmp_path, _trainer_output(tmp_path, (CR,)), root, "b").get_string_custom_property(
        "pushed_version"))
    assert os.listdir(root) == ["cr-only"]  # no cr/ (and so no half pair) for a router to pick up
    assert second > first
    assert pair_pusher.served_versions(root, "cr-only") == [first, second]


def test_an_unblessed_ablation_pushes_nothing(tmp_path):
    root = str(tmp_path / "serving")
    pushed = _push(tmp_path, _trainer_output(tmp_path, (AR,)), root, "a", blessed=False)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not os.path.exists(root)
