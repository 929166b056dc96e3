"""The feature store facade: idempotent event ingestion and online lookups of many entities in one round trip.

Everything goes in and comes out as plain dataclasses (``shared.store.records``); SQL stays in here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from shared.store.ad_charges import charge_clicks
from shared.store.event_rules import check_event, normalize
from shared.store.records import (
    AdRecord,
    EventIn,
    EventRecord,
    IngestResult,
    ProductRecord,
    RejectedEvent,
    UserRecord,
)
from shared.store.schema import INTERACTION_TYPES

MAX_BATCH = 1000  # events per ingest call (the events service's RecordEvents limit too)
EVENT_COLUMNS = [f.name for f in fields(EventRecord)]
_RECORDSET_TYPES = {
    "rating": "int",
    "quantity": "int",
    "price_micros": "bigint",
    "occurred_at": "timestamptz",
    "properties": "jsonb",
}
_EVENT_RECORDSET = ", ".join(f"{c} {_RECORDSET_TYPES.get(c, 'text')}" for c in EVENT_COLUMNS)
_FOREIGN_IDS = {"user_id": ("users", "user"), "product_id": ("products", "product"), "ad_id": ("ads", "ad")}


def _ids(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


class FeatureStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # -- events ---------------------------------------------------------------------------------------
    def ingest_events(self, events: Sequence[EventIn], now: datetime | None = None) -> IngestResult:
        """Stores the valid events of a batch; an event_id already stored (or repeated in the batch) counts as a
        duplicate and is not stored again. Invalid events are returned with the offending field.

        Each newly stored click charges its campaign the price recorded when the ad was served, in the same
        transaction (``shared.store.ad_charges``): once per impression, capped by the budgets; a click on an
        impression the platform never served charges nothing and is counted in ``result.charges.unpriced``."""
        if len(events) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} events per batch, got {len(events)}")
        now = now or datetime.now(UTC)
        result = IngestResult()
        valid: list[tuple[int, EventIn]] = []
        seen: set[str] = set()
        for index, event in enumerate(events):
            event = normalize(event)
            problem = check_event(index, event, now)
            if problem:
                result.rejected.append(problem)
            elif event.event_id in seen:
                result.duplicates += 1
            else:
                seen.add(event.event_id)
                valid.append((index, event))
        with self.engine.begin() as conn:
            known = self._known_ids(conn, [e for _, e in valid])
            rows = []
            for index, event in valid:
                unknown = next(
                    (f for f in _FOREIGN_IDS if getattr(event, f) and getattr(event, f) not in known[f]), None
                )
                if unknown:
                    label = _FOREIGN_IDS[unknown][1]
                    message = f"unknown {label} {getattr(event, unknown)!r}"
                    result.rejected.append(RejectedEvent(index, unknown, message))
                    continue
                row = {c: getattr(event, c) for c in EVENT_COLUMNS}
                row["occurred_at"] = (event.occurred_at or now).isoformat()
                rows.append(row)
            if rows:
                inserted = conn.execute(
                    text(f"""
                    insert into events ({", ".join(EVENT_COLUMNS)})
                    select {", ".join(EVENT_COLUMNS)}
                    from jsonb_to_recordset(cast(:rows as jsonb)) as r({_EVENT_RECORDSET})
                    on conflict (event_id) do nothing returning event_id
                """),
                    {"rows": json.dumps(rows)},
                ).fetchall()
                result.accepted = len(inserted)
                result.duplicates += len(rows) - len(inserted)
                stored = {event_id for (event_id,) in inserted}
                clicks = [(r["event_id"], r["impression_id"]) for r in rows if r["type"] == "click"]
                result.charges = charge_clicks(conn, [c for c in clicks if c[0] in stored], now)
        result.rejected.sort(key=lambda r: r.index)
        return result

    @staticmethod
    def _known_ids(conn, events: list[EventIn]) -> dict[str, set[str]]:
        """Which user/product/ad ids of the batch exist: one query for all three."""
        wanted = {f: _ids(getattr(e, f) for e in events) for f in _FOREIGN_IDS}
        known: dict[str, set[str]] = {f: set() for f in _FOREIGN_IDS}
        if not any(wanted.values()):
            return known
        rows = conn.execute(
            text("""
            select 'user_id', user_id from users where user_id = any(:user_id)
            union all select 'product_id', product_id from products where product_id = any(:product_id)
            union all select 'ad_id', ad_id from ads where ad_id = any(:ad_id)
        """),
            wanted,
        )
        for field_name, id_ in rows:
            known[field_name].add(id_)
        return known

    def user_recent_events(
        self, user_id: str, types: Sequence[str] | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """The user's latest events, newest first, optionally of some types only."""
        return self.user_history([user_id], types, limit).get(user_id, [])

    def user_history(
        self,
        user_ids: Sequence[str],
        types: Sequence[str] | None = INTERACTION_TYPES,
        limit_per_user: int = 50,
    ) -> dict[str, list[EventRecord]]:
        """Latest events of many users (newest first, at most ``limit_per_user`` each) in one query."""
        ids = _ids(user_ids)
        if not ids:
            return {}
        rows = self._rows(
            f"""
            select {", ".join(EVENT_COLUMNS)} from (
                select e.*, row_number() over (partition by user_id order by occurred_at desc, id desc) as rank
                from events e
                where user_id = any(:ids) and (cast(:types as text[]) is null or type = any(cast(:types as text[])))
            ) ranked where rank <= :n order by user_id, rank
        """,
            {"ids": ids, "types": list(types) if types else None, "n": limit_per_user},
        )
        history: dict[str, list[EventRecord]] = {}
        for row in rows:
            history.setdefault(row["user_id"], []).append(EventRecord(**row))
        return history

    # -- entities -------------------------------------------------------------------------------------
    def get_users(self, ids: Sequence[str]) -> dict[str, UserRecord]:
        return self._by_id("users", "user_id", UserRecord, ids)

    def get_products(self, ids: Sequence[str]) -> dict[str, ProductRecord]:
        return self._by_id("products", "product_id", ProductRecord, ids)

    def get_ads(self, ids: Sequence[str]) -> dict[str, AdRecord]:
        return self._by_id("ads", "ad_id", AdRecord, ids)

    def _by_id(self, table: str, key: str, record: type, ids: Sequence[str]) -> dict:
        wanted = _ids(ids)
        if not wanted:
            return {}
        columns = ", ".join(f.name for f in fields(record))
        rows = self._rows(f"select {columns} from {table} where {key} = any(:ids)", {"ids": wanted})
        return {row[key]: record(**row) for row in rows}

    # -- derived features -----------------------------------------------------------------------------
    def get_features(
        self, entity_type: str, ids: Sequence[str], names: Sequence[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """{entity_id: {feature name: value}} for the entities that have any of the features."""
        wanted = _ids(ids)
        if not wanted:
            return {}
        rows = self._rows(
            """
            select entity_id, name, value from features
            where entity_type = :t and entity_id = any(:ids)
              and (cast(:names as text[]) is null or name = any(cast(:names as text[])))
        """,
            {"t": entity_type, "ids": wanted, "names": list(names) if names else None},
        )
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            out.setdefault(row["entity_id"], {})[row["name"]] = row["value"]
        return out

    def put_features(self, entity_type: str, values: Mapping[str, Mapping[str, Any]]) -> int:
        """Upserts {entity_id: {name: JSON value}}; returns the number of features written."""
        rows = [
            {"entity_id": eid, "name": name, "value": value}
            for eid, named in values.items()
            for name, value in named.items()
        ]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(
                text("""
                insert into features (entity_type, entity_id, name, value, updated_at)
                select :t, entity_id, name, value, now()
                from jsonb_to_recordset(cast(:rows as jsonb)) as r(entity_id text, name text, value jsonb)
                on conflict (entity_type, entity_id, name)
                do update set value = excluded.value, updated_at = excluded.updated_at
            """),
                {"t": entity_type, "rows": json.dumps(rows)},
            )
        return result.rowcount

    def _rows(self, sql: str, params: dict) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings()]
