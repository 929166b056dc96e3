"""The cleaning job finds exactly the planted bad events of the demo shop, quarantines them, and is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from shared.demo_shop import generate_shop, load_shop
from shared.learning.cleaning import clean_events, quality_reports


def test_cleaning_quarantines_the_planted_events_once(data_engine):
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    shop = generate_shop("tiny", 11, end)
    loaded = load_shop(data_engine, shop)
    assert loaded.duplicate_event_ids == shop.planted["duplicate_event_id"]
    expected = {rule: n for rule, n in shop.planted.items() if rule != "duplicate_event_id"}

    report = clean_events(data_engine, task_id="t-1")
    assert {rule: n for rule, n in report.issues.items() if n} == expected
    assert report.rows_dropped == sum(expected.values())
    assert report.rows_in == loaded.rows["events"] and report.rows_kept == report.rows_in - report.rows_dropped
    assert report.samples["bot_user"] and report.task_id == "t-1"
    with data_engine.connect() as conn:
        per_rule = dict(conn.execute(text("select rule, count(*) from events_quarantine group by rule")).all())
        planted_left = conn.execute(text("select count(*) from events where properties ? 'planted'")).scalar()
        wrong = conn.execute(
            text("select count(*) from events_quarantine where properties->>'planted' is distinct from rule")
        ).scalar()
    assert per_rule == expected and planted_left == 0 and wrong == 0

    again = clean_events(data_engine)
    assert again.rows_dropped == 0 and again.rows_in == report.rows_kept
    stored = quality_reports(data_engine)
    assert [r.id for r in stored] == [again.id, report.id] and stored[1].issues == report.issues
