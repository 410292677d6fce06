"""Online serving of the AR (ad ranking) and CR (creative ranking) models.

* :mod:`serving.tf_serving` — ``models.config`` generation and the ``tensorflow_model_server`` launcher
  (configs in ``serving/config/``, shell launcher ``serving/start_tf_serving.sh``).
* :mod:`serving.clients` — typed gRPC and REST clients for TF Serving's Predict / metadata / status APIs.
* :mod:`serving.standin` — ``ModelServerStandIn``, a local stand-in that serves the same pushed
  SavedModels the way TF Serving does (a Session per version; TF Serving's gRPC services, REST endpoints,
  command line, config file, version policies and labels), for tests and the demo when the
  ``tensorflow_model_server`` binary is absent (``python -m serving.standin``). It is not TF Serving.
* :mod:`serving.backend` — starts TF Serving or the stand-in as a subprocess on free ports.
* :mod:`serving.router` — the Peri-CR router: ranks M ads with AR and their M x N creatives with CR
  in parallel (or in the Pre-CR / Post-CR / no-CR orders, for comparison).
* :mod:`serving.creative_vectors` — the two-tower CR scored from precomputed creative vectors, kept per model
  version and creative id (``CreativeVectorCache``).
* :mod:`serving.sample_requests` — router requests, random or rebuilt from logged impressions.
* :mod:`serving.demo` — starts a backend and the router on a serving root and prints a few rankings.
* :mod:`serving.testing` — formula models with the serving contract (tests, benchmark, dry runs).
* :mod:`serving.protocol` — what the clients and the stand-in share: errors, tensors, signatures, status.
* :mod:`serving.json_http` — keep-alive JSON over HTTP for the router, the stand-in and their clients.
* :mod:`serving.runtime` — GC settings, TF thread pools and the signal-driven main loop of each server.
"""
