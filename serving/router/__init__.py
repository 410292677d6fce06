"""The Peri-CR router: AR ranks the ads, CR picks each ad's creative, both requested in parallel.

* :mod:`serving.router.request` — the JSON request, its validation, :class:`RankRequest`.
* :mod:`serving.router.core` — :class:`PeriCRRouter` (modes ``peri``, ``pre``, ``post``, ``no-cr``,
  deadlines, the fallback creative).
* :mod:`serving.router.traffic_split` — :class:`TrafficSplit`: both models addressed by version label,
  users hashed into a stable and a canary arm (canary, promotion, rollback).
* :mod:`serving.router.server` — the HTTP API (``python -m serving.router``).
* :mod:`serving.router.client` — :class:`RouterClient`.
"""

from serving.router.client import RouterClient, RouterError
from serving.router.core import BackendError, PeriCRRouter, RouterConfig
from serving.router.request import MODES, RankRequest, RequestError, RequestLimits, parse_request
from serving.router.server import RouterServer

__all__ = [
    "BackendError", "MODES", "PeriCRRouter", "RankRequest", "RequestError", "RequestLimits",
    "RouterClient", "RouterConfig", "RouterError", "RouterServer", "parse_request",
]
