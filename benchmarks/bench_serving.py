"""Peri-CR serving latency: no-cr, post, pre and peri through the router, and AR / CR alone.

    python benchmarks/bench_serving.py [--serving-root DIR] [--ads 1000] [--creatives 10] \\
        [--concurrency 1] [--requests 60] [--backend auto|stand-in|tf-serving] \\
        [--layout split|shared] [--pin-cpus] [--request-form columns|rows] [--cacs-serving-root DIR]

One run on one machine. Model servers (TF Serving when ``tensorflow_model_server`` is on PATH, else the
local stand-in) serve ``--serving-root`` (default: fake AR/CR models whose per-row compute is sized like
production networks, ~30 ms each on one thread): with ``--layout split`` (default, Peri-CR's production
layout) one server per model, each optionally pinned to its own CPUs; with ``shared`` one server for both.
The router runs as its own process, serving JSON over HTTP and its binary form (a ``PredictRequest``)
over gRPC and over HTTP (rows ``.../grpc``, ``.../http-pb``). A load generator keeps ``--concurrency``
requests of M ads x N creatives in flight and records p50 / p99 latency and throughput for each mode;
"AR alone" and "CR alone" send the same model inputs the router sends, straight to the model's server through the gRPC client
(encode + RPC + decode); "AR+CR" sends both at once the same way, which is the floor for ``peri`` on this
machine (what two models running at the same time cost each other). Goals (Yang et al., AAAI 2024, Table 1):

* ``peri`` costs the slower model, not the sum: router scoring stage p50 <= 1.05 x max(AR alone, CR alone);
* ``pre`` (serial CR then AR) / ``peri`` >= 1.15 in end-to-end p50;
* the router's own cost (end to end minus the scoring stage) at M = 1,000 x N = 10: p50 <= 5 ms and
  p99 <= 10 ms for the JSON column form, less for the binary form; ``peri`` / ``no-cr`` <= 1.02;
* at ``--concurrency 4`` the router is not what saturates first (see the CPU-busy line: CPU-seconds
  per second of each process during the load).

With ``--cacs-serving-root`` (a pushed ``cacs`` pair: CACS's selector and its creative-aware ranker, Lin et al.,
SIGIR 2022) a second set of model servers and a second router serve it, and the row ``pre CACS`` (selector on
all M x N creatives, then the ranker on the M ads with their picked creatives) runs interleaved with the
others, beside ``peri`` and ``post`` of ``--serving-root`` (give a JAC pair of the same sizes to compare:
CACS reports about +5 % response time for Pre-CR, the JAC paper +18.9 %). ``--cacs-pairs`` builds both: a
``jac`` and a ``cacs`` pair of the tests' tiny sizes (``trainer.testing``, untrained: latency only) on a small
simulated log, served as ``--serving-root`` and ``--cacs-serving-root``.

The breakdown shows where ``peri``'s time goes, from the router's per-stage timing and the models'
in-process cost (same SavedModels, same thread count, loaded in this process).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import features as F  # noqa: E402
from serving import backend as B  # noqa: E402
from serving import runtime  # noqa: E402
from serving import testing as T  # noqa: E402
from serving.clients import GrpcServingClient  # noqa: E402
from serving.router import RouterClient, RouterGrpcClient, parse_request  # noqa: E402
from serving.router import core as C  # noqa: E402
from serving.router import request as R  # noqa: E402
from serving.router import tensors as RT  # noqa: E402
from serving.sample_requests import random_request  # noqa: E402

ROUTER_MODES = (R.NO_CR, R.POST, R.PRE, R.PERI)
# The same modes in the binary form (a PredictRequest of named tensors): over gRPC, and POSTed over HTTP.
GRPC, HTTP_PB = "grpc", "http-pb"
BINARY_ROWS = {f"{mode}/{transport}": (mode, transport) for transport in (GRPC, HTTP_PB)
               for mode in (R.NO_CR, R.PERI)}
AR_ALONE, CR_ALONE, BOTH = "AR alone", "CR alone", "AR+CR"
PRE_CACS = "pre CACS"  # 'pre' against the --cacs-serving-root pair
STAGES = ("parse", "validate", "ar_encode", "cr_encode", "ar_rpc", "cr_rpc", "ar_decode", "cr_decode",
          "scoring", "select", "total")


def run_interleaved(senders, payloads, concurrency: int, n: int, warmup: int):
    """Sends ``warmup + n`` calls per row, rows interleaved, ``concurrency`` calls in flight.

    Interleaving (row 1 call 1, row 2 call 1, ...) spreads the machine's load drift over every row alike.
    ``senders``: row name -> send(payload); ``payloads``: row name -> list cycled through.
    Returns row name -> (latencies ms, what send returned), measured calls only.
    """
    jobs = [(name, i) for i in range(warmup + n) for name in senders]
    lock = threading.Lock()
    state = {"next": 0}
    lat = {name: [] for name in senders}
    outs = {name: [] for name in senders}
    errors = []

    def worker():
        while True:
            with lock:
                k = state["next"]
                if k >= len(jobs) or errors:
                    return
                state["next"] += 1
            name, i = jobs[k]
            t0 = time.perf_counter()
            try:
                out = senders[name](payloads[name][i % len(payloads[name])])
            except Exception as e:  # a failed request stops the run: the figures would be wrong
                errors.append((name, e))
                return
            dt = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                with lock:
                    lat[name].append(dt)
                    outs[name].append(out)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"load failed in row {errors[0][0]}: {errors[0][1]!r}")
    return {name: (np.array(lat[name]), outs[name]) for name in senders}


def _start_router(ar_address: str, cr_address: str, log_dir: str, timeout_ms: float, cpus=None):
    port, grpc_port = B.free_port(), B.free_port()
    cmd = [sys.executable, "-m", "serving.router", "--ar-address", ar_address, "--cr-address", cr_address,
           "--port", str(port), "--grpc-port", str(grpc_port),
           "--ar-timeout-ms", str(timeout_ms), "--cr-timeout-ms", str(timeout_ms),
           "--max-ads", "5000", "--max-total-creatives", "100000", "--log-level", "WARNING"]
    proc = B.spawn(cmd, os.path.join(log_dir, "router.log"), cpus)
    client = RouterClient(f"http://127.0.0.1:{port}", timeout=120)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.healthz()
            return proc, client, RouterGrpcClient(f"127.0.0.1:{grpc_port}", timeout=120)
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("router did not start; see " + os.path.join(log_dir, "router.log"))
            time.sleep(0.2)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _in_process_model_ms(root: str, versions, ar_inputs, cr_inputs, calls: int = 15):
    """p50 of one ``predict_raw`` call per model loaded in this process (the models' own cost), and of
    both at once on two threads (how much parallel CPU the machine has free right now)."""
    import tensorflow as tf

    fns, tensors = {}, {}
    for model, inputs in ((F.AR_MODEL_NAME, ar_inputs), (F.CR_MODEL_NAME, cr_inputs)):
        path = os.path.join(root, model, str(versions[model]))
        fns[model] = tf.saved_model.load(path).signatures[F.RAW_SIGNATURE]
        tensors[model] = {k: tf.constant(v) for k, v in inputs.items()}

    def call(model):
        fns[model](**tensors[model])

    def both():
        t = threading.Thread(target=call, args=(F.AR_MODEL_NAME,))
        t.start()
        call(F.CR_MODEL_NAME)
        t.join()

    times = {F.AR_MODEL_NAME: [], F.CR_MODEL_NAME: [], "both": []}
    for i in range(calls + 3):  # interleaved, like the load
        for key, fn in ((F.AR_MODEL_NAME, lambda: call(F.AR_MODEL_NAME)),
                        (F.CR_MODEL_NAME, lambda: call(F.CR_MODEL_NAME)), ("both", both)):
            t0 = time.perf_counter()
            fn()
            if i >= 3:
                times[key].append((time.perf_counter() - t0) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def _tiny_pairs(tmp: str):
    """Serving roots of an untrained ``jac`` pair and ``cacs`` pair of ``trainer.testing``'s sizes (version 1)."""
    from trainer import testing

    roots = []
    for variant in ("jac", "cacs"):
        exported = testing.exported_models(variant, steps=0)
        root = os.path.join(tmp, f"{variant}-pair")
        for model in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):
            shutil.copytree(exported[model], os.path.join(root, model, "1"))
        roots.append(root)
    return roots


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving-root", help="serve these pushed models (default: fake models)")
    parser.add_argument("--backend", choices=B.KINDS, default="auto")
    parser.add_argument("--ads", type=int, default=1000, help="M")
    parser.add_argument("--creatives", type=int, default=10, help="N per ad")
    parser.add_argument("--slots", type=int, default=5, help="L")
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=60, help="measured requests per row")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--distinct", type=int, default=4, help="distinct requests cycled through")
    parser.add_argument("--intra-op-threads", type=int, default=1,
                        help="TF intra-op threads of the model server (and of the in-process timing)")
    parser.add_argument("--inter-op-threads", type=int, default=2,
                        help="TF inter-op threads of the model server (and of the in-process timing)")
    parser.add_argument("--timeout-ms", type=float, default=30000.0, help="router deadlines (no degrading)")
    parser.add_argument("--layout", choices=B.LAYOUTS, default=B.SPLIT,
                        help="split: one model server per model; shared: one server for both")
    parser.add_argument("--pin-cpus", action="store_true",
                        help="split layout: pin each model server to its own CPUs")
    parser.add_argument("--router-beside", choices=(F.AR_MODEL_NAME, F.CR_MODEL_NAME), default=F.CR_MODEL_NAME,
                        help="with --pin-cpus: the model server whose CPUs the router and load generator share")
    parser.add_argument("--cacs-serving-root",
                        help="also serve this pushed cacs pair (its own servers and router) and time 'pre' on it")
    parser.add_argument("--cacs-pairs", action="store_true",
                        help="build tiny untrained jac and cacs pairs and serve them as the two roots")
    parser.add_argument("--request-form", choices=("columns", "rows"), default="columns",
                        help="the router request's JSON form (serving.router.request)")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_serving.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    runtime.configure_tf_threads(args.intra_op_threads, args.inter_op_threads)

    tmp = tempfile.mkdtemp(prefix="bench-serving-")
    if args.cacs_pairs:
        args.serving_root, args.cacs_serving_root = _tiny_pairs(tmp)
    root = args.serving_root
    if root is None:
        root = os.path.join(tmp, "serving")
        T.make_fake_models(root, 1, ar_hidden_units=T.BENCH_AR_HIDDEN_UNITS,
                           cr_hidden_units=T.BENCH_CR_HIDDEN_UNITS)
        models_note = (f"fake models (AR MLP {T.BENCH_AR_HIDDEN_UNITS}, CR MLP {T.BENCH_CR_HIDDEN_UNITS})")
    else:
        models_note = f"models under {os.path.abspath(root)}"
    if args.cacs_serving_root:
        models_note += f"; row '{PRE_CACS}': the cacs pair under {os.path.abspath(args.cacs_serving_root)}"

    requests = [random_request(args.ads, args.creatives, seed=i, seq_len=args.seq_len, slots=args.slots)
                for i in range(args.distinct)]
    if args.request_form == "columns":
        requests = [R.to_column_form(r) for r in requests]
    bodies = {mode: [json.dumps({**r, R.MODE: mode}).encode() for r in requests] for mode in ROUTER_MODES}
    parsed = [parse_request(r, R.RequestLimits(max_ads=args.ads, max_total_creatives=10 ** 6))
              for r in requests]
    protos = {row: [RT.request_to_proto({**r, R.MODE: mode}) for r in requests]
              for row, (mode, _) in BINARY_ROWS.items()}
    body_mb = len(bodies[R.PERI][0]) / 1e6
    proto_mb = protos[f"{R.PERI}/{GRPC}"][0].ByteSize() / 1e6
    ar_payloads = [C.ar_inputs(p) for p in parsed]
    cr_payloads = [C.cr_inputs(p) for p in parsed]

    runtime.tune_gc()
    backend = router_proc = shared_cpus = cacs_backend = cacs_router_proc = None
    rows = {}
    server_args = dict(kind=args.backend, intra_op_threads=args.intra_op_threads,
                       inter_op_threads=args.inter_op_threads,
                       poll_seconds=30, log_dir=tmp)
    try:
        backend = B.start_servers(root, args.layout, pin_cpus=args.pin_cpus, **server_args)
        addresses = backend.addresses
        versions = backend.wait_until_available(timeout=300)
        # Pinned: the router and this load generator share one model's CPUs (--router-beside).
        shared_cpus = backend.servers[args.router_beside].cpus if args.pin_cpus else None
        if shared_cpus:
            os.sched_setaffinity(0, shared_cpus)
        router_proc, router, router_grpc = _start_router(addresses[F.AR_MODEL_NAME], addresses[F.CR_MODEL_NAME],
                                                         tmp, args.timeout_ms, shared_cpus)
        clients = {m: GrpcServingClient(a) for m, a in addresses.items()}
        cacs_grpc = None
        if args.cacs_serving_root:
            os.makedirs(os.path.join(tmp, "cacs"), exist_ok=True)
            cacs_backend = B.start_servers(args.cacs_serving_root, args.layout, pin_cpus=False,
                                           **dict(server_args, log_dir=os.path.join(tmp, "cacs")))
            cacs_backend.wait_until_available(timeout=300)
            cacs_router_proc, cacs_router, cacs_grpc = _start_router(
                cacs_backend.addresses[F.AR_MODEL_NAME], cacs_backend.addresses[F.CR_MODEL_NAME],
                os.path.join(tmp, "cacs"), args.timeout_ms, shared_cpus)

        def alone(model):
            def send(inputs):
                return clients[model].start_predict(model, inputs, F.RAW_SIGNATURE,
                                                    timeout=args.timeout_ms / 1e3).result()
            return send

        def via_router(rank):
            def send(body):
                r = rank(body)
                if r["degraded"]:
                    raise RuntimeError(f"degraded response: {r['degraded_reason']}")
                return r["timing_ms"]
            return send

        senders = {name: via_router(router.rank) for name in ROUTER_MODES}
        senders.update({name: via_router(router_grpc.rank if transport == GRPC else
                                         lambda proto: router.rank(proto, binary=True))
                        for name, (_, transport) in BINARY_ROWS.items()})
        payloads = {**bodies, **protos}
        if args.cacs_serving_root:
            senders[PRE_CACS], payloads[PRE_CACS] = via_router(cacs_router.rank), bodies[R.PRE]
        def both(inputs):  # AR and CR sent at once, straight to the servers: the machine's floor for peri
            ar_in, cr_in = inputs
            timeout = args.timeout_ms / 1e3
            ar_call = clients[F.AR_MODEL_NAME].start_predict(F.AR_MODEL_NAME, ar_in, F.RAW_SIGNATURE, timeout=timeout)
            cr_call = clients[F.CR_MODEL_NAME].start_predict(F.CR_MODEL_NAME, cr_in, F.RAW_SIGNATURE, timeout=timeout)
            return ar_call.result(), cr_call.result()

        senders[AR_ALONE], payloads[AR_ALONE] = alone(F.AR_MODEL_NAME), ar_payloads
        senders[CR_ALONE], payloads[CR_ALONE] = alone(F.CR_MODEL_NAME), cr_payloads
        senders[BOTH], payloads[BOTH] = both, list(zip(ar_payloads, cr_payloads))
        pids = {"router": router_proc.pid, "load generator": os.getpid(),
                **{f"{'+'.join(s_.models)} server": s_.process.pid for s_ in backend.processes}}
        load_before = os.getloadavg()[0]
        cpu_before = {k: _cpu_seconds(v) for k, v in pids.items()}
        t0 = time.perf_counter()
        rows = run_interleaved(senders, payloads, args.concurrency, args.requests, args.warmup)
        elapsed = time.perf_counter() - t0
        cpu_busy = {k: (_cpu_seconds(v) - cpu_before[k]) / elapsed for k, v in pids.items()}
        load_after = os.getloadavg()[0]
        for c in (*clients.values(), router_grpc, *([cacs_grpc] if cacs_grpc else [])):
            c.close()
    finally:
        for proc in (router_proc, cacs_router_proc):
            if proc is not None:
                B.stop_process(proc)
        for servers in (backend, cacs_backend):
            if servers is not None:
                servers.stop()
    model_ms = _in_process_model_ms(root, versions, ar_payloads[0], cr_payloads[0])
    shutil.rmtree(tmp, ignore_errors=True)

    # ---------------------------------------------------------------------------------------- report
    p = lambda a, q: float(np.percentile(a, q))  # noqa: E731
    print(f"\nPeri-CR serving benchmark: M={args.ads} ads x N={args.creatives} creatives, L={args.slots}, "
          f"sequence {args.seq_len}, concurrency {args.concurrency}, {args.requests} requests per row")
    layout = ("one server per model" + (", pinned to CPUs " + " / ".join(
        str(s_.cpus) for s_ in backend.processes) if args.pin_cpus else "")
              if args.layout == B.SPLIT else "one server for both models")
    print(f"backend: {backend.kind} ({'TensorFlow Serving' if backend.kind == B.TF_SERVING else 'local stand-in, not TF Serving'}), "
          f"{layout}, TF intra-op threads {args.intra_op_threads}; {models_note}")
    print(f"router: separate process, HTTP/JSON, {args.request_form} form ({body_mb:.2f} MB per request); "
          f"rows '/{GRPC}' and '/{HTTP_PB}': the binary form ({proto_mb:.2f} MB PredictRequest) over gRPC "
          f"and POSTed over HTTP")
    print(f"machine load average {load_before:.2f} before, {load_after:.2f} after ({os.cpu_count()} CPUs); "
          f"rows interleaved, {elapsed:.0f} s; req/s = concurrency / mean latency")
    print(f"\n{'row':<13} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}   router stage p50 (ms): "
          + " ".join(f"{s:>9}" for s in STAGES))
    stage_p50 = {}
    for name, (lat, outs) in rows.items():
        line = f"{name:<13} {p(lat, 50):>8.1f} {p(lat, 99):>8.1f} {args.concurrency * 1e3 / lat.mean():>7.2f}"
        if name in ROUTER_MODES or name in BINARY_ROWS or name == PRE_CACS:
            stage_p50[name] = {s: float(np.median([o.get(s, 0.0) for o in outs])) for s in STAGES}
            line += "                          " + " ".join(
                f"{stage_p50[name][s]:>9.1f}" if any(s in o for o in outs) else f"{'-':>9}" for s in STAGES)
        elif name == BOTH:
            line += (f"   at once, direct: AR rpc {np.median([o[0].rpc_ms for o in outs]):.1f}, "
                     f"CR rpc {np.median([o[1].rpc_ms for o in outs]):.1f}")
        else:
            enc = np.median([o.encode_ms for o in outs])
            rpc = np.median([o.rpc_ms for o in outs])
            dec = np.median([o.decode_ms for o in outs])
            line += f"   client: encode {enc:.1f}, rpc {rpc:.1f}, decode {dec:.1f}"
        print(line)

    ar50, cr50 = p(rows[AR_ALONE][0], 50), p(rows[CR_ALONE][0], 50)
    peri_scoring = stage_p50[R.PERI]["scoring"]
    peri50, pre50 = p(rows[R.PERI][0], 50), p(rows[R.PRE][0], 50)
    r1 = peri_scoring / max(ar50, cr50)
    r1_e2e = (peri50 - stage_p50[R.PERI]["total"] + stage_p50[R.PERI]["scoring"]) / max(ar50, cr50)
    r2 = pre50 / peri50
    r2_scoring = stage_p50[R.PRE]["scoring"] / peri_scoring
    print("\nGoals")
    print(f"  peri scoring p50 / max(AR alone, CR alone) p50 = {peri_scoring:.1f} / {max(ar50, cr50):.1f} "
          f"= {r1:.3f}   (goal <= 1.05: {'met' if r1 <= 1.05 else 'NOT met'})")
    print(f"  pre / peri end-to-end p50 = {pre50:.1f} / {peri50:.1f} = {r2:.3f}   "
          f"(goal >= 1.15: {'met' if r2 >= 1.15 else 'NOT met'});  scoring stage: {r2_scoring:.3f}")
    print(f"  (peri end-to-end minus the router's JSON parse and validation, over max(AR, CR) alone: "
          f"{r1_e2e:.3f})")
    if PRE_CACS in rows:
        cacs50, post50 = p(rows[PRE_CACS][0], 50), p(rows[R.POST][0], 50)
        print(f"  pre CACS / peri end-to-end p50 = {cacs50:.1f} / {peri50:.1f} = {cacs50 / peri50:.3f};  "
              f"/ post = {cacs50 / post50:.3f};  / no-cr = {cacs50 / p(rows[R.NO_CR][0], 50):.3f}  (CACS "
              f"reports ~1.05 for Pre-CR over no-CR); scoring stage / peri's: "
              f"{stage_p50[PRE_CACS]['scoring'] / peri_scoring:.3f}")
    nocr50, both50 = p(rows[R.NO_CR][0], 50), p(rows[BOTH][0], 50)
    print(f"  peri / no-cr end-to-end p50 (Table 1: Peri-CR+ 90 ms = no-CR 90 ms) = {peri50:.1f} / {nocr50:.1f} "
          f"= {peri50 / nocr50:.3f}")
    print(f"  machine floor: AR and CR sent at once, straight to their servers, p50 {both50:.1f} ms = "
          f"{both50 / max(ar50, cr50):.3f} x max(alone): what two models running at the same time cost each "
          f"other here\n  (shared caches and memory bandwidth); peri scoring over that floor = "
          f"{peri_scoring / both50:.3f} (the router's own cost of going parallel)")

    print("\nRouter overhead = end to end - the scoring stage (goal at M=1,000 x N=10: p50 <= 5 ms, "
          "p99 <= 10 ms; lower for the binary form)")
    print(f"  {'row':<13} {'e2e p50':>8} {'scoring p50':>12} {'difference':>11}   per request: {'p50':>6} {'p99':>6}")
    for name in (*ROUTER_MODES, *BINARY_ROWS, *([PRE_CACS] if PRE_CACS in rows else [])):
        lat, outs = rows[name]
        per_request = lat - np.array([o["scoring"] for o in outs])
        print(f"  {name:<13} {p(lat, 50):>8.1f} {stage_p50[name]['scoring']:>12.1f} "
              f"{p(lat, 50) - stage_p50[name]['scoring']:>11.1f}                {p(per_request, 50):>6.1f} "
              f"{p(per_request, 99):>6.1f}")
    for transport in (GRPC, HTTP_PB):
        ratio = p(rows[f"{R.PERI}/{transport}"][0], 50) / p(rows[f"{R.NO_CR}/{transport}"][0], 50)
        print(f"  peri / no-cr end-to-end p50, binary form over {transport}: {ratio:.3f}")
    print("\nCPU busy during the load (CPU-seconds per second; the pinned CPUs: "
          + ("none" if not shared_cpus else f"router and load generator share {shared_cpus} with "
             f"{args.router_beside}") + "): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu_busy.items()))

    s = stage_p50[R.PERI]
    http = peri50 - s["total"]
    print(f"\nWhere peri's time goes (p50, ms; end-to-end {peri50:.1f})")
    print(f"  client <-> router HTTP (body {body_mb:.2f} MB) and response JSON   {http:7.1f}")
    print(f"  router JSON parse (bytes -> typed columns)                    {s['parse']:7.1f}")
    print(f"  value checks (validation into the request's columns)          {s['validate']:7.1f}")
    print(f"  serialization: tensors -> TensorProto, AR + CR                {s['ar_encode'] + s['cr_encode']:7.1f}")
    print(f"  AR call (sent while CR is being encoded)                      {s['ar_rpc']:7.1f}"
          f"   = model {model_ms[F.AR_MODEL_NAME]:.1f} (in-process) + network/server {s['ar_rpc'] - model_ms[F.AR_MODEL_NAME]:.1f}")
    print(f"  CR call                                                       {s['cr_rpc']:7.1f}"
          f"   = model {model_ms[F.CR_MODEL_NAME]:.1f} (in-process) + network/server {s['cr_rpc'] - model_ms[F.CR_MODEL_NAME]:.1f}")
    print(f"  decode (TensorProto -> arrays)                                {s['ar_decode'] + s['cr_decode']:7.1f}")
    print(f"  scoring stage wall (encode .. both decoded; the calls overlap) {s['scoring']:7.1f}")
    print(f"  top-L and creative selection                                  {s['select']:7.1f}")
    if shared_cpus:
        print(f"\nModels in-process were timed on one CPU ({shared_cpus}), as each pinned server runs them.")
    else:
        both = model_ms["both"] / max(model_ms[F.AR_MODEL_NAME], model_ms[F.CR_MODEL_NAME])
        print(f"\nFree parallel CPU: AR and CR run at once in-process take {model_ms['both']:.1f} ms = "
              f"{both:.2f} x the slower alone (1.0: a free core for each; 2.0: one core for both, so "
              "Peri-CR cannot win)")
    print(f"\ncommand: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
