"""The pure-Python validator of raw serving requests."""

import numpy as np
import pytest

import features as F
from trainer.serving_inputs import (ServingInputError, example_request, pad_sequences, reference_input,
                                    validate_raw_inputs)


@pytest.mark.parametrize("model", [F.AR_MODEL_NAME, F.CR_MODEL_NAME])
@pytest.mark.parametrize("user_rows", [1, 6])
def test_valid_requests_pass_with_their_batch_size(model, user_rows):
    request = example_request(model, batch_size=6, user_batch_size=user_rows)
    batch, arrays = validate_raw_inputs(model, request)
    assert batch == 6
    assert set(arrays) == set(F.AR_SERVING_INPUTS if model == F.AR_MODEL_NAME else F.CR_SERVING_INPUTS)
    assert arrays[F.AD_HIST_CTR].dtype == np.float32 and arrays[F.AD_ID].dtype == np.int64


def test_lists_are_accepted_and_converted():
    request = {k: v.tolist() for k, v in example_request(F.CR_MODEL_NAME, 2).items()}
    batch, arrays = validate_raw_inputs(F.CR_MODEL_NAME, request)
    assert batch == 2 and arrays[F.CREATIVE_EMBEDDING].shape == (2, F.CREATIVE_EMBEDDING_DIM)


def _bad(model, name, value):
    request = example_request(model, batch_size=4, user_batch_size=1)
    if value is None:
        del request[name]
    else:
        request[name] = value
    return request


@pytest.mark.parametrize("model, name, value, problem", [
    (F.AR_MODEL_NAME, F.USER_AGE_BUCKET, None, "missing"),
    (F.CR_MODEL_NAME, F.CREATIVE_ID, None, "missing"),
    (F.AR_MODEL_NAME, F.AD_ID, np.array([1.5, 2, 3, 4]), "int64"),
    (F.CR_MODEL_NAME, F.AD_HIST_CTR, np.array(["a", "b", "c", "d"]), "float32"),
    (F.CR_MODEL_NAME, F.AD_BRAND_ID, np.arange(3), "batch size 3"),
    (F.AR_MODEL_NAME, F.USER_GENDER, np.arange(2), "1 or 4"),
    (F.AR_MODEL_NAME, F.AD_CATEGORY, np.arange(4).reshape(2, 2), "rank 1"),
    (F.CR_MODEL_NAME, F.CREATIVE_EMBEDDING, np.zeros((4, 3), np.float32), "width"),
    (F.AR_MODEL_NAME, F.SEQ_AD_IDS, [[1, 2], [3]], "pad"),
    (F.AR_MODEL_NAME, F.SEQ_AD_CATEGORIES, np.zeros((1, 9), np.int64), "parallel"),
])
def test_bad_requests_fail_naming_the_feature(model, name, value, problem):
    with pytest.raises(ServingInputError) as err:
        validate_raw_inputs(model, _bad(model, name, value))
    assert name in str(err.value) and problem in str(err.value)
    assert isinstance(err.value, ValueError)


def test_unknown_inputs_and_models_are_rejected():
    request = example_request(F.CR_MODEL_NAME, 2)
    request[F.USER_ID] = np.array([1, 2])  # an AR-only feature
    with pytest.raises(ServingInputError, match=F.USER_ID):
        validate_raw_inputs(F.CR_MODEL_NAME, request)
    with pytest.raises(ServingInputError, match="unknown model"):
        validate_raw_inputs("dr", request)


def test_pad_sequences_and_reference():
    np.testing.assert_array_equal(pad_sequences([[1, 2, 3], [], [4]]),
                                  [[1, 2, 3], [F.SEQUENCE_PAD] * 3, [4, F.SEQUENCE_PAD, F.SEQUENCE_PAD]])
    assert reference_input(F.AR_MODEL_NAME) == F.AD_ID
    assert reference_input(F.CR_MODEL_NAME) == F.AD_ID
