"""Transform: hand-computed outputs of preprocessing_fn, shared vocabularies, and per-model subsets."""

import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

import features as F
from transform import names as N
from transform import preprocessing as P
from transform.preprocessing import preprocessing_fn

AD_VOCAB = {10: 0, 20: 1, 30: 2}  # ad ids by descending frequency (3, 2, 1 impressions)
CREATIVE_VOCAB = {5: 0, 6: 1}  # 7 is seen once: below the creative-id frequency threshold of 2


def _row(i, **overrides):
    row = {}
    for f in F.FEATURES:
        if f.kind == F.SCALAR:
            row[f.name] = 0.0 if f.dtype == F.FLOAT else 0
        elif f.kind == F.FIXED:
            row[f.name] = [0.0] * f.length
        else:
            row[f.name] = []
    row.update({
        F.USER_ID: [1, 1, 2, 2, 3, 4][i], F.AD_ID: [10, 10, 10, 20, 20, 30][i],
        F.CREATIVE_ID: [5, 5, 5, 6, 6, 7][i], F.AD_ADVERTISER_ID: 1, F.AD_BRAND_ID: 1,
        F.AD_HIST_CTR: [0.01, 0.02, 0.03, 0.04, 0.05, 1.5][i], F.AD_HIST_IMPS: [1, 10, 100, 1000, 0, 5][i],
        F.CREATIVE_EMBEDDING: [float(i)] * F.CREATIVE_EMBEDDING_DIM, F.CLICK: i % 2,
        F.CAND_CREATIVE_IDS: [5, 6, 7], F.CAND_STYLES: [0, 1, 99], F.CAND_COLOR_TONES: [0, 1, 2],
        F.CAND_PRICE_TAGS: [0, 1, 0], F.CAND_TEXT_LENGTHS: [0, 1, 2],
        F.CAND_EMBEDDINGS: [1.0] * (3 * F.CREATIVE_EMBEDDING_DIM), F.NUM_CANDIDATES: 3,
        F.TRUTH_CAND_CTRS: [0.1, 0.2, 0.3],
    })
    row.update(overrides)
    return row


ROWS = [
    # newest last: 20, 30, 10 -> newest first 10, 30, 20; categories 5, 3, 5 vs ad category 5 -> 2 matches
    _row(0, **{F.SEQ_AD_IDS: [20, 30, 10], F.SEQ_AD_CATEGORIES: [5, 3, 5], F.AD_CATEGORY: 5,
               F.USER_GENDER: 1, F.USER_AGE_BUCKET: 2}),
    _row(1, **{F.SEQ_AD_IDS: list(range(100, 125)), F.SEQ_AD_CATEGORIES: [1] * 25, F.AD_CATEGORY: 1}),
    _row(2, **{F.USER_GENDER: 7, F.AD_CATEGORY: 99, F.AD_PRICE_BUCKET: 4, F.USER_CITY_TIER: 2}),
    _row(3, **{F.SEQ_AD_IDS: [99], F.SEQ_AD_CATEGORIES: [2]}),
    _row(4),
    _row(5),
]


@pytest.fixture(scope="module")
def transformed():
    """In-memory Transform of ROWS: (outputs per row, TFTransformOutput)."""
    tmp = tempfile.mkdtemp()
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(F.raw_feature_spec()))
    with tft_beam.Context(temp_dir=os.path.join(tmp, "tmp"), force_tf_compat_v1=False):
        (rows, _), transform_fn = (ROWS, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(tmp, "graph"))
    return rows, tft.TFTransformOutput(os.path.join(tmp, "graph"))


def test_ids_map_through_bounded_vocabularies_with_oov(transformed):
    rows, output = transformed
    assert [r[N.xf(F.AD_ID)] for r in rows] == [AD_VOCAB[r[F.AD_ID]] for r in ROWS]
    assert [r[N.xf(F.CREATIVE_ID)] for r in rows[:5]] == [0, 0, 0, 1, 1]
    # creative 7 is below the frequency threshold: OOV bucket 7 mod buckets after the 2 in-vocabulary ids
    oov = N.ID_VOCABULARIES[F.CREATIVE_ID].num_oov_buckets
    assert rows[5][N.xf(F.CREATIVE_ID)] == 2 + 7 % oov
    assert output.vocabulary_size_by_name(N.ID_VOCABULARIES[F.CREATIVE_ID].filename) == 2
    assert output.vocabulary_size_by_name(N.ID_VOCABULARIES[F.AD_ID].filename) == 3
    assert N.cardinalities(output)[N.xf(F.AD_ID)] == 3 + N.ID_VOCABULARIES[F.AD_ID].num_oov_buckets


def test_sequence_uses_the_ad_vocabulary_newest_first_with_mask(transformed):
    rows, _ = transformed
    seq, mask = rows[0][N.SEQ_AD_IDS], rows[0][N.SEQ_MASK]
    assert seq.shape == (N.SEQUENCE_LENGTH,)
    np.testing.assert_array_equal(seq[:3], [AD_VOCAB[10], AD_VOCAB[30], AD_VOCAB[20]])
    np.testing.assert_array_equal(mask, [1, 1, 1] + [0] * (N.SEQUENCE_LENGTH - 3))
    np.testing.assert_array_equal(rows[0][N.SEQ_AD_CATEGORIES][:3], [5, 3, 5])
    assert rows[0][N.SEQ_CATEGORY_MATCHES] == 2
    assert rows[0][N.SEQ_CATEGORY_SHARE] == pytest.approx(2 / 3)
    assert rows[0][N.SEQ_LENGTH_FRACTION] == pytest.approx(3 / N.SEQUENCE_LENGTH)
    # 25 items: the newest 20 are kept (all unseen ids -> OOV buckets), all 20 match category 1
    assert rows[1][N.SEQ_MASK].sum() == N.SEQUENCE_LENGTH
    ad_oov = N.ID_VOCABULARIES[F.AD_ID].num_oov_buckets
    np.testing.assert_array_equal(rows[1][N.SEQ_AD_IDS], [len(AD_VOCAB) + i % ad_oov for i in range(124, 104, -1)])
    assert rows[1][N.SEQ_CATEGORY_MATCHES] == N.SEQUENCE_LENGTH
    assert rows[1][N.SEQ_CATEGORY_SHARE] == 1.0 and rows[1][N.SEQ_LENGTH_FRACTION] == 1.0
    # an unseen sequence ad maps into the ad vocabulary's OOV range; empty sequences are all mask 0
    assert rows[3][N.SEQ_AD_IDS][0] == len(AD_VOCAB) + 99 % ad_oov
    assert rows[4][N.SEQ_MASK].sum() == 0 and rows[4][N.SEQ_CATEGORY_MATCHES] == 0
    assert rows[4][N.SEQ_CATEGORY_SHARE] == 0.0 and rows[4][N.SEQ_LENGTH_FRACTION] == 0.0


def test_codes_out_of_domain_and_exact_crosses(transformed):
    rows, _ = transformed
    assert rows[2][N.xf(F.USER_GENDER)] == len(F.GENDERS)  # 7 is outside [0, 3)
    assert rows[2][N.xf(F.AD_CATEGORY)] == F.NUM_AD_CATEGORIES
    cat_card = F.NUM_AD_CATEGORIES + 1
    assert rows[0][N.cross_name(F.USER_GENDER, F.AD_CATEGORY)] == 1 * cat_card + 5
    assert rows[0][N.cross_name(F.USER_AGE_BUCKET, F.AD_CATEGORY)] == 2 * cat_card + 5
    assert rows[2][N.cross_name(F.USER_GENDER, F.AD_CATEGORY)] == 3 * cat_card + 24
    assert rows[2][N.cross_name(F.USER_CITY_TIER, F.AD_PRICE_BUCKET)] == 2 * (len(F.PRICE_BUCKETS) + 1) + 4
    cards = N.cardinalities_from_vocab_sizes({n: 1 for n in N.ID_VOCABULARIES})
    for r in rows:
        for name in N.AR_CATEGORICAL + N.CR_CATEGORICAL:
            if name not in {N.xf(n) for n in N.ID_VOCABULARIES}:
                assert 0 <= r[name] < cards[name], name


def test_numerics_and_label(transformed):
    rows, _ = transformed
    ctr = np.array([r[F.AD_HIST_CTR] for r in ROWS], np.float32)
    np.testing.assert_allclose([r[N.AD_HIST_CTR_CLIPPED] for r in rows], np.clip(ctr, 0, 1))
    np.testing.assert_allclose([r[N.AD_HIST_CTR_Z] for r in rows], (ctr - ctr.mean()) / ctr.std(), rtol=1e-4)
    imps = np.log1p([r[F.AD_HIST_IMPS] for r in ROWS])
    np.testing.assert_allclose([r[N.AD_HIST_IMPS_LOG_Z] for r in rows], (imps - imps.mean()) / imps.std(),
                               rtol=1e-4, atol=1e-6)
    assert [r[N.LABEL_KEY] for r in rows] == [r[F.CLICK] for r in ROWS]
    np.testing.assert_allclose(rows[3][N.CREATIVE_EMBEDDING], [3.0] * F.CREATIVE_EMBEDDING_DIM)


def test_candidates_share_the_creative_mapping(transformed):
    rows, _ = transformed
    cands = rows[0][N.xf(F.CAND_CREATIVE_IDS)]
    assert list(cands[:2]) == [CREATIVE_VOCAB[5], CREATIVE_VOCAB[6]]
    assert cands[2] == rows[5][N.xf(F.CREATIVE_ID)]  # creative 7: the same OOV bucket as the exposed one
    assert list(rows[0][N.xf(F.CAND_STYLES)]) == [0, 1, len(F.CREATIVE_STYLES)]
    assert len(rows[0][N.CANDIDATE_EMBEDDINGS]) == 3 * F.CREATIVE_EMBEDDING_DIM


def test_outputs_are_the_declared_names_and_truth_never_passes(transformed):
    rows, output = transformed
    declared = set(N.AR_INPUTS + N.CR_INPUTS) | set(N.CANDIDATE_INPUTS) | {N.LABEL_KEY}
    assert set(rows[0]) == declared
    assert set(output.transformed_feature_spec()) == declared
    assert declared == set(N.SOURCES)
    for name in F.TRUTH_FEATURES + F.LOGGING_FEATURES + (F.REQUEST_ID, F.DAY, F.SLOT):
        assert not any(name in N.SOURCES[o] for o in declared), name


def test_model_inputs_exclude_non_model_features():
    model_inputs = N.AR_INPUTS + N.CR_INPUTS
    non_model = set(F.NON_MODEL_FEATURES)
    assert not non_model & set(model_inputs)
    assert not {N.xf(n) for n in non_model} & set(model_inputs)
    for name in model_inputs:
        assert not non_model & set(N.SOURCES[name]), name


def test_each_model_input_depends_only_on_its_serving_inputs():
    for name in N.AR_INPUTS:
        assert set(N.SOURCES[name]) <= set(F.AR_SERVING_INPUTS), name
    for name in N.CR_INPUTS:
        assert set(N.SOURCES[name]) <= set(F.CR_SERVING_INPUTS), name


def _parsed(names, rows=ROWS):
    examples = []
    for row in rows:
        ex = tf.train.Example()
        for name in names:
            value = row[name] if isinstance(row[name], list) else [row[name]]
            feature = ex.features.feature[name]
            (feature.float_list if F.BY_NAME[name].dtype == F.FLOAT else feature.int64_list).value.extend(value)
        examples.append(ex.SerializeToString())
    return tf.io.parse_example(examples, F.raw_feature_spec(names))


@pytest.mark.parametrize("raw_inputs, model_inputs", [
    (F.AR_SERVING_INPUTS, N.AR_INPUTS), (F.CR_SERVING_INPUTS, N.CR_INPUTS)], ids=["ar", "cr"])
def test_transform_layer_on_one_models_raw_inputs_only(transformed, raw_inputs, model_inputs):
    """TFT 1.16 fills unfed raw features and drops outputs that depend on them: each model's raw inputs
    alone give all of its transformed inputs, equal to the full transform's."""
    rows, output = transformed
    out = output.transform_features_layer()(_parsed(raw_inputs))
    assert set(model_inputs) <= set(out)
    assert N.xf(F.CAND_CREATIVE_IDS) not in out and N.LABEL_KEY not in out
    for name in model_inputs:
        np.testing.assert_allclose(out[name].numpy(), np.stack([r[name] for r in rows]), rtol=1e-6, err_msg=name)


def test_layout_helpers_accept_the_schema_variants():
    """Scalars may come as [B], [B, 1] or sparse; lists dense or sparse (as SchemaGen may declare them)."""
    np.testing.assert_array_equal(P._scalar(tf.constant([[3], [4]], tf.int64)), [3, 4])
    np.testing.assert_array_equal(P._scalar(tf.sparse.from_dense(tf.constant([[3], [4]], tf.int64))), [3, 4])
    np.testing.assert_array_equal(P._fixed(tf.sparse.from_dense(tf.ones([2, 8])), 8), np.ones([2, 8]))
    dense_list = tf.constant([[0, 5], [7, 0]], tf.int64)
    np.testing.assert_array_equal(tf.sparse.to_dense(P._sparse(dense_list)), dense_list)  # zeros are values
    sp = tf.RaggedTensor.from_row_lengths(tf.constant([1, 2, 3, 4], tf.int64), [3, 0, 1]).to_sparse()
    np.testing.assert_array_equal(P._newest_first(sp, 2, -1), [[3, 2], [-1, -1], [4, -1]])
