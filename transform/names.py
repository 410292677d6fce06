"""Names, sizes and groups of the transformed features: the contract between Transform and the trainer.

Every transformed name is derived here from a raw name in :mod:`features` (``xf(F.AD_ID) == "ad_id_xf"``),
so no other module spells one. The groups say which transformed features each model reads:

* :data:`AR_CATEGORICAL`, :data:`AR_NUMERIC`, :data:`AR_SEQUENCE`: the ad ranker's inputs;
* :data:`CR_CATEGORICAL`, :data:`CR_DENSE`, :data:`AD_HIST_CTR_CLIPPED`: the creative ranker's inputs. The
  last is CR's pctr input *online and in evaluation*: the ad's historical CTR clipped to [0, 1], not a
  prediction (in training, variant ``"jac"`` feeds AR's predicted pctr_ad there instead);
* :data:`CANDIDATE_INPUTS`: the candidate lists, mapped like the exposed creative, read only by the
  evaluation model to score every candidate with CR;
* :data:`LABEL_KEY`: the click, for training only.

:data:`SOURCES` records the raw features each output is computed from. The preprocessing function is
written so that every AR input depends only on :data:`features.AR_SERVING_INPUTS` and every CR input only
on :data:`features.CR_SERVING_INPUTS`; that is what lets each serving model apply the one Transform graph
to its own raw inputs alone (tf.Transform drops the outputs whose inputs were not fed).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Tuple

import features as F

SUFFIX = "_xf"


def xf(name: str, detail: str = "") -> str:
    """Transformed name of raw feature ``name`` (with an optional ``detail`` such as ``"z"``)."""
    return f"{name}_{detail}{SUFFIX}" if detail else f"{name}{SUFFIX}"


# ------------------------------------------------------------------------------------------ constants
# Behaviour sequence: the newest SEQUENCE_LENGTH items, newest first, zero-padded, with a 0/1 mask.
SEQUENCE_LENGTH = 20


@dataclasses.dataclass(frozen=True)
class IdVocabulary:
    """A bounded vocabulary for a high-cardinality id.

    Ids outside the ``top_k`` most frequent, or seen fewer than ``frequency_threshold`` times, map to
    one of ``num_oov_buckets`` extra indices (``id mod num_oov_buckets``), so the embedding table has
    ``min(top_k, #frequent ids) + num_oov_buckets`` rows whatever the id space.
    """

    feature: str
    top_k: int
    frequency_threshold: int
    num_oov_buckets: int

    @property
    def filename(self) -> str:
        return f"vocab_{self.feature}"


# Every id the spec bounds with an "id_vocabulary", in spec order.
ID_VOCABULARIES: Dict[str, IdVocabulary] = {
    f.name: IdVocabulary(f.name, top_k=f.id_vocabulary.top_k, frequency_threshold=f.id_vocabulary.min_count,
                         num_oov_buckets=f.id_vocabulary.oov_buckets)
    for f in F.FEATURES if f.id_vocabulary is not None
}

# Small categorical codes keep their known domain [0, d); anything else maps to the extra code d.
CODE_FEATURES: Tuple[str, ...] = tuple(
    f.name
    for f in F.FEATURES
    if f.domain is not None and f.kind == F.SCALAR and f.name in set(F.USER_FEATURES + F.AD_FEATURES + F.CREATIVE_FEATURES)
)


def code_cardinality(raw_name: str) -> int:
    """Embedding rows for a small code: its domain plus one out-of-domain code."""
    return F.BY_NAME[raw_name].domain + 1


# Exact crosses of two small codes for AR: index = a * card(b) + b (no hashing needed, no collisions).
CROSSES: Tuple[Tuple[str, str], ...] = F.SPEC.ar_crosses


def cross_name(a: str, b: str) -> str:
    return xf(f"{a}_x_{b}")


# ------------------------------------------------------------------------------------ transformed names
LABEL_KEY = xf(F.LABEL)


def _xf(name, detail: str = ""):
    """:func:`xf`, or ``None`` for a column the spec does not have (an optional group left out)."""
    return xf(name, detail) if name else None


# Optional groups: a spec without them gets no such outputs, and the groups below leave them out.
HAS_SEQUENCE = F.SEQ_AD_IDS is not None  # the spec then also has its categories and the ad category
HAS_CREATIVE_EMBEDDING = F.CREATIVE_EMBEDDING is not None

AD_HIST_CTR_Z = _xf(F.AD_HIST_CTR, "z")
AD_HIST_IMPS_LOG_Z = _xf(F.AD_HIST_IMPS, "log_z")
# CR's pctr input online (and in evaluation, and for variant "cr"): the raw historical ad CTR clipped to
# [0, 1], quantized inside the model (eq. 5). Not a prediction: in JAC training AR's pctr_ad takes its place.
AD_HIST_CTR_CLIPPED = _xf(F.AD_HIST_CTR)

SEQ_AD_IDS = _xf(F.SEQ_AD_IDS)
SEQ_AD_CATEGORIES = _xf(F.SEQ_AD_CATEGORIES)
SEQ_MASK = _xf(F.SEQ_AD_IDS, "mask")
# How many of the user's (windowed) sequence items share the candidate ad's category: 0..SEQUENCE_LENGTH,
# as a code, and as a share of the sequence (a dense input a linear part can use from the first step).
SEQ_CATEGORY_MATCHES = _xf(F.SEQ_AD_CATEGORIES, "matches")
SEQ_CATEGORY_SHARE = _xf(F.SEQ_AD_CATEGORIES, "share")
# Windowed sequence length / SEQUENCE_LENGTH: how much history the user has.
SEQ_LENGTH_FRACTION = _xf(F.SEQ_AD_IDS, "length")

CREATIVE_EMBEDDING = _xf(F.CREATIVE_EMBEDDING)


def _present(*names) -> Tuple[str, ...]:
    return tuple(n for n in names if n is not None)


# ---------------------------------------------------------------------------------------------- groups
_AR_IDS = tuple(n for n in F.USER_FEATURES + F.AD_FEATURES if n in ID_VOCABULARIES)
_AR_CODES = tuple(n for n in F.USER_FEATURES + F.AD_FEATURES if n in CODE_FEATURES)

AR_CATEGORICAL: Tuple[str, ...] = (
    tuple(xf(n) for n in _AR_IDS + _AR_CODES)
    + tuple(cross_name(a, b) for a, b in CROSSES)
    + _present(SEQ_CATEGORY_MATCHES)
)
AR_NUMERIC: Tuple[str, ...] = _present(AD_HIST_CTR_Z, AD_HIST_IMPS_LOG_Z, SEQ_CATEGORY_SHARE, SEQ_LENGTH_FRACTION)
# Empty without a sequence group: the ad ranker then has no behaviour-sequence part.
AR_SEQUENCE: Tuple[str, ...] = _present(SEQ_AD_IDS, SEQ_AD_CATEGORIES, SEQ_MASK)
# The sequence items share the embedding tables of the candidate ad's id and category.
SEQUENCE_TABLE_OF = {SEQ_AD_IDS: xf(F.AD_ID), SEQ_AD_CATEGORIES: xf(F.AD_CATEGORY)} if HAS_SEQUENCE else {}

CR_USER_CATEGORICAL: Tuple[str, ...] = tuple(xf(n) for n in F.CR_USER_FEATURES)
CR_AD_CATEGORICAL: Tuple[str, ...] = tuple(xf(n) for n in F.CR_AD_FEATURES)
CR_CREATIVE_CATEGORICAL: Tuple[str, ...] = tuple(xf(n) for n in (F.CREATIVE_ID,) + F.CREATIVE_ATTRIBUTES)
CR_CATEGORICAL: Tuple[str, ...] = CR_USER_CATEGORICAL + CR_AD_CATEGORICAL + CR_CREATIVE_CATEGORICAL
# Empty without a content embedding: the creative ranker then reads categorical features only.
CR_DENSE: Tuple[str, ...] = _present(CREATIVE_EMBEDDING)
DENSE_WIDTHS = {CREATIVE_EMBEDDING: F.CREATIVE_EMBEDDING_DIM} if HAS_CREATIVE_EMBEDDING else {}

AR_INPUTS: Tuple[str, ...] = AR_CATEGORICAL + AR_NUMERIC + AR_SEQUENCE
CR_INPUTS: Tuple[str, ...] = CR_CATEGORICAL + CR_DENSE + _present(AD_HIST_CTR_CLIPPED)

# Candidate lists, each mapped exactly like the exposed creative's feature (same vocabulary / domain).
CANDIDATE_INPUTS: Dict[str, str] = {xf(F.CANDIDATE_OF[n]): xf(n) for n in (F.CREATIVE_ID,) + F.CREATIVE_ATTRIBUTES}
CANDIDATE_EMBEDDINGS = _xf(F.CAND_EMBEDDINGS)
if CANDIDATE_EMBEDDINGS:
    CANDIDATE_INPUTS[CANDIDATE_EMBEDDINGS] = CREATIVE_EMBEDDING


def _sources() -> Dict[str, Tuple[str, ...]]:
    out: Dict[str, Tuple[str, ...]] = {}
    for n in _AR_IDS + _AR_CODES + F.CR_USER_FEATURES + F.CR_AD_FEATURES + (F.CREATIVE_ID,) + F.CREATIVE_ATTRIBUTES:
        out[xf(n)] = (n,)
    for a, b in CROSSES:
        out[cross_name(a, b)] = (a, b)
    if HAS_SEQUENCE:
        out[SEQ_CATEGORY_MATCHES] = (F.SEQ_AD_CATEGORIES, F.AD_CATEGORY)
        out[SEQ_CATEGORY_SHARE] = (F.SEQ_AD_IDS, F.SEQ_AD_CATEGORIES, F.AD_CATEGORY)
        out[SEQ_LENGTH_FRACTION] = (F.SEQ_AD_IDS,)
    if F.AD_HIST_CTR:
        out[AD_HIST_CTR_Z] = (F.AD_HIST_CTR,)
    if F.AD_HIST_IMPS:
        out[AD_HIST_IMPS_LOG_Z] = (F.AD_HIST_IMPS,)
    if F.AD_HIST_CTR:
        out[AD_HIST_CTR_CLIPPED] = (F.AD_HIST_CTR,)
    if HAS_SEQUENCE:
        out[SEQ_AD_IDS] = (F.SEQ_AD_IDS,)
        out[SEQ_MASK] = (F.SEQ_AD_IDS,)
        out[SEQ_AD_CATEGORIES] = (F.SEQ_AD_CATEGORIES,)
    if HAS_CREATIVE_EMBEDDING:
        out[CREATIVE_EMBEDDING] = (F.CREATIVE_EMBEDDING,)
    for cand in CANDIDATE_INPUTS:
        out[cand] = (cand[: -len(SUFFIX)],)
    out[LABEL_KEY] = (F.LABEL,)
    return out


# Raw features each transformed output is computed from.
SOURCES: Dict[str, Tuple[str, ...]] = _sources()

# Raw features the evaluation model parses: both models' inputs and the candidate lists.
EVAL_RAW_INPUTS: Tuple[str, ...] = tuple(
    dict.fromkeys(F.AR_SERVING_INPUTS + F.CR_SERVING_INPUTS + F.CANDIDATE_FEATURES)
)


# -------------------------------------------------------------------------------------- cardinalities
def cardinalities_from_vocab_sizes(vocab_sizes: Mapping[str, int]) -> Dict[str, int]:
    """Embedding rows of every categorical transformed feature.

    Args:
      vocab_sizes: raw id name -> number of in-vocabulary ids (without OOV buckets), for every id in
        :data:`ID_VOCABULARIES`.
    """
    missing = set(ID_VOCABULARIES) - set(vocab_sizes)
    if missing:
        raise ValueError(f"vocab_sizes lacks the ids {sorted(missing)}")
    out = {}
    for name, vocab in ID_VOCABULARIES.items():
        out[xf(name)] = int(vocab_sizes[name]) + vocab.num_oov_buckets
    for name in CODE_FEATURES:
        out[xf(name)] = code_cardinality(name)
    for a, b in CROSSES:
        out[cross_name(a, b)] = code_cardinality(a) * code_cardinality(b)
    if HAS_SEQUENCE:
        out[SEQ_CATEGORY_MATCHES] = SEQUENCE_LENGTH + 1
    return out


def cardinalities(tft_output) -> Dict[str, int]:
    """Embedding rows of every categorical transformed feature, read from a ``tft.TFTransformOutput``."""
    sizes = {name: tft_output.vocabulary_size_by_name(v.filename) for name, v in ID_VOCABULARIES.items()}
    return cardinalities_from_vocab_sizes(sizes)
