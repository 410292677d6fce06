"""Feature specs: the default spec reproduces the simulator's columns exactly; bad specs fail naming the
feature; a second spec (BUILD.md's worked example) drives features.py, the curated schema and the eval config."""

import copy
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import feature_specs
import features as F
from feature_specs import FeatureSpecError

ROOT = pathlib.Path(__file__).resolve().parent.parent

# What features.py declared before the spec existed: (name, dtype, kind, group, length, domain) of every column.
OLD_FEATURES = (
    ("request_id", "int64", "scalar", "ids", None, None),
    ("day", "int64", "scalar", "ids", None, None),
    ("slot", "int64", "scalar", "ids", None, None),
    ("user_id", "int64", "scalar", "user", None, None),
    ("user_gender", "int64", "scalar", "user", None, 3),
    ("user_age_bucket", "int64", "scalar", "user", None, 6),
    ("user_city_tier", "int64", "scalar", "user", None, 5),
    ("user_device", "int64", "scalar", "user", None, 3),
    ("user_os", "int64", "scalar", "user", None, 3),
    ("user_activity_level", "int64", "scalar", "user", None, 5),
    ("user_income_bucket", "int64", "scalar", "user", None, 5),
    ("user_member_level", "int64", "scalar", "user", None, 4),
    ("user_purchase_freq", "int64", "scalar", "user", None, 4),
    ("ad_id", "int64", "scalar", "ad", None, None),
    ("ad_advertiser_id", "int64", "scalar", "ad", None, None),
    ("ad_category", "int64", "scalar", "ad", None, 24),
    ("ad_brand_id", "int64", "scalar", "ad", None, None),
    ("ad_price_bucket", "int64", "scalar", "ad", None, 5),
    ("ad_hist_ctr", "float32", "scalar", "ad_history", None, None),
    ("ad_hist_imps", "int64", "scalar", "ad_history", None, None),
    ("seq_ad_ids", "int64", "varlen", "sequence", None, None),
    ("seq_ad_categories", "int64", "varlen", "sequence", None, 24),
    ("creative_id", "int64", "scalar", "creative", None, None),
    ("creative_style", "int64", "scalar", "creative", None, 6),
    ("creative_color_tone", "int64", "scalar", "creative", None, 5),
    ("creative_price_tag", "int64", "scalar", "creative", None, 2),
    ("creative_text_length", "int64", "scalar", "creative", None, 4),
    ("creative_embedding", "float32", "fixed", "creative", 8, None),
    ("cand_creative_ids", "int64", "varlen", "candidates", None, None),
    ("cand_styles", "int64", "varlen", "candidates", None, 6),
    ("cand_color_tones", "int64", "varlen", "candidates", None, 5),
    ("cand_price_tags", "int64", "varlen", "candidates", None, 2),
    ("cand_text_lengths", "int64", "varlen", "candidates", None, 4),
    ("cand_embeddings", "float32", "varlen", "candidates", None, None),
    ("num_candidates", "int64", "scalar", "candidates", None, None),
    ("propensity", "float32", "scalar", "logging", None, None),
    ("exposed_index", "int64", "scalar", "logging", None, None),
    ("ad_bid", "float32", "scalar", "auction", None, None),
    ("click", "int64", "scalar", "label", None, 2),
    ("truth_ctr", "float32", "scalar", "truth", None, None),
    ("truth_cand_ctrs", "float32", "varlen", "truth", None, None),
)
_USER = ("user_id", "user_gender", "user_age_bucket", "user_city_tier", "user_device", "user_os",
         "user_activity_level", "user_income_bucket", "user_member_level", "user_purchase_freq")
_AD = ("ad_id", "ad_advertiser_id", "ad_category", "ad_brand_id", "ad_price_bucket")
_CR_USER = ("user_gender", "user_age_bucket", "user_city_tier", "user_device", "user_activity_level")
_ATTRS = ("creative_style", "creative_color_tone", "creative_price_tag", "creative_text_length")
_CREATIVE = ("creative_id",) + _ATTRS + ("creative_embedding",)
_CANDS = ("cand_creative_ids", "cand_styles", "cand_color_tones", "cand_price_tags", "cand_text_lengths",
          "cand_embeddings", "num_candidates")
# The derived constants other packages import, as they were.
OLD_CONSTANTS = {
    "ID_FEATURES": ("request_id", "day", "slot"),
    "USER_FEATURES": _USER,
    "AD_FEATURES": _AD,
    "AD_HISTORY_FEATURES": ("ad_hist_ctr", "ad_hist_imps"),
    "SEQUENCE_FEATURES": ("seq_ad_ids", "seq_ad_categories"),
    "CREATIVE_FEATURES": _CREATIVE,
    "CANDIDATE_FEATURES": _CANDS,
    "LOGGING_FEATURES": ("propensity", "exposed_index"),
    "AUCTION_FEATURES": ("ad_bid",),
    "TRUTH_FEATURES": ("truth_ctr", "truth_cand_ctrs"),
    "CR_USER_FEATURES": _CR_USER,
    "CR_AD_FEATURES": _AD,
    "CREATIVE_ATTRIBUTES": _ATTRS,
    "CANDIDATE_OF": dict(zip(_CREATIVE, _CANDS[:-1])),
    "NON_MODEL_FEATURES": ("click", "truth_ctr", "truth_cand_ctrs", "propensity", "exposed_index", "ad_bid",
                           "request_id", "day", "slot") + _CANDS,
    "AR_SERVING_INPUTS": _USER + _AD + ("ad_hist_ctr", "ad_hist_imps", "seq_ad_ids", "seq_ad_categories"),
    "CR_SERVING_INPUTS": _CR_USER + _AD + ("ad_hist_ctr",) + _CREATIVE,
    "BROADCASTABLE_INPUTS": _USER + ("seq_ad_ids", "seq_ad_categories"),
    "ACR_SERVING_INPUTS": _USER + _AD + ("ad_hist_ctr", "ad_hist_imps", "seq_ad_ids", "seq_ad_categories")
    + _ATTRS + ("creative_embedding",),
    "CREATIVE_EMBEDDING_DIM": 8,
    "LABEL": "click", "CLICK": "click", "AD_ID": "ad_id", "CREATIVE_ID": "creative_id", "USER_ID": "user_id",
    "CAND_CREATIVE_IDS": "cand_creative_ids", "CAND_EMBEDDINGS": "cand_embeddings", "PROPENSITY": "propensity",
    "EXPOSED_INDEX": "exposed_index", "NUM_CANDIDATES": "num_candidates", "TRUTH_CTR": "truth_ctr",
    "TRUTH_CAND_CTRS": "truth_cand_ctrs", "AD_BID": "ad_bid", "AD_HIST_CTR": "ad_hist_ctr",
    "SEQ_AD_IDS": "seq_ad_ids", "SEQ_AD_CATEGORIES": "seq_ad_categories", "CREATIVE_EMBEDDING": "creative_embedding",
    "REQUEST_ID": "request_id", "DAY": "day", "SLOT": "slot", "AD_CATEGORY": "ad_category",
    "AD_HIST_IMPS": "ad_hist_imps",
    "GENDERS": ("unknown", "female", "male"),
    "CREATIVE_STYLES": ("product_only", "usage_scene", "price_promotion", "model_shot", "lifestyle", "comparison"),
    "NUM_AD_CATEGORIES": 24,
}
# transform.names' id vocabularies (top_k, frequency threshold, OOV buckets) and AR crosses, as they were.
OLD_ID_VOCABULARIES = {"user_id": (200_000, 2, 100), "ad_id": (100_000, 1, 50), "ad_advertiser_id": (20_000, 1, 20),
                       "ad_brand_id": (20_000, 1, 20), "creative_id": (500_000, 2, 50)}
OLD_CROSSES = (("user_gender", "ad_category"), ("user_age_bucket", "ad_category"),
               ("user_city_tier", "ad_price_bucket"), ("user_income_bucket", "ad_price_bucket"),
               ("user_purchase_freq", "ad_category"))


def example_spec_dict() -> dict:
    """The worked example of BUILD.md ("Your own logs"), parsed from the guide itself."""
    text = (ROOT / "BUILD.md").read_text()
    block = re.search(r"<!-- feature-spec-example -->\n```json\n(.*?)\n```", text, re.S)
    assert block, "BUILD.md lost its worked feature-spec example"
    return json.loads(block.group(1))


@pytest.fixture
def example_spec_file(tmp_path):
    path = tmp_path / "shop_logs.json"
    path.write_text(json.dumps(example_spec_dict()))
    return str(path)


class TestDefaultSpec:
    def test_every_column_as_before(self):
        assert F.USES_DEFAULT_SPEC and F.SPEC.name == "simulator"
        assert tuple((f.name, f.dtype, f.kind, f.group, f.length, f.domain) for f in F.FEATURES) == OLD_FEATURES

    @pytest.mark.parametrize("name", sorted(OLD_CONSTANTS))
    def test_derived_constant_as_before(self, name):
        assert getattr(F, name) == OLD_CONSTANTS[name]

    def test_transform_vocabularies_and_crosses_as_before(self):
        from transform import names as N

        assert {n: (v.top_k, v.frequency_threshold, v.num_oov_buckets) for n, v in N.ID_VOCABULARIES.items()} \
            == OLD_ID_VOCABULARIES
        assert N.CROSSES == OLD_CROSSES

    def test_parse_spec_shapes(self):
        spec = F.raw_feature_spec()
        assert spec["creative_embedding"].shape == [8] and spec["click"].shape == []
        assert type(spec["cand_embeddings"]).__name__ == "VarLenFeature"

    def test_yaml_is_the_same_spec(self, tmp_path):
        yaml = pytest.importorskip("yaml")
        data = json.loads(pathlib.Path(feature_specs.resolve("simulator")).read_text())
        path = tmp_path / "simulator.yaml"
        path.write_text(yaml.safe_dump(data))
        assert feature_specs.load(str(path)).fingerprint() == F.SPEC.fingerprint()

    def test_selection(self, example_spec_file):
        assert feature_specs.selected_path({}) == feature_specs.resolve("simulator")
        assert feature_specs.selected_path({feature_specs.ENV_VAR: example_spec_file}) == example_spec_file
        with pytest.raises(FeatureSpecError, match="no_such_spec.*no such file"):
            feature_specs.load("no_such_spec.json")


def _mutate(edit):
    data = copy.deepcopy(example_spec_dict())
    by_name = {f["name"]: f for f in data["features"]}
    edit(data, by_name)
    return data


def _drop(*names):
    return lambda d, b: d.__setitem__("features", [f for f in d["features"] if f["name"] not in names])


# (case, edit of the worked example, what the message must say)
BAD_SPECS = [
    ("no ad id", lambda d, b: b["adgroup_id"].pop("role"), r"required role 'ad_id'"),
    ("no creative id", lambda d, b: b["creative_id"].pop("role"), r"required role 'creative_id'"),
    ("no click", _drop("clicked"), r'group "label" \(the click\), got none'),
    ("no candidate list", _drop("cand_creative_ids"), r"creative feature 'creative_id' has no candidate list"),
    ("unknown dtype", lambda d, b: b["ctr_7d"].update(dtype="double"), r"feature 'ctr_7d': unknown dtype 'double'"),
    ("duplicated name", lambda d, b: d["features"].append(dict(b["layout"])), r"feature 'layout' is declared twice"),
    ("list of another dtype", lambda d, b: b["cand_layouts"].update(dtype="float32", domain=None),
     r"'cand_layouts' does not parallel 'layout': dtype float32 vs int64"),
    ("list of another domain", lambda d, b: b["cand_layouts"].update(domain=4),
     r"'cand_layouts' does not parallel 'layout': domain 4 vs 3"),
    ("list of a non-creative", lambda d, b: b["cand_layouts"].update(candidate_of="region"),
     r"'cand_layouts': candidate_of 'region' is not a feature of group \"creative\""),
    ("two lists of one feature", lambda d, b: b["cand_shows_price"].update(candidate_of="layout", domain=3),
     r"'cand_layouts' and 'cand_shows_price' both carry creative feature 'layout'"),
    ("list not varlen", lambda d, b: b["cand_layouts"].update(kind="fixed", length=3),
     r"'cand_layouts': a candidate list is kind \"varlen\""),
    ("list without its feature", lambda d, b: b["cand_layouts"].pop("candidate_of"),
     r"'cand_layouts': a candidate list needs \"candidate_of\""),
    ("unknown group", lambda d, b: b["region"].update(group="geo"), r"'region': unknown group 'geo'"),
    ("unknown kind", lambda d, b: b["region"].update(kind="list"), r"'region': unknown kind 'list'"),
    ("fixed without length", lambda d, b: b["ctr_7d"].update(kind="fixed"), r"'ctr_7d': kind \"fixed\" needs"),
    ("role in the wrong group", lambda d, b: b["campaign_id"].update(role="user_id"),
     r"'campaign_id': role 'user_id' .* belongs to group 'user', not 'ad'"),
    ("role given twice", lambda d, b: b["campaign_id"].update(role="ad_id"),
     r"'adgroup_id' and 'campaign_id' both have role 'ad_id'"),
    ("typo in a key", lambda d, b: b["region"].update(domian=50), r"'region': unknown key\(s\) \['domian'\]"),
    ("vocabulary vs domain", lambda d, b: b["layout"].update(domain=4), r"'layout': \"domain\" 4 disagrees"),
    ("domain on a float", lambda d, b: b["ctr_7d"].update(domain=3), r"'ctr_7d': a categorical domain needs"),
    ("uncoded model input", lambda d, b: b["region"].pop("domain"), r"'region' .* needs \"vocabulary\""),
    ("id without vocabulary", lambda d, b: b["adgroup_id"].pop("id_vocabulary"),
     r"'adgroup_id' \(role 'ad_id'\) needs an \"id_vocabulary\""),
    ("bad range", lambda d, b: b["ctr_7d"].update(range=[1.0, 0.0]), r"'ctr_7d': \"range\" is \[min, max\]"),
    ("cr_user outside user", lambda d, b: b["campaign_id"].update(cr_user=True), r"'campaign_id': \"cr_user\""),
    ("label not binary", lambda d, b: b["clicked"].update(domain=3), r"'clicked' \(the label\) must be"),
    ("cross of a creative", lambda d, b: d["ar_crosses"].append(["layout", "region"]),
     r"ar_crosses \['layout', 'region'\]: 'layout' is a creative feature"),
    ("cross of an unknown", lambda d, b: d["ar_crosses"].append(["age_band", "colour"]),
     r"'colour' is not a categorical scalar"),
    ("no features", lambda d, b: d.__setitem__("features", []), r'a non-empty list "features"'),
    ("dense user feature", lambda d, b: b["region"].update(dtype="float32", domain=None),
     r"'region': group 'user' holds int64 scalars"),
    ("sequence without categories", lambda d, b: d["features"].append(
        {"name": "recent_ads", "dtype": "int64", "kind": "varlen", "group": "sequence", "role": "seq_ad_ids"}),
     r"a sequence needs a feature with role 'seq_ad_categories'.*\['recent_ads'\]"),
    ("ad history without a role", lambda d, b: d["features"].append(
        {"name": "ctr_30d", "dtype": "float32", "kind": "scalar", "group": "ad_history"}),
     r"'ctr_30d': the 'ad_history' group is read by role"),
]


class TestBadSpecs:
    def test_the_example_is_valid(self):
        spec = feature_specs.from_dict(example_spec_dict())
        assert spec.group("sequence") == () and spec.role("creative_embedding") is None
        assert spec.candidate_of() == {"creative_id": "cand_creative_ids", "layout": "cand_layouts",
                                       "shows_price": "cand_shows_price"}

    @pytest.mark.parametrize("case,edit,message", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
    def test_fails_naming_the_feature(self, case, edit, message):
        with pytest.raises(FeatureSpecError, match=message):
            feature_specs.from_dict(_mutate(edit), source="bad.json")

    def test_invalid_json_names_the_file(self, tmp_path):
        path = tmp_path / "broken.json"
        path.write_text('{"features": [')
        with pytest.raises(FeatureSpecError, match=r"broken.json: not valid JSON"):
            feature_specs.load(str(path))


def _features_under(spec_file: str, expression: str):
    """``expression`` evaluated (as JSON) in a fresh Python that selected ``spec_file``."""
    env = dict(os.environ, **{feature_specs.ENV_VAR: spec_file})
    code = f"import json, features as F; print(json.dumps({expression}))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


class TestSecondSpec:
    def test_features_module_follows_the_selected_spec(self, example_spec_file):
        got = _features_under(example_spec_file, (
            "dict(ad=F.AD_ID, click=F.CLICK, seq=F.SEQUENCE_FEATURES, emb=F.CREATIVE_EMBEDDING, "
            "dim=F.CREATIVE_EMBEDDING_DIM, truth=F.TRUTH_FEATURES, attrs=F.CREATIVE_ATTRIBUTES, "
            "cr=F.CR_SERVING_INPUTS, ar=F.AR_SERVING_INPUTS, cands=F.CAND_CREATIVE_IDS, default=F.USES_DEFAULT_SPEC, "
            "genders=F.GENDERS)"))
        assert got == {
            "ad": "adgroup_id", "click": "clicked", "seq": [], "emb": None, "dim": 0, "truth": [],
            "attrs": ["layout", "shows_price"], "cands": "cand_creative_ids", "default": False,
            "cr": ["age_band", "region", "platform", "adgroup_id", "campaign_id", "shop_category", "ctr_7d",
                   "creative_id", "layout", "shows_price"],
            "ar": ["visitor_id", "age_band", "region", "platform", "segment_hash", "adgroup_id", "campaign_id",
                   "shop_category", "ctr_7d"],
            "genders": ["unknown", "female", "male"],  # the simulator's vocabularies stay the simulator's
        }

    def test_curated_schema_follows_the_spec(self):
        from tensorflow_metadata.proto.v0 import schema_pb2

        from tfx_pipeline import schema_curation

        spec = feature_specs.from_dict(example_spec_dict())
        inferred = schema_pb2.Schema()
        for f in spec.features:
            inferred.feature.add(name=f.name, type=schema_pb2.INT if f.dtype == F.INT else schema_pb2.FLOAT)
        day = next(f for f in inferred.feature if f.name == "day")
        day.int_domain.min, day.int_domain.max = 2, 2  # SchemaGen's guess from one day of statistics
        curated = {f.name: f for f in schema_curation.curate_schema(inferred, spec).feature}
        assert curated["day"].WhichOneof("domain_info") is None  # only the spec's domains are enforced
        assert (curated["region"].int_domain.min, curated["region"].int_domain.max) == (0, 49)
        assert (curated["layout"].int_domain.max, curated["cand_layouts"].int_domain.max) == (2, 2)
        assert curated["cand_creative_ids"].value_count.min == 1
        assert (curated["ctr_7d"].float_domain.min, curated["ctr_7d"].float_domain.max) == (0.0, 1.0)
        assert curated["propensity"].float_domain.min == pytest.approx(1e-9)
        for name in ("clicked", "propensity", "exposed_index"):
            assert list(curated[name].not_in_environment) == [schema_curation.SERVING]
        assert not curated["region"].not_in_environment
        del inferred.feature[[f.name for f in inferred.feature].index("cand_layouts")]
        with pytest.raises(ValueError, match=r"lacks declared feature\(s\) \['cand_layouts'\].*shop_logs"):
            schema_curation.curate_schema(inferred, spec)

    def test_eval_config_without_truth_reports_the_estimators_only(self):
        from tfx_pipeline import eval_config

        def metric_names(config):
            return {m.class_name for s in config.metrics_specs for m in s.metrics}

        default = eval_config.build_eval_config()
        assert {"TruePolicyCTR", "IPW", "NSCTR"} <= metric_names(default)
        assert len(default.slicing_specs) == 3
        spec = feature_specs.from_dict(example_spec_dict())
        assert not eval_config.has_truth(spec)
        shop = eval_config.build_eval_config(spec=spec)
        assert "TruePolicyCTR" not in metric_names(shop)
        assert {"NSCTR", "SCTR", "CalibratedSCTR", "IPW", "SNIPW", "DoublyRobust"} <= metric_names(shop)
        assert len(shop.slicing_specs) == 2  # overall + candidate buckets; the shop has no user_gender

    def test_pipeline_refuses_a_spec_this_process_did_not_load(self, example_spec_file):
        from tfx_pipeline import config as config_lib

        assert config_lib.PipelineConfig().feature_spec_record()["fingerprint"] == F.SPEC.fingerprint()
        with pytest.raises(FeatureSpecError, match=r"built for 'shop_logs' \(fingerprint \w+.*with ADCR_FEATURE_SPEC naming"):
            config_lib.PipelineConfig(feature_spec=example_spec_file).feature_spec_record()

    def test_components_check_the_recorded_spec(self, example_spec_file):
        record = feature_specs.pipeline_record(feature_specs.load(example_spec_file))
        feature_specs.check_same_spec({}, F.SPEC, "Transform")  # nothing recorded: nothing to check
        with pytest.raises(FeatureSpecError, match=r"Transform follows feature spec 'simulator'.*'shop_logs'"):
            feature_specs.check_same_spec({feature_specs.CUSTOM_CONFIG_KEY: record}, F.SPEC, "Transform")

    def test_runner_names_the_bad_feature(self, tmp_path, capsys):
        from tfx_pipeline import local_runner

        data = _mutate(lambda d, b: b["ctr_7d"].update(dtype="double"))
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(data))
        with pytest.raises(SystemExit):
            local_runner._parse(["--feature-spec", str(path)])
        assert "feature 'ctr_7d': unknown dtype 'double'" in capsys.readouterr().err

    def test_runner_with_argv_refuses_another_spec(self, example_spec_file):
        from tfx_pipeline import local_runner

        cfg, _ = local_runner._parse(["--feature-spec", example_spec_file])
        with pytest.raises(FeatureSpecError, match="ADCR_FEATURE_SPEC="):
            local_runner.follow_spec(cfg, ["--feature-spec", example_spec_file])
        local_runner.follow_spec(local_runner._parse([])[0], [])  # the default: nothing to do


def test_transform_follows_a_spec_without_sequence_embedding_or_truth(example_spec_file):
    """The shop spec through preprocessing_fn: only the outputs its groups support, each hand-checked."""
    rows = [{"visitor_id": 1, "adgroup_id": a, "creative_id": c, "age_band": 2, "region": r, "platform": 1,
             "segment_hash": 999, "shop_category": 5, "ctr_7d": ctr, "layout": 1, "shows_price": 1,
             "cand_creative_ids": [1, 2, 3], "cand_layouts": [0, 2, 7], "cand_shows_price": [1, 0, 1],
             "n_candidates": 3, "propensity": 1 / 3, "exposed_index": 0, "clicked": i % 2}
            for i, (a, c, r, ctr) in enumerate(zip([7, 7, 7, 8, 8, 9], [1, 1, 1, 2, 2, 3], [0, 10, 49, 50, 55, 3],
                                                   [0.1, 0.2, 0.3, 0.4, 0.5, 1.5]))]
    env = dict(os.environ, **{feature_specs.ENV_VAR: example_spec_file})
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "feature_spec_probe.py"), json.dumps(rows)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    groups, out = got["groups"], got["rows"]
    assert groups["AR_SEQUENCE"] == [] and groups["CR_DENSE"] == []  # no transformer, no content embedding
    assert groups["AR_NUMERIC"] == ["ctr_7d_z_xf"]
    assert groups["AR_CATEGORICAL"] == [
        "visitor_id_xf", "adgroup_id_xf", "campaign_id_xf", "age_band_xf", "region_xf", "platform_xf",
        "segment_hash_xf", "shop_category_xf", "age_band_x_shop_category_xf", "platform_x_shop_category_xf"]
    assert groups["CR_INPUTS"] == ["age_band_xf", "region_xf", "platform_xf", "adgroup_id_xf", "campaign_id_xf",
                                   "shop_category_xf", "creative_id_xf", "layout_xf", "shows_price_xf", "ctr_7d_xf"]
    assert got["candidate_inputs"] == {"cand_creative_ids_xf": "creative_id_xf", "cand_layouts_xf": "layout_xf",
                                       "cand_shows_price_xf": "shows_price_xf"}
    assert sorted(out[0]) == got["sources"]  # every output the names declare, and nothing else
    # ad ids by frequency 7, 8 (9 is seen once but min_count is 1); creative 3 seen once: OOV 2 + 3 mod 50
    assert [r["adgroup_id_xf"] for r in out] == [0, 0, 0, 1, 1, 2]
    assert [r["creative_id_xf"] for r in out] == [0, 0, 0, 1, 1, 2 + 3 % 50]
    assert [r["region_xf"] for r in out] == [0, 10, 49, 50, 50, 3]  # outside [0, 50): the extra code 50
    assert out[0]["age_band_x_shop_category_xf"] == 2 * 13 + 5  # a * card(b) + b, card = domain + 1
    assert out[5]["ctr_7d_xf"] == 1.0 and out[0]["ctr_7d_xf"] == pytest.approx(0.1)
    assert out[0]["cand_layouts_xf"] == [0, 2, 3]  # 7 is outside the 3 layouts
    assert out[0]["cand_creative_ids_xf"] == [0, 1, 2 + 3 % 50]


def _no_cr_user(d, b):
    for f in d["features"]:
        f.pop("cr_user", None)


@pytest.mark.parametrize("edit,message", [
    (_drop("ctr_7d"), "no feature with role 'ad_hist_ctr'"),
    (_no_cr_user, 'marks no user feature "cr_user"'),
], ids=["no ad_hist_ctr", "no CR user feature"])
def test_pipeline_construction_names_what_the_creative_ranker_lacks(tmp_path, edit, message):
    """A valid spec the creative ranker cannot be served on: the pipeline says why before anything runs;
    the AR-only ablation needs neither."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_mutate(edit)))
    code = ("import json; from tfx_pipeline import config, pipeline; import feature_specs\n"
            "def build(model):\n"
            "    try:\n"
            "        pipeline.create_pipeline(config.PipelineConfig(output_dir='OUT', data_dir='DATA', "
            "model_config=model))\n"
            "        return None\n"
            "    except feature_specs.FeatureSpecError as e:\n"
            "        return str(e)\n"
            "print(json.dumps([build({}), build({'variant': 'ar'})]))")
    env = dict(os.environ, **{feature_specs.ENV_VAR: str(path)})
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jac, ar_only = json.loads(out.stdout.strip().splitlines()[-1])
    assert message in jac and "shop_logs" in jac
    assert ar_only is None


def _recorded_specs(pipeline_json):
    """``{task: the feature-spec record in its custom_config}`` of a compiled Kubeflow V2 pipeline."""
    tasks = json.load(open(pipeline_json))["pipelineSpec"]["root"]["dag"]["tasks"]
    out = {}
    for name, task in tasks.items():
        custom = task.get("inputs", {}).get("parameters", {}).get("custom_config")
        if custom:
            record = (json.loads(custom["runtimeValue"]["constantValue"]["stringValue"]) or {}).get(
                feature_specs.CUSTOM_CONFIG_KEY)
            if record:
                out[name] = record
    return out


def test_kubeflow_v2_runner_compiles_the_spec_in(example_spec_file, tmp_path):
    """--feature-spec on the Kubeflow V2 runner: the command restarts itself on the spec, and the compiled
    Transform and Trainer carry its name and fingerprint (which every container checks against its own)."""
    out = tmp_path / "pipeline.json"
    env = {k: v for k, v in os.environ.items() if k != feature_specs.ENV_VAR}
    done = subprocess.run([sys.executable, "-m", "tfx_pipeline.kubeflow_v2_runner", "--pipeline-root", "gs://b/adcr",
                           "--data-dir", "gs://b/data", "--image", "registry/adcr:test", "--out", str(out),
                           "--feature-spec", example_spec_file],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    shop = feature_specs.load(example_spec_file)
    assert f"Feature spec: 'shop_logs' (fingerprint {shop.fingerprint()})" in done.stdout
    records = _recorded_specs(out)
    assert {"Transform", "Trainer"} <= set(records)
    assert all(r == {"name": "shop_logs", "fingerprint": shop.fingerprint(), "source": example_spec_file}
               for r in records.values()), records
    assert shop.fingerprint() != F.SPEC.fingerprint()
    # Without --feature-spec: the default spec, compiled in the same way.
    from tfx_pipeline import config as config_lib
    from tfx_pipeline import kubeflow_v2_runner

    default_out = tmp_path / "default.json"
    kubeflow_v2_runner.compile_pipeline(config_lib.PipelineConfig(output_dir="gs://b/a", data_dir="gs://b/d"),
                                        "registry/adcr:test", str(default_out))
    assert {r["fingerprint"] for r in _recorded_specs(default_out).values()} == {F.SPEC.fingerprint()}


def test_kubeflow_v2_runner_names_the_bad_feature(tmp_path, capsys):
    from tfx_pipeline import kubeflow_v2_runner

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_mutate(_drop("cand_layouts"))))
    with pytest.raises(SystemExit):
        kubeflow_v2_runner.main(["--pipeline-root", "gs://b/a", "--data-dir", "gs://b/d", "--out",
                                 str(tmp_path / "p.json"), "--feature-spec", str(path)])
    assert "'layout'" in capsys.readouterr().err
