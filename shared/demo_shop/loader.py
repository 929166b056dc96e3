"""Writes a demo shop into the feature store with COPY: a 1M-event shop loads in seconds."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

from shared.demo_shop.sessions import EVENT_COLUMNS

if TYPE_CHECKING:
    from shared.demo_shop import Shop

# parents before children (COPY order); truncated together
SHOP_TABLES = (
    "users",
    "products",
    "campaigns",
    "ads",
    "orders",
    "order_items",
    "conversations",
    "messages",
    "faq_entries",
    "intent_examples",
    "events",
)
DERIVED_TABLES = ("features", "events_quarantine")
JSON_COLUMNS = {"attributes", "keywords", "target_segments", "tags", "metadata"}


@dataclass
class LoadReport:
    rows: dict[str, int] = field(default_factory=dict)
    duplicate_event_ids: int = 0  # repeated event ids in the stream, stored once
    seconds: float = 0.0


def _copy(cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    count = 0
    with cursor.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _dict_rows(rows: list[dict], columns: Sequence[str]) -> Iterable[tuple]:
    for row in rows:
        yield tuple(json.dumps(row[c]) if c in JSON_COLUMNS and row[c] is not None else row[c] for c in columns)


def _unique_events(events: Iterable[tuple], report: LoadReport) -> Iterable[tuple]:
    seen: set[str] = set()
    for event in events:
        if event[0] in seen:
            report.duplicate_event_ids += 1
            continue
        seen.add(event[0])
        yield event


@contextlib.contextmanager
def _indexes_dropped(cursor, table: str, enabled: bool) -> Iterator[None]:
    """Drops the secondary indexes and unique constraints of ``table`` and rebuilds them afterwards: building an
    index once is several times faster than updating it row by row during a large COPY."""
    if not enabled:
        yield
        return
    cursor.execute(
        """
        select conname, pg_get_constraintdef(oid) from pg_constraint
        where conrelid = cast(%s as regclass) and contype = 'u'
    """,
        (table,),
    )
    constraints = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'alter table {table} drop constraint "{name}"')
    cursor.execute(
        """
        select i.relname, pg_get_indexdef(i.oid) from pg_index x join pg_class i on i.oid = x.indexrelid
        where x.indrelid = cast(%s as regclass) and not x.indisprimary
    """,
        (table,),
    )
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f'drop index "{name}"')
    yield
    for name, definition in constraints:
        cursor.execute(f'alter table {table} add constraint "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition)


def load_shop(engine: Engine, shop: Shop) -> LoadReport:
    """Replaces the shop data (users ... events; derived features and quarantine too) with ``shop`` in one
    transaction. Model versions, embeddings and quality reports are kept."""
    started = time.perf_counter()
    report = LoadReport()
    raw = engine.raw_connection()
    try:
        with closing(raw.cursor()) as cursor:
            cursor.execute("set local maintenance_work_mem = '256MB'")
            cursor.execute(f"truncate {', '.join(SHOP_TABLES + DERIVED_TABLES)} restart identity cascade")
            for table in SHOP_TABLES[:-1]:
                rows = getattr(shop, table)
                if not rows:
                    report.rows[table] = 0
                    continue
                columns = list(rows[0])
                report.rows[table] = _copy(cursor, table, columns, _dict_rows(rows, columns))
            with _indexes_dropped(cursor, "events", enabled=len(shop.events) > 100_000):
                report.rows["events"] = _copy(cursor, "events", EVENT_COLUMNS, _unique_events(shop.events, report))
            cursor.execute("analyze")
        raw.commit()
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()
    report.seconds = time.perf_counter() - started
    return report


def shop_is_seeded(engine: Engine) -> bool:
    """True when the store has products and users (demo or imported); False on an empty or unmigrated database."""
    with engine.connect() as conn:
        exists = conn.execute(text("select to_regclass('products') is not null and to_regclass('users') is not null"))
        if not exists.scalar():
            return False
        return bool(
            conn.execute(text("select exists (select 1 from products) and exists (select 1 from users)")).scalar()
        )
