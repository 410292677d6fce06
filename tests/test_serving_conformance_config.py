"""TF Serving conformance of the servers' configuration: the cases that start a server of their own.

Config files that fail at start, and the checks TF Serving applies to them; the config re-read every
``--model_config_file_poll_wait_seconds`` (and a bad edit that keeps the running config); version policies
and a version that fails to load; labels moved by ``HandleReloadConfigRequest``; our exported models, with
and without batching. One test code for the stand-in and ``tensorflow_model_server`` (see
``test_serving_conformance.py`` for which servers run).
"""

from __future__ import annotations

import os
import re
import shutil
import time

import grpc
import numpy as np
import pytest

import features as F
from conformance_servers import (RPC_TIMEOUT, StartFailed, code_of, copy_models, eventually, fixtures,
                                 models_config, predict_x, rest, rpc_error, running, skip_unless_startable,
                                 start_server, version_states, write_file)
from serving import tf_serving

kind, built = fixtures()[:2]


def test_bad_model_config_fails_at_start_with_the_line_and_problem(kind, tmp_path):
    """testBadModelConfig: TF Serving's message, with the parser's line and column."""
    bad = write_file(str(tmp_path / "bad_model_config.txt"), "improperly formatted file")
    with pytest.raises(StartFailed) as e:
        start_server(kind, [f"--model_config_file={bad}"])
    out = str(e.value)
    assert re.search(r"Error parsing text-format tensorflow\.serving\.ModelServerConfig: 1:\d+: ", out), out
    assert f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'" in out


def test_bad_config_checks_fail_at_start(kind, built, tmp_path):
    hpt = os.path.join(built[0], "half_plus_two")
    cases = [
        (models_config(("a", hpt), ("a", hpt)),
         "INVALID_ARGUMENT: Illegal to list model a multiple times in config list"),
        (models_config(("a", "relative/path")),
         "INVALID_ARGUMENT: Expected model a to have an absolute path or URI; got base_path()=relative/path"),
        (models_config(("a", hpt, 'version_labels { key: "stable" value: 123 }')),
         "FAILED_PRECONDITION: Request to assign label to version 123 of model a, which is not currently "
         "available for inference"),
    ]
    for i, (text, message) in enumerate(cases):
        config = write_file(str(tmp_path / f"models-{i}.config"), text)
        with pytest.raises(StartFailed) as e:
            start_server(kind, [f"--model_config_file={config}"])
        assert f"Failed to start server. Error: {message}" in str(e.value), str(e.value)


def test_model_config_is_re_read_and_a_bad_edit_keeps_the_running_config(kind, built, tmp_path):
    """testModelConfigReload, then edits that do not parse or do not pass the checks."""
    root = copy_models(built, "half_plus_two", "half_plus_three", into=str(tmp_path))
    two, three = os.path.join(root, "half_plus_two"), os.path.join(root, "half_plus_three")
    config = write_file(str(tmp_path / "models.config"), models_config(("half_plus_two", two)))
    with running(kind, [f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1"]) as s:
        assert list(predict_x(s, 2.0, model="half_plus_two").outputs["y"].float_val) == [3.0]
        write_file(config, models_config(("half_plus_three", three)))

        def serves_three():
            try:
                return list(predict_x(s, 2.0, model="half_plus_three").outputs["y"].float_val) == [4.0]
            except grpc.RpcError:
                return False

        eventually(serves_three, what="half_plus_three served after the config edit")
        eventually(lambda: code_of(lambda: predict_x(s, 2.0, model="half_plus_two")) == grpc.StatusCode.NOT_FOUND,
                   what="half_plus_two unloaded")
        write_file(config, "model_config_list { config { name: ")  # does not parse
        time.sleep(2.5)
        assert list(predict_x(s, 2.0, model="half_plus_three").outputs["y"].float_val) == [4.0]
        write_file(config, models_config(("half_plus_three", three, 'version_labels { key: "stable" value: 999 }')))
        time.sleep(2.5)
        assert list(predict_x(s, 2.0, model="half_plus_three").outputs["y"].float_val) == [4.0]
        assert rpc_error(lambda: predict_x(s, 2.0, model="half_plus_three", label="stable")).details() == \
            "Unrecognized servable version label: stable"
        if kind == "stand-in":  # (TF Serving logs these lines too; its format differs)
            assert "Failed to read ModelServerConfig file: Invalid protobuf file" in s.log()
            assert ("failed to ReloadConfig: Request to assign label to version 999 of model half_plus_three"
                    in s.log())


def test_model_config_is_read_once_with_zero_poll_period(kind, built, tmp_path):
    """testModelConfigReloadWithZeroPollPeriod."""
    root = copy_models(built, "half_plus_two", "half_plus_three", into=str(tmp_path))
    two = os.path.join(root, "half_plus_two")
    config = write_file(str(tmp_path / "models.config"), models_config(("half_plus_two", two)))
    with running(kind, [f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=0"]) as s:
        write_file(config, models_config(("half_plus_three", os.path.join(root, "half_plus_three"))))
        time.sleep(2)
        assert list(predict_x(s, 2.0, model="half_plus_two").outputs["y"].float_val) == [3.0]
        assert rpc_error(lambda: predict_x(s, 2.0, model="half_plus_three")).code() == grpc.StatusCode.NOT_FOUND


def test_version_policies_and_a_version_that_fails_to_load(kind, built, tmp_path):
    """``latest``, ``all`` and ``specific``; a broken version ends with its error while the rest serve."""
    base = copy_models(built, ("labelled", "versions"), into=str(tmp_path))  # 00000123 (+2) and 00000124 (+3)
    base = os.path.join(base, "versions")
    config = write_file(str(tmp_path / "models.config"), models_config(
        ("latest", base), ("latest2", base, "model_version_policy { latest { num_versions: 2 } }"),
        ("all", base, "model_version_policy { all {} }"),
        ("specific", base, "model_version_policy { specific { versions: 123 } }")))
    with running(kind, [f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
                        "--max_num_load_retries=0"]) as s:
        ok = ("AVAILABLE", "OK", "")
        assert version_states(s, "latest") == {124: ok}
        assert version_states(s, "latest2") == {124: ok, 123: ok}
        assert version_states(s, "all") == {124: ok, 123: ok}
        assert version_states(s, "specific") == {123: ok}
        assert rest(s, "POST", "/v1/models/specific:predict", {"inputs": [2.0]}) == (200, {"outputs": [3.0]})
        os.makedirs(os.path.join(base, "00000125"))  # a version directory without a SavedModel
        for model in ("latest", "latest2", "all"):
            eventually(lambda: version_states(s, model).get(125, ("",))[0] == "END", what=f"{model}: version 125 ends")
        state, code, message = version_states(s, "all")[125]
        assert code == "NOT_FOUND" and "Could not find SavedModel .pb or .pbtxt at supplied export directory " \
                                       f"path: {base}/00000125" in message, message
        assert version_states(s, "latest")[124][0] == "AVAILABLE"  # its only aspired version failed: 124 serves on
        for model, want in (("all", 4.0), ("latest", 4.0), ("latest2", 4.0), ("specific", 3.0)):
            assert rest(s, "POST", f"/v1/models/{model}:predict", {"inputs": [2.0]}) == (200, {"outputs": [want]})


def test_a_newest_version_that_fails_at_start_fails_the_start(kind, built, tmp_path):
    base = copy_models(built, ("half_plus_two", "m"), into=str(tmp_path))
    os.makedirs(os.path.join(base, "m", "00000200"))
    with pytest.raises(StartFailed) as e:
        start_server(kind, ["--model_name=m", f"--model_base_path={base}/m", "--max_num_load_retries=0"])
    # ("{" + "{" + ServableId::DebugString() "{name: m version: 200}" ...: load_servables_fast.cc.)
    assert "Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available: {{{name: m version: " \
           "200} due to error: NOT_FOUND: Could not find SavedModel .pb or .pbtxt" in str(e.value), str(e.value)


def test_labels_move_through_handle_reload_config_request(kind, built, tmp_path):
    """serving_config.md: a label may only move to a loaded version; a refused config changes nothing."""
    from tensorflow_serving.apis import model_management_pb2

    from serving.standin.model_config import parse_model_server_config

    base = os.path.join(copy_models(built, "labelled", into=str(tmp_path)), "labelled")
    policy = "model_version_policy { specific { versions: 123 versions: 124 } }"
    text = lambda labels: models_config(("labelled", base, policy + "".join(  # noqa: E731
        f' version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())))
    config = write_file(str(tmp_path / "models.config"), text({}))
    with running(kind, [f"--model_config_file={config}"]) as s:
        def reload(labels):
            request = model_management_pb2.ReloadConfigRequest()
            request.config.CopyFrom(parse_model_server_config(text(labels)))
            return s.models.HandleReloadConfigRequest(request, RPC_TIMEOUT)

        assert reload({"stable": 123, "canary": 124}).status.error_code == 0
        assert list(predict_x(s, 2.0, model="labelled", label="canary").outputs["y"].float_val) == [4.0]
        reload({"stable": 124, "canary": 124})  # promote
        assert predict_x(s, 2.0, model="labelled", label="stable").model_spec.version.value == 124
        e = rpc_error(lambda: reload({"stable": 123, "canary": 999}))
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert e.details() == "Request to assign label to version 999 of model labelled, which is not currently " \
                              "available for inference"
        assert predict_x(s, 2.0, model="labelled", label="stable").model_spec.version.value == 124  # unchanged


def test_exported_models_serve_as_they_load_with_and_without_batching(kind, tmp_path):
    """trainer/export.py's SavedModels: the server's answers are the SavedModel's own, and their warm-up
    records pass TF Serving's batching session (which refuses unequal 0th dimensions)."""
    import tensorflow as tf

    from serving.clients import GrpcServingClient
    from trainer import testing as trainer_testing
    from trainer.serving_inputs import example_request

    skip_unless_startable(kind)
    exported = trainer_testing.exported_models("jac")
    for model in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):
        shutil.copytree(exported[model], str(tmp_path / model / "1"))
    config = write_file(str(tmp_path / "models.config"), models_config(*((m, str(tmp_path / m)) for m in ("ar", "cr"))))
    for flags in ([], ["--enable_batching=true", f"--batching_parameters_file={tf_serving.BATCHING_CONFIG}"]):
        with running(kind, [f"--model_config_file={config}", *flags]) as s, GrpcServingClient(s.grpc_address) as c:
            for model, output in ((F.AR_MODEL_NAME, F.PCTR_AD), (F.CR_MODEL_NAME, F.PCTR_C)):
                loaded = tf.saved_model.load(exported[model]).signatures[F.RAW_SIGNATURE]
                inputs = example_request(model, batch_size=6, user_batch_size=1 if not flags else 6, seed=3)
                want = loaded(**{k: tf.constant(v) for k, v in inputs.items()})[output].numpy()
                np.testing.assert_allclose(c.predict(model, inputs, F.RAW_SIGNATURE, timeout=60)[output], want,
                                           rtol=1e-5, atol=1e-7)
