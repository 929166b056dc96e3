"""Ad ranking: candidates by targeting, budget/pacing/frequency filters, pCTR from the ctr_model (one Triton call
for every candidate, PROB only: one cheap forward pass), eCPM ranking and GSP pricing, then a second tiny call for the
per-field contributions (CONTRIB) of the ads served, which become their model reasons. Plain domain code: no gRPC
here."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from services.ads.ads_store import AdRow, ServedAd, UserRow
from services.ads.auction import Bid, run_gsp
from services.ads.ctr_inputs import CtrInputs
from services.ads.ctr_reasons import model_reasons
from services.serving import ServingReport, VersionChooser
from shared.core.errors import ModelUnavailable, NotFound
from shared.core.model_catalog import CTR_MODEL, EMBEDDING_DIM
from shared.inference.client import InferenceClient
from shared.learning.ctr_features import CONTRIB_FIELDS, AdCounters, AdFacts, FeatureBatch, UserProfile, build_batch

PRIOR_CTR = 0.02  # used when neither the model nor a historical CTR is available
MAX_CANDIDATES = 200  # bounded model work per request: one Triton request (ctr_model's max_batch_size is 256)
PACING_SLACK = 0.1  # a campaign may run this fraction of its daily budget ahead of an even pace
# A shopper the store does not know (or who sent no id): served on context alone, no segment, no history.
ANONYMOUS = UserRow(user_id="", segment="", country="")


class AdsData(Protocol):
    """The reads the ranker makes; ``services.ads.ads_store.AdsStore`` is the Postgres implementation."""

    def user_context(self, user_id: str) -> tuple[UserRow | None, list[str]]: ...

    def existing_product(self, product_id: str) -> bool: ...

    def candidate_ads(self, segment: str, categories: list[str], keywords: list[str], limit: int) -> list[AdRow]: ...

    def ads_by_id(self, ad_ids: list[str]) -> dict[str, AdRow]: ...

    def delivery_today(
        self, user_id: str, ad_ids: list[str], campaign_ids: list[str]
    ) -> tuple[dict[str, int], dict[str, int]]: ...

    def historical_ctr(self, ad_ids: list[str]) -> dict[str, float]: ...

    def ctr_inputs(self, user_id: str, ad_ids: list[str]) -> CtrInputs: ...

    def record_served(self, served: list[ServedAd]) -> None: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AdRequest:
    user_id: str
    placement_id: str
    max_ads: int
    page_category: str = ""
    query: str = ""
    product_id: str | None = None
    candidate_ad_ids: list[str] = field(default_factory=list)
    reserve_micros: int = 0
    position: int = 1


@dataclass(frozen=True)
class RankedAd:
    ad: AdRow
    position: int
    pctr: float
    ecpm_micros: int
    price_micros: int
    impression_id: str
    reasons: list[tuple[str, str]]


@dataclass
class RankedAds:
    ads: list[RankedAd]
    candidates_considered: int
    filtered: dict[str, int]
    serving: ServingReport


class AdRanker:
    def __init__(
        self,
        store: AdsData,
        triton: InferenceClient,
        service_name: str = "ads",
        now: Callable[[], datetime] = _utc_now,
        splits: VersionChooser | None = None,
    ):
        self.store = store
        self.triton = triton
        self.service_name = service_name
        self.now = now  # the UTC clock pacing reads; tests pass a fixed time of day
        self.splits = splits  # None: no traffic split by ctr_model version

    def rank(self, req: AdRequest) -> RankedAds:
        report = ServingReport()
        user, recent = self._user(req.user_id, report)
        if req.product_id and not self.store.existing_product(req.product_id):
            raise NotFound("context.product_id", f"unknown product {req.product_id!r}")
        if req.candidate_ad_ids:
            by_id = self.store.ads_by_id(req.candidate_ad_ids)
            candidates = [by_id[a] for a in req.candidate_ad_ids if a in by_id]
        else:
            categories = [c for c in [req.page_category, *recent] if c]
            keywords = sorted(set(re.findall(r"[a-z0-9]+", req.query.lower())))
            candidates = self.store.candidate_ads(user.segment, categories, keywords, MAX_CANDIDATES)
        kept, filtered = self._filter(user, candidates)
        token = uuid.uuid4().hex[:16]
        pctrs, batch = self._pctr(user, kept, req, report, self._arm(user, token))
        result = run_gsp(
            [Bid(ad.ad_id, ad.bid_micros, p) for ad, p in zip(kept, pctrs)], req.max_ads, req.reserve_micros
        )
        if result.below_reserve:
            filtered["BELOW_RESERVE"] = len(result.below_reserve)
        by_id = {ad.ad_id: ad for ad in kept}
        explained = self._explain(batch, kept, [slot.bid.ad_id for slot in result.slots], report)
        ranked = [
            RankedAd(
                ad=by_id[slot.bid.ad_id],
                position=slot.position,
                pctr=slot.bid.pctr,
                ecpm_micros=slot.bid.ecpm_micros,
                price_micros=slot.price_micros,
                impression_id=f"imp-{token}-{slot.position}",
                reasons=_reasons(by_id[slot.bid.ad_id], req, recent, user, report, explained.get(slot.bid.ad_id, [])),
            )
            for slot in result.slots
        ]
        # Recorded before the response leaves: a click is charged the price stored here, and nothing without it.
        self.store.record_served(
            [
                ServedAd(
                    r.impression_id,
                    r.ad.ad_id,
                    r.ad.campaign_id,
                    user.user_id or None,
                    r.price_micros,
                    None if report.degraded else report.model_version or None,
                )  # fmt: skip
                for r in ranked
            ]
        )
        return RankedAds(ranked, len(candidates), filtered, report)

    def predict(self, req: AdRequest) -> tuple[list[tuple[str, float]], ServingReport]:
        report = ServingReport()
        user, _ = self._user(req.user_id, report)
        by_id = self.store.ads_by_id(req.candidate_ad_ids)
        for i, ad_id in enumerate(req.candidate_ad_ids):
            if ad_id not in by_id:
                raise NotFound(f"ad_ids[{i}]", f"unknown ad {ad_id!r}")
        ads = [by_id[a] for a in req.candidate_ad_ids]
        pctrs, _ = self._pctr(user, ads, req, report, self._arm(user, uuid.uuid4().hex))
        return [(ad.ad_id, p) for ad, p in zip(ads, pctrs)], report

    def _arm(self, user: UserRow, request_id: str) -> int | None:
        """The ctr_model version of a traffic split that answers this shopper (sticky per user id; an anonymous
        shopper per request), or None when there is no split."""
        if self.splits is None:
            return None
        return self.splits.version_for(CTR_MODEL, user.user_id or request_id)

    def _user(self, user_id: str, report: ServingReport) -> tuple[UserRow, list[str]]:
        """The shopper and the categories they browsed lately, or ANONYMOUS for an empty or unknown id (a visitor
        who is not signed in, or whom the shop has not imported yet): served on the request's context, which the
        notes say."""
        user, recent = self.store.user_context(user_id) if user_id else (None, [])
        if user is None:
            report.notes.append("anonymous")
            return ANONYMOUS, []
        return user, recent

    def _filter(self, user: UserRow, ads: list[AdRow]) -> tuple[list[AdRow], dict[str, int]]:
        """Drops ads whose campaign is out of budget or ahead of pace, or that hit the user's frequency cap.

        A campaign is out of budget when what is left of its total (``spent_micros``: every charge so far) or of
        today's budget is less than the ad's bid: under GSP a click costs at most the bid, so one more click
        could not be paid in full. (A click on an ad already shown is still charged, capped at what is left.)"""
        impressions, spend_today = self.store.delivery_today(
            user.user_id, [a.ad_id for a in ads], sorted({a.campaign_id for a in ads})
        )
        if not user.user_id:  # an anonymous shopper has no frequency-cap history to read
            impressions = {}
        now = self.now()
        day_fraction = (now.hour * 3600 + now.minute * 60 + now.second) / 86400
        kept: list[AdRow] = []
        filtered: dict[str, int] = {}
        for ad in ads:
            spent = spend_today.get(ad.campaign_id, 0)
            if ad.total_budget_micros is not None and ad.total_budget_micros - ad.spent_micros < ad.bid_micros:
                reason = "BUDGET_EXHAUSTED"
            elif ad.daily_budget_micros is not None and ad.daily_budget_micros - spent < ad.bid_micros:
                reason = "DAILY_BUDGET_EXHAUSTED"
            elif ad.daily_budget_micros and spent > ad.daily_budget_micros * (day_fraction + PACING_SLACK):
                reason = "PACING"
            elif ad.frequency_cap_per_day and impressions.get(ad.ad_id, 0) >= ad.frequency_cap_per_day:
                reason = "FREQUENCY_CAP"
            else:
                kept.append(ad)
                continue
            filtered[reason] = filtered.get(reason, 0) + 1
        return kept, filtered

    def _pctr(
        self, user: UserRow, ads: list[AdRow], req: AdRequest, report: ServingReport, version: int | None = None
    ) -> tuple[list[float], FeatureBatch | None]:
        """pCTR of every ad from ONE ctr_model call (PROB only) over features read in ONE round trip, and the batch
        it scored (None when degraded); historical CTR (or the prior) when the model can't answer."""
        if not ads:
            return [], None
        inputs = self.store.ctr_inputs(user.user_id, [a.ad_id for a in ads])
        profile = UserProfile(
            user.user_id, user.segment, user.country, inputs.profile.interactions, inputs.profile.by_category,
            inputs.profile.by_brand, inputs.profile.last_at,
        )  # fmt: skip
        no_text = np.zeros(EMBEDDING_DIM, dtype=np.float32)
        rows = [inputs.ads.get(ad.ad_id) or (_facts(ad), AdCounters(), no_text) for ad in ads]
        batch = build_batch(profile, inputs.user_vector, rows, req.placement_id, req.position, self.now())
        try:
            result = self._infer_arm(batch.as_inputs(), version, report)
        except ModelUnavailable as exc:
            report.notes.append(str(exc))
            history = self.store.historical_ctr([a.ad_id for a in ads])
            fallback = "historical_ctr" if history else "prior_ctr"
            report.degrade(self.service_name, fallback, f"{CTR_MODEL} unavailable; pCTR from {fallback}")
            return [float(history.get(ad.ad_id, PRIOR_CTR)) for ad in ads], None
        report.model_name, report.model_version = CTR_MODEL, result.model_version
        return [float(p) for p in result.outputs["PROB"].reshape(len(ads))], batch

    def _infer_arm(self, inputs: dict[str, np.ndarray], version: int | None, report: ServingReport):
        """PROB from the split's ``version``; if that version does not answer (a split changed a moment ago, or
        Triton restarted with one version), from the newest served one, which the notes say."""
        if version is not None:
            try:
                return self.triton.infer(CTR_MODEL, inputs, ["PROB"], model_version=version)
            except ModelUnavailable as exc:
                report.notes.append(f"{CTR_MODEL} v{version} of the traffic split unavailable: {exc}")
        return self.triton.infer(CTR_MODEL, inputs, ["PROB"])

    def _explain(
        self, batch: FeatureBatch | None, ads: list[AdRow], served: list[str], report: ServingReport
    ) -> dict[str, list[tuple[str, str]]]:
        """The model's reasons of the served ads (the fields that moved their pCTR most): CONTRIB costs 1 + fields
        forward passes per row, so it is asked for these few rows only, in a second call. If that call fails the
        ads are still served, without model reasons."""
        if batch is None or not served:
            return {}
        row_of = {ad.ad_id: i for i, ad in enumerate(ads)}
        rows = [row_of[ad_id] for ad_id in served]
        inputs = {name: array[rows] for name, array in batch.as_inputs().items()}
        try:
            # the version that scored them explains them
            result = self.triton.infer(CTR_MODEL, inputs, ["CONTRIB"], model_version=report.model_version or None)
        except ModelUnavailable as exc:
            report.notes.append(f"no model reasons: {exc}")
            return {}
        contrib = result.outputs["CONTRIB"].reshape(len(rows), len(CONTRIB_FIELDS))
        return {ad_id: model_reasons(row.tolist(), CONTRIB_FIELDS) for ad_id, row in zip(served, contrib)}


def _facts(ad: AdRow) -> AdFacts:
    """An ad the feature read did not return (deleted meanwhile): what the ranker knows of it, no counters."""
    return AdFacts(ad.ad_id, ad.campaign_id, "", ad.category, ad.title, tuple(ad.target_segments))


def _reasons(
    ad: AdRow,
    req: AdRequest,
    recent: list[str],
    user: UserRow,
    report: ServingReport,
    from_model: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    reasons = []
    if req.page_category and ad.category == req.page_category:
        reasons.append(("TARGET_PAGE_CATEGORY", f"ad category {ad.category} matches the page"))
    elif ad.category in recent:
        reasons.append(("TARGET_INTEREST", f"user recently browsed {ad.category}"))
    words = set(re.findall(r"[a-z0-9]+", req.query.lower()))
    matched = sorted(words.intersection(k.lower() for k in ad.keywords))
    if matched:
        reasons.append(("TARGET_KEYWORD", "query matches " + ", ".join(matched)))
    if ad.target_segments and user.segment in ad.target_segments:
        reasons.append(("TARGET_SEGMENT", f"targets segment {user.segment}"))
    reasons.extend(from_model)
    source = f"{CTR_MODEL} v{report.model_version}" if not report.degraded else report.fallback
    reasons.append(("RANKED_BY_ECPM", f"bid x pCTR ({source})"))
    return reasons
