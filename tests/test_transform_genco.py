"""GenCO's model inputs from its log: pools padded or truncated to 15 per component, styles and codes mapped
into their domains, a logged element cut away by the truncation no longer counted as logged."""

import numpy as np
import tensorflow as tf

import features as F
from transform import genco as G


# Every column the model's inputs are built from (the truth and bookkeeping columns are not needed).
COLUMNS = [n for n in F.GENCO_BY_NAME if "truth" not in n and n not in (F.REQUEST_ID, F.DAY, F.GENCO_PROPENSITY)]


def _example(pools, exposed, styles=None, **scalars):
    """A serialized GenCO tf.Example with the given pools (component -> ids) and logged indices."""
    feature = {}

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    for c in F.GENCO_COMPONENTS:
        ids = pools.get(c, [])
        feature[F.GENCO_CAND_IDS[c]] = ints(ids)
        feature[F.GENCO_CAND_STYLES[c]] = ints((styles or {}).get(c, [1] * len(ids)))
        feature[F.GENCO_EXPOSED[c]] = ints([exposed.get(c, -1)])
        feature[F.GENCO_COMPONENT_PROPENSITY[c]] = tf.train.Feature(float_list=tf.train.FloatList(value=[0.5]))
    base = {F.USER_ID: 7, F.USER_GENDER: 1, F.USER_AGE_BUCKET: 2, F.AD_ID: 9, F.AD_CATEGORY: 3, F.CLICK: 1}
    for k, v in {**base, **scalars}.items():
        feature[k] = ints([v])
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_pools_are_padded_and_truncated_to_fifteen():
    long = list(range(100, 120))  # 20 candidates
    records = [_example({"title": long, "image": [5, 6]}, {"title": 3, "image": 1}),
               _example({"title": [1], "image": [2]}, {"title": 0, "image": 0})]
    out = {k: v.numpy() for k, v in G.parse_examples(tf.constant(records), COLUMNS).items()}
    assert out[G.POOL_IDS].shape == (2, G.M, G.N) == out[G.POOL_STYLES].shape
    assert out[G.POOL_IDS][0, 0].tolist() == long[:15]
    assert out[G.POOL_IDS][0, 1].tolist() == [5, 6] + [F.GENCO_PAD] * 13
    assert (out[G.POOL_IDS][:, 2:] == F.GENCO_PAD).all() and (out[G.POOL_STYLES][:, 2:] == F.GENCO_PAD).all()
    assert out[G.LOGGED].tolist() == [[3, 1, -1, -1, -1, -1], [0, 0, -1, -1, -1, -1]]
    assert out[G.LOGGED_PROPENSITY].shape == (2, G.M) and out[G.LABEL_KEY].tolist() == [1, 1]


def test_a_logged_element_cut_away_by_the_truncation_is_not_logged():
    record = _example({"title": list(range(1, 21))}, {"title": 17})
    out = G.parse_examples(tf.constant([record]), COLUMNS)
    assert out[G.LOGGED].numpy()[0, 0] == -1


def test_styles_and_codes_outside_their_domain_become_the_extra_code():
    record = _example({"image": [4, 5, 6]}, {"image": 0}, styles={"image": [0, 9, -2]}, user_gender=len(F.GENDERS))
    out = G.parse_examples(tf.constant([record]), COLUMNS)
    assert out[G.POOL_STYLES].numpy()[0, 1, :4].tolist() == [0, F.GENCO_NUM_STYLES, F.GENCO_NUM_STYLES, F.GENCO_PAD]
    assert out[F.USER_GENDER].numpy().tolist() == [len(F.GENDERS)]


def test_hash_sizes_of_counts_distinct_training_ids():
    ids = np.full((3, G.M, G.N), F.GENCO_PAD)
    ids[:, 0, :2] = [[1, 2], [2, 3], [3, 1]]
    ids[0, 4, 0] = 77
    train = {G.POOL_IDS: ids, F.USER_ID: np.array([5, 5, 6]), F.AD_ID: np.array([1, 2, 3])}
    sizes = G.hash_sizes_of(train)
    assert sizes == {F.USER_ID: 2, F.AD_ID: 3, "title": 3, "image": 1, "marketing": 1, "highlight": 1,
                     "attribute": 1, "structure_attribute": 1}
