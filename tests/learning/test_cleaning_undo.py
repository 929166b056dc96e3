"""Every cleaning rule counted on its own catches exactly its planted rows (the demo shop's and one hand-made case per
rule the demo does not plant) and no clean row; undo gives a rule's rows back exactly once and exempts them from that
rule until ``reapply_rule``. Real Postgres (a fresh database per test)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from shared.demo_shop import generate_shop, load_shop
from shared.learning.cleaning import EVENT_COLUMNS, clean_events, quality_reports, reapply_rule, undo_rule
from shared.learning.cleaning_rules import RULE_NAMES

END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def _insert(conn, event_id: str, rule: str, **cols) -> None:
    cols.setdefault("occurred_at", END - timedelta(days=1))
    row = {"event_id": event_id, **cols, "properties": json.dumps({**cols.pop("properties", {}), "planted": rule})}
    names = [c for c in row if c != "properties"]
    conn.execute(
        text(f"insert into events ({', '.join(row)}) values "
             f"({', '.join(':' + c for c in names)}, cast(:properties as jsonb))"),
        row,
    )  # fmt: skip


def _plant_one_per_new_rule(engine: Engine) -> dict[str, int]:
    """Rows for the rules the demo shop plants nothing for; returns rule -> rows planted."""
    with engine.begin() as conn:
        user, product = conn.execute(text("select user_id, product_id from events where type = 'view' limit 1")).one()
        view = conn.execute(text("select * from events where type = 'view' order by id limit 1")).mappings().one()
        imp = (
            conn.execute(
                text("""select * from events i where type = 'impression' and user_id is not null and not exists
                        (select 1 from events c where c.type = 'click' and c.impression_id = i.impression_id)
                        order by id limit 1""")
            )
            .mappings()
            .one()
        )
        conn.execute(text("insert into users (user_id) values ('u-fast')"))
        _insert(conn, "x-unknown-user", "unknown_user", type="view", user_id="u-ghost", product_id=product)
        _insert(conn, "x-unknown-ad", "unknown_ad", type="impression", user_id=user, ad_id="ad-ghost",
                impression_id="imp-ghost")  # fmt: skip
        _insert(conn, "x-quantity", "impossible_quantity", type="cart", user_id=user, product_id=product,
                quantity=10**6)  # fmt: skip
        for n in range(80):  # 80 views in 40 s
            _insert(conn, f"x-fast-{n}", "inhuman_speed", type="view", user_id="u-fast", product_id=product,
                    occurred_at=END - timedelta(days=2) + timedelta(milliseconds=500 * n))  # fmt: skip
        fast = imp["occurred_at"] + timedelta(milliseconds=120)
        _insert(conn, "x-instant", "instant_click", type="click", user_id=imp["user_id"], ad_id=imp["ad_id"],
                impression_id=imp["impression_id"], occurred_at=fast)  # fmt: skip
        copy = {k: view[k] for k in ("type", "user_id", "product_id", "session_id", "occurred_at")}
        _insert(conn, "x-exact-copy", "exact_duplicate", **copy, properties=view["properties"])
    return {"unknown_user": 1, "unknown_ad": 1, "impossible_quantity": 1, "inhuman_speed": 80, "instant_click": 1,
            "exact_duplicate": 1}  # fmt: skip


def _quarantined(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("select event_id, rule from events_quarantine")).all())


@pytest.fixture
def planted_shop(data_engine) -> tuple[Engine, dict[str, int]]:
    shop = generate_shop("tiny", 11, END)
    load_shop(data_engine, shop)
    planted = {rule: n for rule, n in shop.planted.items() if rule != "duplicate_event_id"}
    return data_engine, {**planted, **_plant_one_per_new_rule(data_engine)}


def test_each_rule_catches_exactly_its_planted_rows(planted_shop):
    engine, planted = planted_shop
    assert set(planted) <= set(RULE_NAMES) and len(planted) >= 12
    report = clean_events(engine)
    assert set(report.issues) == set(RULE_NAMES)  # every rule reported, those that caught nothing with 0
    assert {rule: n for rule, n in report.issues.items() if n} == planted
    with engine.connect() as conn:
        tags = dict(conn.execute(text("select event_id, properties->>'planted' from events_quarantine")).all())
        left = conn.execute(text("select count(*) from events where properties ? 'planted'")).scalar()
    assert _quarantined(engine) == tags  # precision and recall per rule: each row under the rule it was planted for
    assert left == 0


def test_undo_gives_a_rules_rows_back_once_and_exempts_them(planted_shop):
    engine, planted = planted_shop
    first = clean_events(engine)
    before = _quarantined(engine)
    rows = {e for e, rule in before.items() if rule == "near_duplicate"}
    with engine.begin() as conn:  # one of them arrived again meanwhile: undo must not duplicate it
        columns = ", ".join(c for c in EVENT_COLUMNS if c != "id")  # a new row id, the same event id
        conn.execute(
            text(f"insert into events ({columns}) select {columns} from events_quarantine where event_id = :e"),
            {"e": min(rows)},
        )

    undo = undo_rule(engine, "near_duplicate")
    assert (undo.restored, undo.already_present) == (len(rows) - 1, 1)
    with engine.connect() as conn:
        back = conn.execute(text("select event_id, count(*) from events where event_id = any(:ids) group by 1"),
                            {"ids": list(rows)}).all()  # fmt: skip
        recorded = conn.execute(text("select rule, report_id, restored from cleaning_undos")).all()
    assert {e for e, _ in back} == rows and all(n == 1 for _, n in back)
    assert _quarantined(engine) == {e: r for e, r in before.items() if r != "near_duplicate"}  # the others stay
    assert recorded == [("near_duplicate", None, len(rows) - 1)]
    assert quality_reports(engine)[0].undone == {"near_duplicate": len(rows)}

    assert undo_rule(engine, "near_duplicate").restored == 0  # idempotent
    again = clean_events(engine)  # the exemption holds: nothing comes back into quarantine
    assert again.rows_dropped == 0, again.issues
    assert reapply_rule(engine, "near_duplicate") == len(rows)
    judged = clean_events(engine)
    assert judged.issues["near_duplicate"] == planted["near_duplicate"] and judged.rows_dropped == len(rows)
    assert first.issues["near_duplicate"] == len(rows)


def test_undo_of_one_report_leaves_the_others(planted_shop):
    engine, _ = planted_shop
    first = clean_events(engine)
    with engine.begin() as conn:  # a second burst of the bot arrives after the first run
        conn.execute(text("insert into users (user_id) values ('u-fast-2')"))
        for n in range(70):
            _insert(conn, f"y-fast-{n}", "inhuman_speed", type="search", user_id="u-fast-2", query="x",
                    occurred_at=END - timedelta(hours=5) + timedelta(milliseconds=100 * n))  # fmt: skip
    second = clean_events(engine)
    assert second.issues["inhuman_speed"] == 70
    undo = undo_rule(engine, "inhuman_speed", report_id=second.id)
    assert undo.restored == 70
    with engine.connect() as conn:
        kept = conn.execute(text("select report_id, count(*) from events_quarantine where rule = 'inhuman_speed' "
                                 "group by 1")).all()  # fmt: skip
    assert kept == [(first.id, first.issues["inhuman_speed"])]
    with pytest.raises(ValueError, match="rule must be one of"):
        undo_rule(engine, "bots")
    with pytest.raises(ValueError, match="report 999 does not exist"):
        undo_rule(engine, "inhuman_speed", report_id=999)
