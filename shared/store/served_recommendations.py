"""What each recommendation answer served, with the recs_ranker version that ranked it (``served_recommendations``):
the record ``shared.learning.traffic.online_metrics`` credits later views and purchases of those products to, per
version. Inserts without waiting for the WAL flush, many answers per transaction when batched
(``record_many``; the service queues them off the request path, services/recs/served_queue.py); a failed write is
logged and the answer still goes out (a lost record only leaves one list out of the metrics)."""

from __future__ import annotations

import json
import logging
import uuid

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

ServedAnswer = tuple[str, str, int | None, list[str]]  # (request id, user id, ranker version, product ids)
_INSERT = text("""
    insert into served_recommendations (request_id, user_id, model_version, product_ids)
    values (:r, :u, :v, cast(:p as jsonb))
""")


class ServedRecommendations:
    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, user_id: str, model_version: int | None, product_ids: list[str]) -> str | None:
        """Stores one answer to a known shopper (anonymous answers cannot be credited: not stored); returns its
        id, or None when nothing was stored."""
        if not user_id or not product_ids:
            return None
        request_id = uuid.uuid4().hex
        return request_id if self.record_many([(request_id, user_id, model_version, product_ids)]) else None

    def record_many(self, answers: list[ServedAnswer]) -> int:
        """Stores answers (request id, user id, ranker version or None, product ids) in one transaction; returns
        how many were stored (0 when the write failed: logged, the answers are lost)."""
        rows = [
            {"r": request_id, "u": user_id, "v": version, "p": json.dumps(product_ids)}
            for request_id, user_id, version, product_ids in answers
            if user_id and product_ids
        ]
        if not rows:
            return 0
        try:
            with self.engine.begin() as conn:
                conn.execute(text("set local synchronous_commit to off"))
                conn.execute(_INSERT, rows)
        except SQLAlchemyError as exc:
            log.warning("%d served recommendations not recorded: %s", len(rows), exc)
            return 0
        return len(rows)
