"""Traffic split by model version (A/B or canary) and the online metrics of each arm.

``set_split`` first makes Triton serve every arm's version (``registry.serve_versions``: load, warm up, check
each by asking it by number) and only then writes the arms, so a version that fails to load never gets a request.
The services pick an arm per user (``shared.store.traffic_arms``) and record the version that answered with what
they served (``served_impressions.model_version``, ``served_recommendations``); ``online_metrics`` joins those
records with the events: CTR per ctr_model version, click-through and conversion per recs_ranker version, and
thumbs up/down and handoffs per intent_classifier / reply_generator version (from the chat replies and ratings).
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert

from shared.core.errors import FailedPrecondition, InvalidArgument, NotFound
from shared.core.model_catalog import CTR_MODEL, INTENT_CLASSIFIER, RECS_RANKER, REPLY_GENERATOR
from shared.inference.client import ModelControl
from shared.learning.registry import serve_versions
from shared.store.schema import TrafficArm
from shared.store.traffic_arms import SPLITTABLE, Arm, active_arms, end_split

log = logging.getLogger(__name__)

ATTRIBUTION_HOURS = 24  # a view or purchase of a recommended product within this long after it was served counts


def _check_shares(model_name: str, shares: dict[int, float]) -> dict[int, float]:
    if model_name not in SPLITTABLE:
        raise InvalidArgument("model", f"{model_name!r} cannot be split; splittable: {', '.join(SPLITTABLE)}")
    if not shares:
        raise InvalidArgument("arms", "give at least one VERSION=PERCENT")
    for version, percent in shares.items():
        if version < 1:
            raise InvalidArgument("arms", f"version must be a positive number, got {version}")
        if not 0 < percent <= 100:
            raise InvalidArgument("arms", f"v{version}: percent must be in (0, 100], got {percent}")
    total = sum(shares.values())
    if not math.isclose(total, 100.0, abs_tol=1e-6):
        raise InvalidArgument("arms", f"percentages must add up to 100, got {total:g}")
    return {int(v): float(p) for v, p in sorted(shares.items())}


def set_split(
    client: ModelControl,
    engine: Engine,
    repo: Path,
    model_name: str,
    shares: dict[int, float],
    instance_kind: str = "KIND_CPU",
    reshuffle: bool = False,
) -> list[Arm]:
    """Splits ``model_name``'s traffic: ``{version: percent}`` adding up to 100. Triton serves every version first
    (ModelUnavailable if one fails: nothing changes for users); then the arms are written in one transaction and
    the services follow within their cache TTL. Users keep their bucket across splits of the same model (a
    growing canary keeps its users) unless ``reshuffle`` draws a new salt. One arm at 100% = ``promote_arm``."""
    shares = _check_shares(model_name, shares)
    if len(shares) == 1:
        promote_arm(client, engine, repo, model_name, next(iter(shares)), instance_kind)
        return []
    serve_versions(client, engine, model_name, list(shares), instance_kind, repo)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"traffic_split:{model_name}"})
        current = conn.execute(
            select(TrafficArm.version, TrafficArm.salt).where(
                TrafficArm.model_name == model_name, TrafficArm.status == "active"
            )
        ).all()
        salt = uuid.uuid4().hex if reshuffle or not current else current[0].salt
        running = {int(r.version) for r in current}
        conn.execute(
            update(TrafficArm)
            .where(TrafficArm.model_name == model_name, TrafficArm.status == "active")
            .where(TrafficArm.version.not_in(list(shares)))
            .values(status="stopped", stopped_at=now)
        )
        for version, percent in shares.items():
            values = {"percent": percent, "status": "active", "salt": salt, "stopped_at": None}
            if version not in running:
                values["started_at"] = now  # an arm that keeps running keeps its start
            row = {"model_name": model_name, "version": version, "started_at": now, **values}
            conn.execute(
                insert(TrafficArm)
                .values(**row)
                .on_conflict_do_update(index_elements=["model_name", "version"], set_=values)
            )
    log.info("%s traffic split: %s", model_name, ", ".join(f"v{v}={p:g}%" for v, p in shares.items()))
    return active_arms(engine, model_name)


def stop_arm(
    client: ModelControl, engine: Engine, repo: Path, model_name: str, version: int, instance_kind: str = "KIND_CPU"
) -> list[Arm]:
    """Stops one arm: its share goes to the others in proportion, the services stop sending it requests (within
    their cache TTL), then Triton stops serving it. Stopping the last arm is refused (promote or roll back)."""
    arms = active_arms(engine, model_name)
    if version not in {a.version for a in arms}:
        running = ", ".join(f"v{a.version}" for a in arms) or "none"
        raise NotFound("version", f"{model_name} v{version} is not an active arm (active: {running})")
    rest = [a for a in arms if a.version != version]
    if not rest:
        raise FailedPrecondition(f"version: v{version} is {model_name}'s last arm; promote another or roll back")
    total = sum(a.percent for a in rest) or float(len(rest))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            update(TrafficArm)
            .where(TrafficArm.model_name == model_name, TrafficArm.version == version)
            .values(status="stopped", stopped_at=now)
        )
        for arm in rest:
            share = (arm.percent or 1.0) / total * 100
            conn.execute(
                update(TrafficArm)
                .where(TrafficArm.model_name == model_name, TrafficArm.version == arm.version)
                .values(percent=share)
            )
    if len(rest) == 1:
        end_split(engine, model_name)  # one version left: no split, it answers everything
    serve_versions(client, engine, model_name, [a.version for a in rest], instance_kind, repo)
    log.info("%s: arm v%d stopped", model_name, version)
    return active_arms(engine, model_name)


def promote_arm(
    client: ModelControl, engine: Engine, repo: Path, model_name: str, version: int, instance_kind: str = "KIND_CPU"
) -> None:
    """``version`` takes 100% of the traffic: Triton serves it alone (newer folders are set aside as retired, so
    a restart serves it too), then the split ends. If it fails to load, the split stands unchanged."""
    serve_versions(client, engine, model_name, [version], instance_kind, repo)
    end_split(engine, model_name)
    log.info("%s: v%d promoted to all traffic", model_name, version)


def online_metrics(engine: Engine, model_name: str, since: datetime | None = None) -> dict[int, dict[str, Any]]:
    """``{version: {...}}`` from what the services served (answers from a fallback are left out) and the events:
    ctr_model: impressions, clicks (impressions with at least one click event), ctr, charged_micros;
    recs_ranker: lists served to known users, click_through (share of lists after which the user viewed or
    clicked a listed product within ATTRIBUTION_HOURS) and conversion (same, purchased);
    intent_classifier, reply_generator: ``chat_metrics``. Other models: {}."""
    params: dict[str, Any] = {"since": since or datetime(1970, 1, 1, tzinfo=UTC), "hours": ATTRIBUTION_HOURS}
    if model_name == CTR_MODEL:
        query = text("""
            select s.model_version as version, count(*) as impressions,
                   count(*) filter (where exists (
                       select 1 from events e where e.impression_id = s.impression_id and e.type = 'click'
                   )) as clicks,
                   coalesce(sum(c.charged_micros), 0) as charged_micros
            from served_impressions s left join ad_charges c using (impression_id)
            where s.model_version is not null and s.served_at >= :since
            group by s.model_version order by s.model_version
        """)
        with engine.connect() as conn:
            rows = conn.execute(query, params).mappings().all()
        return {
            int(r["version"]): {
                "impressions": int(r["impressions"]),
                "clicks": int(r["clicks"]),
                "ctr": int(r["clicks"]) / int(r["impressions"]),
                "charged_micros": int(r["charged_micros"]),
            }
            for r in rows
        }
    if model_name == RECS_RANKER:
        query = text("""
            select r.model_version as version, count(*) as lists,
                   count(*) filter (where exists (
                       select 1 from events e
                       where e.user_id = r.user_id and e.type in ('view', 'click')
                         and e.occurred_at >= r.served_at
                         and e.occurred_at < r.served_at + make_interval(hours => :hours)
                         and r.product_ids ? e.product_id
                   )) as clicked,
                   count(*) filter (where exists (
                       select 1 from events e
                       where e.user_id = r.user_id and e.type = 'purchase'
                         and e.occurred_at >= r.served_at
                         and e.occurred_at < r.served_at + make_interval(hours => :hours)
                         and r.product_ids ? e.product_id
                   )) as converted
            from served_recommendations r
            where r.model_version is not null and r.user_id is not null and r.served_at >= :since
            group by r.model_version order by r.model_version
        """)
        with engine.connect() as conn:
            rows = conn.execute(query, params).mappings().all()
        return {
            int(r["version"]): {
                "lists": int(r["lists"]),
                "click_through": int(r["clicked"]) / int(r["lists"]),
                "conversion": int(r["converted"]) / int(r["lists"]),
            }
            for r in rows
        }
    if model_name in (INTENT_CLASSIFIER, REPLY_GENERATOR):
        return chat_metrics(engine, model_name, params["since"])
    return {}


_VERSION = "^[0-9]{1,9}$"  # a version as the chat service records it (an int in a JSON object)


def chat_metrics(engine: Engine, model_name: str, since: datetime) -> dict[int, dict[str, Any]]:
    """Per version of a chat model, from the assistant replies it shaped (``messages.metadata.models``) and the
    thumbs on them (``chat_feedback`` events, which carry the same versions in ``properties.models``): replies,
    handoff_rate (replies that handed the conversation to a person), thumbs_up (rating 4-5), thumbs_down (1-2) and
    up_rate (up / rated; None before any rating)."""
    replies = text("""
        select cast(m.metadata -> 'models' ->> :model as int) as version, count(*) as replies,
               count(*) filter (where m.metadata -> 'actions' ? 'HANDOFF') as handoffs
        from messages m
        where m.role = 'assistant' and m.created_at >= :since and m.metadata -> 'models' ->> :model ~ :pattern
        group by 1
    """)
    thumbs = text("""
        select cast(properties -> 'models' ->> :model as int) as version,
               count(*) filter (where rating >= 4) as up, count(*) filter (where rating <= 2) as down
        from events
        where type = 'chat_feedback' and occurred_at >= :since and properties -> 'models' ->> :model ~ :pattern
        group by 1
    """)
    params = {"model": model_name, "since": since, "pattern": _VERSION}
    with engine.connect() as conn:
        served = {int(r.version): r for r in conn.execute(replies, params)}
        rated = {int(r.version): r for r in conn.execute(thumbs, params)}
    out: dict[int, dict[str, Any]] = {}
    for version in sorted(served.keys() | rated.keys()):
        count = int(served[version].replies) if version in served else 0
        up, down = (int(rated[version].up), int(rated[version].down)) if version in rated else (0, 0)
        out[version] = {
            "replies": count,
            "thumbs_up": up,
            "thumbs_down": down,
            "up_rate": up / (up + down) if up + down else None,
            "handoff_rate": int(served[version].handoffs) / count if count else None,
        }
    return out
