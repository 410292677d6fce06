"""A local stand-in for TensorFlow Serving, for tests and demos where ``tensorflow_model_server`` is absent.

This is **not** TF Serving. It loads the same SavedModels from the same model base layout, runs their
SignatureDefs the way TF Serving's ``SavedModelBundle`` does (a ``tf.compat.v1`` Session over the
MetaGraph, feeds and fetches by tensor name), and answers TF Serving's APIs with its wire formats, codes
and messages, so every client and the router run unchanged against either:

* gRPC ``PredictionService`` (``Predict``, ``Classify``, ``Regress``, ``GetModelMetadata``) and
  ``ModelService`` (``GetModelStatus``, ``HandleReloadConfigRequest``);
* REST ``:predict`` (row and columnar), ``:classify``, ``:regress``, model status and metadata, on
  ``/versions/{v}`` and ``/labels/{label}`` URLs too; Prometheus metrics with TF Serving's names;
* TF Serving's command line (``--model_config_file`` and its re-reading, version policies
  ``latest`` / ``all`` / ``specific``, ``version_labels``, ``--file_system_poll_wait_seconds``...).

What it still lacks is listed in BUILD.md ("What the stand-in does not do"), each behaviour by name —
first of all cross-request batching.

The package, one concept a module:

=======================================  ==========================================================
:mod:`~serving.standin.server`           :class:`ModelServerStandIn`: config, labels, polling, lifecycle
:mod:`~serving.standin.options`          :class:`ServerOptions`, one field per TF Serving flag
:mod:`~serving.standin.cli`              the command line (TF Serving's flags)
:mod:`~serving.standin.model_config`     ``ModelServerConfig`` files and their checks
:mod:`~serving.standin.protos`           ``MonitoringConfig`` and ``BatchingParameters``
:mod:`~serving.standin.versions`         one model's versions: policy, loading, unloading, states
:mod:`~serving.standin.servable`         one loaded version: a Session over the MetaGraph
:mod:`~serving.standin.warmup`           loading a version: SavedModel, then its warm-up requests
:mod:`~serving.standin.predict`          Predict: TF Serving's checks, the run, response tensors
:mod:`~serving.standin.classify_regress` Classify and Regress on ``tf.Example`` inputs
:mod:`~serving.standin.grpc_api`         the gRPC servicers
:mod:`~serving.standin.rest_api`         the REST paths
:mod:`~serving.standin.rest_codec`       REST bodies ↔ tensors and results
:mod:`~serving.standin.json_tensors`     JSON values ↔ tensors, RapidJSON's way
:mod:`~serving.standin.metrics`          TF Serving's request metrics, Prometheus text
=======================================  ==========================================================

Run it (``python -m serving.standin --help`` lists the flags)::

    python -m serving.standin --port=8500 --rest_api_port=8501 --model_name=ar --model_base_path=/srv/ar
    python -m serving.standin --port=8500 --rest_api_port=8501 --model_config_file=models.config
"""

__all__ = ["ModelServerStandIn", "ServerOptions"]


def __getattr__(name):
    # Lazy, so the command line reads and checks its config files before TensorFlow is imported.
    if name == "ModelServerStandIn":
        from serving.standin.server import ModelServerStandIn

        return ModelServerStandIn
    if name == "ServerOptions":
        from serving.standin.options import ServerOptions

        return ServerOptions
    raise AttributeError(f"module 'serving.standin' has no attribute {name!r}")
