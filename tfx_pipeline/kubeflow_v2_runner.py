"""Compiles the pipeline into a Kubeflow Pipelines V2 / Vertex AI Pipelines spec (JSON), offline.

    python -m tfx_pipeline.kubeflow_v2_runner --pipeline-root gs://BUCKET/adcr --data-dir gs://BUCKET/data \
        --serving-root gs://BUCKET/serving_models --image REGISTRY/adcreative-ranking:0.1.0 --out pipeline.json

Compiling needs only ``kfp-pipeline-spec`` (no kfp SDK, no cluster, no upload): user code is referenced by
module path, so the container image (BUILD.md: ``docker build -f tfx_pipeline/Dockerfile``) must have this
project installed. Submit the JSON with the kfp client or ``gcloud ai pipelines``/Vertex AI.

Distributed training (``--vertex-project``): the Trainer step submits a Vertex AI Training CustomJob with a
chief, ``--workers`` workers and ``--ps`` parameter servers of the given machine types, all in ``--image``
(``tfx_pipeline.vertex_training``); the spec's Trainer ``custom_config`` holds the worker pools:

    python -m tfx_pipeline.kubeflow_v2_runner ... --vertex-project PROJECT --vertex-region us-central1 \
        --workers 4 --worker-machine-type n1-standard-16 --ps 2 --ps-machine-type n1-highmem-16

Your own logs (``--feature-spec my_logs.json``, BUILD.md "Your own logs"): the spec is validated and compiled in
(its name, fingerprint and source in the components' ``custom_config``); the image must select the same spec
(``docker build --build-arg FEATURE_SPEC=...``), and every component checks that it does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from tfx import v1 as tfx

import feature_specs
import features as features_lib
from tfx_pipeline import config as config_lib
from tfx_pipeline import local_runner
from tfx_pipeline import pipeline as pipeline_lib
from tfx_pipeline import vertex_training

DEFAULT_IMAGE = "adcreative-ranking:0.1.0"


def compile_pipeline(cfg: config_lib.PipelineConfig, image: str, out_path: str) -> dict:
    """Writes the pipeline spec JSON to ``out_path`` and returns it as a dict."""
    pipeline = pipeline_lib.create_pipeline(cfg, metadata_connection_config=None)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(out_path)),
        output_filename=os.path.basename(out_path))
    runner.run(pipeline, write_out=True)
    with open(out_path) as f:
        return json.load(f)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline-root", required=True, help="e.g. gs://BUCKET/adcr (artifacts go under it)")
    p.add_argument("--data-dir", required=True, help="simulator output or real logs with train/ and eval/")
    p.add_argument("--serving-root", help="TF Serving model base (default: <pipeline-root>/serving_models)")
    p.add_argument("--image", default=DEFAULT_IMAGE, help="container image with this project installed")
    p.add_argument("--out", default="pipeline.json")
    p.add_argument("--feature-spec", default=os.environ.get(feature_specs.ENV_VAR),
                   help="the feature spec the logs in --data-dir follow (a JSON/YAML file or a shipped spec's name); "
                        f"default: ${feature_specs.ENV_VAR}, else {feature_specs.DEFAULT_SPEC!r}. The image must "
                        "select the same one (BUILD.md, 'Your own logs')")
    p.add_argument("--train-steps", type=int, default=config_lib.PipelineConfig.train_steps)
    p.add_argument("--model-config", default="{}")
    p.add_argument("--beam-arg", action="append", default=[],
                   help="extra Beam pipeline arg, e.g. --beam-arg=--runner=DataflowRunner (repeatable)")
    defaults = config_lib.PipelineConfig
    p.add_argument("--vertex-project", help="train as a Vertex AI Training CustomJob in this GCP project")
    p.add_argument("--vertex-region", default=defaults.vertex_region)
    p.add_argument("--chief-machine-type", default=defaults.chief_machine_type)
    p.add_argument("--workers", type=int, default=defaults.worker_count, help="worker replicas besides the chief")
    p.add_argument("--worker-machine-type", default=defaults.worker_machine_type)
    p.add_argument("--ps", type=int, default=defaults.ps_count, help="parameter servers (0: no ps training)")
    p.add_argument("--ps-machine-type", default=defaults.ps_machine_type)
    a = p.parse_args(argv)
    a.feature_spec = local_runner.spec_argument(p, a.feature_spec)
    cfg = config_lib.PipelineConfig(output_dir=a.pipeline_root, data_dir=a.data_dir, serving_dir=a.serving_root,
                                    feature_spec=a.feature_spec,
                                    train_steps=a.train_steps, model_config=json.loads(a.model_config),
                                    extra_beam_args=a.beam_arg, vertex_project=a.vertex_project,
                                    vertex_region=a.vertex_region, trainer_image=a.image,
                                    chief_machine_type=a.chief_machine_type, worker_count=a.workers,
                                    worker_machine_type=a.worker_machine_type, ps_count=a.ps,
                                    ps_machine_type=a.ps_machine_type)
    # features.py loads the spec at import: a command-line run restarts itself with $ADCR_FEATURE_SPEC set.
    local_runner.follow_spec(cfg, argv, module="tfx_pipeline.kubeflow_v2_runner")
    spec = compile_pipeline(cfg, a.image, a.out)
    tasks = spec.get("pipelineSpec", spec).get("root", {}).get("dag", {}).get("tasks", {})
    print(f"Wrote {a.out}: {len(tasks)} tasks ({', '.join(sorted(tasks))})")
    print(f"Feature spec: {features_lib.SPEC.name!r} (fingerprint {features_lib.SPEC.fingerprint()}); the image "
          f"must set {feature_specs.ENV_VAR} to the same spec")
    print(vertex_training.describe(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
