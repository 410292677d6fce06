"""Throughput of the online A/B harness with no-op models: it must not be what limits an experiment.

    python benchmarks/bench_ab_harness.py [--requests 3000] [--impressions 200000]

Builds a world of the default size (with live days) and runs one live day of the A/B loop
(``experiments.abtest.run_day``: drawing the requests, encoding them as JSON, the router, drawing the clicks,
writing every arm's TFRecord log, folding the day into the world) for the three JAC arms, against models
that answer at once:

* in-process: the router core called directly (``experiments.deployments.NoopDeployment``);
* HTTP: the router's HTTP server (``serving.router.RouterServer`` on a thread, its models no-op) through
  ``serving.router.RouterClient``, as the reference path sends requests.

Prints requests/s, the harness's own milliseconds per request (the loop minus the router) and the router's.
A trained model pair on this machine takes ~10-20 ms per request (the small profile's router p50), so a
harness at well under 1 ms per request is not the bottleneck.
"""

import argparse
import copy
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import abtest  # noqa: E402
from experiments.deployments import NoopDeployment  # noqa: E402
from experiments.profiles import JAC_ARMS  # noqa: E402
from serving.router import RouterClient, RouterServer  # noqa: E402
from simulator import SimulatorConfig, build_world  # noqa: E402


class _NoopOverHttp:
    """The router's HTTP server in front of no-op models, called over HTTP."""

    def __init__(self):
        self._noop = NoopDeployment()
        self._server = RouterServer(self._noop.router).start()
        self._client = RouterClient(self._server.url)

    def rank(self, body):
        import time

        t0 = time.perf_counter()
        return self._client.rank(body), (time.perf_counter() - t0) * 1e3

    def close(self):
        self._server.stop()
        self._noop.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--impressions", type=int, default=SimulatorConfig().num_impressions)
    args = parser.parse_args(argv)
    world = build_world(SimulatorConfig(num_impressions=args.impressions, live_days=1))
    day = world.config.num_days
    print(f"world of {args.impressions:,} impressions: {world.num_users:,} users, {world.num_ads:,} ads; "
          f"{args.requests:,} requests of {world.config.ads_per_request} ads, one live day, 3 arms")
    for name, deployment in (("in-process", NoopDeployment()), ("HTTP", _NoopOverHttp())):
        try:
            with tempfile.TemporaryDirectory() as logs:
                traffic = abtest.run_day(copy.deepcopy(world), day, JAC_ARMS,
                                         dict.fromkeys([a.label for a in JAC_ARMS], deployment), args.requests,
                                         seed=0, salt="bench", log_dir=logs)
        finally:
            deployment.close()
        print(f"  {name:<10} {args.requests / traffic.seconds:8,.0f} requests/s   harness "
              f"{traffic.harness_ms_per_request:.3f} ms/request   router (no-op models) "
              f"{1e3 * traffic.rank_seconds / args.requests:.3f} ms/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
