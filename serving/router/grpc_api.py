"""The router's gRPC API: TF Serving's ``PredictionService/Predict``, the request as named tensors.

A service that already calls models on TF Serving calls the router the same way, with the
``tensorflow_serving.apis`` stubs and ``model_spec.name = "router"``; inputs and outputs are listed in
:mod:`serving.router.tensors`. Status codes: ``INVALID_ARGUMENT`` for a bad request (the message names
the input and the first bad index, as the JSON API's 400 does), ``NOT_FOUND`` for another model name,
``FAILED_PRECONDITION`` for another signature, ``UNAVAILABLE`` when the ad ranker fails (HTTP's 503),
``RESOURCE_EXHAUSTED`` for a message over the size limit, ``INTERNAL`` for a bug.
"""

from __future__ import annotations

import logging
import time
from concurrent import futures
from typing import Tuple

import grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.router import tensors as T
from serving.router.columns import RequestError, timed_validate
from serving.router.core import BackendError, PeriCRRouter

log = logging.getLogger("serving.router")


class _RouterServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, router: PeriCRRouter):
        self._router = router

    def Predict(self, request, context):
        t0 = time.perf_counter()
        spec = request.model_spec
        if spec.name != T.ROUTER_MODEL:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name}); "
                                                     f"the router serves model '{T.ROUTER_MODEL}'")
        if spec.signature_name not in ("", T.RANK_SIGNATURE):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f'Serving signature key "{spec.signature_name}" not found.')
        c = self._router.config
        timing = {}
        try:
            req = timed_validate(lambda: T.columns_from_proto(request, c.limits, c.default_slots,
                                                              c.default_mode), timing)
            response = self._router.rank(req, timing)
        except RequestError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except BackendError as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        except Exception as e:  # a bug: a status with the message, never a bare UNKNOWN
            log.exception("rank failed")
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}: {e}")
        response["timing_ms"]["total"] = round((time.perf_counter() - t0) * 1e3, 3)
        return T.response_to_proto(response)


def make_grpc_server(router: PeriCRRouter, host: str, port: int, max_message_bytes: int,
                     workers: int = 8) -> Tuple[grpc.Server, int]:
    """A ``grpc.server`` answering ``PredictionService/Predict``, bound (not started); returns it and
    the bound port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="router-grpc"),
                         options=[("grpc.max_receive_message_length", max_message_bytes),
                                  ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_RouterServicer(router), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot bind gRPC port {host}:{port}")
    return server, bound
