"""`ecomai quality` on a real database: the latest report per rule, the per-rule trend across runs, the feature-shift
table; `ecomai quality undo` gives a rule's rows back once; bad input is a clear message and exit status 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.cli import main
from shared.demo_shop import generate_shop, load_shop
from shared.learning.cleaning import clean_events
from shared.store.engine import make_engine


@pytest.fixture
def shop_url(new_database, monkeypatch) -> str:
    url = new_database()
    engine = make_engine(url)
    shop = generate_shop("tiny", 11, datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2))
    load_shop(engine, shop)
    clean_events(engine)
    clean_events(engine)
    engine.dispose()
    monkeypatch.setenv("ECOMAI_DATABASE_URL", url)
    return url


def test_quality_shows_reports_trends_and_drift_and_undo_is_idempotent(shop_url, capsys):
    assert main(["quality"]) == 0
    shown = capsys.readouterr().out
    assert "cleaning report #2" in shown and "extreme_click_rate" in shown and "instant_click" in shown
    assert "rows quarantined per rule, oldest run -> newest" in shown and "#1" in shown
    assert "feature shift, the last 7 days of events and the 7 before" in shown and "category_mix" in shown

    assert main(["quality", "undo", "near_duplicate", "--report", "1"]) == 0
    assert "undo #1: 3 near_duplicate rows of report 1 back in events (0 already there" in capsys.readouterr().out
    assert main(["quality", "undo", "near_duplicate"]) == 0
    assert "undo #2: 0 near_duplicate rows of every report" in capsys.readouterr().out

    assert main(["quality", "--json", "--runs", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trend"]["runs"] == [1, 2]
    assert summary["trend"]["rules"]["extreme_click_rate"] == [260, 0]  # the planted bot, caught by the first run
    assert summary["reports"][1]["undone"] == {"near_duplicate": 3}
    assert [u["restored"] for u in summary["undos"]] == [0, 3]
    features = {f["feature"]: f for f in summary["drift"]["features"]}
    assert {"price", "position", "user_activity", "click_rate", "category_mix"} <= set(features)


def test_quality_undo_of_a_missing_report_says_so(shop_url, capsys):
    assert main(["quality", "undo", "near_duplicate", "--report", "42"]) == 2
    assert "ecomai quality undo: report 42 does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["quality", "undo", "no_such_rule"])
    assert "invalid choice: 'no_such_rule'" in capsys.readouterr().err
