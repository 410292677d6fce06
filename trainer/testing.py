"""Small end-to-end fixtures for tests and examples: simulated log -> Transform -> tiny trained model.

Each builder is memoised for the process, so several test modules share one simulation, one Transform
run and one trained model. Files live in one temporary directory removed at exit.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os
import shutil
import tempfile
from typing import Dict

import tensorflow as tf

import features as F
from transform import names as N

# Small enough for a test run on two busy cores, big enough for every id to repeat.
TINY_MODEL = dict(
    ar_embedding_dim=4, transformer_ff_dim=8, num_cross_layers=1, cross_projection_dim=4,
    ar_hidden_units=(16, 8), cr_embedding_dim=2, cr_hidden_units=(8, 4), quantizer_buckets=64,
    quantizer_dim=4, quantizer_slope_window=2, batch_size=64, eval_batch_size=256,
    dssm_embedding_dim=4, dssm_hidden_units=(8,), dssm_output_dim=4, vam_hidden_units=(8,), vam_steps=20,
    vam_min_impressions=2,
)


@functools.lru_cache(maxsize=None)
def workdir() -> str:
    path = tempfile.mkdtemp(prefix="adcr-trainer-test-")
    atexit.register(shutil.rmtree, path, True)
    return path


@dataclasses.dataclass(frozen=True)
class TransformedData:
    raw_train: str  # file patterns of raw tf.Examples
    raw_eval: str
    transform_graph: str  # tft.TFTransformOutput directory
    train: str  # file patterns of transformed examples (gzipped)
    eval: str

    @property
    def tft_output(self):
        import tensorflow_transform as tft
        return tft.TFTransformOutput(self.transform_graph)


def transformed_data(impressions: int = 3000, seed: int = 7) -> TransformedData:
    """Simulates ``impressions`` impressions over 3 days and runs Transform on them (cached)."""
    return _transformed_data(int(impressions), int(seed))


@functools.lru_cache(maxsize=None)
def _transformed_data(impressions: int, seed: int) -> TransformedData:
    from simulator import SimulatorConfig, simulate
    from transform.local import TRANSFORM_GRAPH, analyze_and_transform

    root = os.path.join(workdir(), f"data-{impressions}-{seed}")
    simulate(SimulatorConfig(num_impressions=impressions, num_days=3, seed=seed,
                             calibration_impressions=min(impressions, 20_000)),
             os.path.join(root, "raw"), progress=False)
    raw_train, raw_eval = (os.path.join(root, "raw", split, "*") for split in (F.TRAIN_SPLIT, F.EVAL_SPLIT))
    paths = analyze_and_transform(raw_train, raw_eval, os.path.join(root, "xf"))
    return TransformedData(raw_train, raw_eval, paths[TRANSFORM_GRAPH], paths[F.TRAIN_SPLIT], paths[F.EVAL_SPLIT])


def raw_examples(pattern: str, n: int):
    """The first ``n`` serialized raw tf.Examples of ``pattern`` as a string tensor."""
    files = sorted(tf.io.gfile.glob(pattern))
    return tf.data.TFRecordDataset(files).take(n).batch(n).get_single_element()


def data_accessor():
    """A TFX ``DataAccessor`` over tf.Example files, as the Trainer gives ``run_fn`` (``fn_args.data_accessor``)."""
    from tfx.components.trainer.fn_args_utils import DataAccessor
    from tfx.components.util import tfxio_utils
    from tfx.proto import example_gen_pb2

    def factory(file_pattern, options, schema):
        return tfxio_utils.make_tfxio(
            file_pattern=file_pattern, telemetry_descriptors=["test"],
            payload_format=example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE, schema=schema).TensorFlowDataset(options)
    return DataAccessor(tf_dataset_factory=factory, record_batch_factory=None, data_view_decode_fn=None)


def trained_model(variant: str = "jac", steps: int = 40, r: float = 30.0):
    """A tiny ``JACModel`` of ``variant`` trained ``steps`` steps on :func:`transformed_data` (cached).

    ``steps=0`` only builds the weights (enough for export and serving tests).
    """
    return _trained_model(variant, steps, float(r))


@functools.lru_cache(maxsize=None)
def _trained_model(variant: str, steps: int, r: float):
    from trainer.config import JACConfig
    from trainer.data import make_dataset
    from trainer.jac_model import make_optimizer
    from trainer.variants import build_model, fit_posteriors

    import tf_keras as keras

    data = transformed_data()
    config = JACConfig.from_dict(dict(TINY_MODEL, variant=variant, quantizer_r=r))
    # Seeded weights: an unseeded tiny ReLU MLP now and then ends its 40 steps all-dead (a constant
    # output), which would make the tests built on it flaky.
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, N.cardinalities(data.tft_output))
    model.compile(optimizer=make_optimizer(config))
    if fit_posteriors(model, data.train, data.tft_output):  # the bandit CRs' closed-form heads
        model.compile(optimizer=make_optimizer(config))  # as run_fn: fit() keeps the frozen parts frozen
    ds = make_dataset(data.train, data.tft_output, model.feature_names, config.batch_size, seed=0)
    if steps:
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    else:
        model(next(iter(ds))[0])
    return model


def exported_models(variant: str = "jac", steps: int = 40) -> Dict[str, str]:
    """:func:`trainer.export.export_models` of ``trained_model(variant, steps)`` (cached); the exported dirs."""
    return _exported_models(variant, steps)


@functools.lru_cache(maxsize=None)
def _exported_models(variant: str, steps: int) -> Dict[str, str]:
    from trainer.variants import export_models

    out = os.path.join(workdir(), f"export-{variant}-{steps}")
    return export_models(trained_model(variant, steps), transformed_data().tft_output, out)
