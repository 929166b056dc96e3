"""Generalized second-price auction over pCTR-weighted bids. Pure logic, no I/O.

Ads are ordered by eCPM = bid x pCTR. The ad in slot i pays the least cost per click that would still
keep it above the ad in slot i+1: price_i = eCPM_{i+1} / pCTR_i (+ one micro), never more than its own bid
and never less than the reserve price. The last ad pays the reserve.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_PCTR = 1e-6


@dataclass(frozen=True)
class Bid:
    ad_id: str
    bid_micros: int
    pctr: float

    @property
    def ecpm_micros(self) -> int:
        """Expected revenue per thousand impressions, in micros."""
        return int(round(self.bid_micros * self.pctr * 1000))


@dataclass(frozen=True)
class Slot:
    bid: Bid
    position: int
    price_micros: int


@dataclass(frozen=True)
class AuctionResult:
    slots: list[Slot]
    below_reserve: list[str]


def run_gsp(bids: list[Bid], max_slots: int, reserve_micros: int = 0) -> AuctionResult:
    if max_slots < 1:
        raise ValueError(f"max_slots must be >= 1, got {max_slots}")
    eligible = [b for b in bids if b.bid_micros >= max(reserve_micros, 1)]
    below = [b.ad_id for b in bids if b.bid_micros < max(reserve_micros, 1)]
    # Ties broken by ad id so the same request always gets the same order.
    ranked = sorted(eligible, key=lambda b: (-b.bid_micros * b.pctr, b.ad_id))
    slots: list[Slot] = []
    for i, bid in enumerate(ranked[:max_slots]):
        runner_up = ranked[i + 1] if i + 1 < len(ranked) else None
        if runner_up is None:
            price = reserve_micros
        else:
            price = int(runner_up.bid_micros * runner_up.pctr / max(bid.pctr, MIN_PCTR)) + 1
        price = min(bid.bid_micros, max(price, reserve_micros, 1))
        slots.append(Slot(bid=bid, position=i + 1, price_micros=price))
    return AuctionResult(slots=slots, below_reserve=below)
