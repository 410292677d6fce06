"""The single source of truth for every feature name, dtype, shape and group.

The columns are declared as data, in a feature spec (:mod:`feature_specs`; the default is the simulator's,
``feature_specs/simulator.json``); this module loads the selected spec once and derives from it every
constant the other packages import. Every stage imports names from here: the simulator writes exactly these
columns, Transform reads them, the trainer builds its inputs from the groups, the serving signatures take the
groups named below, and the metrics read the ids, candidates, label and truth columns. No other file spells a
feature name (nor a split name: :data:`TRAIN_SPLIT`, :data:`EVAL_SPLIT`).

Layout of one impression (one ``tf.train.Example``) in the default spec::

    ids          request_id, day, slot
    AR user      user_id + 9 observable user features        (rich: AR only)
    CR user      5 of the user features                       (simple: CR)
    ad           ad_id, advertiser, category, brand, price bucket
    ad history   ad_hist_ctr (yesterday's CTR of the ad: CR's online stand-in for pctr_ad), ad_hist_imps
    sequence     the user's last behaviour: ad ids and their categories (variable length, newest last)
    creative     the exposed creative: id, 4 categorical attributes, a dense content embedding
    candidates   every candidate creative of the ad, in a fixed order, with the same attributes
    logging      the logging policy's propensity of the exposed creative, and its index among the candidates
    auction      ad_bid: the ad's cost-per-click bid (ads are ranked by eCPM = pctr_ad x bid; a click earns
                 the bid). Known at serving time (the router's optional per-ad column) but never a model
                 input: it moves which ad wins, not whether a user clicks
    label        click in {0, 1}
    truth        true click probability of the exposed creative and of every candidate (never a model input)

Candidate lists are parallel: entry ``k`` of every ``cand_*`` list describes candidate ``k``;
``cand_embeddings`` is the row-major flattening of ``num_candidates x CREATIVE_EMBEDDING_DIM`` floats.
"""

from __future__ import annotations

from typing import Dict, Tuple

import feature_specs
from feature_specs import FIXED, FLOAT, INT, SCALAR, VARLEN, Feature, FeatureSpec  # noqa: F401 (re-exported)

# ------------------------------------------------------------------------------------------- the spec
# The spec this process follows: $ADCR_FEATURE_SPEC (a spec file, or the name of one in feature_specs/), else
# the simulator's (feature_specs/simulator.json). It is read once, at import: every stage of one process, and
# every process of one pipeline run (the runners pass the variable on), sees the same columns.
SPEC: FeatureSpec = feature_specs.load(feature_specs.selected_path())
# The simulator always writes its own columns, whichever spec is selected.
SIMULATOR_SPEC: FeatureSpec = (SPEC if SPEC.name == feature_specs.DEFAULT_SPEC
                               and SPEC.source == feature_specs.resolve(feature_specs.DEFAULT_SPEC)
                               else feature_specs.load(feature_specs.DEFAULT_SPEC))
USES_DEFAULT_SPEC = SPEC.fingerprint() == SIMULATOR_SPEC.fingerprint()

FEATURES: Tuple[Feature, ...] = SPEC.features
BY_NAME: Dict[str, Feature] = SPEC.by_name

# ----------------------------------------------------------------------------------------------- names
# Columns the code knows by their role in the spec (None when the selected spec has no such column).
REQUEST_ID = SPEC.role("request_id")
DAY = SPEC.role("day")
SLOT = SPEC.role("slot")
USER_ID = SPEC.role("user_id")
AD_ID = SPEC.role("ad_id")
AD_CATEGORY = SPEC.role("ad_category")
AD_HIST_CTR = SPEC.role("ad_hist_ctr")
AD_HIST_IMPS = SPEC.role("ad_hist_imps")
SEQ_AD_IDS = SPEC.role("seq_ad_ids")
SEQ_AD_CATEGORIES = SPEC.role("seq_ad_categories")
CREATIVE_ID = SPEC.role("creative_id")
CREATIVE_EMBEDDING = SPEC.role("creative_embedding")
NUM_CANDIDATES = SPEC.role("num_candidates")
PROPENSITY = SPEC.role("propensity")
EXPOSED_INDEX = SPEC.role("exposed_index")
AD_BID = SPEC.role("ad_bid")
CLICK = SPEC.label
LABEL = CLICK
TRUTH_CTR = SPEC.role("truth_ctr")
TRUTH_CAND_CTRS = SPEC.role("truth_cand_ctrs")

# The candidate list that carries each creative feature (the spec's "candidate_of").
CANDIDATE_OF: Dict[str, str] = SPEC.candidate_of()
CAND_CREATIVE_IDS = CANDIDATE_OF[CREATIVE_ID]
CAND_EMBEDDINGS = CANDIDATE_OF.get(CREATIVE_EMBEDDING)

# Size of the dense creative content embedding (a stand-in for image/text features); 0 without one.
CREATIVE_EMBEDDING_DIM = BY_NAME[CREATIVE_EMBEDDING].length if CREATIVE_EMBEDDING else 0

# The simulator's own column names (simulator/ writes them; the default spec declares them).
USER_GENDER = "user_gender"
USER_AGE_BUCKET = "user_age_bucket"
USER_CITY_TIER = "user_city_tier"
USER_DEVICE = "user_device"
USER_OS = "user_os"
USER_ACTIVITY_LEVEL = "user_activity_level"
USER_INCOME_BUCKET = "user_income_bucket"
USER_MEMBER_LEVEL = "user_member_level"
USER_PURCHASE_FREQ = "user_purchase_freq"
AD_ADVERTISER_ID = "ad_advertiser_id"
AD_BRAND_ID = "ad_brand_id"
AD_PRICE_BUCKET = "ad_price_bucket"
CREATIVE_STYLE = "creative_style"
CREATIVE_COLOR_TONE = "creative_color_tone"
CREATIVE_PRICE_TAG = "creative_price_tag"
CREATIVE_TEXT_LENGTH = "creative_text_length"
CAND_STYLES = "cand_styles"
CAND_COLOR_TONES = "cand_color_tones"
CAND_PRICE_TAGS = "cand_price_tags"
CAND_TEXT_LENGTHS = "cand_text_lengths"

# ----------------------------------------------------------------------------------------- value domains
# Human-readable names of the simulator's small categorical codes (code = index), from its spec's
# vocabularies. The simulator draws from these; reports use the names.
_SIM = SIMULATOR_SPEC.by_name
GENDERS = _SIM[USER_GENDER].vocabulary
AGE_BUCKETS = _SIM[USER_AGE_BUCKET].vocabulary
CITY_TIERS = _SIM[USER_CITY_TIER].vocabulary
DEVICES = _SIM[USER_DEVICE].vocabulary
OSES = _SIM[USER_OS].vocabulary
ACTIVITY_LEVELS = _SIM[USER_ACTIVITY_LEVEL].vocabulary
INCOME_BUCKETS = _SIM[USER_INCOME_BUCKET].vocabulary
MEMBER_LEVELS = _SIM[USER_MEMBER_LEVEL].vocabulary
PURCHASE_FREQS = _SIM[USER_PURCHASE_FREQ].vocabulary

NUM_AD_CATEGORIES = _SIM["ad_category"].domain
PRICE_BUCKETS = _SIM[AD_PRICE_BUCKET].vocabulary

CREATIVE_STYLES = _SIM[CREATIVE_STYLE].vocabulary
COLOR_TONES = _SIM[CREATIVE_COLOR_TONE].vocabulary
PRICE_TAGS = _SIM[CREATIVE_PRICE_TAG].vocabulary
TEXT_LENGTHS = _SIM[CREATIVE_TEXT_LENGTH].vocabulary

# ------------------------------------------------------------------------------------------- groups
_G_IDS = feature_specs.IDS
_G_USER = feature_specs.USER
_G_AD = feature_specs.AD
_G_AD_HISTORY = feature_specs.AD_HISTORY
_G_SEQUENCE = feature_specs.SEQUENCE
_G_CREATIVE = feature_specs.CREATIVE
_G_CANDIDATES = feature_specs.CANDIDATES
_G_LOGGING = feature_specs.LOGGING
_G_AUCTION = feature_specs.AUCTION
_G_LABEL = feature_specs.LABEL
_G_TRUTH = feature_specs.TRUTH

ID_FEATURES = SPEC.group(_G_IDS)
USER_FEATURES = SPEC.group(_G_USER)  # AR's rich user features (id included)
AD_FEATURES = SPEC.group(_G_AD)
AD_HISTORY_FEATURES = SPEC.group(_G_AD_HISTORY)
SEQUENCE_FEATURES = SPEC.group(_G_SEQUENCE)
CREATIVE_FEATURES = SPEC.group(_G_CREATIVE)
CANDIDATE_FEATURES = SPEC.group(_G_CANDIDATES)
LOGGING_FEATURES = SPEC.group(_G_LOGGING)
AUCTION_FEATURES = SPEC.group(_G_AUCTION)
TRUTH_FEATURES = SPEC.group(_G_TRUTH)

# CR's simple user features: a subset of the user group, no user id (CR scores M x N rows per request).
CR_USER_FEATURES = tuple(f.name for f in FEATURES if f.cr_user)
CR_AD_FEATURES = AD_FEATURES
# Creative categorical attributes (the id and the dense embedding excluded).
CREATIVE_ATTRIBUTES = tuple(n for n in CREATIVE_FEATURES if n not in (CREATIVE_ID, CREATIVE_EMBEDDING))

# Columns no model may read: the label, the truth, the logging metadata, the auction's bid, request
# bookkeeping and the candidate lists (offline evaluation only). A test checks that model inputs exclude all
# of them.
NON_MODEL_FEATURES = (
    (LABEL,) + TRUTH_FEATURES + LOGGING_FEATURES + AUCTION_FEATURES + ID_FEATURES + CANDIDATE_FEATURES
)

# ------------------------------------------------------------------------------------ serving contract
# Raw inputs of the two SavedModels' named-tensor signatures (TF Serving "inputs" / gRPC PredictRequest).
# Every input is batched along axis 0 (one row per ad for AR, per (ad, creative) for CR). User features
# may instead be sent once with batch 1; the model broadcasts them to every row.
# Sequence inputs are dense [batch, length] int64, right-padded with SEQUENCE_PAD (never a real value).
AR_SERVING_INPUTS = USER_FEATURES + AD_FEATURES + AD_HISTORY_FEATURES + SEQUENCE_FEATURES
CR_SERVING_INPUTS = CR_USER_FEATURES + CR_AD_FEATURES + ((AD_HIST_CTR,) if AD_HIST_CTR else ()) + CREATIVE_FEATURES
BROADCASTABLE_INPUTS = USER_FEATURES + SEQUENCE_FEATURES
SEQUENCE_PAD = -1
# A creative-aware ad ranker (ACR: the AR of Yang et al., AAAI 2024, Table 4, and of their no-CR / Pre-CR
# baselines) also reads the creative shown with each ad: one creative per ad row, its attributes and
# content embedding. A router finds out which contract an AR model has from its metadata (these inputs
# in its RAW_SIGNATURE), see serving.router.model_contract.
ACR_CREATIVE_INPUTS = CREATIVE_ATTRIBUTES + ((CREATIVE_EMBEDDING,) if CREATIVE_EMBEDDING else ())
ACR_SERVING_INPUTS = AR_SERVING_INPUTS + ACR_CREATIVE_INPUTS
# CACS's ad ranker (Lin et al., SIGIR 2022) reads the selected creative's vector from the selector's creative
# tower, whose inputs also hold the creative id: it takes the whole creative (the router sends the creative
# inputs the served AR's RAW_SIGNATURE lists).
CACS_AR_SERVING_INPUTS = AR_SERVING_INPUTS + CREATIVE_FEATURES

# Output names.
PCTR_AD = "pctr_ad"  # AR: predicted ad CTR per row
PCTR_C = "pctr_c"  # CR: predicted creative CTR per row
# The eval model (the Trainer's top-level SavedModel, read by the Evaluator) also scores each impression's
# candidate list with CR and outputs the top-1 candidate.
SELECTED_CREATIVE_ID = "selected_creative_id"
SELECTED_INDEX = "selected_index"

# Signature names.
RAW_SIGNATURE = "predict_raw"  # named raw tensors
SERVING_SIGNATURE = "serving_default"  # serialized tf.Example
# Further signatures of the comparison CRs (trainer.variants), beside the two above:
# the two-tower CR's towers alone (a serving system can precompute the creative vectors), and the bandit
# CRs' posterior mean (their RAW_SIGNATURE returns a Thompson sample).
CREATIVE_TOWER_SIGNATURE = "creative_tower"  # raw ad + creative features -> CREATIVE_VECTOR
USER_TOWER_SIGNATURE = "user_tower"  # raw CR user features -> USER_VECTOR
POSTERIOR_MEAN_SIGNATURE = "predict_mean"  # CR_SERVING_INPUTS -> PCTR_C, the posterior mean
# The two-tower CR from precomputed creative vectors: CR_USER_FEATURES (batch 1 or B) + CREATIVE_VECTOR [B, d]
# (the CREATIVE_TOWER_SIGNATURE's outputs, of the same model version) -> PCTR_C [B].
CREATIVE_VECTORS_SIGNATURE = "predict_from_creative_vectors"
CREATIVE_VECTOR = "creative_vector"
USER_VECTOR = "user_vector"

# Model names in the serving layout <serving_root>/{ar,cr}/<version>/.
AR_MODEL_NAME = "ar"
CR_MODEL_NAME = "cr"

# ------------------------------------------------------------------------------------------- splits
# The two splits of an impression log: the simulator's folders <data_dir>/{train,eval}/, ExampleGen's
# split names, and the Transform outputs (the last day is the evaluation split).
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"


# ------------------------------------------------------------------- GenCO: combinations of elements
# A second log, of multi-component creatives (Gu et al., 2025, GenCO): an ad's creative is a combination of
# one *element* per *component*; each ad has, per component, a pool of candidate elements (or lacks the
# component). One row per impression (one ad shown to one user)::
#
#     ids          request_id, day
#     user         user_id, gender, age bucket
#     ad           ad_id, ad_category
#     pools        per component c: genco_<c>_ids, genco_<c>_styles (the pool, in a fixed order; empty when the
#                  ad lacks c)
#     exposed      per component: genco_<c>_exposed, the index of the exposed element in the pool (-1: lacks c)
#     logging      per component genco_<c>_propensity (1 when it lacks c); genco_propensity, their product
#     label        click
#     truth        genco_truth_ctr (the exposed combination), genco_truth_oracle_ctr (the best combination),
#                  and what the true CTR of *any* combination of the pools needs: genco_truth_base_logit,
#                  genco_<c>_truth_logits (per candidate) and genco_truth_pair_logits (see
#                  simulator.combinations.truth)
#
# Models read the pools padded (or truncated) to GENCO_MAX_CANDIDATES per component, GENCO_PAD marking the
# padding (never an element id or a style).
GENCO_COMPONENTS = ("title", "image", "marketing", "highlight", "attribute", "structure_attribute")
GENCO_MAX_CANDIDATES = 15
GENCO_PAD = -1
# Observable style of an element (a stand-in for its content: layout, tone, wording).
GENCO_NUM_STYLES = 4
# Component pairs whose element styles interact in the simulator's truth; fixes the layout of
# GENCO_TRUTH_PAIR_LOGITS (pair-major, then the first element's style, then the second's).
GENCO_PAIRS = (("title", "image"), ("image", "marketing"), ("title", "highlight"), ("image", "attribute"),
               ("attribute", "structure_attribute"))
# Ad-category groups (ad_category % 5) of the figure of component importance by category.
GENCO_CATEGORY_GROUPS = ("phone", "computer", "wine", "clothing", "bedding")


def genco_name(component: str, field: str) -> str:
    """Column of ``field`` for ``component``: ``genco_name("image", "ids") == "genco_image_ids"``."""
    if component not in GENCO_COMPONENTS:
        raise ValueError(f"unknown GenCO component {component!r}; expected one of {GENCO_COMPONENTS}")
    return f"genco_{component}_{field}"


def _per_component(field: str) -> Dict[str, str]:
    return {c: genco_name(c, field) for c in GENCO_COMPONENTS}


GENCO_CAND_IDS = _per_component("ids")
GENCO_CAND_STYLES = _per_component("styles")
GENCO_EXPOSED = _per_component("exposed")
GENCO_COMPONENT_PROPENSITY = _per_component("propensity")
GENCO_TRUTH_LOGITS = _per_component("truth_logits")
GENCO_PROPENSITY = "genco_propensity"
GENCO_TRUTH_CTR = "genco_truth_ctr"
GENCO_TRUTH_ORACLE_CTR = "genco_truth_oracle_ctr"
GENCO_TRUTH_BASE_LOGIT = "genco_truth_base_logit"
GENCO_TRUTH_PAIR_LOGITS = "genco_truth_pair_logits"

_G_GENCO_POOLS = "genco_pools"
_G_GENCO_EXPOSED = "genco_exposed"
_G_GENCO_LOGGING = "genco_logging"
_G_GENCO_TRUTH = "genco_truth"

GENCO_FEATURES: Tuple[Feature, ...] = (
    tuple(_SIM[n] for n in ("request_id", "day", "user_id", USER_GENDER, USER_AGE_BUCKET, "ad_id", "ad_category"))
    + tuple(f for c in GENCO_COMPONENTS for f in (
        Feature(GENCO_CAND_IDS[c], INT, VARLEN, _G_GENCO_POOLS),
        Feature(GENCO_CAND_STYLES[c], INT, VARLEN, _G_GENCO_POOLS, domain=GENCO_NUM_STYLES)))
    + tuple(Feature(GENCO_EXPOSED[c], INT, SCALAR, _G_GENCO_EXPOSED) for c in GENCO_COMPONENTS)
    + tuple(Feature(GENCO_COMPONENT_PROPENSITY[c], FLOAT, SCALAR, _G_GENCO_LOGGING) for c in GENCO_COMPONENTS)
    + (Feature(GENCO_PROPENSITY, FLOAT, SCALAR, _G_GENCO_LOGGING), _SIM["click"],
       Feature(GENCO_TRUTH_CTR, FLOAT, SCALAR, _G_GENCO_TRUTH),
       Feature(GENCO_TRUTH_ORACLE_CTR, FLOAT, SCALAR, _G_GENCO_TRUTH),
       Feature(GENCO_TRUTH_BASE_LOGIT, FLOAT, SCALAR, _G_GENCO_TRUTH))
    + tuple(Feature(GENCO_TRUTH_LOGITS[c], FLOAT, VARLEN, _G_GENCO_TRUTH) for c in GENCO_COMPONENTS)
    + (Feature(GENCO_TRUTH_PAIR_LOGITS, FLOAT, FIXED, _G_GENCO_TRUTH,
               length=len(GENCO_PAIRS) * GENCO_NUM_STYLES * GENCO_NUM_STYLES),)
)
GENCO_BY_NAME: Dict[str, Feature] = {f.name: f for f in GENCO_FEATURES}
GENCO_TRUTH_FEATURES = tuple(f.name for f in GENCO_FEATURES if f.group == _G_GENCO_TRUTH)
GENCO_LOGGING_FEATURES = tuple(f.name for f in GENCO_FEATURES if f.group == _G_GENCO_LOGGING)

# The GenCO SavedModel's raw signature (features.RAW_SIGNATURE): one row per ad; the user features may have
# batch 1 (broadcast). Each pool is a dense int64 [B, W] (W <= GENCO_MAX_CANDIDATES) of element ids and one of
# their styles, right-padded with GENCO_PAD; a row of pads means the ad lacks the component.
GENCO_USER_FEATURES = ("user_id", USER_GENDER, USER_AGE_BUCKET)  # the simulator's names, whatever the spec
GENCO_AD_FEATURES = ("ad_id", "ad_category")
GENCO_SERVING_INPUTS = (GENCO_USER_FEATURES + GENCO_AD_FEATURES
                        + tuple(n for c in GENCO_COMPONENTS for n in (GENCO_CAND_IDS[c], GENCO_CAND_STYLES[c])))
# Outputs: the chosen element of every component (index into the pool and id; -1 when the ad lacks it), the
# reward model's CTR of the chosen combination; the evaluation model adds the reward model's CTR of the logged
# combination and the multi-instance attention weight of each logged element.
GENCO_CHOSEN_INDEX = _per_component("chosen_index")
GENCO_CHOSEN_ID = _per_component("chosen_id")
GENCO_SCORE = "genco_score"
GENCO_LOGGED_PCTR = "genco_logged_pctr"
GENCO_WEIGHT = _per_component("weight")
GENCO_MODEL_NAME = "genco"


def _parse_spec(f: Feature):
    import tensorflow as tf  # local import: the spec module itself needs no TF

    dtype = tf.int64 if f.dtype == INT else tf.float32
    if f.kind == SCALAR:
        return tf.io.FixedLenFeature([], dtype)
    if f.kind == FIXED:
        return tf.io.FixedLenFeature([f.length], dtype)
    return tf.io.VarLenFeature(dtype)


def raw_feature_spec(names=None) -> dict:
    """``tf.io.parse_example`` spec for ``names`` (default: every feature)."""
    return {name: _parse_spec(BY_NAME[name]) for name in names or BY_NAME}


def genco_raw_feature_spec(names=None) -> dict:
    """``tf.io.parse_example`` spec of the GenCO log for ``names`` (default: every GenCO feature)."""
    return {name: _parse_spec(GENCO_BY_NAME[name]) for name in names or GENCO_BY_NAME}
