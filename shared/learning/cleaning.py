"""The event cleaning job: moves bad events to ``events_quarantine`` (never deleting them) with the rule that caught
them, and records a quality report (rows per rule) in ``data_quality_reports``; and the way back, ``undo_rule``.

Rules (shared/learning/cleaning_rules.py) run in order, each on what the previous ones left, inside one
transaction. That makes a run idempotent: a second run finds nothing more (duplicates keep their first copy, bot
users lose all their events at once).

Undo moves a rule's rows (of one report, or of all) back into events, skipping an event id that is already there
(event ids are unique), and records an exemption per event: later runs of THAT rule leave those events alone
(what a person judged good stays good), other rules still apply, and ``reapply_rule`` drops the exemptions so the
next run judges them again. Running undo twice finds nothing the second time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.learning.cleaning_rules import RULE_NAMES, CleaningConfig, rules
from shared.store.schema import Event

__all__ = ["CleaningConfig", "QualityReport", "UndoResult", "clean_events", "quality_reports", "undo_rule"]

EVENT_COLUMNS = tuple(Event.__table__.columns.keys())  # events_quarantine has these too (schema.EventColumns)
SAMPLES_PER_RULE = 3
_LOCK = "select pg_advisory_xact_lock(hashtext('ecomai.clean_events'))"


@dataclass
class QualityReport:
    id: int
    created_at: datetime
    source: str
    rows_in: int
    rows_kept: int
    rows_dropped: int
    issues: dict[str, int]  # rule -> events quarantined (every rule, 0 when it caught nothing)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    task_id: str | None = None
    undone: dict[str, int] = field(default_factory=dict)  # rule -> rows given back by undo since


@dataclass(frozen=True)
class UndoResult:
    undo_id: int
    rule: str
    report_id: int | None
    restored: int  # rows moved back into events
    already_present: int  # rows whose event id was in events again: left out, not duplicated


def clean_events(
    engine: Engine,
    since: datetime | None = None,
    task_id: str | None = None,
    config: CleaningConfig | None = None,
    source: str = "events",
    ignore_exemptions: bool = False,
) -> QualityReport:
    """Quarantines the bad events (occurring at or after ``since``, default all) and returns the stored report.
    ``ignore_exemptions``: judge again what an undo gave back."""
    columns = ", ".join(EVENT_COLUMNS)
    in_scope = "(cast(:since as timestamptz) is null or occurred_at >= cast(:since as timestamptz))"
    exempt = "" if ignore_exemptions else (
        " and not exists (select 1 from cleaning_exemptions x where x.event_id = e.event_id and x.rule = :rule)"
    )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(text(_LOCK))
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
        for rule in rules(config):
            moved = conn.execute(
                text(f"""
                with scope as (select * from events where {in_scope}),
                moved as (
                    delete from events e where e.id in (select e.id from scope e where ({rule.condition}){exempt})
                    returning e.*),
                kept as (
                    insert into events_quarantine ({columns}, rule, report_id)
                    select {columns}, :rule, :report from moved returning 1)
                select count(*) from kept
            """),
                {"since": since, "rule": rule.name, "report": report_id},
            ).scalar_one()
            issues[rule.name] = int(moved)
            if moved:
                samples[rule.name] = _samples(conn, report_id, rule.name)
        dropped = sum(issues.values())
        conn.execute(
            text("""
            update data_quality_reports set rows_kept = :kept, rows_dropped = :dropped,
                issues = cast(:issues as jsonb), samples = cast(:samples as jsonb) where id = :id
        """),
            {"kept": rows_in - dropped, "dropped": dropped, "issues": _json(issues), "samples": _json(samples),
             "id": report_id},
        )  # fmt: skip
    return QualityReport(report_id, created_at, source, rows_in, rows_in - dropped, dropped, issues, samples, task_id)


def _samples(conn: Connection, report_id: int, rule: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        text("""
        select event_id, type, user_id, product_id, ad_id, impression_id, price_micros, quantity,
               cast(occurred_at as text) as occurred_at
        from events_quarantine where report_id = :report and rule = :rule order by id limit :n
    """),
        {"report": report_id, "rule": rule, "n": SAMPLES_PER_RULE},
    ).mappings()
    return [dict(r) for r in rows]


def undo_rule(engine: Engine, rule: str, report_id: int | None = None) -> UndoResult:
    """Moves ``rule``'s quarantined rows (of report ``report_id``, or of every report) back into events, exempts them
    from that rule and records the undo. ValueError for an unknown rule or report."""
    if rule not in RULE_NAMES:
        raise ValueError(f"rule must be one of {', '.join(RULE_NAMES)}, got {rule!r}")
    columns = ", ".join(EVENT_COLUMNS)
    params: dict[str, Any] = {"rule": rule, "report": report_id}
    picked = "rule = :rule and (cast(:report as bigint) is null or report_id = cast(:report as bigint))"
    with engine.begin() as conn:
        conn.execute(text(_LOCK))
        if (
            report_id is not None
            and not conn.execute(text("select 1 from data_quality_reports where id = :report"), params).first()
        ):
            raise ValueError(f"report {report_id} does not exist")
        per_report = conn.execute(
            text(f"select report_id, count(*) from events_quarantine where {picked} group by report_id"), params
        ).all()
        params["undo"] = conn.execute(
            text("insert into cleaning_undos (rule, report_id, restored, already_present) "
                 "values (:rule, :report, 0, 0) returning id"),
            params,
        ).scalar_one()  # fmt: skip
        taken, restored = conn.execute(
            text(f"""
            with picked as (delete from events_quarantine where {picked} returning *),
            exempt as (
                insert into cleaning_exemptions (event_id, rule, undo_id)
                select distinct event_id, :rule, :undo from picked on conflict do nothing),
            back as (
                insert into events ({columns})
                select distinct on (event_id) {columns} from picked order by event_id, quarantined_at desc
                on conflict do nothing returning 1)
            select (select count(*) from picked), (select count(*) from back)
        """),
            params,
        ).one()
        params.update(restored=restored, present=taken - restored)
        conn.execute(
            text("update cleaning_undos set restored = :restored, already_present = :present where id = :undo"), params
        )
        for report, count in per_report:
            conn.execute(
                text("""update data_quality_reports set undone = undone || jsonb_build_object(
                        cast(:rule as text), coalesce(cast(undone->>:rule as bigint), 0) + :n) where id = :id"""),
                {"rule": rule, "n": count, "id": report},
            )
    return UndoResult(params["undo"], rule, report_id, int(restored), int(taken - restored))


def reapply_rule(engine: Engine, rule: str) -> int:
    """Drops ``rule``'s exemptions (the next cleaning run judges those events again); returns how many."""
    if rule not in RULE_NAMES:
        raise ValueError(f"rule must be one of {', '.join(RULE_NAMES)}, got {rule!r}")
    with engine.begin() as conn:
        return conn.execute(text("delete from cleaning_exemptions where rule = :rule"), {"rule": rule}).rowcount


def quality_reports(engine: Engine, limit: int = 20) -> list[QualityReport]:
    """The latest stored reports, newest first."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("""
            select id, created_at, source, rows_in, rows_kept, rows_dropped, issues, samples, task_id, undone
            from data_quality_reports order by id desc limit :n
        """),
                {"n": limit},
            )
            .mappings()
            .all()
        )
    return [QualityReport(**r) for r in rows]


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
