"""Runs ``trainer.run.run_fn`` on a cluster of real TensorFlow servers on this machine.

    python -m trainer.local_cluster --workers 2 --ps 2 --simulate 20000 --train-steps 300
    python -m trainer.local_cluster --workers 1 --ps 0 --transform-graph DIR --train-files 'XF/Split-train/*' \\
        --eval-files 'XF/Split-eval/*' --train-steps 400 --output-dir outputs/cluster

One chief, ``--workers`` workers and ``--ps`` parameter servers, each a process of its own with its own
``TF_CONFIG`` on a free 127.0.0.1 port, each running the same ``run_fn`` as the TFX Trainer runs on a
replica (``--ps 0``: multi-worker mirrored training, the chief trains too; otherwise parameter-server
training, the chief coordinates). Each task logs to ``<output-dir>/logs/<task>.log``; the chief exports to
``<output-dir>/serving`` and writes its summary to ``<output-dir>/run/model_config.json``.

The launcher stops every process it started when the chief ends, when any other task dies first (reported
by name, exit code or signal), on Ctrl-C and on SIGTERM: each task runs in its own process group, gets
SIGTERM, then SIGKILL after a bounded wait, and is also killed by the kernel if the launcher itself dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


def free_ports(n: int) -> List[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (the OS picks them)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]


def cluster_jobs(workers: int, ps: int) -> Dict[str, List[str]]:
    """``{"chief": [addr], "worker": [...], "ps": [...]}`` on free local ports (no ``ps`` job for ``ps=0``)."""
    if workers < (1 if ps else 0) or ps < 0:
        raise ValueError(f"need workers >= 1 with ps tasks (workers >= 0 without), ps >= 0; got {workers}, {ps}")
    ports = iter(free_ports(1 + workers + ps))
    jobs = {"chief": [f"{HOST}:{next(ports)}"]}
    for job, count in (("worker", workers), ("ps", ps)):
        if count:
            jobs[job] = [f"{HOST}:{next(ports)}" for _ in range(count)]
    return jobs


@dataclasses.dataclass
class Task:
    job: str
    index: int
    process: subprocess.Popen
    log: str
    peak_rss_mb: Optional[float] = None

    @property
    def name(self) -> str:
        return f"{self.job} {self.index}"


def _die_with_parent():  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _exit_reason(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def _peak_rss_mb(pid: int) -> Optional[float]:
    """The process's peak resident memory (Linux ``VmHWM``) in MiB, or ``None`` if unavailable."""
    with contextlib.suppress(OSError, ValueError):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    return None


class ClusterFailed(RuntimeError):
    """A task ended before the chief, or the chief failed; the message names the task and how it ended."""


class LocalCluster:
    """Starts the tasks, watches them, and stops them all (use as a context manager).

    Args:
      fn_args: the Trainer's arguments as JSON-friendly values (see :func:`_task_main`).
      workers, ps: cluster size besides the chief.
      log_dir: one log file per task.
    """

    def __init__(self, fn_args: Dict, workers: int, ps: int, log_dir: str, term_timeout: float = 10.0):
        self.fn_args, self.log_dir, self.term_timeout = fn_args, log_dir, term_timeout
        self.jobs = cluster_jobs(workers, ps)
        self.tasks: List[Task] = []

    def __enter__(self) -> "LocalCluster":
        os.makedirs(self.log_dir, exist_ok=True)
        args_file = os.path.join(self.log_dir, "fn_args.json")
        with open(args_file, "w") as f:
            json.dump(self.fn_args, f)
        order = [(job, i) for job in ("ps", "worker", "chief") for i in range(len(self.jobs.get(job, ())))]
        try:
            for job, index in order:
                self._start(job, index, args_file)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, job: str, index: int, args_file: str) -> None:
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": self.jobs, "task": {"type": job, "index": index}}))
        log = os.path.join(self.log_dir, f"{job}-{index}.log")
        with open(log, "w") as out:
            process = subprocess.Popen([sys.executable, "-m", "trainer.local_cluster", "--task-args", args_file],
                                       env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, preexec_fn=_die_with_parent)
        self.tasks.append(Task(job, index, process, log))

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def chief(self) -> Task:
        return next(t for t in self.tasks if t.job == "chief")

    def wait(self, timeout: Optional[float] = None, poll: float = 0.5) -> None:
        """Returns when the chief has succeeded; raises :class:`ClusterFailed` if it failed, if another task
        ended first (multi-worker workers may end with the chief), or after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        mirrored = "ps" not in self.jobs
        while True:
            for task in self.tasks:
                code = task.process.poll()
                if code is None or (task.job == "chief" and code == 0) or (mirrored and code == 0):
                    continue
                raise ClusterFailed(f"{task.name} (pid {task.process.pid}) {_exit_reason(code)} before the chief "
                                    f"finished; its log: {task.log}")
            if self.chief.process.poll() == 0:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterFailed(f"the chief did not finish within {timeout:.0f} s; its log: {self.chief.log}")
            time.sleep(poll)

    def stop(self) -> None:
        """SIGTERM to every task's process group, SIGKILL to those left after ``term_timeout`` seconds."""
        for task in self.tasks:
            if task.process.poll() is None:
                task.peak_rss_mb = _peak_rss_mb(task.process.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for task in self.tasks:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if task.process.poll() is None:
                        os.killpg(task.process.pid, sig)
            deadline = time.monotonic() + self.term_timeout
            for task in self.tasks:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    task.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            if all(t.process.poll() is not None for t in self.tasks):
                return


def _task_main(args_file: str) -> int:
    """One task: ``run_fn`` with the launcher's arguments and this process's ``TF_CONFIG``."""
    from tfx.v1.components import FnArgs

    from trainer.run import run_fn

    with open(args_file) as f:
        run_fn(FnArgs(**json.load(f)))
    return 0


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--workers", type=int, default=1, help="worker tasks besides the chief")
    p.add_argument("--ps", type=int, default=1, help="parameter servers (0: multi-worker mirrored training)")
    p.add_argument("--simulate", type=int, help="simulate and transform this many impressions to train on")
    p.add_argument("--transform-graph", help="a Transform output (instead of --simulate)")
    p.add_argument("--train-files", help="transformed training examples, e.g. 'XF/Split-train/*'")
    p.add_argument("--eval-files", help="transformed evaluation examples")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--eval-steps", type=int, default=10)
    p.add_argument("--model-config", default="{}", help="JSON overrides of trainer.config.JACConfig")
    p.add_argument("--output-dir", help="serving/, run/ and logs/ go here (default: a new temporary directory)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the chief")
    p.add_argument("--task-args", metavar="FN_ARGS_JSON",
                   help="run one task of run_fn with this process's TF_CONFIG (what each pod of a cluster runs)")
    a = p.parse_args(argv)
    if a.task_args:
        return _task_main(a.task_args)
    if bool(a.simulate) == bool(a.transform_graph and a.train_files and a.eval_files):
        p.error("give either --simulate N or all of --transform-graph, --train-files and --eval-files")

    from trainer.config import MODEL_CONFIG_KEY

    if a.simulate:
        from trainer import testing
        data = testing.transformed_data(a.simulate)
        a.transform_graph, a.train_files, a.eval_files = data.transform_graph, data.train, data.eval
    out = a.output_dir or tempfile.mkdtemp(prefix="local-cluster-")
    fn_args = dict(train_files=[a.train_files], eval_files=[a.eval_files], transform_output=a.transform_graph,
                   serving_model_dir=os.path.join(out, "serving"), model_run_dir=os.path.join(out, "run"),
                   train_steps=a.train_steps, eval_steps=a.eval_steps,
                   custom_config={MODEL_CONFIG_KEY: json.loads(a.model_config)})
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Ctrl-C must stop the cluster even when this process inherited an ignored SIGINT (Python then installs no
    # KeyboardInterrupt handler at start-up; a parent such as a test runner's may have ignored it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cluster = LocalCluster(fn_args, a.workers, a.ps, os.path.join(out, "logs"))
    try:
        with cluster:
            for task in cluster.tasks:
                print(f"started {task.name} (pid {task.process.pid}) at {cluster.jobs[task.job][task.index]}, "
                      f"log {task.log}", flush=True)
            cluster.wait(timeout=a.timeout)
    except ClusterFailed as e:
        print(f"local cluster failed: {e}; stopped every task", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted; stopped every task", file=sys.stderr, flush=True)
        return 130
    finally:
        for task in cluster.tasks:
            if task.peak_rss_mb is not None:
                print(f"{task.name}: peak RSS {task.peak_rss_mb:.0f} MiB", flush=True)
    with open(os.path.join(out, "run", "model_config.json")) as f:
        summary = json.load(f)
    print(json.dumps({k: summary[k] for k in ("cluster", "throughput", "metrics", "exported", "sharded_tables")},
                     indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
