"""Feature drift between two windows: PSI and KS as pure functions, then on a real database where the latest window's
ad positions were moved on purpose (and nothing else was), and training windows read from the registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import text

from shared.demo_shop import generate_shop, load_shop
from shared.learning.cleaning import clean_events
from shared.learning.data_drift import (
    PSI_MODERATE,
    PSI_SHIFT,
    feature_shifts,
    ks_statistic,
    latest_windows,
    psi_categorical,
    psi_numeric,
    training_windows,
)


def test_psi_and_ks_are_zero_for_the_same_distribution_and_large_for_a_moved_one():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0, 1, 20_000)
    assert psi_numeric(a, b) < 0.01 and ks_statistic(a, b) < 0.03
    moved = rng.normal(1, 1, 20_000)
    assert psi_numeric(a, moved) > PSI_SHIFT and 0.3 < ks_statistic(a, moved) < 0.5  # KS of a 1-sigma move: 0.38
    assert psi_numeric(a, a) == 0 and ks_statistic(a, a) == 0
    assert psi_categorical({"x": 50, "y": 50}, {"x": 500, "y": 500}) == 0
    assert psi_categorical({"x": 90, "y": 10}, {"x": 10, "y": 90}) > PSI_SHIFT
    assert psi_categorical({"x": 100}, {"x": 90, "new": 10}) > PSI_MODERATE  # a category that appears counts
    assert np.isnan(psi_numeric(a, np.array([]))) and np.isnan(ks_statistic(np.array([]), a))


def test_feature_shifts_find_the_features_that_moved(data_engine):
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    load_shop(data_engine, generate_shop("small", 5, end))
    clean_events(data_engine)  # drift is measured on what training sees
    windows = latest_windows(data_engine, days=7)
    assert windows is not None
    previous, latest = windows
    assert latest.end - latest.start == timedelta(days=7) and previous.end == latest.start
    before = {s.feature: s for s in feature_shifts(data_engine, previous, latest)}
    assert all(s.verdict == "stable" for s in before.values()), before  # the generator is stationary

    with data_engine.begin() as conn:  # the latest week: every ad in slot 3
        conn.execute(
            text("update events set properties = properties || '{\"position\": 3}' "
                 "where type = 'impression' and occurred_at >= :start"),
            {"start": latest.start},
        )  # fmt: skip
    after = {s.feature: s for s in feature_shifts(data_engine, previous, latest)}
    position = after["position"]
    assert position.verdict == "shift" and position.ks is not None and position.ks > 0.5
    assert position.latest == 3.0 and isinstance(position.previous, float) and position.previous < 2.5
    assert {name for name, s in after.items() if s.verdict != "stable"} == {"position"}
    assert set(after) == {"price", "position", "user_activity", "click_rate", "category_mix", "placement_mix"}
    assert after["category_mix"].latest_n == after["position"].latest_n > 1000


def test_training_windows_come_from_the_last_two_registry_versions(data_engine):
    t = datetime(2026, 11, 1, tzinfo=UTC)

    def version(n: int, start: datetime, stop: datetime) -> None:
        dataset = {"train_time_range": [start.isoformat(), stop.isoformat()]}
        with data_engine.begin() as conn:
            conn.execute(
                text("insert into model_versions (model_name, version, status, dataset) "
                     "values ('ctr_model', :v, 'serving', cast(:d as jsonb))"),
                {"v": n, "d": json.dumps(dataset)},
            )  # fmt: skip

    version(1, t, t + timedelta(days=5))
    assert training_windows(data_engine) is None  # one window: nothing to compare with
    version(2, t, t + timedelta(days=9))
    windows = training_windows(data_engine)
    assert windows is not None
    previous, latest = windows
    assert previous.start == t and abs(previous.end - (t + timedelta(days=5))) < timedelta(seconds=1)
    assert latest.start == previous.end and abs(latest.end - (t + timedelta(days=9))) < timedelta(seconds=1)
