"""The training cluster from ``TF_CONFIG`` and what each of its tasks does in ``run_fn``.

The TFX Trainer on Kubeflow or Vertex AI Training starts every replica with the same command and its own
``TF_CONFIG`` (``{"cluster": {"chief": [...], "worker": [...], "ps": [...]}, "task": {"type", "index"}}``).
:class:`Cluster` reads it and picks the mode:

* no cluster (or a lone chief): one process, exactly as without ``TF_CONFIG``;
* ``chief``/``worker`` tasks only: synchronous data-parallel training under
  ``tf.distribute.MultiWorkerMirroredStrategy``; every task trains, the chief exports;
* with ``ps`` tasks: asynchronous training under ``tf.distribute.ParameterServerStrategy`` (tf_keras; Keras 3
  has no parameter-server training). The chief is the coordinator: it builds the model, schedules steps on
  the workers and exports; workers and ps tasks only run a ``tf.distribute.Server`` (:func:`serve`).
  Embedding tables are split by rows across the ps tasks (:class:`TablePartitioner`), every other
  variable is placed whole on one ps task.

Exports are the same whatever the mode: in a cluster, :func:`exportable` writes a checkpoint of the trained
model (the ps tasks write their shards) and restores it into a local copy with plain variables, tables whole
again, which the chief exports. The checkpoint uses TensorFlow's default per-device files: TF 2.16 fails to
merge row-partitioned variables saved with a checkpoint sharding callback ("Duplicate tensor keyed by ...",
tensorflow/tensorflow#73836), so none is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import socket
import tempfile
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional

import tensorflow as tf
import tf_keras as keras

_LOG = logging.getLogger(__name__)

SINGLE, MULTI_WORKER, PARAMETER_SERVER = "single", "multi_worker", "parameter_server"
CHIEF, WORKER, PS = "chief", "worker", "ps"
_JOBS = (CHIEF, WORKER, PS)


class ClusterConfigError(ValueError):
    """``TF_CONFIG`` does not describe a cluster this trainer can run; the message says what is wrong."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """One task's view of the training cluster.

    Attributes:
      jobs: job name -> task addresses (``host:port``); empty without a cluster. The legacy ``master`` job
        (AI Platform) is read as ``chief``.
      task_type, task_index: this task (``None``, 0 without a cluster).
    """

    jobs: Mapping[str, List[str]] = dataclasses.field(default_factory=dict)
    task_type: Optional[str] = None
    task_index: int = 0

    @classmethod
    def from_tf_config(cls, tf_config: Optional[str]) -> "Cluster":
        """Parses a ``TF_CONFIG`` JSON string (``None`` or empty: no cluster)."""
        if not tf_config:
            return cls()
        try:
            parsed = json.loads(tf_config)
        except ValueError as e:
            raise ClusterConfigError(f"TF_CONFIG is not valid JSON ({e}): {tf_config!r}") from None
        jobs = {("chief" if job == "master" else job): list(tasks)
                for job, tasks in (parsed.get("cluster") or {}).items()}
        if not jobs:
            return cls()
        unknown = sorted(set(jobs) - set(_JOBS))
        if unknown:
            raise ClusterConfigError(f"TF_CONFIG.cluster: unsupported job(s) {unknown}; this trainer runs "
                                     f"{list(_JOBS)} (evaluation runs on the chief)")
        task = parsed.get("task") or {}
        task_type = "chief" if task.get("type") == "master" else task.get("type")
        index = task.get("index", 0)
        if task_type not in jobs:
            raise ClusterConfigError(f"TF_CONFIG.task.type {task.get('type')!r} is not a job of the cluster "
                                     f"{sorted(jobs)}")
        if not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
            raise ClusterConfigError(f"TF_CONFIG.task.index {index!r} out of range for the "
                                     f"{len(jobs[task_type])} {task_type} task(s)")
        cluster = cls(jobs, task_type, index)
        if PS in jobs and (len(jobs.get(CHIEF, ())) != 1 or not jobs.get(WORKER)):
            raise ClusterConfigError("TF_CONFIG.cluster: parameter-server training needs exactly one chief and "
                                     f"at least one worker besides the ps tasks, got {cluster.sizes}")
        return cluster

    @classmethod
    def from_environment(cls) -> "Cluster":
        return cls.from_tf_config(os.environ.get("TF_CONFIG"))

    @property
    def sizes(self) -> Dict[str, int]:
        return {job: len(tasks) for job, tasks in self.jobs.items()}

    @property
    def mode(self) -> str:
        if PS in self.jobs:
            return PARAMETER_SERVER
        return MULTI_WORKER if sum(self.sizes.values()) > 1 else SINGLE

    @property
    def num_ps(self) -> int:
        return len(self.jobs.get(PS, ()))

    @property
    def is_chief(self) -> bool:
        """The task that exports: no cluster, the chief, or worker 0 of a cluster without a chief (TF's rule)."""
        if self.mode == SINGLE or self.task_type == CHIEF:
            return True
        return self.task_type == WORKER and self.task_index == 0 and CHIEF not in self.jobs

    @property
    def is_server(self) -> bool:
        """A worker or ps task of parameter-server training: it serves the chief and never runs ``run_fn``'s body."""
        return self.mode == PARAMETER_SERVER and self.task_type in (WORKER, PS)

    def resolver(self) -> tf.distribute.cluster_resolver.ClusterResolver:
        return tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(dict(self.jobs)), task_type=self.task_type, task_id=self.task_index,
            rpc_layer="grpc")


def serve(cluster: Cluster) -> None:
    """Runs this worker or ps task's ``tf.distribute.Server`` until the process is stopped."""
    # Fail RPCs to a lost task at once instead of waiting for it, as TensorFlow advises for PS training.
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    _LOG.info("starting %s %d of %s", cluster.task_type, cluster.task_index, cluster.sizes)
    server = tf.distribute.Server(tf.train.ClusterSpec(dict(cluster.jobs)), job_name=cluster.task_type,
                                  task_index=cluster.task_index, protocol="grpc", start=True)
    server.join()


def wait_for_servers(cluster: Cluster, timeout: float = 300.0, poll: float = 0.5) -> None:
    """Blocks until every worker and ps task accepts connections (replicas start in any order: pods, the
    local launcher); raises ``TimeoutError`` naming the tasks still unreachable after ``timeout`` seconds."""
    pending = {f"{job} {i} ({address})": address for job in (WORKER, PS)
               for i, address in enumerate(cluster.jobs.get(job, ()))}
    deadline = time.monotonic() + timeout
    while pending:
        for name, address in list(pending.items()):
            host, port = address.rsplit(":", 1)
            with contextlib.suppress(OSError), socket.create_connection((host.strip("[]"), int(port)), timeout=poll):
                del pending[name]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"no server answered within {timeout:.0f} s at: {', '.join(sorted(pending))}")
        if pending:
            time.sleep(poll)


# ------------------------------------------------------------------------------------ table sharding
_TABLES = threading.local()


@contextlib.contextmanager
def sharded_tables():
    """Variables created inside are embedding tables, which :class:`TablePartitioner` splits by rows."""
    previous = getattr(_TABLES, "active", False)
    _TABLES.active = True
    try:
        yield
    finally:
        _TABLES.active = previous


class TablePartitioner(tf.distribute.experimental.partitioners.Partitioner):
    """Row shards for embedding tables, none for anything else.

    A table created under :func:`sharded_tables` is split like
    ``MinSizePartitioner(min_shard_bytes, max_shards=num_shards)``: into as many shards of at least
    ``min_shard_bytes`` as fit, at most one per ps task. Dense kernels stay whole (a sharded kernel would be
    concatenated on every read) and are spread over the ps tasks round robin.
    """

    def __init__(self, num_shards: int, min_shard_bytes: int):
        self._tables = tf.distribute.experimental.partitioners.MinSizePartitioner(
            min_shard_bytes=min_shard_bytes, max_shards=num_shards)

    def __call__(self, shape, dtype, axis=0):
        if getattr(_TABLES, "active", False):
            return self._tables(shape, dtype, axis)
        return [1] * len(shape)


# -------------------------------------------------------------------------------------- strategies
def strategy_for(cluster: Cluster, min_shard_bytes: int) -> tf.distribute.Strategy:
    """The strategy of ``cluster.mode``: the default (no-op) strategy for one process. Create it before any
    other TensorFlow op: multi-worker collectives must be configured at program start."""
    if cluster.mode == SINGLE:
        return tf.distribute.get_strategy()
    if cluster.mode == MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster.resolver())
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    wait_for_servers(cluster)
    return tf.distribute.ParameterServerStrategy(
        cluster.resolver(), variable_partitioner=TablePartitioner(cluster.num_ps, min_shard_bytes))


def dataset_for(strategy: tf.distribute.Strategy, dataset_fn: Callable[[Optional[tf.distribute.InputContext]],
                                                                          tf.data.Dataset]):
    """What ``model.fit`` reads under ``strategy``: ``dataset_fn(None)`` in one process, else a
    ``DatasetCreator`` (required by tf_keras for parameter-server training) calling ``dataset_fn`` once per
    worker with its ``tf.distribute.InputContext``."""
    if isinstance(strategy, (tf.distribute.ParameterServerStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
        return keras.utils.experimental.DatasetCreator(dataset_fn)
    return dataset_fn(None)


def wait_for_chief(cluster: Cluster, strategy: tf.distribute.Strategy) -> None:
    """Multi-worker training: every task blocks here until all arrive, so a worker ends only after the
    chief's export (the TFX Trainer fails a replica that ends before the model directory exists)."""
    if cluster.mode == MULTI_WORKER:
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


# ------------------------------------------------------------------------------------------ export
def sharded_variables(model: keras.Model) -> Dict[str, List[tf.Variable]]:
    """``{table name: its shard variables}`` of every row-partitioned variable of ``model``.

    Keras lists a partitioned variable's shards, named ``<table>/part_<i>`` by the strategy, among the weights.
    """
    out: Dict[str, List[tf.Variable]] = {}
    for v in model.weights:
        match = _SHARD_NAME.fullmatch(v.name)
        if match:
            out.setdefault(match.group(1), []).append((int(match.group(2)), v))
    return {name: [v for _, v in sorted(shards, key=lambda s: s[0])] for name, shards in out.items()}


_SHARD_NAME = re.compile(r"(.+)/part_(\d+):\d+")


def shard_report(model: keras.Model) -> Dict[str, List[Dict[str, object]]]:
    """``{table: [{"shape": [rows, dim], "device": ...}, ...]}``: where each table's shards live."""
    return {name: [{"shape": v.shape.as_list(), "device": v.device} for v in shards]
            for name, shards in sharded_variables(model).items()}


def exportable(model: keras.Model, cluster: Cluster, checkpoint_dir: Optional[str],
               sample_features: Callable[[], Mapping[str, tf.Tensor]]) -> Optional[keras.Model]:
    """The model the chief exports: ``model`` itself in one process; in a cluster a local copy with plain
    (whole, unmirrored) variables, restored from a checkpoint of the trained model. ``None`` on other tasks.

    The checkpoint is written to ``checkpoint_dir`` (each ps task writes its shards there: it must be storage
    every task reaches; ``None``: a new local temporary directory, enough for a cluster on one machine).
    Under multi-worker training every worker takes part in writing it (mirrored metric variables are summed
    across workers on save), the others into a temporary directory. The copy is
    ``type(model).from_config(model.get_config())`` built on ``sample_features()``; restoring raises if any
    of its variables finds no value.
    """
    if cluster.mode == SINGLE:
        return model
    target = (checkpoint_dir or tempfile.mkdtemp(prefix="checkpoint-")) if cluster.is_chief \
        else tempfile.mkdtemp(prefix="worker-checkpoint-")
    prefix = tf.train.Checkpoint(model=model).write(os.path.join(target, "ckpt"))
    if not cluster.is_chief:
        tf.io.gfile.rmtree(target)
        return None
    copy = type(model).from_config(model.get_config())
    copy(dict(sample_features()))  # variables first: restoring on creation would rebuild the shards
    tf.train.Checkpoint(model=copy).read(prefix).assert_existing_objects_matched().expect_partial()  # no optimizer
    _LOG.info("restored a local copy of the model from %s for export", prefix)
    return copy
