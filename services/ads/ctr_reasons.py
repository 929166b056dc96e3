"""Reasons from the CTR model: the fields that moved an ad's pCTR most, from the model's per-field contributions
(CONTRIB: the change in calibrated logit when the field is replaced by its training mean)."""

from __future__ import annotations

from collections.abc import Sequence

MODEL_REASONS_PER_AD = 2
MIN_CONTRIBUTION = 0.05  # logit units; smaller moves are noise, not a reason
FIELD_PHRASES = {
    "user": "this shopper's own click history",
    "ad": "this ad's own click history",
    "campaign": "the campaign",
    "advertiser": "the advertiser",
    "ad_category": "the ad's category",
    "brand": "the ad's brand",
    "placement": "the placement",
    "position": "the slot position",
    "segment": "the shopper's segment",
    "country": "the shopper's country",
    "ad_ctr": "the ad's historical CTR",
    "advertiser_ctr": "the advertiser's historical CTR",
    "category_ctr": "the category's historical CTR",
    "ad_log_impressions": "how often the ad was shown",
    "advertiser_log_impressions": "how often the advertiser was shown",
    "category_log_impressions": "how often the category was shown",
    "user_category_affinity": "the shopper's interest in the ad's category",
    "user_brand_affinity": "the shopper's interest in the ad's brand",
    "user_log_interactions": "how much the shopper browses",
    "segment_targeted": "the ad targets the shopper's segment",
    "ad_targets_segments": "the ad's segment targeting",
    "log_hours_since_last_interaction": "how recently the shopper browsed",
    "log_ad_price": "the advertised price",
    "text_similarity": "the ad's text matches the shopper's recent products",
    "ad_text": "the ad's text",
    "user_text": "the shopper's recent products",
}


def model_reasons(
    contributions: Sequence[float], fields: Sequence[str], limit: int = MODEL_REASONS_PER_AD
) -> list[tuple[str, str]]:
    """(code, detail) for the ``limit`` fields with the largest |contribution| of at least MIN_CONTRIBUTION,
    largest first: MODEL_RAISED / MODEL_LOWERED with the field and its logit change."""
    if len(contributions) != len(fields):
        raise ValueError(f"{len(contributions)} contributions for {len(fields)} fields")
    ranked = sorted(zip(fields, contributions), key=lambda fc: (-abs(fc[1]), fc[0]))
    reasons = []
    for name, value in ranked[:limit]:
        if abs(value) < MIN_CONTRIBUTION:
            break
        code = "MODEL_RAISED" if value > 0 else "MODEL_LOWERED"
        verb = "raised" if value > 0 else "lowered"
        reasons.append((code, f"{FIELD_PHRASES.get(name, name)} {verb} pCTR ({name} {value:+.2f} logit)"))
    return reasons
