"""The closed loop, end to end with real parts on the tiny demo shop: real Postgres, a real Triton, the ads service
on a gRPC socket, and a `ecomai worker --queues cleaning,training,celery` subprocess on a real (Redis) broker, the
tasks routed to its queues by the app's routes.

Dirty events arrive through RecordEvents (a script's burst of views, a click on nothing shown); the cleaning task
quarantines them under the rules that catch them; a retrain through the worker beats the serving champion (a model
fitted on shuffled labels) on the same test impressions, is promoted and Triton serves it; a second retrain, no
better than the new champion, is rejected and changes nothing; a 50/50 split by version sends users to both versions
and the clicks recorded on their ads give each arm its CTR; a rollback through the worker ends the split and the old
version serves alone again.

What the gate, the split and cleaning do in detail is proven in isolation (tests/learning/test_gate.py,
test_traffic_split.py, tests/learning/test_cleaning*.py); this test is about the steps working together."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, text

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from shared.core.model_catalog import CTR_MODEL
from shared.core.settings import PROJECT_ROOT, Settings
from tests.fixtures_infra import stop_worker
from tests.learning.test_gate import _shuffled
from tests.services.test_worker_faults import RedisBroker

SPLIT_TTL_S = 0.3  # how long the ads service keeps a split: the test waits a little longer after changing one
TASKS = "services.worker.tasks"


@dataclass
class Loop:
    settings: Settings
    engine: Engine
    triton: object  # TritonClient
    app: Any  # PlatformCelery (sends tasks; routes pick their queues)
    ads: ads_pb2_grpc.AdServiceStub
    events: events_pb2_grpc.EventServiceStub


@pytest.fixture
def loop(new_database, tmp_path) -> Iterator[Loop]:
    from services.composition import start_service
    from services.worker.celery_app import make_celery
    from shared.core.channels import open_channel
    from shared.demo_shop import generate_shop, load_shop
    from shared.learning.cleaning import clean_events
    from shared.learning.ctr_job import ctr_training_data, fit_and_publish
    from shared.learning.registry import deploy
    from shared.store.engine import make_engine
    from tests.fixtures_infra import free_port, model_repository_with_configs, running_triton, triton_settings

    url = new_database()
    engine = make_engine(url)
    load_shop(engine, generate_shop("tiny", seed=7))
    clean_events(engine)  # the history: its planted bot clicks would spoil any CTR model
    broker = RedisBroker(tmp_path / "redis").start()
    repo = model_repository_with_configs(tmp_path / "models")
    settings = triton_settings(
        tmp_path / "home",
        repo,
        database_url=url,
        train_profile="tiny",
        triton_timeout_s=30,
        traffic_split_ttl_s=SPLIT_TTL_S,
        ads_port=free_port(),
        broker_url=broker.url,
        result_backend=broker.url,
    )
    env = {
        **os.environ,
        "ECOMAI_DATABASE_URL": url,
        "ECOMAI_MODEL_REPOSITORY": str(repo),
        "ECOMAI_TRITON_GRPC_PORT": str(settings.triton_grpc_port),
        "ECOMAI_BROKER_URL": broker.url,
        "ECOMAI_RESULT_BACKEND": broker.url,
        "ECOMAI_TRAIN_PROFILE": "tiny",
        "ECOMAI_HOME": str(settings.home),
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "worker", "--queues", "cleaning,training,celery", "--pool=solo"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        with running_triton(settings) as (_, triton):
            # the champion: fitted on shuffled click labels, it learned nothing a retrain on the real ones can't beat
            champion = fit_and_publish(engine, settings, _shuffled(ctr_training_data(engine, settings)), "tiny", print)
            deploy(triton, engine, CTR_MODEL, champion.version, "KIND_CPU", repo)
            service = start_service("ads", settings, engine, triton)
            channel = open_channel(f"127.0.0.1:{service.port}", settings)
            try:
                yield Loop(
                    settings,
                    engine,
                    triton,
                    make_celery(settings),
                    ads_pb2_grpc.AdServiceStub(channel),
                    events_pb2_grpc.EventServiceStub(channel),
                )
            finally:
                channel.close()
                service.stop(grace=0)
    finally:
        stop_worker(worker)
        broker.stop()
        engine.dispose()
        print(log.read_text(errors="replace")[-3000:])


def _event(kind: events_pb2.EventType, user: str, at: datetime | None = None, **fields: Any) -> events_pb2.Event:
    event = events_pb2.Event(event_id=str(uuid.uuid4()), type=kind, user_id=user, **fields)
    if at is not None:
        stamp = Timestamp()
        stamp.FromDatetime(at)
        event.occurred_at.CopyFrom(stamp)
    return event


def _record(loop: Loop, events: list[events_pb2.Event]) -> None:
    reply = loop.events.RecordEvents(events_pb2.RecordEventsRequest(events=events), timeout=30)
    assert reply.accepted == len(events), reply.rejected


def _shop_ids(engine: Engine) -> tuple[list[str], str]:
    with engine.connect() as conn:
        users = list(conn.execute(text("select user_id from users order by user_id limit 40")).scalars())
        product = conn.execute(text("select product_id from products order by product_id limit 1")).scalar_one()
    return users, product


def _quarantined(engine: Engine, event_ids: list[str]) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("select event_id, rule from events_quarantine where event_id = any(:ids)"), {"ids": event_ids}
        ).all()
    return dict(rows)


def _run(loop: Loop, task: str, *args: str, timeout: float = 300) -> dict:
    return loop.app.send_task(f"{TASKS}.{task}", args=list(args)).get(timeout=timeout)  # routed: no queue given


def _served_version(loop: Loop, users: list[str]) -> dict[str, tuple[int, list[ads_pb2.RankedAd]]]:
    """user -> (the ctr_model version that scored their ads, the ads), for the users shown any ad."""
    out = {}
    for user in users:
        reply = loop.ads.RankAds(ads_pb2.RankAdsRequest(user_id=user, placement_id="home_top", max_ads=2), timeout=30)
        if reply.ads and not reply.serving.degraded:
            out[user] = (reply.serving.model_version, list(reply.ads))
    return out


def test_dirty_events_cleaning_retrain_gate_split_and_rollback_work_together(loop):
    from services.models_cli import normalize_models_argv  # `ecomai models ...` as an operator types it
    from shared.learning.registry import TENSOR_WARMUP, registry_rows
    from shared.learning.traffic import online_metrics

    users, product = _shop_ids(loop.engine)
    inputs, outputs = TENSOR_WARMUP[CTR_MODEL]()

    # 1. dirty events arrive through the events API; the cleaning task (cleaning queue) quarantines them
    at = datetime.now(UTC).replace(microsecond=0)
    view = events_pb2.EVENT_TYPE_VIEW
    burst = [_event(view, users[-1], at + timedelta(milliseconds=100 * i), product_id=product) for i in range(70)]
    stray = [_event(events_pb2.EVENT_TYPE_CLICK, users[1], impression_id=f"never-shown-{uuid.uuid4().hex}")]
    _record(loop, burst + stray)
    # the events that arrived since ``at`` (the shop's history was cleaned before: the events table the retrain
    # reads is the same as test_gate.py's, where the tiny shop's CTR data trains reliably)
    cleaned = _run(loop, "clean_events", (at - timedelta(seconds=1)).isoformat())
    caught = _quarantined(loop.engine, [e.event_id for e in burst + stray])
    assert {caught.get(e.event_id) for e in burst} == {"inhuman_speed"}  # 70 views in 7 seconds: a script
    assert caught.get(stray[0].event_id) == "click_without_impression"
    for rule in ("inhuman_speed", "click_without_impression"):
        assert cleaned["issues"][rule] >= 1, cleaned

    # 2. a retrain through the worker (training queue) beats the champion and Triton serves it
    better = _run(loop, "retrain_ctr")
    assert (better["version"], better["status"]) == (2, "serving"), better
    assert better["gate"]["against"] == "champion" and better["gate"]["champion_version"] == 1
    assert loop.triton.infer(CTR_MODEL, inputs, outputs).model_version == 2

    # 3. a second retrain on the same data is no better than the new champion: rejected, v2 keeps serving
    again = _run(loop, "retrain_model", CTR_MODEL)
    assert (again["version"], again["status"]) == (3, "rejected"), again
    assert "does not beat champion v2's" in again["reason"]
    assert loop.triton.ready_versions(CTR_MODEL) == [2]

    # 4. `ecomai models split`: both versions serve, each user sticks to one, clicks give each arm its CTR
    from services.cli import build_parser

    args = build_parser().parse_args(normalize_models_argv(["models", "split", CTR_MODEL, "1=50", "2=50"]))
    assert args.fn(args, loop.settings) == 0
    assert loop.triton.ready_versions(CTR_MODEL) == [1, 2]
    time.sleep(SPLIT_TTL_S * 3)
    started = datetime.now(UTC)
    first, second = _served_version(loop, users), _served_version(loop, users)
    assert {u: v for u, (v, _) in first.items()} == {u: v for u, (v, _) in second.items()}  # sticky per user
    arms = {v for v, _ in first.values()}
    assert arms == {1, 2}, first
    clicked = {version: 0 for version in arms}
    shown = {version: 0 for version in arms}
    feedback = []
    for user, (version, ads) in first.items():
        shown[version] += len(ads) + len(second[user][1])  # both answers were served and recorded
        for ad in ads:
            impression = {"impression_id": ad.impression_id, "ad_id": ad.ad_id, "placement_id": "home_top"}
            feedback.append(_event(events_pb2.EVENT_TYPE_IMPRESSION, user, None, **impression))
        if version == 2:  # v2's users click their first ad, v1's none
            feedback.append(_event(events_pb2.EVENT_TYPE_CLICK, user, impression_id=ads[0].impression_id))
            clicked[version] += 1
    _record(loop, feedback)
    metrics = online_metrics(loop.engine, CTR_MODEL, since=started)
    for version in arms:
        assert metrics[version]["impressions"] == shown[version], metrics
        assert metrics[version]["clicks"] == clicked[version], metrics
    assert metrics[2]["ctr"] > metrics[1]["ctr"] == 0

    # 5. a rollback through the worker ends the split: the old version serves alone again
    assert _run(loop, "rollback_model", CTR_MODEL, timeout=120) == {"model": CTR_MODEL, "serving_version": 1}
    assert loop.triton.ready_versions(CTR_MODEL) == [1]
    time.sleep(SPLIT_TTL_S * 3)
    assert {v for v, _ in _served_version(loop, users).values()} == {1}
    statuses = {r["version"]: r["status"] for r in registry_rows(loop.engine, CTR_MODEL)}
    assert statuses == {1: "serving", 2: "retired", 3: "rejected"}
    assert not (Path(loop.settings.model_repository) / CTR_MODEL / "2").exists()  # set aside: a restart keeps v1
