""":class:`ServerOptions`: the stand-in's settings, one per TF Serving flag (:mod:`serving.standin.cli` maps them)."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How the stand-in serves. Defaults are TF Serving's unless noted; its flag is in brackets.

    Attributes:
      port: gRPC port [``--port``]; 0 picks a free one (see ``ModelServerStandIn.port``).
      rest_port: REST port [``--rest_api_port``]; 0 picks a free one, None exports no REST API (TF
        Serving's ``--rest_api_port=0``).
      host: the address both bind (stand-in only, loopback by default; TF Serving binds every interface).
      model_config_file: a text ``ModelServerConfig`` [``--model_config_file``].
      config_poll_seconds: re-read ``model_config_file`` this often; 0 reads it once
        [``--model_config_file_poll_wait_seconds``].
      poll_seconds: poll base paths for versions this often; 0 polls once at start
        [``--file_system_poll_wait_seconds``].
      intra_op_threads / inter_op_threads / session_parallelism: the Sessions' thread pools, 0 lets TF
        choose [``--tensorflow_intra_op_parallelism``, ``--tensorflow_inter_op_parallelism``,
        ``--tensorflow_session_parallelism``].
      enable_batching / batching_parameters: [``--enable_batching``, ``--batching_parameters_file``] (a
        ``BatchingParameters`` message); the stand-in applies the batching session's checks per request
        but does not merge requests.
      monitoring_config: a ``MonitoringConfig`` [``--monitoring_config_file``]; Prometheus metrics are
        exported only when it enables them.
      max_load_retries / load_retry_interval_seconds: [``--max_num_load_retries``,
        ``--load_retry_interval_micros``].
      allow_version_labels_for_unavailable_models: [same flag] a new label may name a version that is not
        loaded yet.
      enable_model_warmup / warmup_iterations: [``--enable_model_warmup``,
        ``--num_request_iterations_for_warmup``].
      method_name_check: [``--enable_signature_method_name_check``].
      saved_model_tags: the MetaGraph to load [``--saved_model_tags``].
      rest_timeout_ms: the Session deadline of a REST call [``--rest_api_timeout_in_ms``].
      grpc_workers: threads answering gRPC calls [``--grpc_max_threads``].
    """

    port: int = 0
    rest_port: Optional[int] = 0
    host: str = "127.0.0.1"
    model_config_file: Optional[str] = None
    config_poll_seconds: float = 0.0
    poll_seconds: float = 1.0
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    session_parallelism: int = 0
    enable_batching: bool = False
    batching_parameters: Optional[object] = None
    monitoring_config: Optional[object] = None
    max_load_retries: int = 5
    load_retry_interval_seconds: float = 60.0
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    warmup_iterations: int = 1
    method_name_check: bool = False
    saved_model_tags: Tuple[str, ...] = ("serve",)
    rest_timeout_ms: int = 30000
    grpc_workers: int = 16

    def __post_init__(self):
        if self.poll_seconds < 0 or self.config_poll_seconds < 0:
            raise ValueError("poll_seconds and config_poll_seconds must be >= 0")
        if self.batching_parameters is not None and not self.enable_batching:
            raise ValueError("server_options.batching_parameters_file is set without setting "
                             "server_options.enable_batching to true.")

    @property
    def max_batch_size(self) -> Optional[int]:
        """The largest request the batching session takes (None: batching off)."""
        if not self.enable_batching:
            return None
        from serving.standin.predict import DEFAULT_MAX_BATCH_SIZE

        p = self.batching_parameters
        return p.max_batch_size.value if p is not None and p.HasField("max_batch_size") else DEFAULT_MAX_BATCH_SIZE

    @property
    def prometheus_path(self) -> Optional[str]:
        """Where Prometheus metrics are exported (None: not exported)."""
        c = self.monitoring_config
        if c is None or not c.prometheus_config.enable:
            return None
        return c.prometheus_config.path or "/monitoring/prometheus/metrics"
