"""Served recommendations written off the request path, in batches, on a real Postgres: what was queued is in
``served_recommendations`` after a flush and after close(); anonymous answers are not stored; when the writer is
stuck (the table locked) a full queue drops answers instead of blocking the request."""

from __future__ import annotations

import threading

from sqlalchemy import text

from services.recs.served_queue import QueuedServedLog
from shared.store.served_recommendations import ServedRecommendations


def _rows(engine) -> list[tuple[str, int | None, list[str]]]:
    with engine.connect() as conn:
        rows = conn.execute(text("select user_id, model_version, product_ids from served_recommendations"))
        return sorted((r[0], r[1], r[2]) for r in rows)


def test_queued_answers_are_written_in_batches_and_on_close(data_engine):
    log = QueuedServedLog(ServedRecommendations(data_engine))
    ids = [log.record("u1", 2, ["p1", "p2"]), log.record("u2", None, ["p3"])]
    assert all(ids) and len(set(ids)) == 2
    assert log.record("", 2, ["p1"]) is None and log.record("u3", 2, []) is None  # nothing to credit later
    assert log.flush()
    assert _rows(data_engine) == [("u1", 2, ["p1", "p2"]), ("u2", None, ["p3"])]
    log.record("u4", 1, ["p9"])
    log.close()
    assert ("u4", 1, ["p9"]) in _rows(data_engine)
    assert log.record("u5", 1, ["p1"]) is None  # closed: nothing more is taken


def test_a_full_queue_drops_answers_instead_of_blocking(data_engine):
    log = QueuedServedLog(ServedRecommendations(data_engine), max_queued=2, linger_s=0)
    with data_engine.begin() as locker:
        locker.execute(text("lock table served_recommendations in access exclusive mode"))
        log.record("u1", 1, ["p1"])  # the writer takes it and waits on the lock
        threading.Event().wait(0.3)
        accepted = [log.record(f"u{i}", 1, ["p1"]) for i in range(2, 6)]
        assert all(accepted[:2]) and accepted[2:] == [None, None]
    assert log.flush()
    log.close()
    assert [r[0] for r in _rows(data_engine)] == ["u1", "u2", "u3"]
