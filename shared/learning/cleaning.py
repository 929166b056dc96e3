"""The event cleaning job: moves bad events to ``events_quarantine`` (never deleting them) and records a quality
report in ``data_quality_reports``.

Rules run in order, each on what the previous ones left, inside one transaction. That makes a run idempotent: a
second run finds nothing more (e.g. duplicates keep their first copy, bot users lose all their events at once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from shared.store.event_rules import (
    BOUNDS,
    bad_timestamp_sql,
    id_too_long_sql,
    missing_field_sql,
    not_an_object_sql,
    out_of_bounds_sql,
)
from shared.store.schema import Event

EVENT_COLUMNS = tuple(Event.__table__.columns.keys())  # events_quarantine has these too (schema.EventColumns)
SAMPLES_PER_RULE = 3


@dataclass(frozen=True)
class CleaningConfig:
    bot_min_clicks: int = 50  # a user with more clicks than this ...
    bot_min_ctr: float = 0.5  # ... and a click-through rate above this is a bot
    bot_max_events_per_minute: int = 60  # or anyone this busy within one minute
    duplicate_window_s: float = 1.0


@dataclass
class QualityReport:
    id: int
    created_at: datetime
    source: str
    rows_in: int
    rows_kept: int
    rows_dropped: int
    issues: dict[str, int]  # rule -> events quarantined
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    task_id: str | None = None


def rules(config: CleaningConfig) -> list[tuple[str, str]]:
    """(rule name, SQL condition on events ``e`` in scope) in the order they run.

    missing_field, invalid_value, impossible_price and bad_timestamp are ``shared.store.event_rules`` as SQL (what
    ingestion rejects at the door); invalid_id is ingestion's foreign-id check; the rest are behavioural.
    invalid_value runs before invalid_id, so an over-long user id is reported as malformed, not as unknown."""
    price = "price_micros"  # an impossible price has a rule of its own in the report
    malformed = (id_too_long_sql(), out_of_bounds_sql(*(n for n in BOUNDS if n != price)), not_an_object_sql())
    return [
        ("missing_field", missing_field_sql()),
        ("invalid_value", " or ".join(f"({sql})" for sql in malformed)),
        (
            "invalid_id",
            """
            (e.user_id is not null and not exists (select 1 from users u where u.user_id = e.user_id))
            or (e.product_id is not null and not exists (select 1 from products p where p.product_id = e.product_id))
            or (e.ad_id is not null and not exists (select 1 from ads a where a.ad_id = e.ad_id))""",
        ),
        ("impossible_price", out_of_bounds_sql(price)),
        ("bad_timestamp", bad_timestamp_sql()),
        (
            "bot_user",
            f"""e.user_id in (
                select user_id from scope where type in ('impression', 'click') group by user_id
                having count(*) filter (where type = 'click') > {config.bot_min_clicks}
                   and count(*) filter (where type = 'click')
                       > {config.bot_min_ctr} * greatest(count(*) filter (where type = 'impression'), 1)
                union
                select user_id from scope group by user_id, date_trunc('minute', occurred_at)
                having count(*) > {config.bot_max_events_per_minute})""",
        ),
        (
            "duplicate",
            f"""e.id in (
                select id from (
                    select id, occurred_at - lag(occurred_at) over (
                        partition by user_id, type, product_id, ad_id, impression_id order by occurred_at, id) as gap
                    from scope) g
                where gap < interval '{config.duplicate_window_s} seconds')""",
        ),
        (
            "click_without_impression",
            """e.type = 'click' and not exists (
                select 1 from events i where i.type = 'impression' and i.impression_id = e.impression_id)""",
        ),
    ]


def clean_events(
    engine: Engine,
    since: datetime | None = None,
    task_id: str | None = None,
    config: CleaningConfig | None = None,
    source: str = "events",
) -> QualityReport:
    """Quarantines the bad events (occurring at or after ``since``, default all) and returns the stored report."""
    config = config or CleaningConfig()
    columns = ", ".join(EVENT_COLUMNS)
    in_scope = "(cast(:since as timestamptz) is null or occurred_at >= cast(:since as timestamptz))"
    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(hashtext('ecomai.clean_events'))"))
        rows_in = conn.execute(text(f"select count(*) from events where {in_scope}"), {"since": since}).scalar_one()
        report_id, created_at = conn.execute(
            text("""
            insert into data_quality_reports (source, rows_in, rows_kept, rows_dropped, issues, samples, task_id)
            values (:source, :rows_in, :rows_in, 0, '{}', '{}', :task) returning id, created_at
        """),
            {"source": source, "rows_in": rows_in, "task": task_id},
        ).one()
        issues: dict[str, int] = {}
        samples: dict[str, list[dict]] = {}
        for rule, condition in rules(config):
            moved = conn.execute(
                text(f"""
                with scope as (select * from events where {in_scope}),
                moved as (
                    delete from events e where e.id in (select e.id from scope e where {condition})
                    returning e.*),
                kept as (
                    insert into events_quarantine ({columns}, rule, report_id)
                    select {columns}, :rule, :report from moved returning 1)
                select count(*) from kept
            """),
                {"since": since, "rule": rule, "report": report_id},
            ).scalar_one()
            issues[rule] = int(moved)
            if moved:
                samples[rule] = [
                    dict(r)
                    for r in conn.execute(
                        text("""
                    select event_id, type, user_id, product_id, ad_id, impression_id, price_micros,
                           cast(occurred_at as text) as occurred_at
                    from events_quarantine where report_id = :report and rule = :rule order by id limit :n
                """),
                        {"report": report_id, "rule": rule, "n": SAMPLES_PER_RULE},
                    ).mappings()
                ]
        dropped = sum(issues.values())
        conn.execute(
            text("""
            update data_quality_reports set rows_kept = :kept, rows_dropped = :dropped,
                issues = cast(:issues as jsonb), samples = cast(:samples as jsonb) where id = :id
        """),
            {
                "kept": rows_in - dropped,
                "dropped": dropped,
                "issues": _json(issues),
                "samples": _json(samples),
                "id": report_id,
            },
        )
    return QualityReport(report_id, created_at, source, rows_in, rows_in - dropped, dropped, issues, samples, task_id)


def quality_reports(engine: Engine, limit: int = 20) -> list[QualityReport]:
    """The latest stored reports, newest first."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("""
            select id, created_at, source, rows_in, rows_kept, rows_dropped, issues, samples, task_id
            from data_quality_reports order by id desc limit :n
        """),
                {"n": limit},
            )
            .mappings()
            .all()
        )
    return [QualityReport(**r) for r in rows]


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
