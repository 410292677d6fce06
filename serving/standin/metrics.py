"""TF Serving's request metrics, as its Prometheus exporter prints them (``monitoring_config.prometheus_config``).

Names, labels, kinds and buckets are TF Serving's (``servables/tensorflow/util.cc``,
``util/prometheus_exporter.cc``):

=============================================  ==========  ==================================================
``:tensorflow:serving:request_count``          counter     ``model_name``, ``status`` (``OK``, ``NOT_FOUND``...)
``:tensorflow:serving:request_latency``        histogram   ``model_name``, ``API``, ``entrypoint``; µs, OK only
``:tensorflow:serving:runtime_latency``        histogram   ``model_name``, ``API``, ``runtime`` (``TF1``); µs
=============================================  ==========  ==================================================

Which requests count is TF Serving's too: gRPC ``Predict`` / ``Classify`` / ``Regress`` (``API`` =
that name, ``entrypoint="GRPC"``) and every REST request (``API`` = ``predict`` / ``classify`` /
``regress``, empty for status and metadata GETs; ``entrypoint="REST"``); gRPC model status and metadata
calls are not counted. Histograms have TF Serving's 33 exponential buckets (10 µs x 1.8^i) and ``+Inf``.
"""

from __future__ import annotations

import bisect
import threading
from typing import Dict, List, Tuple

GRPC = "GRPC"
REST = "REST"
ENTRYPOINTS = (GRPC, REST)
RUNTIME = "TF1"  # a Session, as TF Serving's SavedModelBundle
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
# monitoring::Buckets::Exponential(10, 1.8, 33), then DBL_MAX ("+Inf").
BUCKET_LIMITS = [10.0 * 1.8 ** i for i in range(33)]


def _g(x: float) -> str:
    """A double as ``absl::StrCat`` prints it (six significant digits)."""
    return f"{x:.6g}"


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self):
        self.counts = [0] * (len(BUCKET_LIMITS) + 1)
        self.total = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_right(BUCKET_LIMITS, value)] += 1
        self.total += value


def _labels(names, values) -> str:
    """``name="value",...`` with backslashes and quotes escaped (``SanitizeLabelValue``)."""
    return ",".join(f'{n}="' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for n, v in zip(names, values))


class RequestMetrics:
    """Thread-safe request counters and latency histograms, rendered on demand."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count: Dict[Tuple[str, str], int] = {}
        self._latency: Dict[Tuple[str, str, str], _Histogram] = {}
        self._runtime: Dict[Tuple[str, str, str], _Histogram] = {}

    def record_request(self, model: str, api: str, entrypoint: str, status: str, seconds: float) -> None:
        """One request to ``model`` through ``entrypoint`` (:data:`GRPC` / :data:`REST`) that ended with
        ``status`` (a gRPC code name) after ``seconds``; its latency counts only when it succeeded."""
        if entrypoint not in ENTRYPOINTS:
            raise ValueError(f"entrypoint must be one of {ENTRYPOINTS}, got {entrypoint!r}")
        with self._lock:
            self._count[(model, status)] = self._count.get((model, status), 0) + 1
            if status == "OK":
                self._latency.setdefault((model, api, entrypoint), _Histogram()).add(seconds * 1e6)

    def record_runtime(self, model: str, api: str, seconds: float) -> None:
        """One Session run for ``api`` (``Predict`` / ``Classify`` / ``Regress``) of ``model``."""
        with self._lock:
            self._runtime.setdefault((model, api, RUNTIME), _Histogram()).add(seconds * 1e6)

    def render(self) -> str:
        lines: List[str] = []
        with self._lock:
            lines.append(f"# TYPE {REQUEST_COUNT} counter")
            for key, n in sorted(self._count.items()):
                lines.append(f"{REQUEST_COUNT}{{{_labels(('model_name', 'status'), key)}}} {n}")
            for name, label_names, table in (
                    (REQUEST_LATENCY, ("model_name", "API", "entrypoint"), self._latency),
                    (RUNTIME_LATENCY, ("model_name", "API", "runtime"), self._runtime)):
                lines.append(f"# TYPE {name} histogram")
                for key, h in sorted(table.items()):
                    labels = _labels(label_names, key)
                    cumulative = 0
                    for i, n in enumerate(h.counts):
                        cumulative += n
                        le = _g(BUCKET_LIMITS[i]) if i < len(BUCKET_LIMITS) else "+Inf"
                        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}')
                    lines.append(f"{name}_sum{{{labels}}} {_g(h.total)}")
                    lines.append(f"{name}_count{{{labels}}} {cumulative}")
        return "\n".join(lines) + "\n"
