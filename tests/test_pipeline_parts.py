"""The pipeline's own parts: curated schema, data gate, eval config, Kubeflow V2 spec (the Pusher: test_pair_pusher)."""

import json
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.types import artifact_utils, standard_artifacts

import features as F
from creative_metrics import candidate_buckets
from tfx_pipeline import config as config_lib
from tfx_pipeline import data_gate, eval_config, schema_curation
from trainer.config import MODEL_CONFIG_KEY


def _inferred_schema():
    schema = schema_pb2.Schema()
    for f in F.FEATURES:
        schema.feature.add(name=f.name, type=schema_pb2.INT if f.dtype == F.INT else schema_pb2.FLOAT)
    return schema


def _feature(schema, name):
    return next(f for f in schema.feature if f.name == name)


class TestCurateSchema:
    def test_constraints_from_the_feature_module(self):
        curated = schema_curation.curate_schema(_inferred_schema())
        label = _feature(curated, F.LABEL)
        assert (label.int_domain.min, label.int_domain.max) == (0, 1)
        assert label.presence.min_fraction == 1.0
        assert _feature(curated, F.CAND_CREATIVE_IDS).value_count.min == 1
        propensity = _feature(curated, F.PROPENSITY)
        assert propensity.float_domain.min == pytest.approx(schema_curation.MIN_PROPENSITY)
        assert propensity.float_domain.max == 1.0
        style = _feature(curated, F.CREATIVE_STYLE)
        assert style.int_domain.max == len(F.CREATIVE_STYLES) - 1
        assert [d.size for d in _feature(curated, F.CREATIVE_EMBEDDING).shape.dim] == [F.CREATIVE_EMBEDDING_DIM]
        for name in (F.LABEL,) + F.TRUTH_FEATURES:
            assert list(_feature(curated, name).not_in_environment) == [schema_curation.SERVING]

    def test_transform_parses_exactly_the_declared_spec(self):
        from tensorflow_transform.tf_metadata import schema_utils

        curated = schema_curation.curate_schema(_inferred_schema())
        assert schema_utils.schema_as_feature_spec(curated).feature_spec == F.raw_feature_spec()

    def test_wrong_type_is_named(self):
        schema = _inferred_schema()
        _feature(schema, F.CLICK).type = schema_pb2.FLOAT
        with pytest.raises(ValueError, match=F.CLICK):
            schema_curation.curate_schema(schema)

    def test_missing_feature_is_named(self):
        schema = _inferred_schema()
        del schema.feature[[f.name for f in schema.feature].index(F.PROPENSITY)]
        with pytest.raises(ValueError, match=F.PROPENSITY):
            schema_curation.curate_schema(schema)


def _anomalies_artifact(tmp_path, per_split):
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(list(per_split))
    for split, infos in per_split.items():
        anomalies = anomalies_pb2.Anomalies()
        for feature, short in infos.items():
            anomalies.anomaly_info[feature].short_description = short
            anomalies.anomaly_info[feature].description = f"long text about {feature}"
        d = tmp_path / "anomalies" / f"Split-{split}"
        d.mkdir(parents=True)
        (d / data_gate.ANOMALIES_FILE).write_bytes(anomalies.SerializeToString())
    return artifact


class TestDataGate:
    def test_names_each_anomaly_by_split_and_feature(self, tmp_path):
        artifact = _anomalies_artifact(tmp_path, {"train": {F.CLICK: "Missing column"}, "eval": {}})
        found = data_gate.describe_anomalies(artifact)
        assert list(found) == ["train"]
        assert found["train"][0].startswith(f"{F.CLICK}: Missing column")

    def test_clean_data_passes(self, tmp_path):
        artifact = _anomalies_artifact(tmp_path, {"train": {}, "eval": {}})
        assert data_gate.describe_anomalies(artifact) == {}


class TestEvalConfig:
    def test_nsctr_gates_with_value_and_change_thresholds(self):
        cfg = config_lib.PipelineConfig(nsctr_floor=0.01, nsctr_change_tolerance=0.003)
        ec = eval_config.build_eval_config(cfg)
        nsctr = [m for spec in ec.metrics_specs for m in spec.metrics if m.class_name == "NSCTR"]
        assert len(nsctr) == 1
        threshold = nsctr[0].per_slice_thresholds[0].threshold
        assert list(nsctr[0].per_slice_thresholds[0].slicing_specs) == [eval_config.tfma.SlicingSpec()]
        assert threshold.value_threshold.lower_bound.value == pytest.approx(0.01)
        assert threshold.change_threshold.absolute.value == pytest.approx(-0.003)
        assert nsctr[0].module == config_lib.METRICS_MODULE
        assert [s.is_baseline for s in ec.model_specs] == [False, True]

    def test_without_a_baseline_the_model_is_judged_alone_on_the_floors(self):
        from tfx_pipeline import pipeline

        cfg = config_lib.PipelineConfig(nsctr_floor=0.01, compare_with_baseline=False)
        ec = eval_config.build_eval_config(cfg)
        assert [(s.name, s.is_baseline) for s in ec.model_specs] == [(eval_config.CANDIDATE_MODEL, False)]
        thresholds = [t.threshold for spec in ec.metrics_specs for m in spec.metrics for t in m.per_slice_thresholds]
        assert thresholds and not any(t.HasField("change_threshold") for t in thresholds)
        assert any(t.value_threshold.lower_bound.value == pytest.approx(0.01) for t in thresholds)
        ids = [c.id for c in pipeline.create_pipeline(cfg).components]
        assert "latest_blessed_model_resolver" not in ids and "Evaluator" in ids
        assert "latest_blessed_model_resolver" in [c.id for c in pipeline.create_pipeline(
            config_lib.PipelineConfig()).components]

    @pytest.mark.parametrize("variant,outputs,has_nsctr", [
        ("jac", [[F.PCTR_AD], [F.PCTR_C], []], True),
        ("ar", [[F.PCTR_AD]], False),
        ("cr", [[F.PCTR_C], []], True),
        ("dssm", [[F.PCTR_AD], [F.PCTR_C], []], True),
        ("acr", [[F.PCTR_AD], [F.PCTR_C], []], True),
        ("hbm", [[F.PCTR_AD], [F.PCTR_C], []], True),
        ("beta_ts", [[F.PCTR_AD], [F.PCTR_C], []], True),
    ])
    def test_metrics_follow_the_variant_heads(self, variant, outputs, has_nsctr):
        ec = eval_config.build_eval_config(config_lib.PipelineConfig(model_config={"variant": variant}))
        assert [list(spec.output_names) for spec in ec.metrics_specs] == outputs
        names = {m.class_name for spec in ec.metrics_specs for m in spec.metrics}
        assert ("NSCTR" in names) == has_nsctr

    def test_unknown_variant_is_named(self):
        with pytest.raises(ValueError, match="JACConfig.variant"):
            eval_config.build_eval_config(config_lib.PipelineConfig(model_config={"variant": "jca"}))

    def test_sql_slice_puts_every_candidate_count_in_its_bucket(self, tmp_path):
        """TFMA runs the Evaluator's SQL slice on one example per count 1..12, weighted 2**(count - 1): a
        bucket's weighted example count is then the bit mask of exactly the counts it received."""
        tfma = eval_config.tfma
        path = str(tmp_path / "examples.tfrecord")
        with tf.io.TFRecordWriter(path) as w:
            for k in range(1, 13):
                w.write(tf.train.Example(features=tf.train.Features(feature={
                    F.NUM_CANDIDATES: tf.train.Feature(int64_list=tf.train.Int64List(value=[k])),
                    F.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[k % 2])),
                    "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5])),
                    "weight": tf.train.Feature(float_list=tf.train.FloatList(value=[2.0 ** (k - 1)])),
                })).SerializeToString())
        sql_slices = [s for s in eval_config.build_eval_config().slicing_specs if s.slice_keys_sql]
        config = tfma.EvalConfig(
            model_specs=[tfma.ModelSpec(label_key=F.LABEL, prediction_key="prediction",
                                        example_weight_key="weight")],
            slicing_specs=sql_slices,
            metrics_specs=[tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount")],
                                            example_weights=tfma.ExampleWeightOptions(weighted=True))])
        out = str(tmp_path / "eval")
        tfma.run_model_analysis(eval_config=config, data_location=path, output_path=out)
        counts_by_label = {}
        for key, by_output in tfma.load_eval_result(out).slicing_metrics:
            if key:
                ((column, label),) = key
                assert column == candidate_buckets.NUM_CANDIDATES_BUCKET
                mask = int(by_output[""][""]["example_count"]["doubleValue"])
                counts_by_label[label] = [k for k in range(1, 13) if mask >> (k - 1) & 1]
        # Gu et al., 2025, Table 4: fewer than 4, 4 to 8, more than 8 candidate creatives.
        assert counts_by_label == {"<4": [1, 2, 3], "4-8": [4, 5, 6, 7, 8], ">8": [9, 10, 11, 12]}
        # The report's pooled fallback puts every count in the same bucket.
        assert all(candidate_buckets.bucket_label(k) == label
                   for label, counts in counts_by_label.items() for k in counts)

    def test_report_shows_every_threshold_and_only_auc_failed(self):
        """A ValidationResult failing only AR's AUC floor: AUC shows failed, both NSCTR gates passed."""
        from tensorflow_model_analysis.metrics import metric_types
        from tensorflow_model_analysis.proto import validation_result_pb2

        from creative_metrics import report
        from creative_metrics.report import thresholds

        cfg = config_lib.PipelineConfig(auc_floor=0.6)
        # As the Evaluator runs it: completed with the model names (a baseline exists).
        ec = eval_config.tfma.utils.update_eval_config_with_defaults(
            eval_config.build_eval_config(cfg), has_baseline=True, rubber_stamp=True)
        evaluated = eval_config.CANDIDATE_MODEL
        auc = metric_types.MetricKey(name="auc", model_name=evaluated, output_name=F.PCTR_AD)
        result = validation_result_pb2.ValidationResult(validation_ok=False)
        failure = result.metric_validations_per_slice.add().failures.add()
        failure.metric_key.CopyFrom(auc.to_proto())
        failure.metric_threshold.value_threshold.lower_bound.value = 0.6
        failure.metric_value.double_value.value = 0.55
        overall = {evaluated: {"nsctr": 0.031, "nsctr_diff": 0.001}}
        checks = thresholds.blessing_checks(ec, result, overall)
        got = {(c["metric"], c["kind"]): (c["rule"], c["status"], c["value"]) for c in checks}
        assert got == {
            (f"{F.PCTR_AD}/auc", "value"): (">= 0.6", "failed", 0.55),
            ("nsctr", "value"): (">= 0", "passed", 0.031),
            ("nsctr_diff", "change"): (">= baseline - 0.002", "passed", 0.001),
        }
        assert thresholds.unmatched_failures(ec, result) == []
        text = report.render_report({"blessed": False, "validation": {"ok": False, "checks": checks},
                                     "models": {evaluated: {"role": "candidate", "slices": []}}})
        assert '<tr class="check failed"><td>AUC (pctr_ad)</td>' in text
        assert '<tr class="check passed"><td>NSCTR</td>' in text
        assert '<tr class="check passed"><td>NSCTR vs baseline</td>' in text


class TestConfig:
    @pytest.mark.parametrize("field,value,message", [
        ("beam_mode", "spark", "beam_mode"),
        ("train_steps", 0, "train_steps"),
        ("nsctr_change_tolerance", -0.1, "nsctr_change_tolerance"),
        ("auc_floor", 1.5, "auc_floor"),
    ])
    def test_bad_parameters_are_named(self, field, value, message):
        with pytest.raises(ValueError, match=message):
            config_lib.PipelineConfig(**{field: value})

    def test_unknown_override_is_named(self):
        with pytest.raises(ValueError, match="trian_steps"):
            config_lib.PipelineConfig.from_overrides({"trian_steps": 3})

    def test_beam_modes(self):
        assert config_lib.PipelineConfig().beam_pipeline_args() == ["--direct_running_mode=in_memory"]
        args = config_lib.PipelineConfig(beam_mode="multi_processing", beam_workers=2).beam_pipeline_args()
        assert args == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]

    def test_local_runner_flags_set_the_variant_its_warm_start_and_caching(self, tmp_path):
        from tfx_pipeline import local_runner, pipeline

        argv = ["--output-dir", str(tmp_path), "--variant", "hbm", "--warm-start-model", "prev/cr/7"]
        cfg, _ = local_runner._parse(argv + ["--enable-cache"])
        assert cfg.model_config == {"variant": "hbm", "warm_start_model": os.path.abspath("prev/cr/7")}
        assert cfg.enable_cache and pipeline.create_pipeline(cfg).enable_cache
        assert not local_runner._parse(argv)[0].enable_cache  # off by default: user code changes are seen

    def test_local_runner_flags_drop_the_baseline_and_move_the_serving_dir(self, tmp_path):
        from tfx_pipeline import local_runner

        cfg, _ = local_runner._parse(["--output-dir", str(tmp_path), "--no-baseline", "--serving-dir", "pushed"])
        assert not cfg.compare_with_baseline and cfg.serving_root == os.path.abspath("pushed")
        default, _ = local_runner._parse(["--output-dir", str(tmp_path)])
        assert default.compare_with_baseline and default.serving_root == str(tmp_path / "serving_models")

    def test_local_runner_refuses_a_variant_contradicting_the_model_config(self, tmp_path, capsys):
        from tfx_pipeline import local_runner

        with pytest.raises(SystemExit):
            local_runner._parse(["--output-dir", str(tmp_path), "--variant", "dssm", "--model-config",
                                 '{"variant": "acr"}'])
        assert "--variant 'dssm' contradicts --model-config's 'variant': 'acr'" in capsys.readouterr().err


def test_kubeflow_v2_spec_compiles_offline_with_module_paths(tmp_path):
    from tfx_pipeline import kubeflow_v2_runner

    cfg = config_lib.PipelineConfig(output_dir="gs://bucket/adcr", data_dir="gs://bucket/data")
    out = str(tmp_path / "pipeline.json")
    spec = kubeflow_v2_runner.compile_pipeline(cfg, "registry/adcr:test", out)
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    for component in ("ImportExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema", "ExampleValidator",
                      "DataGate", "Transform", "Trainer", "Evaluator", "EvaluationReport", "Pusher"):
        assert component in tasks, component
    text = open(out).read()
    assert config_lib.PREPROCESSING_FN in text
    assert config_lib.RUN_FN in text
    assert config_lib.METRICS_MODULE in text
    assert "PairPusherExecutor" in text
    assert "registry/adcr:test" in text


def test_kubeflow_v2_spec_runs_the_trainer_on_vertex_worker_pools(tmp_path):
    """Chief, workers and ps tasks with their machine types, in Vertex's pool order, for TFX's Vertex Trainer."""
    from tfx_pipeline import kubeflow_v2_runner

    out = str(tmp_path / "pipeline.json")
    assert kubeflow_v2_runner.main([
        "--pipeline-root", "gs://bucket/adcr", "--data-dir", "gs://bucket/data", "--image", "registry/adcr:test",
        "--out", out, "--vertex-project", "proj", "--vertex-region", "europe-west4", "--workers", "3",
        "--worker-machine-type", "n1-standard-16", "--ps", "2", "--ps-machine-type", "n1-highmem-32"]) == 0
    spec = json.load(open(out))["pipelineSpec"]
    custom = json.loads(spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"]
                        ["runtimeValue"]["constantValue"]["stringValue"])
    assert custom["ai_platform_enable_vertex"] is True and custom["ai_platform_vertex_region"] == "europe-west4"
    args = custom["ai_platform_training_args"]
    assert args["project"] == "proj"
    assert [(p["machine_spec"]["machine_type"], p["replica_count"], p["container_spec"]["image_uri"])
            for p in args["job_spec"]["worker_pool_specs"]] == [
        ("n1-standard-8", 1, "registry/adcr:test"), ("n1-standard-16", 3, "registry/adcr:test"),
        ("n1-highmem-32", 2, "registry/adcr:test")]
    assert custom[MODEL_CONFIG_KEY] == {}
    executor = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["args"]
    assert "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor" in executor
    # Without a Vertex project the Trainer stays the pipeline step's own process.
    local = kubeflow_v2_runner.compile_pipeline(config_lib.PipelineConfig(output_dir="gs://b/a", data_dir="gs://b/d"),
                                                "registry/adcr:test", str(tmp_path / "local.json"))
    assert "ai_platform_training_args" not in json.dumps(local)


@pytest.mark.parametrize("fields, message", [
    ({"ps_count": 2, "worker_count": 0, "vertex_project": "p"}, "ps_count=2 needs worker_count"),
    ({"worker_count": 2}, "need vertex_project"),
    ({"worker_count": -1, "vertex_project": "p"}, "worker_count must be a non-negative integer"),
])
def test_bad_worker_pools_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        config_lib.PipelineConfig(**fields)
