"""Bids in the router: the optional per-ad ``ad_bid`` column, ranking by eCPM = pctr_ad x bid, ``ecpm`` in
the response. The models are in-process stand-ins with known scores (serving.inprocess)."""

import copy

import numpy as np
import pytest

import features as F
from serving.inprocess import NoopServingClient
from serving.router import PeriCRRouter, RequestError, RouterConfig, parse_request
from serving.router import core as C
from serving.router import request as R
from serving.sample_requests import random_request


def test_top_ads_by_ecpm_by_hand():
    pctr = np.array([0.10, 0.05, 0.02, 0.05], np.float32)
    np.testing.assert_array_equal(C.top_ads(pctr, 3), [0, 1, 3])  # ties keep request order
    bids = np.array([1.0, 3.0, 10.0, 3.0])  # eCPM 0.10, 0.15, 0.20, 0.15
    np.testing.assert_array_equal(C.top_ads(pctr, 3, bids), [2, 1, 3])
    np.testing.assert_allclose(C.ecpm(pctr, bids), [0.1, 0.15, 0.2, 0.15], rtol=1e-6)
    assert C.ecpm(pctr, None) is None


def _with_bids(request, bids):
    request = copy.deepcopy(request)
    for ad, bid in zip(request[R.ADS], bids):
        ad[F.AD_BID] = bid
    return request


def test_bids_parse_in_row_and_column_form():
    request = _with_bids(random_request(3, 2, seed=1), [0.5, 2, 0.0])
    for form in (request, R.to_column_form(request)):
        np.testing.assert_allclose(parse_request(form).ads[F.AD_BID], [0.5, 2.0, 0.0])
    assert F.AD_BID not in parse_request(random_request(3, 2, seed=1)).ads


def _set_bid(i, value):
    def mutate(request):
        if value is KeyError:
            del request[R.ADS][i][F.AD_BID]
        else:
            request[R.ADS][i][F.AD_BID] = value
        return request
    return mutate


@pytest.mark.parametrize("mutate,match", [
    (_set_bid(1, KeyError), "ads[1]: missing field 'ad_bid'"),
    (_set_bid(0, -1.0), "ads[0].ad_bid: -1.0 is outside [0.0, inf]"),
    (_set_bid(2, "3"), "ads[2].ad_bid: expected a number, got a string"),
    (_set_bid(2, float("nan")), "ads[2].ad_bid: nan is outside [0.0, inf]"),
    (_set_bid(0, True), "ads[0].ad_bid: expected a number, got a boolean"),
])
def test_bad_bids_name_the_ad(mutate, match):
    request = mutate(_with_bids(random_request(3, 2, seed=1), [1.0, 1.0, 1.0]))
    with pytest.raises(RequestError) as e:
        parse_request(request)
    assert match in str(e.value)


def test_bad_bid_columns_name_the_column():
    columns = R.to_column_form(_with_bids(random_request(3, 2, seed=1), [1.0, 1.0, 1.0]))
    columns[R.ADS][F.AD_BID] = [1.0, 2.0]
    with pytest.raises(RequestError, match=r"ads.ad_bid: 2 values for 3 ads"):
        parse_request(columns)
    columns[R.ADS][F.AD_BID] = [1.0, -2.0, 1.0]
    with pytest.raises(RequestError, match=r"ads.ad_bid\[1\]: -2.0 is outside"):
        parse_request(columns)


class _ScoreByAdId(NoopServingClient):
    """AR scores ad ``i`` (by id order) as ``pctr[i]``; CR scores creatives by their id (so the last wins)."""

    def __init__(self, pctr):
        super().__init__()
        self.pctr = np.asarray(pctr, np.float32)

    def _outputs(self, model, inputs, signature):
        if model == F.AR_MODEL_NAME:
            return {F.PCTR_AD: self.pctr[np.argsort(np.argsort(inputs[F.AD_ID]))]}
        return {F.PCTR_C: (inputs[F.CREATIVE_ID] % 97 / 1000.0).astype(np.float32)}


@pytest.mark.parametrize("mode", R.MODES)
def test_router_ranks_by_ecpm_when_bids_are_given(mode):
    request = random_request(4, 3, seed=2, slots=2, mode=mode)
    ids = [ad[F.AD_ID] for ad in request[R.ADS]]
    pctr = [0.04, 0.03, 0.02, 0.01]  # by ascending ad id
    client = _ScoreByAdId(pctr)
    router = PeriCRRouter(RouterConfig(), ar_client=client, cr_client=client)
    rank = np.argsort(np.argsort(ids))
    by_pctr = router.rank(request)["ads"]
    assert [a[F.AD_ID] for a in by_pctr] == [int(np.sort(ids)[0]), int(np.sort(ids)[1])]
    assert all(a[C.ECPM] is None for a in by_pctr)
    bids = [10.0 if r == 3 else 1.0 for r in rank]  # the lowest-pctr ad bids 10: eCPM 0.1 beats 0.04
    by_ecpm = router.rank(_with_bids(request, bids))["ads"]
    assert [a[F.AD_ID] for a in by_ecpm] == [int(np.sort(ids)[3]), int(np.sort(ids)[0])]
    assert [a[C.ECPM] for a in by_ecpm] == pytest.approx([0.1, 0.04], rel=1e-6)
    assert [a[F.PCTR_AD] for a in by_ecpm] == pytest.approx([0.01, 0.04], rel=1e-6)


def test_the_binary_form_carries_bids_in_and_ecpm_out():
    from serving.router import tensors as T
    from serving.router.columns import validate_columns

    request = random_request(4, 3, seed=2, slots=2)
    ids = np.sort([ad[F.AD_ID] for ad in request[R.ADS]])
    rank = np.argsort(np.argsort([ad[F.AD_ID] for ad in request[R.ADS]]))
    client = _ScoreByAdId([0.04, 0.03, 0.02, 0.01])
    router = PeriCRRouter(RouterConfig(), ar_client=client, cr_client=client)
    with_bids = _with_bids(copy.deepcopy(request), [10.0 if r == 3 else 1.0 for r in rank])
    answer = router.rank(validate_columns(T.columns_from_proto(T.request_to_proto(with_bids))))
    back = T.response_from_proto(T.response_to_proto(answer))
    assert [a[F.AD_ID] for a in back["ads"]] == [int(ids[3]), int(ids[0])]
    assert [a[C.ECPM] for a in back["ads"]] == pytest.approx([0.1, 0.04], rel=1e-6)
    without = T.response_from_proto(T.response_to_proto(router.rank(request)))
    assert [a[C.ECPM] for a in without["ads"]] == [None, None]
