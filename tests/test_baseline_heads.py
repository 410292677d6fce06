"""The local runner refuses a run whose Evaluator baseline (the latest blessed model) has other heads."""

import os

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tfx_pipeline import baseline_heads, local_runner
from tfx_pipeline import config as config_lib


def _store(path):
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = path
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(cfg)


def _put(store, type_name, uri, **ints):
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name=type_name))
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri=uri)
    for k, v in ints.items():
        artifact.custom_properties[k].int_value = v
    return store.put_artifacts([artifact])[0]


def _model(store, root, name, heads, blessed):
    uri = os.path.join(root, name)
    for head in heads:
        os.makedirs(os.path.join(uri, "Format-Serving", head))
    model_id = _put(store, "Model", uri)
    _put(store, "ModelBlessing", uri + "-blessing", blessed=int(blessed), current_model_id=model_id)
    return uri


@pytest.fixture
def metadata(tmp_path):
    return str(tmp_path / "metadata.sqlite")


def test_no_metadata_or_no_blessed_model_means_no_baseline(tmp_path, metadata):
    baseline_heads.check_baseline_heads(metadata, {"variant": "ar"}, "OUT")
    _model(_store(metadata), str(tmp_path), "m1", ("cr",), blessed=False)
    assert baseline_heads.latest_blessed_model_uri(metadata) is None
    baseline_heads.check_baseline_heads(metadata, {"variant": "ar"}, "OUT")


def test_the_latest_blessed_model_is_the_baseline(tmp_path, metadata):
    store = _store(metadata)
    _model(store, str(tmp_path), "m1", ("ar", "cr"), blessed=True)
    cr_only = _model(store, str(tmp_path), "m2", ("cr",), blessed=True)
    _model(store, str(tmp_path), "m3", ("ar",), blessed=False)  # newest, not blessed: not the baseline
    assert baseline_heads.latest_blessed_model_uri(metadata) == cr_only
    assert baseline_heads.model_heads(cr_only) == (False, True)
    baseline_heads.check_baseline_heads(metadata, {"variant": "cr"}, "OUT")


@pytest.mark.parametrize("variant,heads,described", [
    ("ar", ("cr",), "a blessed model with CR only"),
    ("jac", ("ar",), "a blessed model with AR only"),
    ("cr", ("ar", "cr"), "a blessed model with AR and CR"),
])
def test_other_heads_are_refused_naming_the_variant_and_the_fix(tmp_path, metadata, variant, heads, described):
    _model(_store(metadata), str(tmp_path), "m1", heads, blessed=True)
    with pytest.raises(ValueError, match=rf"OUT already holds {described}.*variant '{variant}'.*its own --output-dir"):
        baseline_heads.check_baseline_heads(metadata, {"variant": variant}, "OUT")


def test_the_runner_refuses_before_anything_runs(tmp_path):
    cfg = config_lib.PipelineConfig(output_dir=str(tmp_path / "out"), data_dir=str(tmp_path / "absent"),
                                    model_config={"variant": "ar"})
    os.makedirs(os.path.dirname(cfg.metadata_path))
    _model(_store(cfg.metadata_path), str(tmp_path), "m1", ("cr",), blessed=True)
    with pytest.raises(ValueError, match="variant 'ar' has AR only"):
        local_runner.run(cfg)
    assert not os.path.exists(tmp_path / "absent")  # no simulation, no component started
