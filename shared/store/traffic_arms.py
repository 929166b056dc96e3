"""Which model version answers a request: the active arms of a model's traffic split (``traffic_arms``), read by
the services through a short in-process cache, and the sticky choice of one arm per user.

A user's arm is a pure function of (salt, model, user id): the hash picks a bucket in [0, 10000) and the active
arms, in version order, own consecutive ranges of buckets in proportion to their percent. The same user therefore
gets the same version on every replica and every request while the split stands, and when a canary (the newest
version, last in order) grows from 10% to 50%, the users it already had keep it. Anonymous shoppers are hashed by
their request id instead (one request, one arm). ``shared.learning.traffic`` writes the arms; Triton must serve
every active arm's version before its row is written."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from shared.core.model_catalog import CTR_MODEL, RECS_RANKER
from shared.core.ttl_cache import TtlCache
from shared.store.schema import TrafficArm

log = logging.getLogger(__name__)

# models whose service chooses an arm per request (ads: ctr_model; recs: recs_ranker)
SPLITTABLE = (CTR_MODEL, RECS_RANKER)
BUCKETS = 10_000  # 0.01% resolution: a canary may be as small as 0.01% of users
SPLIT_CACHE_TTL_S = 5.0  # a split change reaches every service within this many seconds


@dataclass(frozen=True)
class Arm:
    model_name: str
    version: int
    percent: float
    salt: str


def bucket(salt: str, model_name: str, unit_id: str) -> int:
    """The bucket in [0, BUCKETS) of one user (or request) for one model: stable across processes (no ``hash()``,
    which Python salts per process)."""
    digest = hashlib.sha256(f"{salt}\x00{model_name}\x00{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def choose_arm(arms: Sequence[Arm], unit_id: str) -> Arm | None:
    """The arm of ``unit_id`` among ``arms`` (active, any order), or None when there are none. Arms own
    consecutive bucket ranges in version order; an arm at 0% owns none."""
    live = sorted((a for a in arms if a.percent > 0), key=lambda a: a.version)
    if not live:
        return None
    total = sum(a.percent for a in live)
    point = bucket(live[0].salt, live[0].model_name, unit_id) / BUCKETS * total
    edge = 0.0
    for arm in live:
        edge += arm.percent
        if point < edge:
            return arm
    return live[-1]  # rounding at the top edge


def active_arms(engine: Engine, model_name: str) -> list[Arm]:
    """The active arms of a model's split, in version order ([] = no split: its one served version answers)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(TrafficArm.model_name, TrafficArm.version, TrafficArm.percent, TrafficArm.salt)
            .where(TrafficArm.model_name == model_name, TrafficArm.status == "active")
            .order_by(TrafficArm.version)
        ).all()
    return [Arm(r.model_name, int(r.version), float(r.percent), r.salt) for r in rows]


def end_split(engine: Engine, model_name: str) -> int:
    """Stops every active arm of a model (a deploy or rollback put one version in charge); returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            update(TrafficArm)
            .where(TrafficArm.model_name == model_name, TrafficArm.status == "active")
            .values(status="stopped", stopped_at=datetime.now(UTC))
        )
    return int(result.rowcount or 0)


class TrafficSplits:
    """The services' view of the splits: ``version_for(model, unit_id)`` is the version to ask Triton for, or
    None (no split: whatever Triton serves). Arms are re-read at most every ``ttl_s`` seconds per model; if the
    read fails the request is served without a split (Triton's newest version) rather than failing."""

    def __init__(self, engine: Engine, ttl_s: float = SPLIT_CACHE_TTL_S):
        self.engine = engine
        self._arms: TtlCache[str, list[Arm]] = TtlCache(ttl_s)

    def arms(self, model_name: str) -> list[Arm]:
        return self._arms.get(model_name, lambda: self._read(model_name))

    def _read(self, model_name: str) -> list[Arm]:
        try:
            return active_arms(self.engine, model_name)
        except SQLAlchemyError as exc:
            log.warning("traffic split of %s unreadable, serving without it: %s", model_name, exc)
            return []

    def version_for(self, model_name: str, unit_id: str) -> int | None:
        arm = choose_arm(self.arms(model_name), unit_id)
        return arm.version if arm is not None else None
