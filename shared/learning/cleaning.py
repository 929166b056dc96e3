"""The event cleaning job: moves bad events to ``events_quarantine`` (never deleting them) and records a quality
report in ``data_quality_reports``.

Rules run in order, each on what the previous ones left, inside one transaction. That makes a run idempotent: a
second run finds nothing more (e.g. duplicates keep their first copy, bot users lose all their events at once)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from shared.store.event_rules import EARLIEST_EVENT, FUTURE_SKEW, MAX_PRICE_MICROS, REQUIRED_FIELDS

EVENT_COLUMNS = (
    "id",
    "event_id",
    "type",
    "user_id",
    "product_id",
    "ad_id",
    "impression_id",
    "placement_id",
    "session_id",
    "query",
    "conversation_id",
    "rating",
    "quantity",
    "price_micros",
    "occurred_at",
    "received_at",
    "properties",
)
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

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": self.created_at.isoformat()}


def _missing_field_sql() -> str:
    types = ", ".join(f"'{t}'" for t in REQUIRED_FIELDS)
    per_type = [
        f"(e.type = '{t}' and ({' or '.join(f'e.{c} is null' for c in cols)}))" for t, cols in REQUIRED_FIELDS.items()
    ]
    return f"e.type not in ({types}) or (e.rating is not null and e.rating not between 1 and 5) or " + " or ".join(
        per_type
    )


def rules(config: CleaningConfig) -> list[tuple[str, str]]:
    """(rule name, SQL condition on events ``e`` in scope) in the order they run."""
    return [
        ("missing_field", _missing_field_sql()),
        (
            "invalid_id",
            """
            (e.user_id is not null and not exists (select 1 from users u where u.user_id = e.user_id))
            or (e.product_id is not null and not exists (select 1 from products p where p.product_id = e.product_id))
            or (e.ad_id is not null and not exists (select 1 from ads a where a.ad_id = e.ad_id))""",
        ),
        ("impossible_price", f"e.price_micros < 0 or e.price_micros > {MAX_PRICE_MICROS}"),
        (
            "bad_timestamp",
            f"""e.occurred_at > now() + interval '{int(FUTURE_SKEW.total_seconds())} seconds'
            or e.occurred_at < timestamptz '{EARLIEST_EVENT.isoformat()}'""",
        ),
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
