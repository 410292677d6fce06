"""True CTR of what the router serves from each pushed AR/CR pair, on requests drawn from the simulated world.

    python benchmarks/served_variants.py --serving-root OUT/serving_models --data-dir DATA \
        --pair jac=<version> --pair acr=<version> [--requests 300]

Each pair (``<variant>=<pushed version>``) is loaded in-process (``serving.inprocess.InProcessServingClient``)
behind the router; every pair ranks the same requests (``serving.sample_requests.requests_from_world``,
seed 5), a creative-aware AR (``acr``) in ``pre`` (the only order it allows besides ``no-cr``), the others in
``peri``. Prints the mean true CTR of the creatives shown, a random creative's and the best one's, and the lift
share (shown - random) / (best - random): the served counterpart of the Evaluator's "true CTR of picks".
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import features as F  # noqa: E402
from serving.inprocess import InProcessServingClient  # noqa: E402
from serving.router import PeriCRRouter, RouterConfig  # noqa: E402
from serving.router import request as R  # noqa: E402
from serving.sample_requests import requests_from_world  # noqa: E402
from simulator import load_world  # noqa: E402


def serve_pair(serving_root: str, version: int, mode: str, sims) -> dict:
    """Mean true CTR shown / random / best over ``sims`` served by the pair ``version`` in ``mode``."""
    with tempfile.TemporaryDirectory() as tmp:
        clients = {}
        for name in (F.AR_MODEL_NAME, F.CR_MODEL_NAME):  # this version alone, whatever was pushed after it
            os.makedirs(os.path.join(tmp, name))
            os.symlink(os.path.join(serving_root, name, str(version)), os.path.join(tmp, name, str(version)))
            clients[name] = InProcessServingClient({name: os.path.join(tmp, name)})
        truth = {"shown": [], "random": [], "best": []}
        degraded = 0
        with PeriCRRouter(RouterConfig(), ar_client=clients[F.AR_MODEL_NAME],
                          cr_client=clients[F.CR_MODEL_NAME]) as router:
            for sim in sims:
                response = router.rank(dict(copy.deepcopy(sim.request), mode=mode))
                degraded += response["degraded"]
                for key, value in sim.shown_truth(response["ads"]).items():
                    truth[key].append(value)
    out = {k: float(np.mean(v)) for k, v in truth.items()}
    out["lift_share"] = (out["shown"] - out["random"]) / (out["best"] - out["random"])
    out["degraded"] = degraded
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serving-root", required=True)
    parser.add_argument("--data-dir", required=True, help="the simulated data (its world.npz)")
    parser.add_argument("--pair", action="append", required=True, help="<variant>=<pushed version>")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    pairs = []
    for pair in args.pair:
        variant, _, version = pair.partition("=")
        if not version.isdigit():
            parser.error(f"--pair {pair!r}: expected <variant>=<pushed version>")
        pairs.append((variant, int(version)))
    sims = requests_from_world(load_world(os.path.join(args.data_dir, "world.npz")), args.requests, seed=5)
    for variant, version in pairs:
        mode = R.PRE if variant == "acr" else R.PERI
        m = serve_pair(args.serving_root, version, mode, sims)
        print(f"{variant:8s} v{version} {mode:5s} {args.requests} requests, degraded {m['degraded']}: true CTR shown "
              f"{m['shown']:.4f} random {m['random']:.4f} best {m['best']:.4f} lift share {m['lift_share']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
