"""How a serving process runs (router, model server stand-in): GC settings, TF thread pools, shutdown.

* :func:`configure_logging` — one log format on stderr;
* :func:`tune_gc` — freeze the start-up heap, collect less often (the p99 of a large request);
* :func:`configure_tf_threads` — TF's intra-/inter-op pools, before TF runs its first op;
* :func:`run_until_signalled` — a server's main loop: start, serve until SIGINT / SIGTERM, stop.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from typing import Callable, Optional, TypeVar

log = logging.getLogger("serving.runtime")

# Allocations between young-generation collections (CPython's default is 700). Parsing one 1,000-ad
# request allocates ~200k objects; collecting every 700 of them is wasted work.
GC_THRESHOLD = (50_000, 20, 20)


def configure_logging(level: str) -> None:
    """The serving processes' log lines on stderr, at ``level`` (a name: ``"INFO"``, ``"debug"``...)."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def tune_gc() -> None:
    """Freezes the objects alive now (imports, loaded models) and collects less often.

    The cyclic collector scans every tracked object; once TensorFlow is imported there are ~350k of
    them, so a full collection triggered while a large JSON request is parsed stalls it for ~300 ms (the
    p99 of a request). Objects created at start-up live forever anyway: freezing them takes them out of
    every later collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def configure_tf_threads(intra_op: Optional[int] = None, inter_op: Optional[int] = None) -> None:
    """Sets TF's intra-/inter-op thread pools; must run before TF executes its first op."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra_op))
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter_op))
    except RuntimeError as e:  # TF already initialized in this process: keep its pools
        log.warning("could not set TF thread pools (%s); keeping intra=%d inter=%d", e,
                    tf.config.threading.get_intra_op_parallelism_threads(),
                    tf.config.threading.get_inter_op_parallelism_threads())


Server = TypeVar("Server")


def run_until_signalled(start: Callable[[], Server], ready: Callable[[Server], str]) -> None:
    """Starts a server, serves until SIGINT or SIGTERM, then calls its ``stop()``.

    The handlers are installed before ``start()``, so a signal during start-up (loading models) is not
    lost: the server stops as soon as it is up. Once started: :func:`tune_gc`, then ``ready(server)``
    on stderr (scripts wait for that line).
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = start()
    tune_gc()
    print(ready(server), file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):  # short waits: the handlers run between them
            pass
    finally:
        server.stop()
