"""Every comparison variant on a spec without sequence, content embedding or truth (BUILD.md's worked example):
each builds from the spec, fits its closed-form part, runs forward and one train step on a random batch, in a
fresh Python with ADCR_FEATURE_SPEC set; the one variant that needs creative content refuses a spec without it
at pipeline construction."""

import json
import os
import subprocess
import sys

import pytest
from test_feature_specs import ROOT, _drop, _mutate, example_spec_dict

import feature_specs

BATCH = 16
# Every model input the worked example supports; no sequence, no embedding, no label / logging / ids.
AR_INPUTS = {"visitor_id_xf", "adgroup_id_xf", "campaign_id_xf", "age_band_xf", "region_xf", "platform_xf",
             "segment_hash_xf", "shop_category_xf", "age_band_x_shop_category_xf", "platform_x_shop_category_xf",
             "ctr_7d_z_xf"}
CR_INPUTS = {"age_band_xf", "region_xf", "platform_xf", "adgroup_id_xf", "campaign_id_xf", "shop_category_xf",
             "creative_id_xf", "layout_xf", "shows_price_xf", "ctr_7d_xf"}
# variant -> (heads, what its closed-form fit reports, whether it has the two-tower creative tower)
VARIANTS = {
    "ar": ({"ar"}, set(), False),
    "cr": ({"cr"}, set(), False),
    "dssm": ({"ar", "cr"}, set(), True),
    "acr": ({"ar", "cr"}, set(), False),
    "hbm": ({"ar", "cr"}, {"vam_lists", "vam_losses", "creatives_updated", "ads_updated"}, False),
    "beta_ts": ({"ar", "cr"}, {"prior", "creatives_updated"}, False),
    "cacs": ({"ar", "cr"}, {"adgroup_id_xf_dropout", "creative_id_xf_dropout"}, True),
}


def _run(args, spec_path, timeout=300):
    env = dict(os.environ, **{feature_specs.ENV_VAR: str(spec_path)})
    done = subprocess.run([sys.executable] + args, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def shop_spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "shop_logs.json"
    path.write_text(json.dumps(example_spec_dict()))
    return path


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_follows_a_spec_without_sequence_or_embedding(shop_spec, variant):
    heads, fitted, tower = VARIANTS[variant]
    got = _run([str(ROOT / "tests" / "variant_spec_probe.py"), variant], shop_spec)
    assert set(got["heads"]) == heads
    names = set(got["feature_names"])
    # exactly the spec's inputs: AR reads the AR inputs; CR heads only CR inputs (ACR's AR adds the creative)
    expected = (AR_INPUTS if "ar" in heads else set()) | ({"layout_xf", "shows_price_xf"} if variant == "acr" else set())
    assert expected <= names <= AR_INPUTS | CR_INPUTS, names ^ expected
    assert "cr" not in heads or names & CR_INPUTS - AR_INPUTS
    assert got["outputs"] == {**({"pctr_ad": [BATCH]} if "ar" in heads else {}),
                              **({"pctr_c": [BATCH]} if "cr" in heads else {})}
    logs = got["logs"]
    assert logs["loss"] == pytest.approx(sum(logs[f"{h}_loss"] for h in heads), rel=1e-5)
    assert 0.0 < logs["loss"] < 50.0
    assert fitted <= set(got["fitted"])
    if tower:  # the served creative tower (first layer folded, no dense part) equals the trained one
        assert got["tower"]["shape"] == [BATCH, 4] and got["tower"]["max_abs_diff"] < 1e-5
    else:
        assert got["tower"] is None


def _no_creative_attributes(d, b):
    _drop("layout", "shows_price", "cand_layouts", "cand_shows_price")(d, b)


def test_hbm_refuses_a_spec_without_creative_content(tmp_path):
    """The HBM's visual prior scores a creative from its content: without attributes or an embedding the
    pipeline refuses it at construction, naming the variant; the other variants build on the same spec."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_mutate(_no_creative_attributes)))
    code = ("import json; from tfx_pipeline import config, pipeline; import feature_specs\n"
            "def build(variant):\n"
            "    try:\n"
            "        pipeline.create_pipeline(config.PipelineConfig(output_dir='OUT', data_dir='DATA', "
            "model_config={'variant': variant}))\n"
            "        return None\n"
            "    except feature_specs.FeatureSpecError as e:\n"
            "        return str(e)\n"
            "print(json.dumps({v: build(v) for v in ('hbm', 'beta_ts', 'dssm', 'cacs')}))")
    got = _run(["-c", code], path)
    assert "variant 'hbm'" in got["hbm"] and "no creative attribute and no content embedding" in got["hbm"]
    assert "shop_logs" in got["hbm"]
    assert got["beta_ts"] is None and got["dssm"] is None and got["cacs"] is None
