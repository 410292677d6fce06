"""Process settings for the serving processes (router, model server stand-in)."""

from __future__ import annotations

import gc
import socket

# Allocations between young-generation collections (CPython's default is 700). Parsing one 1,000-ad
# request allocates ~200k objects; collecting every 700 of them is wasted work.
GC_THRESHOLD = (50_000, 20, 20)


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


def set_nodelay(sock: socket.socket) -> None:
    """Disables Nagle's algorithm: a response written as headers then body must not wait for the
    peer's delayed ACK (~40 ms on Linux)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not TCP (e.g. a Unix socket in tests)
        pass
