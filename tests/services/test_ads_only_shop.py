"""On a shop's own data: a shop imported with only ads data (users, campaigns, ads and the products they promote,
impression and click events; no product interactions, no labelled utterances). `ecomai train --model ctr_model`
writes a loadable model into an empty repository; `ecomai run`'s model preparation trains what the data supports,
skips the rest with the reason, and the services start: RankAds answers with the model, Recommend and chat degrade.
Real parts: embedded Postgres, the CSV importer, the `ecomai` command, Triton, gRPC."""

from __future__ import annotations

import csv
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import pytest
from sqlalchemy import Engine

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from protos.recs.v1 import recs_pb2, recs_pb2_grpc
from services import cli
from services.platform import prepare_models, seed_demo_shop
from shared.store.engine import make_engine
from shared.store.importer import import_shop
from tests.e2e_helpers import customer, serving
from tests.fixtures_data import database_url_for
from tests.fixtures_infra import free_port, running_triton, triton_settings

CATEGORIES = ("outdoor", "books", "kitchen", "toys", "audio", "garden")
USERS = [f"u{j:02d}" for j in range(40)]
IMPRESSIONS = 600


def _write(folder: Path, table: str, rows: list[dict]) -> None:
    with open(folder / f"{table}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_ads_only_shop(folder: Path) -> Path:
    """CSV files of docs/data-format.md: ads of six categories shown 600 times, clicked more on outdoor and books."""
    rng = random.Random(3)
    folder.mkdir()
    _write(folder, "users", [{"user_id": u, "segment": "tech", "country": "US"} for u in USERS])
    _write(
        folder,
        "products",
        [
            {"product_id": f"p-{c}", "title": f"{c} bestseller", "category": c, "price_micros": 5_000_000}
            for c in CATEGORIES
        ],
    )
    _write(folder, "campaigns", [{"campaign_id": "c1", "advertiser": "acme", "name": "spring"}])
    ad = {"campaign_id": "c1", "bid_micros": 200_000}
    _write(
        folder,
        "ads",
        [{"ad_id": f"a-{c}", "product_id": f"p-{c}", "title": f"{c} deals", "category": c, **ad} for c in CATEGORIES],
    )
    start = datetime.now(UTC) - timedelta(days=3)
    events = []
    for m in range(IMPRESSIONS):
        category, user = rng.choice(CATEGORIES), rng.choice(USERS)
        at = start + timedelta(minutes=5 * m)
        shown = {"user_id": user, "ad_id": f"a-{category}", "impression_id": f"imp{m}", "placement_id": "home_top"}
        events.append({"event_id": f"i{m}", "type": "impression", **shown, "occurred_at": at.isoformat()})
        if rng.random() < (0.3 if category in ("outdoor", "books") else 0.03):
            clicked_at = (at + timedelta(seconds=20)).isoformat()
            events.append({"event_id": f"c{m}", "type": "click", **shown, "occurred_at": clicked_at})
    _write(folder, "events", events)
    return folder


@dataclass
class AdsOnlyPlatform:
    engine: Engine
    repository_after_train: list[str]
    skipped: dict[str, str]
    ready: dict[str, list[int]]
    channels: dict[str, grpc.Channel]
    chat_customer: dict[str, list[tuple[str, str]]]  # user id -> call metadata proving that customer


def _fresh_database(pg_admin_url: str, template: str) -> str:
    name = f"ecomai_ads_only_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{template}"')
    return database_url_for(pg_admin_url, name)


@pytest.fixture(scope="module")
def ads_only(pg_admin_url, migrated_template, tmp_path_factory):

    home = tmp_path_factory.mktemp("ads_only")
    url = _fresh_database(pg_admin_url, migrated_template)
    engine = make_engine(url)
    import_shop(engine, write_ads_only_shop(home / "shop"))
    repo = home / "models"  # new: `ecomai train` makes it
    with pytest.MonkeyPatch.context() as env:
        for key, value in {"HOME": home, "DATABASE_URL": url, "MODEL_REPOSITORY": repo}.items():
            env.setenv(f"ECOMAI_{key}", str(value))
        assert cli.main(["train", "--model", "ctr_model", "--profile", "tiny"]) == 0
    after_train = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.parent in (repo, repo / "ctr_model"))
    service_ports = {f"{name}_port": free_port() for name in ("ads", "recs", "chat")}
    settings = triton_settings(home, repo, database_url=url, train_profile="tiny", triton_timeout_s=30, **service_ports)
    try:
        with running_triton(settings) as (_, triton):
            skipped = prepare_models(settings, url, triton)
            ready = {name: triton.ready_versions(name) for name in ("ctr_model", "text_encoder")}
            with serving(settings, engine, triton, grace=0) as channels:
                who = {"u02": customer(settings, "u02")}
                yield AdsOnlyPlatform(engine, after_train, skipped, ready, channels, who)
    finally:
        engine.dispose()


def test_train_writes_what_triton_needs_into_an_empty_repository(ads_only):
    assert ads_only.repository_after_train == ["ctr_model", "ctr_model/1", "ctr_model/config.pbtxt"]
    assert ads_only.ready == {"ctr_model": [1], "text_encoder": [1]}  # Triton loaded both from that repository


def test_models_the_data_cannot_train_are_skipped_with_the_reason(ads_only):
    assert sorted(ads_only.skipped) == ["intent_classifier", "recs_ranker"]
    assert "users with 2+ interactions" in ads_only.skipped["recs_ranker"]
    assert "at least 2 intents" in ads_only.skipped["intent_classifier"]


def test_rank_ads_answers_with_the_model(ads_only):
    stub = ads_pb2_grpc.AdServiceStub(ads_only.channels["ads"])
    reply = stub.RankAds(ads_pb2.RankAdsRequest(user_id="u01", placement_id="home_top", max_ads=3), timeout=30)
    assert len(reply.ads) == 3 and not reply.serving.degraded, reply.serving
    assert reply.serving.model_name == "ctr_model" and reply.serving.model_version == 1


def test_recommend_and_chat_degrade_without_the_skipped_models(ads_only):
    events = events_pb2_grpc.EventServiceStub(ads_only.channels["recs"])
    view = events_pb2.Event(
        event_id=str(uuid.uuid4()), type=events_pb2.EVENT_TYPE_VIEW, user_id="u02", product_id="p-books"
    )
    assert events.RecordEvents(events_pb2.RecordEventsRequest(events=[view]), timeout=30).accepted == 1
    recs = recs_pb2_grpc.RecommendationServiceStub(ads_only.channels["recs"])
    reply = recs.Recommend(recs_pb2.RecommendRequest(user_id="u02", k=4), timeout=30)  # a history: the ranker is asked
    assert len(reply.items) == 4 and reply.serving.degraded and reply.serving.fallback == "retrieval_fusion"
    assert any("recs_ranker" in note for note in reply.serving.notes), reply.serving.notes
    chat = chat_pb2_grpc.ChatServiceStub(ads_only.channels["chat"])
    request = chat_pb2.SendMessageRequest(text="where is my parcel")
    chunks = list(chat.SendMessage(request, timeout=30, metadata=ads_only.chat_customer["u02"]))
    assert chunks[-1].final and chunks[-1].serving.degraded and chunks[-1].serving.fallback == "faq_retrieval"
    assert "".join(c.text_delta for c in chunks)


def test_run_does_not_seed_the_demo_into_an_imported_shop(pg_admin_url, migrated_template, tmp_path, capsys):
    url = _fresh_database(pg_admin_url, migrated_template)
    engine = make_engine(url)
    try:
        import_shop(engine, write_ads_only_shop(tmp_path / "shop"))
        assert seed_demo_shop(url, "tiny", 7) is False
        said = capsys.readouterr().out
        assert "already holds a shop (40 users, 6 products, 6 ads, " in said and "demo shop was not seeded" in said
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select count(*) from users").scalar() == 40  # nothing added
    finally:
        engine.dispose()
