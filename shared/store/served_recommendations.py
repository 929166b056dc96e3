"""What each recommendation answer served, with the recs_ranker version that ranked it (``served_recommendations``):
the record ``shared.learning.traffic.online_metrics`` credits later views and purchases of those products to, per
version. One insert per answer, without waiting for the WAL flush; a failed write is logged and the answer still
goes out (a lost record only leaves one list out of the metrics)."""

from __future__ import annotations

import json
import logging
import uuid

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class ServedRecommendations:
    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, user_id: str, model_version: int | None, product_ids: list[str]) -> str | None:
        """Stores one answer to a known shopper (anonymous answers cannot be credited: not stored); returns its
        id, or None when nothing was stored."""
        if not user_id or not product_ids:
            return None
        request_id = uuid.uuid4().hex
        query = text("""
            insert into served_recommendations (request_id, user_id, model_version, product_ids)
            values (:r, :u, :v, cast(:p as jsonb))
        """)
        params = {"r": request_id, "u": user_id, "v": model_version, "p": json.dumps(product_ids)}
        try:
            with self.engine.begin() as conn:
                conn.execute(text("set local synchronous_commit to off"))
                conn.execute(query, params)
        except SQLAlchemyError as exc:
            log.warning("served recommendations not recorded: %s", exc)
            return None
        return request_id
