"""Feature specs: the columns of an impression log declared as data, loaded and checked here.

A spec is a JSON file (``simulator.json`` beside this module is the default: the simulator's log) that
declares every column once::

    {"name": "my_logs",
     "features": [
       {"name": "ad_id", "dtype": "int64", "kind": "scalar", "group": "ad", "role": "ad_id",
        "id_vocabulary": {"top_k": 100000, "min_count": 1, "oov_buckets": 50}},
       {"name": "creative_id", "dtype": "int64", "kind": "scalar", "group": "creative", "role": "creative_id",
        "id_vocabulary": {"top_k": 500000, "min_count": 2, "oov_buckets": 50}},
       {"name": "cand_creative_ids", "dtype": "int64", "kind": "varlen", "group": "candidates",
        "candidate_of": "creative_id", "non_empty": true},
       {"name": "click", "dtype": "int64", "kind": "scalar", "group": "label", "domain": 2},
       ...],
     "ar_crosses": [["user_gender", "ad_category"]]}

Per feature:

* ``name``: the ``tf.Example`` key; ``dtype``: ``int64`` or ``float32``; ``kind``: ``scalar`` (one value),
  ``varlen`` (a list of any length) or ``fixed`` (exactly ``length`` values).
* ``group``: one of :data:`GROUPS` (what the column is for; see BUILD.md, "Your own logs").
* ``role`` (optional): what the pipeline's code must know a column *is* (one of :data:`ROLES`), e.g. which
  ad feature is the ad id. A role belongs to one group and is given to at most one feature.
* ``cr_user`` (user group): the creative ranker reads it too (CR scores every creative of every ad, so it
  reads a few cheap user features; the ad ranker reads them all).
* ``vocabulary`` (names of the codes ``0..n-1``) or ``domain`` (``n``): an int64 categorical code in
  ``[0, n)``. ``id_vocabulary``: an open-vocabulary id kept in a bounded vocabulary of the ``top_k`` ids
  seen at least ``min_count`` times, the others hashed into ``oov_buckets`` extra rows.
* ``range``: ``[min, max]`` of a float32 column (e.g. a probability).
* ``candidate_of`` (candidates group): the creative feature this list carries for every candidate of the ad,
  in one fixed order shared by every list (entry ``k`` of each list is candidate ``k``; a ``fixed`` creative
  feature of ``length`` L is flattened row-major, L values per candidate).
* ``non_empty`` (lists): at least one value on every example.

``ar_crosses`` lists pairs of categorical codes the ad ranker crosses exactly.

:func:`load` reads and validates a spec (every error names the feature and the problem);
:func:`selected_path` says which spec this process uses (``$ADCR_FEATURE_SPEC``, else the default).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

INT = "int64"
FLOAT = "float32"
DTYPES = (INT, FLOAT)

# Scalar: exactly one value per example. VarLen: a list of any length (possibly empty for sequences).
# Fixed: a list of exactly `length` values.
SCALAR = "scalar"
VARLEN = "varlen"
FIXED = "fixed"
KINDS = (SCALAR, VARLEN, FIXED)

IDS, USER, AD, AD_HISTORY, SEQUENCE, CREATIVE, CANDIDATES, LOGGING, AUCTION, LABEL, TRUTH = (
    "ids", "user", "ad", "ad_history", "sequence", "creative", "candidates", "logging", "auction", "label",
    "truth")
GROUPS = (IDS, USER, AD, AD_HISTORY, SEQUENCE, CREATIVE, CANDIDATES, LOGGING, AUCTION, LABEL, TRUTH)

# role -> the group its feature must be in, and what it is (for error messages).
ROLES: Dict[str, Tuple[str, str]] = {
    "request_id": (IDS, "the request an impression belongs to"),
    "day": (IDS, "the day of the impression (the last day is the evaluation split)"),
    "slot": (IDS, "the ad slot of the impression"),
    "user_id": (USER, "the user id"),
    "ad_id": (AD, "the ad id"),
    "ad_category": (AD, "the ad's category code (sequence items are matched against it)"),
    "ad_hist_ctr": (AD_HISTORY, "the ad's historical CTR (CR's online stand-in for the predicted ad CTR)"),
    "ad_hist_imps": (AD_HISTORY, "the ad's historical impression count"),
    "seq_ad_ids": (SEQUENCE, "the ad ids of the user's recent behaviour, newest last"),
    "seq_ad_categories": (SEQUENCE, "the categories of those ads"),
    "creative_id": (CREATIVE, "the exposed creative's id"),
    "creative_embedding": (CREATIVE, "the exposed creative's dense content embedding"),
    "num_candidates": (CANDIDATES, "the number of candidate creatives of the ad"),
    "propensity": (LOGGING, "the logging policy's probability of the exposed creative"),
    "exposed_index": (LOGGING, "the exposed creative's index among the candidates"),
    "ad_bid": (AUCTION, "the ad's cost-per-click bid"),
    "truth_ctr": (TRUTH, "the true click probability of the exposed creative"),
    "truth_cand_ctrs": (TRUTH, "the true click probability of every candidate"),
}
# Roles every spec must give: without them there is nothing to rank or learn from.
REQUIRED_ROLES = ("ad_id", "creative_id")

_KEYS = {"name", "dtype", "kind", "length", "group", "role", "cr_user", "vocabulary", "domain", "id_vocabulary",
         "range", "candidate_of", "non_empty", "description"}
_ID_VOCABULARY_KEYS = {"top_k", "min_count", "oov_buckets"}

DEFAULT_SPEC = "simulator"
ENV_VAR = "ADCR_FEATURE_SPEC"
_HERE = os.path.dirname(os.path.abspath(__file__))


class FeatureSpecError(ValueError):
    """A spec that cannot describe an impression log; the message names the feature and the problem."""


@dataclasses.dataclass(frozen=True)
class IdVocabulary:
    """How an open-vocabulary id is bounded: ``top_k`` ids seen ``min_count`` times, ``oov_buckets`` more."""

    top_k: int
    min_count: int
    oov_buckets: int


@dataclasses.dataclass(frozen=True)
class Feature:
    """One column of the impression log.

    Attributes:
      name: the tf.Example key.
      dtype: ``"int64"`` or ``"float32"``.
      kind: ``"scalar"``, ``"varlen"`` or ``"fixed"``.
      group: which group it belongs to (:data:`GROUPS`).
      length: number of values for ``"fixed"`` features.
      domain: for small categorical features, the number of valid codes ``[0, domain)``;
        ``None`` for ids (open vocabulary) and numbers.
      role: what the code knows the column as (:data:`ROLES`), if anything.
      cr_user: a user feature the creative ranker reads too.
      vocabulary: the names of the codes ``0..domain-1``, when declared.
      id_vocabulary: how an open-vocabulary id is bounded.
      value_range: ``(min, max)`` of a float column.
      candidate_of: the creative feature a candidate list carries.
      non_empty: a list with at least one value on every example.
    """

    name: str
    dtype: str
    kind: str
    group: str
    length: Optional[int] = None
    domain: Optional[int] = None
    role: Optional[str] = None
    cr_user: bool = False
    vocabulary: Optional[Tuple[str, ...]] = None
    id_vocabulary: Optional[IdVocabulary] = None
    value_range: Optional[Tuple[float, float]] = None
    candidate_of: Optional[str] = None
    non_empty: bool = False


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """A validated spec: the features in file order, and the AR crosses."""

    name: str
    features: Tuple[Feature, ...]
    ar_crosses: Tuple[Tuple[str, str], ...] = ()
    source: str = ""  # where it was read from, for messages

    @property
    def by_name(self) -> Dict[str, Feature]:
        return {f.name: f for f in self.features}

    def group(self, group: str) -> Tuple[str, ...]:
        """Names of the features of ``group``, in spec order (empty for an absent optional group)."""
        return tuple(f.name for f in self.features if f.group == group)

    def role(self, role: str) -> Optional[str]:
        """Name of the feature with ``role``, or ``None`` when the spec has none."""
        return next((f.name for f in self.features if f.role == role), None)

    @property
    def label(self) -> str:
        return self.group(LABEL)[0]

    def candidate_of(self) -> Dict[str, str]:
        """Creative feature -> the candidate list that carries it, in creative-group order."""
        lists = {f.candidate_of: f.name for f in self.features if f.candidate_of}
        return {name: lists[name] for name in self.group(CREATIVE)}

    def fingerprint(self) -> str:
        """A digest of the features and crosses (not of the file's formatting): equal specs, equal digests."""
        body = json.dumps([[dataclasses.asdict(f) for f in self.features], self.ar_crosses], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ loading
def resolve(spec: str) -> str:
    """A spec's file: a path, or the name of a spec shipped here (``"simulator"``)."""
    shipped = os.path.join(_HERE, f"{spec}.json")
    if os.sep not in spec and not spec.endswith((".json", ".yaml", ".yml")) and os.path.exists(shipped):
        return shipped
    if not os.path.exists(spec):
        raise FeatureSpecError(f"feature spec {spec!r}: no such file (nor a shipped spec: {shipped_specs()})")
    return spec


def shipped_specs() -> List[str]:
    return sorted(n[:-5] for n in os.listdir(_HERE) if n.endswith(".json"))


def selected_path(environ: Mapping[str, str] = os.environ) -> str:
    """The spec this process uses: ``$ADCR_FEATURE_SPEC`` (a path or a shipped name), else the default."""
    return resolve(environ.get(ENV_VAR) or DEFAULT_SPEC)


def load(spec: str) -> FeatureSpec:
    """Reads and validates a spec file (JSON, or YAML by its extension) or a shipped spec by name."""
    path = resolve(spec)
    with open(path) as f:
        text = f.read()
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise FeatureSpecError(f"feature spec {path}: not valid {'YAML' if path.endswith('l') else 'JSON'}: {e}")
    return from_dict(data, source=path)


def from_dict(data: Any, source: str = "<dict>") -> FeatureSpec:
    """Validates a parsed spec (see the module docstring) and returns it."""
    def fail(message: str):
        raise FeatureSpecError(f"feature spec {source}: {message}")

    if not isinstance(data, dict) or not isinstance(data.get("features"), list) or not data["features"]:
        fail('expected an object with a non-empty list "features"')
    unknown_top = sorted(set(data) - {"name", "description", "features", "ar_crosses"})
    if unknown_top:
        fail(f"unknown key(s) {unknown_top}")
    features = []
    seen: Dict[str, int] = {}
    for i, entry in enumerate(data["features"]):
        f = _feature(entry, i, fail)
        if f.name in seen:
            fail(f"feature {f.name!r} is declared twice (entries {seen[f.name]} and {i})")
        seen[f.name] = i
        features.append(f)
    crosses = tuple(tuple(c) for c in data.get("ar_crosses", ()))
    spec = FeatureSpec(str(data.get("name", os.path.basename(source))), tuple(features), crosses, source)
    _check(spec, fail)
    return spec


def _feature(entry: Any, i: int, fail) -> Feature:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        fail(f"features[{i}] needs a non-empty string \"name\"")
    name = entry["name"]

    def bad(message: str):
        fail(f"feature {name!r}: {message}")

    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        bad(f"unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    for key in ("dtype", "kind", "group"):
        if key not in entry:
            bad(f'missing "{key}"')
    dtype, kind, group = entry["dtype"], entry["kind"], entry["group"]
    if dtype not in DTYPES:
        bad(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if kind not in KINDS:
        bad(f"unknown kind {kind!r}; expected one of {KINDS}")
    if group not in GROUPS:
        bad(f"unknown group {group!r}; expected one of {GROUPS}")
    length = entry.get("length")
    if kind == FIXED and not (isinstance(length, int) and length > 0):
        bad(f'kind "fixed" needs a positive integer "length", got {length!r}')
    if kind != FIXED and length is not None:
        bad(f'"length" is only for kind "fixed", not {kind!r}')
    role = entry.get("role")
    if role is not None:
        if role not in ROLES:
            bad(f"unknown role {role!r}; expected one of {sorted(ROLES)}")
        if ROLES[role][0] != group:
            bad(f"role {role!r} ({ROLES[role][1]}) belongs to group {ROLES[role][0]!r}, not {group!r}")
    vocabulary = entry.get("vocabulary")
    domain = entry.get("domain")
    if vocabulary is not None:
        if not isinstance(vocabulary, list) or not vocabulary or not all(isinstance(v, str) for v in vocabulary):
            bad('"vocabulary" must be a non-empty list of names (of codes 0, 1, ...)')
        if len(set(vocabulary)) != len(vocabulary):
            bad('"vocabulary" names a code twice')
        if domain is not None and domain != len(vocabulary):
            bad(f'"domain" {domain} disagrees with the {len(vocabulary)} names of "vocabulary"')
        domain = len(vocabulary)
        vocabulary = tuple(vocabulary)
    if domain is not None:
        if dtype != INT or isinstance(domain, bool) or not isinstance(domain, int) or domain < 1:
            bad(f"a categorical domain needs dtype int64 and a positive integer size, got {dtype} / {domain!r}")
    id_vocabulary = entry.get("id_vocabulary")
    if id_vocabulary is not None:
        if dtype != INT or domain is not None:
            bad('"id_vocabulary" is for int64 open-vocabulary ids (no "domain" / "vocabulary")')
        if (not isinstance(id_vocabulary, dict) or set(id_vocabulary) != _ID_VOCABULARY_KEYS
                or not all(isinstance(v, int) and v >= 1 for v in id_vocabulary.values())):
            bad(f'"id_vocabulary" needs positive integers {sorted(_ID_VOCABULARY_KEYS)}, got {id_vocabulary!r}')
        id_vocabulary = IdVocabulary(**id_vocabulary)
    value_range = entry.get("range")
    if value_range is not None:
        if (dtype != FLOAT or not isinstance(value_range, list) or len(value_range) != 2
                or not all(isinstance(v, (int, float)) for v in value_range) or value_range[0] > value_range[1]):
            bad(f'"range" is [min, max] with min <= max of a float32 column, got {value_range!r} ({dtype})')
        value_range = (float(value_range[0]), float(value_range[1]))
    cr_user = entry.get("cr_user", False)
    if cr_user and group != USER:
        bad(f'"cr_user" marks user features the creative ranker reads; this one is in group {group!r}')
    candidate_of = entry.get("candidate_of")
    if candidate_of is not None and group != CANDIDATES:
        bad(f'"candidate_of" is for candidate lists (group "candidates"), not group {group!r}')
    non_empty = entry.get("non_empty", False)
    if non_empty and kind == SCALAR:
        bad('"non_empty" is for lists; a scalar always has its one value')
    return Feature(name, dtype, kind, group, length, domain, role, bool(cr_user), vocabulary, id_vocabulary,
                   value_range, candidate_of, bool(non_empty))


def _check(spec: FeatureSpec, fail) -> None:
    """Checks across features: roles, required groups, parallel candidate lists, crosses."""
    by_name = spec.by_name
    roles: Dict[str, str] = {}
    for f in spec.features:
        if f.role:
            if f.role in roles:
                fail(f"features {roles[f.role]!r} and {f.name!r} both have role {f.role!r}")
            roles[f.role] = f.name
    for role in REQUIRED_ROLES:
        if role not in roles:
            group, what = ROLES[role]
            fail(f'no feature has the required role {role!r} ({what}; group "{group}")')
    for role in ("ad_id", "creative_id"):
        f = by_name[roles[role]]
        if f.dtype != INT or f.kind != SCALAR:
            fail(f"feature {f.name!r} (role {role!r}) must be an int64 scalar, got {f.dtype} {f.kind}")
    for role in ("ad_id", "creative_id"):
        if by_name[roles[role]].id_vocabulary is None:
            fail(f'feature {roles[role]!r} (role {role!r}) needs an "id_vocabulary": it is embedded, and candidate '
                 'lists and sequences share its table')
    for f in spec.features:
        if (f.group in (USER, AD, CREATIVE) and f.dtype == INT and f.kind == SCALAR and f.domain is None
                and f.id_vocabulary is None):
            fail(f'feature {f.name!r} (an int64 model input of group {f.group!r}) needs "vocabulary" / "domain" '
                 '(a small code) or "id_vocabulary" (an open-vocabulary id)')
    for f in spec.features:
        if f.group in (USER, AD, CREATIVE) and not (f.dtype == INT and f.kind == SCALAR) \
                and f.role != "creative_embedding":
            fail(f"feature {f.name!r}: group {f.group!r} holds int64 scalars (codes or ids); the one dense feature "
                 "models read is the creative's content embedding (role 'creative_embedding')")
    emb = roles.get("creative_embedding")
    if emb is not None and (by_name[emb].dtype != FLOAT or by_name[emb].kind != FIXED):
        fail(f"feature {emb!r} (role 'creative_embedding') must be float32 of kind \"fixed\" with its \"length\"")
    for group, allowed in ((AD_HISTORY, ("ad_hist_ctr", "ad_hist_imps")),
                           (SEQUENCE, ("seq_ad_ids", "seq_ad_categories"))):
        for name in spec.group(group):
            if by_name[name].role not in allowed:
                fail(f"feature {name!r}: the {group!r} group is read by role; give it one of {list(allowed)}")
    if spec.group(SEQUENCE):
        for role in ("seq_ad_ids", "seq_ad_categories", "ad_category"):
            if role not in roles:
                fail(f"a sequence needs a feature with role {role!r} ({ROLES[role][1]}); got "
                     f"{list(spec.group(SEQUENCE))}")
        ids, cats, ad_cat = (by_name[roles[r]] for r in ("seq_ad_ids", "seq_ad_categories", "ad_category"))
        for f in (ids, cats):
            if f.dtype != INT or f.kind != VARLEN:
                fail(f"feature {f.name!r}: a sequence is an int64 varlen list (newest last), got {f.dtype} {f.kind}")
        if ad_cat.domain is None or cats.domain != ad_cat.domain:
            fail(f"feature {cats.name!r}: its domain ({cats.domain}) must be that of the ad category "
                 f"{ad_cat.name!r} ({ad_cat.domain}): items are matched against the candidate ad's category")
    hist_imps = roles.get("ad_hist_imps")
    if hist_imps is not None and (by_name[hist_imps].kind != SCALAR):
        fail(f"feature {hist_imps!r} (role 'ad_hist_imps') must be a scalar")
    labels = spec.group(LABEL)
    if len(labels) != 1:
        fail(f'exactly one feature must be in group "label" (the click), got {list(labels) or "none"}')
    label = by_name[labels[0]]
    if label.dtype != INT or label.kind != SCALAR or label.domain != 2:
        fail(f"feature {label.name!r} (the label) must be an int64 scalar with domain 2 (no click / click)")
    for f in spec.features:
        if f.cr_user and f.role == "user_id":
            fail(f"feature {f.name!r}: the user id cannot be a CR user feature (CR has no user-id embedding)")
    # Candidate lists parallel the creative features.
    lists: Dict[str, str] = {}
    for f in spec.features:
        if f.group != CANDIDATES or f.role == "num_candidates":
            continue
        if f.candidate_of is None:
            fail(f'feature {f.name!r}: a candidate list needs "candidate_of" (the creative feature it carries)')
        target = by_name.get(f.candidate_of)
        if target is None or target.group != CREATIVE:
            fail(f"feature {f.name!r}: candidate_of {f.candidate_of!r} is not a feature of group \"creative\"")
        if f.candidate_of in lists:
            fail(f"features {lists[f.candidate_of]!r} and {f.name!r} both carry creative feature {f.candidate_of!r}")
        lists[f.candidate_of] = f.name
        if f.kind != VARLEN:
            fail(f"feature {f.name!r}: a candidate list is kind \"varlen\" (one entry per candidate), not {f.kind!r}")
        if f.dtype != target.dtype:
            fail(f"feature {f.name!r} does not parallel {target.name!r}: dtype {f.dtype} vs {target.dtype}")
        if f.domain != target.domain:
            fail(f"feature {f.name!r} does not parallel {target.name!r}: domain {f.domain} vs {target.domain}")
        if target.kind == VARLEN:
            fail(f"feature {f.name!r}: creative feature {target.name!r} is a list of any length; a candidate list "
                 "can only carry scalar or fixed creative features")
    for name in spec.group(CREATIVE):
        if name not in lists:
            fail(f"creative feature {name!r} has no candidate list (a candidates-group feature with "
                 f'"candidate_of": "{name}"): every candidate must be described like the exposed creative')
    num = roles.get("num_candidates")
    if num is not None and (by_name[num].dtype != INT or by_name[num].kind != SCALAR):
        fail(f"feature {num!r} (role 'num_candidates') must be an int64 scalar")
    for role in ("propensity", "truth_ctr", "ad_hist_ctr"):
        name = roles.get(role)
        if name is not None and (by_name[name].dtype != FLOAT or by_name[name].kind != SCALAR):
            fail(f"feature {name!r} (role {role!r}) must be a float32 scalar")
    truth_lists = roles.get("truth_cand_ctrs")
    if truth_lists is not None and (by_name[truth_lists].dtype != FLOAT or by_name[truth_lists].kind != VARLEN):
        fail(f"feature {truth_lists!r} (role 'truth_cand_ctrs') must be a float32 varlen list (one per candidate)")
    for pair in spec.ar_crosses:
        if len(pair) != 2:
            fail(f"ar_crosses entry {list(pair)} must be a pair of feature names")
        for name in pair:
            f = by_name.get(name)
            if f is None or f.domain is None or f.kind != SCALAR or f.group not in (USER, AD, CREATIVE):
                fail(f"ar_crosses {list(pair)}: {name!r} is not a categorical scalar of the user or ad group")
            if f.group == CREATIVE:
                fail(f"ar_crosses {list(pair)}: {name!r} is a creative feature; the ad ranker never reads those")


# ------------------------------------------------------------------------------ one spec per pipeline run
# The pipeline records its spec in the Transform and Trainer custom_config under this key; their user code
# (which may run in other processes or containers) checks that it follows the same one.
CUSTOM_CONFIG_KEY = "feature_spec"


def pipeline_record(spec: FeatureSpec) -> Dict[str, str]:
    """What a component's custom_config carries about the run's spec: enough to recognise it."""
    return {"name": spec.name, "fingerprint": spec.fingerprint(), "source": spec.source}


def check_same_spec(custom_config: Optional[Mapping[str, Any]], spec: FeatureSpec, where: str) -> None:
    """Raises if the pipeline was built for another spec than ``spec`` (the one this process loaded).

    Without a record (a pipeline built before specs were recorded, or a direct call) nothing is checked.
    """
    record = (custom_config or {}).get(CUSTOM_CONFIG_KEY)
    if not record or record.get("fingerprint") == spec.fingerprint():
        return
    raise FeatureSpecError(
        f"{where} follows feature spec {spec.name!r} ({spec.source}), but the pipeline was built for "
        f"{record.get('name')!r} (fingerprint {record.get('fingerprint')}, compiled from {record.get('source')}): "
        f"start every process of the run with {ENV_VAR} naming that spec's file as this machine sees it (the "
        "local runner's --feature-spec does this; in a container image, its FEATURE_SPEC build argument)")
