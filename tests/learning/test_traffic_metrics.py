"""Online metrics per recs_ranker version on a real Postgres: what the recommender recorded as served, credited
with the shopper's own later views and purchases of those products within the attribution window, and nothing
else (before the answer, after the window, another shopper, a product not listed). The ctr_model's per-version CTR
is checked end to end in tests/services/test_traffic_split.py. Also: a split is refused, naming the field, before
anything is loaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from shared.core.errors import InvalidArgument
from shared.core.model_catalog import CTR_MODEL, INTENT_CLASSIFIER, RECS_RANKER
from shared.learning.traffic import ATTRIBUTION_HOURS, online_metrics, set_split
from shared.store.served_recommendations import ServedRecommendations


def _event(engine: Engine, kind: str, user: str, product: str, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("""insert into events (event_id, type, user_id, product_id, occurred_at)
                    values (gen_random_uuid()::text, :t, :u, :p, :at)"""),
            {"t": kind, "u": user, "p": product, "at": at},
        )


def test_recs_click_through_and_conversion_per_version_count_only_attributable_events(data_engine):
    served = ServedRecommendations(data_engine)
    assert served.record("u1", 1, ["p1", "p2"]) and served.record("u2", 1, ["p3"])
    assert served.record("u1", 2, ["p4"]) and served.record("u3", None, ["p1"])  # None: a fallback order
    assert served.record("", 1, ["p1"]) is None  # anonymous: nothing to credit later, not stored
    now = datetime.now(UTC)
    window = timedelta(hours=ATTRIBUTION_HOURS)
    _event(data_engine, "view", "u1", "p1", now + timedelta(hours=1))  # v1 list of u1: clicked through
    _event(data_engine, "purchase", "u1", "p2", now + timedelta(hours=2))  # ... and converted
    _event(data_engine, "view", "u2", "p3", now - timedelta(hours=1))  # before the answer
    _event(data_engine, "purchase", "u2", "p3", now + window + timedelta(hours=1))  # after the window
    _event(data_engine, "view", "u2", "p4", now + timedelta(hours=1))  # another shopper's list
    _event(data_engine, "view", "u1", "p9", now + timedelta(hours=1))  # a product the list did not show
    _event(data_engine, "view", "u3", "p1", now + timedelta(hours=1))  # a list no version ranked

    metrics = online_metrics(data_engine, RECS_RANKER)
    assert metrics == {
        1: {"lists": 2, "click_through": 0.5, "conversion": 0.5},
        2: {"lists": 1, "click_through": 0.0, "conversion": 0.0},
    }
    assert online_metrics(data_engine, RECS_RANKER, since=now + timedelta(minutes=5)) == {}
    assert online_metrics(data_engine, CTR_MODEL) == {}  # nothing served by the ads service here


@pytest.mark.parametrize(
    "model, shares, field",
    [
        (CTR_MODEL, {1: 90, 2: 20}, "arms"),  # adds up to 110
        (CTR_MODEL, {1: 100, 2: 0}, "arms"),  # an arm at 0%: stop it instead
        (CTR_MODEL, {}, "arms"),
        (INTENT_CLASSIFIER, {1: 50, 2: 50}, "model"),  # no service chooses its arms
    ],
)
def test_a_bad_split_is_refused_naming_the_field_before_anything_loads(data_engine, tmp_path, model, shares, field):
    with pytest.raises(InvalidArgument) as info:
        set_split(None, data_engine, tmp_path, model, shares)  # type: ignore[arg-type]  # never reaches Triton
    assert info.value.field == field
    with data_engine.connect() as conn:
        assert conn.execute(text("select count(*) from traffic_arms")).scalar_one() == 0
