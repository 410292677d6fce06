"""Bring your own logs, end to end: logs in the shape of BUILD.md's worked spec (other user features, no behaviour
sequence, no content embedding, two creative attributes, up to 80 candidates, no truth) go through
``local_runner --feature-spec``; the model is blessed and pushed, and the router ranks a request in that shape,
in-process and through the local stand-in model server and the router's HTTP server."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import shop_logs
from test_feature_specs import example_spec_dict

import feature_specs

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    spec = root / "shop_logs.json"
    spec.write_text(json.dumps(example_spec_dict()))
    shop_logs.write(str(root / "data"), impressions=6000, days=3, seed=0)
    env = {k: v for k, v in os.environ.items() if k != feature_specs.ENV_VAR}
    args = ["--feature-spec", str(spec), "--data-dir", str(root / "data"), "--output-dir", str(root / "out"),
            "--train-steps", "60", "--eval-steps", "5", "--model-config", json.dumps({"batch_size": 128})]
    proc = subprocess.run([sys.executable, "-m", "tfx_pipeline.local_runner", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    return root, spec, proc


def _under_spec(spec, code: str, *args):
    env = dict(os.environ, **{feature_specs.ENV_VAR: str(spec)})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_pipeline_runs_blesses_and_pushes(run):
    root, _, proc = run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "==> Using the logs in" in out and "(feature spec 'shop_logs')" in out
    assert "blessed: yes" in out and "pushed: ar,cr version" in out
    served = {m: os.listdir(root / "out" / "serving_models" / m) for m in ("ar", "cr")}
    assert len(served["ar"]) == 1 and served["ar"] == served["cr"]
    report = next(line.split("report: ")[1].split(" ")[0] for line in out.splitlines() if "  report: " in line)
    html = open(report).read()
    assert "no ground-truth columns" in html and "NSCTR" in html


_SIGNATURES = """
    import json, sys
    import tensorflow as tf
    root = sys.argv[1]
    out = {}
    for name in ("ar", "cr"):
        base = f"{root}/{name}"
        model = tf.saved_model.load(f"{base}/{sorted(os.listdir(base))[-1]}")
        out[name] = sorted(model.signatures["predict_raw"].structured_input_signature[1])
    print(json.dumps(out))
"""


def test_the_served_models_take_the_specs_inputs(run):
    root, spec, proc = run
    assert proc.returncode == 0
    got = _under_spec(spec, "import os\n" + textwrap.dedent(_SIGNATURES), str(root / "out" / "serving_models"))
    assert got == {
        "ar": sorted(["visitor_id", "age_band", "region", "platform", "segment_hash", "adgroup_id", "campaign_id",
                      "shop_category", "ctr_7d"]),
        "cr": sorted(["age_band", "region", "platform", "adgroup_id", "campaign_id", "shop_category", "ctr_7d",
                      "creative_id", "layout", "shows_price"]),
    }


_RANK = """
    import json, sys
    from serving.inprocess import InProcessServingClient
    from serving.router.columns import RequestError
    from serving.router.core import PeriCRRouter, RouterConfig
    root, request = sys.argv[1], json.loads(sys.argv[2])
    router = PeriCRRouter(RouterConfig(), ar_client=InProcessServingClient({"ar": f"{root}/ar"}),
                          cr_client=InProcessServingClient({"cr": f"{root}/cr"}))
    ranked = router.rank(request)
    # The same request in column form (a JSON body) and as the tensors of a gRPC PredictRequest.
    ads = request["ads"]
    columns = dict(request, ads={n: [a[n] for a in ads] for n in ads[0] if n != "creatives"},
                   creatives={n: [c[n] for a in ads for c in a["creatives"]] for n in ads[0]["creatives"][0]})
    columns["ads"]["num_creatives"] = [len(a["creatives"]) for a in ads]
    from_columns = router.rank(router.decode_json(json.dumps(columns).encode()))
    from serving.router import tensors
    from serving.router.columns import validate_columns
    proto = tensors.parse_request_proto(tensors.request_to_proto(columns).SerializeToString())
    from_tensors = router.rank(validate_columns(tensors.columns_from_proto(proto)))
    bad = json.loads(sys.argv[2])
    bad["ads"][0]["creatives"][0]["layout"] = 7
    try:
        router.rank(bad)
        error = None
    except RequestError as e:
        error = str(e)
    # Over the wire: the local stand-in model server (gRPC) behind the router's HTTP server and its client.
    from serving.router.client import RouterClient
    from serving.router.server import RouterServer
    from serving.standin import ModelServerStandIn
    server = ModelServerStandIn({m: f"{root}/{m}" for m in ("ar", "cr")}, poll_seconds=0).start()
    try:
        with PeriCRRouter(RouterConfig(ar_address=server.grpc_address, ar_timeout_ms=30000,
                                       cr_timeout_ms=30000)) as remote, RouterServer(remote) as http:
            client = RouterClient(http.url)
            over_http = client.rank(request)
            client.close()
    finally:
        server.stop()
    print(json.dumps({"ranked": ranked, "columns": from_columns, "tensors": from_tensors, "error": error,
                      "http": over_http}))
"""


def test_the_router_ranks_a_request_in_the_specs_shape(run):
    root, spec, proc = run
    assert proc.returncode == 0
    request = {
        "user": {"visitor_id": 3, "age_band": 2, "region": 7, "platform": 0, "segment_hash": 123},
        "sequence": {},
        "ads": [
            {"adgroup_id": 1, "campaign_id": 2, "shop_category": 3, "ctr_7d": 0.05,
             "creatives": [{"creative_id": 10, "layout": 0, "shows_price": 1},
                           {"creative_id": 11, "layout": 2, "shows_price": 0}]},
            {"adgroup_id": 2, "campaign_id": 2, "shop_category": 4, "ctr_7d": 0.1,
             "creatives": [{"creative_id": 20, "layout": 1, "shows_price": 1}]},
            {"adgroup_id": 5, "campaign_id": 7, "shop_category": 0, "ctr_7d": 0.02,
             "creatives": [{"creative_id": 50, "layout": 2, "shows_price": 0}]},
        ],
        "slots": 2,
    }
    got = _under_spec(spec, _RANK, str(root / "out" / "serving_models"), json.dumps(request))
    ads = got["ranked"]["ads"]
    assert [a["rank"] for a in ads] == [1, 2] and not got["ranked"]["degraded"]
    assert all(a["creative_source"] == "cr" and 0.0 < a["pctr_ad"] < 1.0 and 0.0 < a["pctr_c"] < 1.0 for a in ads)
    assert ads[0]["pctr_ad"] >= ads[1]["pctr_ad"]
    choices = {1: (10, 11), 2: (20,), 5: (50,)}
    assert all(a["creative_id"] in choices[a["adgroup_id"]] for a in ads)
    assert got["columns"]["ads"] == ads and got["tensors"]["ads"] == ads
    remote = got["http"]["ads"]  # the same ranking through the stand-in server and the router's HTTP server
    assert not got["http"]["degraded"]
    assert [(a["adgroup_id"], a["creative_id"]) for a in remote] == [(a["adgroup_id"], a["creative_id"]) for a in ads]
    assert [a["pctr_ad"] for a in remote] == pytest.approx([a["pctr_ad"] for a in ads], rel=1e-5)
    assert [a["pctr_c"] for a in remote] == pytest.approx([a["pctr_c"] for a in ads], rel=1e-5)
    assert "layout" in got["error"] and "ads[0].creatives[0]" in got["error"]
