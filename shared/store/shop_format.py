"""The shop file format (docs/data-format.md): one folder, one file per table, CSV or Parquet.

This module holds the table specs, reads files into rows with the line numbers a user sees, parses values, and
exports a demo shop to the format. Validation and writing are in ``shared.store.importer``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.store.schema import AD_STATUSES, CAMPAIGN_STATUSES, EVENT_TYPES, ORDER_STATUSES


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text | int | micros | bool | float | datetime | json_list | json_object | enum
    required: bool = False
    choices: tuple[str, ...] = ()
    references: str | None = None  # "table.column"


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]  # upsert key; () = insert when no identical row exists
    columns: tuple[Column, ...]
    required_file: bool = False
    upsert: bool = True  # False: an existing key is left as it is (events are immutable)

    @property
    def by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}


T, R = "text", True
TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "users",
        ("user_id",),
        (
            Column("user_id", T, R),
            Column("segment", T),
            Column("country", T),
            Column("created_at", "datetime"),
            Column("attributes", "json_object"),
        ),
    ),
    TableSpec(
        "products",
        ("product_id",),
        (
            Column("product_id", T, R),
            Column("title", T, R),
            Column("description", T),
            Column("category", T),
            Column("brand", T),
            Column("price_micros", "micros", R),
            Column("currency", T),
            Column("in_stock", "bool"),
            Column("stock", "int"),
            Column("created_at", "datetime"),
            Column("attributes", "json_object"),
        ),
    ),
    TableSpec(
        "campaigns",
        ("campaign_id",),
        (
            Column("campaign_id", T, R),
            Column("advertiser", T, R),
            Column("name", T, R),
            Column("daily_budget_micros", "micros"),
            Column("total_budget_micros", "micros"),
            Column("spent_micros", "micros"),
            Column("start_at", "datetime"),
            Column("end_at", "datetime"),
            Column("status", "enum", choices=CAMPAIGN_STATUSES),
        ),
    ),
    TableSpec(
        "ads",
        ("ad_id",),
        (
            Column("ad_id", T, R),
            Column("campaign_id", T, R, references="campaigns.campaign_id"),
            Column("product_id", T, references="products.product_id"),
            Column("title", T, R),
            Column("body", T),
            Column("category", T),
            Column("keywords", "json_list"),
            Column("target_segments", "json_list"),
            Column("bid_micros", "micros", R),
            Column("status", "enum", choices=AD_STATUSES),
            Column("frequency_cap_per_day", "int"),
        ),
    ),
    TableSpec(
        "orders",
        ("order_id",),
        (
            Column("order_id", T, R),
            Column("user_id", T, R, references="users.user_id"),
            Column("status", "enum", R, choices=ORDER_STATUSES),
            Column("created_at", "datetime", R),
            Column("updated_at", "datetime"),
            Column("total_micros", "micros", R),
            Column("currency", T),
            Column("tracking_number", T),
        ),
    ),
    TableSpec(
        "order_items",
        ("order_id", "product_id"),
        (
            Column("order_id", T, R, references="orders.order_id"),
            Column("product_id", T, R, references="products.product_id"),
            Column("quantity", "int", R),
            Column("price_micros", "micros", R),
        ),
    ),
    TableSpec(
        "events",
        ("event_id",),
        (
            Column("event_id", T, R),
            Column("type", "enum", R, choices=EVENT_TYPES),
            Column("user_id", T, references="users.user_id"),
            Column("product_id", T, references="products.product_id"),
            Column("ad_id", T, references="ads.ad_id"),
            Column("impression_id", T),
            Column("placement_id", T),
            Column("session_id", T),
            Column("query", T),
            Column("conversation_id", T),
            Column("rating", "int"),
            Column("quantity", "int"),
            Column("price_micros", "micros"),
            Column("occurred_at", "datetime", R),
            Column("properties", "json_object"),
        ),
        upsert=False,
    ),
    TableSpec(
        "faq_entries",
        ("faq_id",),
        (
            Column("faq_id", T, R),
            Column("question", T, R),
            Column("answer", T, R),
            Column("intent", T),
            Column("tags", "json_list"),
        ),
    ),
    TableSpec("intent_examples", (), (Column("text", T, R), Column("intent", T, R), Column("source", T))),
)
TABLE_BY_NAME = {t.name: t for t in TABLES}


def parse_value(column: Column, raw: Any) -> Any:
    """The typed value of a cell (CSV text or a Parquet value); None when empty, except that an empty JSON cell is
    the empty list/object (those columns are NOT NULL with that default). Raises ValueError with a message a user
    understands."""
    kind = column.kind
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return [] if kind == "json_list" else {} if kind == "json_object" else None
    if kind in ("text", "enum"):
        value = str(raw).strip()
        if kind == "enum" and value not in column.choices:
            raise ValueError(f"must be one of {', '.join(column.choices)}, got {value!r}")
        return value
    if kind in ("int", "micros"):
        if isinstance(raw, bool):
            raise ValueError(f"must be an integer, got {raw!r}")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        try:
            number = int(raw) if isinstance(raw, int) else int(str(raw).strip())
        except ValueError:
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if number < 0:
            raise ValueError(f"must not be negative, got {number}")
        return number
    if kind == "float":
        return float(raw)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "t", "1", "yes", "y"):
            return True
        if text in ("false", "f", "0", "no", "n"):
            return False
        raise ValueError(f"must be true or false, got {raw!r}")
    if kind == "datetime":
        if isinstance(raw, datetime):
            when = raw
        else:
            try:
                when = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"must be an ISO 8601 timestamp, got {raw!r}") from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    if kind in ("json_list", "json_object"):
        parsed = raw
        if isinstance(raw, str):
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not valid JSON ({exc.msg})") from None
        wanted = list if kind == "json_list" else dict
        if not isinstance(parsed, wanted):
            raise ValueError(f"must be a JSON {'array' if wanted is list else 'object'}")
        return parsed
    raise AssertionError(f"unknown column kind {kind}")


@dataclass
class TableFile:
    path: Path
    columns: list[str]
    rows: Iterator[tuple[int, dict[str, Any]]] = field(repr=False)  # (line as the user sees it, raw cells)


def find_table_file(folder: Path, table: str) -> Path | None:
    for suffix in (".csv", ".parquet"):
        path = folder / f"{table}{suffix}"
        if path.exists():
            return path
    return None


def open_table_file(path: Path) -> TableFile:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        data = pq.read_table(path)
        numbered = ((i + 2, row) for i, row in enumerate(data.to_pylist()))  # line 1 = the header, as in CSV
        return TableFile(path, list(data.column_names), numbered)
    handle = path.open(newline="", encoding="utf-8-sig")
    reader = csv.reader(handle)
    header = [h.strip() for h in next(reader, [])]

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        with handle:
            while True:
                line = reader.line_num + 1
                cells = next(reader, None)
                if cells is None:
                    return
                if not any(c.strip() for c in cells):
                    continue  # blank line
                yield line, dict(zip(header, cells + [""] * (len(header) - len(cells))))

    return TableFile(path, header, rows())


def _cell(value: Any, fmt: str) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if fmt == "csv" and isinstance(value, datetime):
        return value.isoformat()
    if fmt == "csv" and isinstance(value, bool):
        return "true" if value else "false"
    return value


def export_shop(shop, folder: str | Path, fmt: str = "csv", include_bad_events: bool = False) -> dict[str, int]:
    """Writes a demo shop (``shared.demo_shop.Shop``) in the import format; returns rows per file. The planted bad
    events and repeated event ids are left out unless ``include_bad_events``."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be csv or parquet, got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for spec in TABLES:
        names = [c.name for c in spec.columns]
        if spec.name == "events":
            records, seen = [], set()
            for event in shop.event_dicts():
                if not include_bad_events and ("planted" in event["properties"] or event["event_id"] in seen):
                    continue
                seen.add(event["event_id"])
                records.append({**event, "properties": json.loads(event["properties"])})
        else:
            records = getattr(shop, spec.name)
        rows = [[_cell(r.get(n), fmt) for n in names] for r in records]
        path = folder / f"{spec.name}.{fmt}"
        if fmt == "csv":
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(names)
                writer.writerows(["" if v is None else v for v in row] for row in rows)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = (
                pa.Table.from_pylist([dict(zip(names, row)) for row in rows])
                if rows
                else pa.table({n: pa.array([], pa.string()) for n in names})
            )
            pq.write_table(table, path)
        counts[spec.name] = len(rows)
    return counts
