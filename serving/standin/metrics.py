"""Request counts and latencies, as Prometheus text at ``/monitoring/prometheus/metrics``.

Metric names are TF Serving's. ``:tensorflow:serving:request_latency`` (microseconds) carries TF
Serving's labels ``model_name``, ``API`` and ``entrypoint`` — ``"GRPC"`` for a call on the gRPC port,
``"REST"`` for one on the REST port (TF Serving's ``prediction_service_impl.cc`` and
``http_server.cc``). Where the stand-in still differs: TF Serving exports the latency as a histogram of
successful requests only and counts requests by ``model_name`` and ``status`` only; the stand-in keeps
a sum and a count of every request and also labels the count with the API.
"""

from __future__ import annotations

import threading
from typing import Dict, Tuple

GRPC = "GRPC"
REST = "REST"
ENTRYPOINTS = (GRPC, REST)


class RequestMetrics:
    """Thread-safe counters, rendered on demand."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count: Dict[Tuple[str, str, str], int] = {}
        self._latency: Dict[Tuple[str, str, str], Tuple[float, int]] = {}

    def record(self, model: str, api: str, entrypoint: str, status: str, seconds: float) -> None:
        """One request to ``model``'s ``api`` through ``entrypoint`` (:data:`GRPC` / :data:`REST`)."""
        if entrypoint not in ENTRYPOINTS:
            raise ValueError(f"entrypoint must be one of {ENTRYPOINTS}, got {entrypoint!r}")
        with self._lock:
            key = (model, api, status)
            self._count[key] = self._count.get(key, 0) + 1
            s, n = self._latency.get((model, api, entrypoint), (0.0, 0))
            self._latency[(model, api, entrypoint)] = (s + seconds * 1e6, n + 1)

    def render(self) -> str:
        with self._lock:
            lines = ["# TYPE :tensorflow:serving:request_count counter"]
            for (m, api, st), n in sorted(self._count.items()):
                lines.append(f':tensorflow:serving:request_count{{API="{api}",model_name="{m}",'
                             f'status="{st}"}} {n}')
            lines.append("# TYPE :tensorflow:serving:request_latency summary")
            for (m, api, entrypoint), (s, n) in sorted(self._latency.items()):
                labels = f'API="{api}",entrypoint="{entrypoint}",model_name="{m}"'
                lines.append(f":tensorflow:serving:request_latency_sum{{{labels}}} {s:.0f}")
                lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {n}")
        return "\n".join(lines) + "\n"
