"""Shop import: CSV and Parquet round trips of the demo shop, and all-or-nothing rejection naming file/line/column."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from shared.core.errors import ImportRejected
from shared.demo_shop import generate_shop, load_shop
from shared.store.event_rules import MAX_ID_LENGTH, MAX_PRICE_MICROS
from shared.store.feature_store import FeatureStore
from shared.store.importer import import_shop
from shared.store.shop_format import export_shop

END = datetime(2026, 5, 1, tzinfo=UTC)
TABLES = ("users", "products", "campaigns", "ads", "orders", "order_items", "events", "faq_entries", "intent_examples")


@pytest.fixture(scope="module")
def shop():
    return generate_shop("tiny", 5, END)


def table_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"select count(*) from {t}")).scalar_one() for t in TABLES}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip(shop, data_engine, tmp_path, fmt):
    exported = export_shop(shop, tmp_path, fmt)
    report = import_shop(data_engine, tmp_path)
    assert report.counts == exported
    assert table_counts(data_engine) == exported
    clean_events = {e["event_id"] for e in shop.event_dicts() if "planted" not in e["properties"]}
    assert exported["events"] == len(clean_events)
    again = import_shop(data_engine, tmp_path)  # idempotent: upserts, events and examples not duplicated
    assert again.counts["events"] == 0 and again.counts["intent_examples"] == 0
    assert table_counts(data_engine) == exported
    original = next(p for p in shop.products if p["product_id"] == "p-00007")
    stored = FeatureStore(data_engine).get_products(["p-00007"])["p-00007"]
    assert (stored.title, stored.price_micros, stored.attributes) == (
        original["title"],
        original["price_micros"],
        original["attributes"],
    )
    ad = FeatureStore(data_engine).get_ads(["ad-0003"])["ad-0003"]
    assert ad.keywords == shop.ads[2]["keywords"]


def _edit_csv(path, edits: dict[tuple[int, str], str]) -> None:
    """edits: (line as in the file, column) -> new value."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for (line, column), value in edits.items():
        rows[line - 1][header.index(column)] = value
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_bad_rows_import_nothing_and_are_named(shop, data_engine, tmp_path):
    export_shop(shop, tmp_path, "csv")
    _edit_csv(tmp_path / "products.csv", {(3, "price_micros"): "-5", (4, "in_stock"): "maybe"})
    _edit_csv(tmp_path / "ads.csv", {(2, "campaign_id"): "cmp-nope"})
    _edit_csv(tmp_path / "orders.csv", {(5, "status"): "lost"})
    _edit_csv(tmp_path / "events.csv", {(10, "occurred_at"): "yesterday", (11, "user_id"): "u-ghost"})
    _edit_csv(tmp_path / "users.csv", {(6, "user_id"): ""})
    with pytest.raises(ImportRejected) as caught:
        import_shop(data_engine, tmp_path)
    where = {(f, line, col) for f, line, col, _ in caught.value.problems}
    assert {
        ("products.csv", 3, "price_micros"),
        ("products.csv", 4, "in_stock"),
        ("ads.csv", 2, "campaign_id"),
        ("orders.csv", 5, "status"),
        ("events.csv", 10, "occurred_at"),
        ("events.csv", 11, "user_id"),
        ("users.csv", 6, "user_id"),
    } <= where
    assert "products.csv:3: column price_micros: must not be negative" in caught.value.message
    assert sum(table_counts(data_engine).values()) == 0


def test_event_rows_get_the_ingestion_rules(shop, data_engine, tmp_path):
    """The importer applies check_event to each events row: limits the file format alone does not know."""
    export_shop(shop, tmp_path, "csv")
    _edit_csv(
        tmp_path / "events.csv",
        {
            (10, "session_id"): "s" * (MAX_ID_LENGTH + 1),
            (11, "price_micros"): str(MAX_PRICE_MICROS + 1),
            (12, "price_micros"): "-1",
        },
    )
    with pytest.raises(ImportRejected) as caught:
        import_shop(data_engine, tmp_path)
    assert [(f, line, col) for f, line, col, _ in caught.value.problems] == [
        ("events.csv", 10, "session_id"),
        ("events.csv", 11, "price_micros"),
        ("events.csv", 12, "price_micros"),
    ]
    assert f"events.csv:10: column session_id: is longer than {MAX_ID_LENGTH} characters" in caught.value.message
    assert f"events.csv:11: column price_micros: must be between 0 and {MAX_PRICE_MICROS}" in caught.value.message
    assert sum(table_counts(data_engine).values()) == 0


def test_import_checks_ids_against_database(shop, data_engine, tmp_path):
    load_shop(data_engine, shop)
    (tmp_path / "orders.csv").write_text(
        "order_id,user_id,status,created_at,total_micros\n"
        "ORD-900001,u-0002,placed,2026-04-30T10:00:00Z,1500000\n"
        "ORD-900002,u-nobody,placed,2026-04-30T10:00:00Z,1500000\n"
    )
    with pytest.raises(ImportRejected) as caught:
        import_shop(data_engine, tmp_path)
    assert [(f, line, col) for f, line, col, _ in caught.value.problems] == [("orders.csv", 3, "user_id")]
    (tmp_path / "orders.csv").write_text(
        "order_id,user_id,status,created_at,total_micros\nORD-900001,u-0002,placed,2026-04-30T10:00:00Z,1500000\n"
    )
    assert import_shop(data_engine, tmp_path).counts == {"orders": 1}


def test_empty_json_cells_import_as_empty_json(shop, data_engine, tmp_path):
    """An empty properties/keywords cell is an empty object/list (the columns are NOT NULL), not a failed write."""
    export_shop(shop, tmp_path, "csv")
    _edit_csv(tmp_path / "events.csv", {(2, "properties"): ""})
    _edit_csv(tmp_path / "ads.csv", {(2, "keywords"): ""})
    import_shop(data_engine, tmp_path)
    with (tmp_path / "events.csv").open(newline="") as handle:
        event_id = list(csv.DictReader(handle))[0]["event_id"]
    with (tmp_path / "ads.csv").open(newline="") as handle:
        ad_id = list(csv.DictReader(handle))[0]["ad_id"]
    with data_engine.connect() as conn:
        properties = conn.execute(text("select properties from events where event_id = :e"), {"e": event_id})
        keywords = conn.execute(text("select keywords from ads where ad_id = :a"), {"a": ad_id})
        assert (properties.scalar_one(), keywords.scalar_one()) == ({}, [])
