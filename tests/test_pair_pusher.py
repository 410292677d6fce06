"""What the Pusher publishes: a complete AR/CR pair into the served layout, an ablation's lone model beside it.

Fake SavedModel directories (files with known bytes) stand in for the Trainer output: the pusher only copies.
The last tests run the executor on real (tiny) SavedModels and load what it published.
"""

import json
import logging
import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

import features as F
from tfx_pipeline import pair_pusher

AR, CR = F.AR_MODEL_NAME, F.CR_MODEL_NAME
# A SavedModel's files, relative to its directory.
FILES = ("saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001",
         "assets.extra/tf_serving_warmup_requests")


def _content(tag, model, file):
    return f"{tag}:{model}:{file}".encode()


def _serving_dir(path, names, tag):
    """A Trainer serving directory at ``path``: an eval model on top, the online models ``names`` below it."""
    for name in ("",) + tuple(names):
        for file in FILES:
            os.makedirs(os.path.dirname(os.path.join(path, name, file)), exist_ok=True)
            with open(os.path.join(path, name, file), "wb") as f:
                f.write(_content(tag, name or "eval", file))
    return path


def _assert_published(root, served_as, version, tag, source):
    for file in FILES:
        with open(os.path.join(root, served_as, str(version), file), "rb") as f:
            assert f.read() == _content(tag, source, file), (served_as, file)
    assert not [d for d in os.listdir(os.path.join(root, served_as)) if d.startswith(".")]  # no staging left


def _artifact(kind, uri, **int_properties):
    artifact = kind()
    artifact.uri = uri
    for key, value in int_properties.items():
        artifact.set_int_custom_property(key, value)
    return artifact


@pytest.mark.parametrize("present, targets, layout", [
    ((AR, CR), {AR: AR, CR: CR}, "pair"),
    ((CR, AR), {AR: AR, CR: CR}, "pair"),
    ((AR,), {AR: "ar-only"}, "single"),
    ((CR,), {CR: "cr-only"}, "single"),
])
def test_push_targets(present, targets, layout):
    assert pair_pusher.push_targets(present) == targets
    assert pair_pusher.layout_of(targets) == layout


def test_push_targets_needs_a_model():
    with pytest.raises(ValueError, match="no online model"):
        pair_pusher.push_targets(())


def test_a_complete_pair_is_published_into_the_pair_layout_with_one_version(tmp_path):
    root = str(tmp_path / "serving")
    model = _serving_dir(str(tmp_path / "model"), (AR, CR), "run1")
    targets, version = pair_pusher.push_online_models(model, root, now=1000)
    assert targets == {AR: AR, CR: CR} and version == 1000
    assert sorted(os.listdir(root)) == [AR, CR]
    for name in (AR, CR):
        assert pair_pusher.served_versions(root, name) == [1000]
        _assert_published(root, name, 1000, "run1", name)


@pytest.mark.parametrize("variant", [AR, CR])
def test_an_ablation_is_published_on_its_own_and_the_served_pair_is_untouched(tmp_path, variant, caplog):
    root = str(tmp_path / "serving")
    pair_pusher.push_online_models(_serving_dir(str(tmp_path / "jac"), (AR, CR), "jac"), root, now=1000)
    with caplog.at_level(logging.WARNING):
        targets, version = pair_pusher.push_online_models(
            _serving_dir(str(tmp_path / "ablation"), (variant,), "ablation"), root, now=1000)

    single = f"{variant}-only"
    assert targets == {variant: single} and version == 1000  # its own version history
    _assert_published(root, single, version, "ablation", variant)
    # The pair keeps serving one run: the first push's AR and CR, nothing of the ablation.
    assert sorted(os.listdir(root)) == sorted([AR, CR, single])
    for name in (AR, CR):
        assert pair_pusher.served_versions(root, name) == [1000]
        _assert_published(root, name, 1000, "jac", name)
    assert any(single in r.getMessage() and "outside the served" in r.getMessage() for r in caplog.records)


def test_a_first_push_of_an_ablation_creates_no_pair(tmp_path):
    root = str(tmp_path / "serving")
    model = _serving_dir(str(tmp_path / "cr"), (CR,), "cr")
    first = pair_pusher.push_online_models(model, root, now=1000)[1]
    second = pair_pusher.push_online_models(model, root, now=1000)[1]
    assert os.listdir(root) == ["cr-only"]  # no cr/ (and so no half pair) for a router to pick up
    assert pair_pusher.served_versions(root, "cr-only") == [first, second] == [1000, 1001]


@pytest.mark.parametrize("names, blessed, pushed_models, layout", [
    ((AR, CR), True, "ar,cr", "pair"),
    ((CR,), True, "cr-only", "single"),
    ((AR,), False, None, None),
])
def test_the_pushed_model_artifact_says_what_was_pushed(tmp_path, names, blessed, pushed_models, layout):
    root = str(tmp_path / "serving")
    model = _artifact(standard_artifacts.Model, str(tmp_path / "model"))
    _serving_dir(os.path.join(model.uri, "Format-Serving"), names, "run")
    blessing = _artifact(standard_artifacts.ModelBlessing, str(tmp_path / "blessing"), blessed=int(blessed))
    pushed = _artifact(standard_artifacts.PushedModel, str(tmp_path / "pushed"))
    pair_pusher.PairPusherExecutor().Do(
        {"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
        {"push_destination": json.dumps({"filesystem": {"base_directory": root}})})

    assert pushed.get_int_custom_property("pushed") == int(blessed)
    if not blessed:
        assert not os.path.exists(root)
        return
    version = pushed.get_string_custom_property("pushed_version")
    assert pushed.get_string_custom_property("pushed_destination") == root
    assert pushed.get_string_custom_property("pushed_models") == pushed_models
    assert pushed.get_string_custom_property("push_layout") == layout
    assert sorted(os.listdir(root)) == sorted(pushed_models.split(","))
    for served_as in pushed_models.split(","):
        assert pair_pusher.served_versions(root, served_as) == [int(version)]
    # The whole Trainer output is archived under the artifact, as by the stock Pusher.
    assert os.path.isfile(os.path.join(pushed.uri, names[0], "saved_model.pb"))


# ------------------------------------------------------------- real SavedModels through the executor
class _Tiny(tf.Module):
    def __init__(self, value):
        super().__init__()
        self.value = tf.Variable(value)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
        return x * self.value


def _trainer_output(tmp_path, names=(F.AR_MODEL_NAME, F.CR_MODEL_NAME)):
    """A Trainer-shaped model: an eval SavedModel on top, online SavedModels nested below it."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    serving = os.path.join(model.uri, "Format-Serving")
    tf.saved_model.save(_Tiny(1.0), serving)
    for i, name in enumerate(names):
        tf.saved_model.save(_Tiny(float(i + 2)), os.path.join(serving, name))
    return model


def _push(tmp_path, model, blessed, serving_root, tag):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / f"blessing-{tag}")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed-{tag}")
    destination = json.dumps({"filesystem": {"base_directory": serving_root}})
    pair_pusher.PairPusherExecutor().Do({"model": [model], "model_blessing": [blessing]},
                                        {"pushed_model": [pushed]}, {"push_destination": destination})
    return pushed


class TestPairPusher:
    def test_pushes_both_models_complete_with_one_version(self, tmp_path):
        root = str(tmp_path / "serving")
        pushed = _push(tmp_path, _trainer_output(tmp_path), True, root, "a")
        version = pushed.get_string_custom_property("pushed_version")
        assert pushed.get_int_custom_property("pushed") == 1
        for i, name in enumerate((F.AR_MODEL_NAME, F.CR_MODEL_NAME)):
            assert pair_pusher.served_versions(root, name) == [int(version)]
            loaded = tf.saved_model.load(os.path.join(root, name, version))
            assert loaded(tf.constant([3.0])).numpy().tolist() == [3.0 * (i + 2)]
        assert not [d for d in os.listdir(os.path.join(root, F.AR_MODEL_NAME)) if d.startswith(".")]

    def test_second_push_gets_a_newer_version_and_keeps_the_old(self, tmp_path):
        root = str(tmp_path / "serving")
        model = _trainer_output(tmp_path)
        first = int(_push(tmp_path, model, True, root, "a").get_string_custom_property("pushed_version"))
        second = int(_push(tmp_path, model, True, root, "b").get_string_custom_property("pushed_version"))
        assert second > first
        assert pair_pusher.served_versions(root, F.CR_MODEL_NAME) == [first, second]

    def test_unblessed_model_pushes_nothing(self, tmp_path):
        root = str(tmp_path / "serving")
        pushed = _push(tmp_path, _trainer_output(tmp_path), False, root, "a")
        assert pushed.get_int_custom_property("pushed") == 0
        assert not os.path.exists(root)

    def test_version_is_newer_than_anything_served(self, tmp_path):
        root = tmp_path / "serving"
        (root / F.CR_MODEL_NAME / "9999999999").mkdir(parents=True)
        assert pair_pusher.next_version(str(root), now=100) == 10_000_000_000

    def test_model_without_online_models_is_refused(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="neither"):
            _push(tmp_path, _trainer_output(tmp_path, names=()), True, str(tmp_path / "s"), "a")


def test_the_experiments_find_an_ablations_model_where_it_is_pushed():
    from experiments.profiles import ablation_model

    for name in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):
        assert ablation_model(name) == pair_pusher.single_model_name(name)
