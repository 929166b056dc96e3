"""Session fixtures for end-to-end tests: a real embedded Postgres with the tiny demo shop, a real Triton server
with tiny fine-tuned versions of every model, and the three gRPC services listening on real sockets."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from sqlalchemy import Engine

from shared.core.settings import Settings
from shared.store.engine import make_engine
from tests.e2e_helpers import intent_mistakes, serving
from tests.fixtures_infra import free_port, model_repository_with_configs

# embedded Postgres fixtures (pg_admin_url, migrated_template, new_database, data_engine), one server per session
pytest_plugins = ["tests.fixtures_data"]

REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass
class Platform:
    settings: Settings
    url: str
    engine: Engine
    triton: object  # TritonClient
    channels: dict[str, grpc.Channel]


@pytest.fixture(scope="session")
def platform(pg_admin_url, migrated_template, tmp_path_factory):
    """The whole serving side on the tiny demo shop. Tests may add events and conversations but must not
    remove shop data."""
    import psycopg

    from services.chat.assistant import HANDOFF_BELOW
    from services.platform import prepare_models
    from shared.demo_shop import generate_shop, load_shop
    from shared.inference.triton_client import TritonClient
    from shared.inference.triton_server import TritonServer
    from tests.fixtures_data import database_url_for

    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute("drop database if exists ecomai_e2e")
        conn.execute(f'create database ecomai_e2e template "{migrated_template}"')
    url = database_url_for(pg_admin_url, "ecomai_e2e")
    engine = make_engine(url)
    load_shop(engine, generate_shop("tiny", seed=7))

    home = tmp_path_factory.mktemp("home")
    settings = Settings(
        home=home,
        database_url=url,
        model_repository=model_repository_with_configs(home / "models"),
        triton_grpc_port=free_port(),
        triton_http_port=free_port(),
        triton_metrics_port=free_port(),
        ads_port=free_port(),
        recs_port=free_port(),
        chat_port=free_port(),
        broker_url=REDIS_URL,
        result_backend=REDIS_URL,
        train_profile="tiny",
        triton_timeout_s=30,
    )
    server = TritonServer(settings)
    server.start()
    triton = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s)
    try:
        prepare_models(settings, url, triton)
        mistakes = intent_mistakes(triton, engine, HANDOFF_BELOW)
        if mistakes:  # the chat tests assert what follows each intent: they need a model that is exact on them
            raise AssertionError(
                f"the tiny intent_classifier is not exact on the chat tests' phrases ({len(mistakes)}): {mistakes[:5]}"
            )
        with serving(settings, engine, triton) as channels:
            yield Platform(settings, url, engine, triton, channels)
    finally:
        server.stop()
        engine.dispose()
