"""The Peri-CR router: AR ranks the ads, CR picks each ad's creative, both requested in parallel.

* :mod:`serving.router.request` — the JSON request (row and column forms), its type checks.
* :mod:`serving.router.json_body` — a JSON body → :class:`RankRequest` (column form straight to arrays).
* :mod:`serving.router.tensors` — the binary form: the columns as tensors of a ``PredictRequest``.
* :mod:`serving.router.columns` — the value checks every form shares, :class:`RankRequest`.
* :mod:`serving.router.core` — :class:`PeriCRRouter` (modes ``peri``, ``pre``, ``post``, ``no-cr``,
  deadlines, the fallback creative).
* :mod:`serving.router.traffic_split` — :class:`TrafficSplit`: both models addressed by version label,
  users hashed into a stable and a canary arm (canary, promotion, rollback).
* :mod:`serving.router.server` — the HTTP API (``python -m serving.router``), and with ``--grpc-port``
  the gRPC one (:mod:`serving.router.grpc_api`).
* :mod:`serving.router.client` — :class:`RouterClient` (HTTP), :class:`RouterGrpcClient` (gRPC).
"""

from serving.router.client import RouterClient, RouterError, RouterGrpcClient
from serving.router.core import BackendError, PeriCRRouter, RouterConfig
from serving.router.request import MODES, RankRequest, RequestError, RequestLimits, parse_request
from serving.router.server import RouterServer

__all__ = [
    "BackendError", "MODES", "PeriCRRouter", "RankRequest", "RequestError", "RequestLimits",
    "RouterClient", "RouterConfig", "RouterError", "RouterGrpcClient", "RouterServer", "parse_request",
]
