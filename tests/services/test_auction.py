"""GSP auction: pure logic."""

import pytest

from services.ads.auction import Bid, run_gsp


def test_orders_by_ecpm_not_bid():
    bids = [Bid("high-bid", 2_000_000, 0.01), Bid("high-ctr", 1_000_000, 0.05), Bid("mid", 1_500_000, 0.02)]
    result = run_gsp(bids, max_slots=3)
    assert [s.bid.ad_id for s in result.slots] == ["high-ctr", "mid", "high-bid"]
    assert [s.position for s in result.slots] == [1, 2, 3]


def test_second_price_is_least_bid_that_keeps_the_slot():
    bids = [Bid("a", 1_000_000, 0.05), Bid("b", 1_500_000, 0.02)]
    first, second = run_gsp(bids, max_slots=2).slots
    # a must beat b's eCPM: price * 0.05 >= 1.5 * 0.02  ->  0.6 units
    assert first.price_micros == 600_001
    assert first.price_micros <= first.bid.bid_micros
    assert second.price_micros == 1  # last slot pays the reserve (none here: the minimum of one micro)


def test_price_never_exceeds_bid_and_respects_reserve():
    bids = [Bid("a", 100_000, 0.5), Bid("b", 90_000, 0.9), Bid("cheap", 10_000, 0.9)]
    result = run_gsp(bids, max_slots=3, reserve_micros=50_000)
    assert result.below_reserve == ["cheap"]
    for slot in result.slots:
        assert 50_000 <= slot.price_micros <= slot.bid.bid_micros


def test_truncates_to_max_slots_and_is_deterministic_on_ties():
    bids = [Bid(f"ad{i}", 1_000_000, 0.02) for i in range(5)]
    result = run_gsp(bids, max_slots=2)
    assert [s.bid.ad_id for s in result.slots] == ["ad0", "ad1"]


def test_rejects_zero_slots():
    with pytest.raises(ValueError, match="max_slots"):
        run_gsp([], max_slots=0)


def test_ecpm_micros():
    assert Bid("a", 2_000_000, 0.01).ecpm_micros == 20_000_000


def test_price_is_capped_at_the_bid_on_an_ecpm_tie():
    # Beating an equal eCPM would need one micro more than the bid itself: the ad pays its bid, never more.
    first, _ = run_gsp([Bid("a", 1_000_000, 0.02), Bid("b", 1_000_000, 0.02)], max_slots=2).slots
    assert first.bid.ad_id == "a"
    assert first.price_micros == 1_000_000


def test_reserve_floors_a_lower_second_price():
    first, second = run_gsp([Bid("a", 1_000_000, 0.05), Bid("b", 600_000, 0.02)], 2, reserve_micros=500_000).slots
    assert first.price_micros == 500_000  # the second price alone would be 240_001
    assert second.price_micros == 500_000  # the last slot pays the reserve


def test_below_reserve_bids_neither_win_nor_set_the_price():
    # "cheap" has by far the best eCPM, but its bid is under the reserve: it is dropped before the auction.
    result = run_gsp([Bid("a", 1_000_000, 0.05), Bid("cheap", 400_000, 0.9)], 2, reserve_micros=500_000)
    assert [(s.bid.ad_id, s.price_micros) for s in result.slots] == [("a", 500_000)]
    assert result.below_reserve == ["cheap"]


def test_a_bid_equal_to_the_reserve_is_eligible():
    result = run_gsp([Bid("a", 500_000, 0.05)], 1, reserve_micros=500_000)
    assert [(s.bid.ad_id, s.price_micros) for s in result.slots] == [("a", 500_000)]
    assert result.below_reserve == []
