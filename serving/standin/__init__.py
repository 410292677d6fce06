"""A local stand-in for TensorFlow Serving, for tests and demos where ``tensorflow_model_server`` is absent.

This is **not** TF Serving. It loads the same pushed SavedModels from the same model base layout
(``<base_path>/<integer version>/``) with ``tf.saved_model.load`` and answers the same APIs with the same
wire formats and error codes, so every client and the router run unchanged against either: gRPC
``PredictionService`` (``Predict``, ``GetModelMetadata``) and ``ModelService`` (``GetModelStatus``)
through the servicers of ``tensorflow_serving.apis``; REST ``:predict`` (columnar and row), model status
and metadata, and Prometheus metrics on TF Serving's paths; TF Serving's error codes and messages.
Versions follow TF Serving's file-system source with the *latest* policy.

Differences from TF Serving: no cross-request batching (with ``enable_batching`` the stand-in only
applies the batching session's check that every input has the same 0th dimension, so clients see the
error they would get from TF Serving), no version labels, no Classify / Regress / MultiInference, and an
empty base path leaves the serving version loaded.

The package, one concept a module:

====================================  ===============================================================
:mod:`~serving.standin.server`        :class:`ModelServerStandIn`: models, APIs and lifecycle
:mod:`~serving.standin.versions`      one model's versions: polling, loading, swapping, states
:mod:`~serving.standin.servable`      one loaded version: SavedModel, SignatureDefs, Predict, warm-up
:mod:`~serving.standin.input_checks`  TF Serving's checks of a request against its signature
:mod:`~serving.standin.grpc_api`      the gRPC servicers
:mod:`~serving.standin.rest_api`      the REST paths
:mod:`~serving.standin.rest_codec`    REST Predict JSON ↔ arrays
:mod:`~serving.standin.metrics`       Prometheus request metrics
:mod:`~serving.standin.cli`           the command line
====================================  ===============================================================

Run it::

    python -m serving.standin --serving-root /path/to/serving --port 8500 --rest-port 8501
    python -m serving.standin --model-base-path ar=/models/ar --model-base-path cr=/models/cr
"""

from serving.standin.server import ModelServerStandIn

__all__ = ["ModelServerStandIn"]
