"""Traffic split by ctr_model version with real parts: a real Triton serving two published ctr_model versions at
once, a real ads service answering RankAds over a gRPC socket, real Postgres. A 50/50 split sends both versions
traffic and every shopper always the same one (the one the hash assigns), each served impression records the
version that scored it, per-arm CTR comes out of the recorded click events, a stopped arm gets no request, and a
version that fails to load changes nothing: no arm, no request, the old version still the only one served."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import torch
from sqlalchemy import Engine, text

from protos.ads.v1 import ads_pb2, ads_pb2_grpc
from protos.events.v1 import events_pb2, events_pb2_grpc
from services.composition import start_service
from shared.core.channels import open_channel
from shared.core.errors import ModelUnavailable
from shared.core.model_catalog import CTR_MODEL
from shared.core.settings import Settings
from shared.learning.ctr_job import TORCHSCRIPT_FILE
from shared.learning.ctr_model import CtrNet
from shared.learning.ctr_training import export_torchscript
from shared.learning.registry import deploy, publish_version, set_aside
from shared.learning.traffic import online_metrics, set_split, stop_arm
from shared.store.engine import make_engine
from shared.store.traffic_arms import active_arms, choose_arm
from tests.fixtures_data import database_url_for
from tests.fixtures_infra import free_port, model_repository_with_configs, running_triton, triton_settings

USERS = [f"u{i:02d}" for i in range(40)]
SPLIT_TTL_S = 0.3  # how long the ads service keeps a split: a test waits this long after changing one


@dataclass
class Rig:
    settings: Settings
    engine: Engine
    triton: object  # TritonClient
    ads: ads_pb2_grpc.AdServiceStub
    events: events_pb2_grpc.EventServiceStub

    @property
    def repo(self) -> Path:
        return self.settings.model_repository


def _publish(engine: Engine, repo: Path, seed: int, broken: bool = False) -> int:
    """A ctr_model version: an untrained DCN-v2 (its own seed, so versions score differently), or a folder whose
    TorchScript file is garbage: complete on disk, it fails only when Triton loads it."""
    torch.manual_seed(seed)
    model = CtrNet()
    model.known.fill_(True)

    def build(folder: Path) -> dict:
        if broken:
            (folder / TORCHSCRIPT_FILE).write_bytes(b"not a torchscript archive")
        else:
            export_torchscript(model.eval(), str(folder / TORCHSCRIPT_FILE))
        return {"torchscript": TORCHSCRIPT_FILE, "calibration": {"a": 1.0, "b": 0.0}}

    return publish_version(engine, repo, CTR_MODEL, build, "tabular", {"mode": "test"}, {}, {}).version


def _open_shop(engine: Engine) -> None:
    """USERS, and three ads of one campaign on shoes without targeting: every user is shown ads."""
    with engine.begin() as conn:
        conn.execute(text("insert into users (user_id) select unnest(cast(:u as text[]))"), {"u": USERS})
        conn.execute(text("insert into campaigns (campaign_id, advertiser, name) values ('c1', 'acme', 'spring')"))
        conn.execute(
            text("""insert into ads (ad_id, campaign_id, title, category, bid_micros) values
                    ('a1', 'c1', 'Trail shoes', 'shoes', 900000), ('a2', 'c1', 'Road shoes', 'shoes', 800000),
                    ('a3', 'c1', 'Shoe laces', 'shoes', 700000)""")
        )


@pytest.fixture(scope="module")
def rig(pg_admin_url, migrated_template, tmp_path_factory) -> Iterator[Rig]:
    name = f"ecomai_traffic_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{migrated_template}"')
    url = database_url_for(pg_admin_url, name)
    engine = make_engine(url)
    _open_shop(engine)
    home = tmp_path_factory.mktemp("traffic")
    repo = model_repository_with_configs(home / "models")
    settings = triton_settings(
        home, repo, database_url=url, triton_timeout_s=30, traffic_split_ttl_s=SPLIT_TTL_S, ads_port=free_port()
    )
    assert _publish(engine, repo, seed=1) == 1 and _publish(engine, repo, seed=2) == 2
    with running_triton(settings) as (_, triton):
        deploy(triton, engine, CTR_MODEL, 2, "KIND_CPU", repo)  # the newest folder serves alone, as after training
        service = start_service("ads", settings, engine, triton)
        channel = open_channel(f"127.0.0.1:{service.port}", settings)
        try:
            yield Rig(
                settings, engine, triton, ads_pb2_grpc.AdServiceStub(channel), events_pb2_grpc.EventServiceStub(channel)
            )
        finally:
            channel.close()
            service.stop(grace=0)
            engine.dispose()


def _rank(rig: Rig, user: str) -> ads_pb2.RankAdsResponse:
    request = ads_pb2.RankAdsRequest(
        user_id=user, placement_id="home_top", max_ads=2, context=ads_pb2.AdContext(page_category="shoes")
    )
    reply = rig.ads.RankAds(request, timeout=30)
    assert reply.ads and not reply.serving.degraded, reply.serving
    return reply


def _recorded_versions(engine: Engine, impression_ids: list[str]) -> dict[str, int | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("select impression_id, model_version from served_impressions where impression_id = any(:ids)"),
            {"ids": impression_ids},
        ).all()
    return dict(rows)


def test_a_version_that_fails_to_load_never_gets_traffic(rig):
    [serving] = rig.triton.ready_versions(CTR_MODEL)
    broken = _publish(rig.engine, rig.repo, seed=3, broken=True)
    config_before = (rig.repo / CTR_MODEL / "config.pbtxt").read_text()
    try:
        with pytest.raises(ModelUnavailable, match=f"failed to serve .*version {broken} is at UNAVAILABLE"):
            set_split(rig.triton, rig.engine, rig.repo, CTR_MODEL, {serving: 50, broken: 50})
        assert active_arms(rig.engine, CTR_MODEL) == []
        assert rig.triton.ready_versions(CTR_MODEL) == [serving]  # what served before still serves, alone
        assert rig.triton.is_ready()  # and the failed load left no UNAVAILABLE version that makes the server unready
        assert (rig.repo / CTR_MODEL / "config.pbtxt").read_text() == config_before
        time.sleep(SPLIT_TTL_S * 2)
        assert {_rank(rig, user).serving.model_version for user in USERS[:10]} == {serving}
    finally:
        set_aside(rig.engine, rig.repo, CTR_MODEL, broken, "retired")  # as an operator would, after the failure


def test_a_50_50_split_is_sticky_per_user_measured_per_arm_and_a_stopped_arm_gets_none(rig):
    arms = set_split(rig.triton, rig.engine, rig.repo, CTR_MODEL, {1: 50, 2: 50})
    assert [(a.version, a.percent) for a in arms] == [(1, 50.0), (2, 50.0)]
    assert rig.triton.ready_versions(CTR_MODEL) == [1, 2]  # loaded, warmed up and checked before any arm
    time.sleep(SPLIT_TTL_S * 2)
    started = datetime.now(UTC)  # the metrics below count what was served from here on

    arm_of = {user: getattr(choose_arm(arms, user), "version", None) for user in USERS}  # the hash's arm of each
    served: dict[str, int] = {}  # impression id -> the version the response named
    for _ in range(2):
        for user in USERS:
            reply = _rank(rig, user)
            assert reply.serving.model_version == arm_of[user]  # sticky: the same user, the same version
            served.update({ad.impression_id: reply.serving.model_version for ad in reply.ads})
    per_version = Counter(arm_of.values())
    assert set(per_version) == {1, 2} and min(per_version.values()) >= 8  # 40 users, 50/50: both arms get many
    assert _recorded_versions(rig.engine, list(served)) == served  # every served impression names its version

    clicked = sorted(served)[::3]  # the shopper clicks every third impression, through the events API
    events = []
    for impression_id in clicked:
        user, ad_id = _impression(rig.engine, impression_id)
        events.append(_event(events_pb2.EVENT_TYPE_IMPRESSION, user, impression_id, ad_id))
        events.append(_event(events_pb2.EVENT_TYPE_CLICK, user, impression_id))
    reply = rig.events.RecordEvents(events_pb2.RecordEventsRequest(events=events), timeout=30)
    assert reply.accepted == len(events), reply.rejected
    metrics = online_metrics(rig.engine, CTR_MODEL, since=started)
    for version in (1, 2):
        shown = [i for i, v in served.items() if v == version]
        hits = [i for i in clicked if served[i] == version]
        assert metrics[version]["impressions"] == len(shown)
        assert metrics[version]["clicks"] == len(hits)
        assert metrics[version]["ctr"] == pytest.approx(len(hits) / len(shown))

    remaining = stop_arm(rig.triton, rig.engine, rig.repo, CTR_MODEL, 2)
    assert remaining == []  # one version left: the split is over
    assert rig.triton.ready_versions(CTR_MODEL) == [1]
    time.sleep(SPLIT_TTL_S * 2)
    after = [_rank(rig, user) for user in USERS]
    assert {r.serving.model_version for r in after} == {1}  # the stopped arm's users went to v1
    ids = [ad.impression_id for r in after for ad in r.ads]
    assert set(_recorded_versions(rig.engine, ids).values()) == {1}
    assert not (rig.repo / CTR_MODEL / "2").exists()  # set aside: a restart serves v1 alone too


def _impression(engine: Engine, impression_id: str) -> tuple[str, str]:
    with engine.connect() as conn:
        row = conn.execute(
            text("select user_id, ad_id from served_impressions where impression_id = :i"), {"i": impression_id}
        ).one()
    return row.user_id, row.ad_id


def _event(kind: events_pb2.EventType, user: str, impression_id: str, ad_id: str = "") -> events_pb2.Event:
    return events_pb2.Event(
        event_id=str(uuid.uuid4()), type=kind, user_id=user, impression_id=impression_id, ad_id=ad_id
    )


def _ecomai(rig: Rig, *argv: str) -> int:
    """``ecomai ARGV`` in this process, against the rig's database and Triton."""
    from services.cli import build_parser
    from services.models_cli import normalize_models_argv

    args = build_parser().parse_args(normalize_models_argv(list(argv)))
    return int(args.fn(args, rig.settings) or 0)


def test_the_cli_starts_a_canary_shows_it_and_stops_it(rig, capsys):
    [serving] = rig.triton.ready_versions(CTR_MODEL)
    canary = _publish(rig.engine, rig.repo, seed=4)
    assert _ecomai(rig, "models", "split", CTR_MODEL, "--canary", str(canary), "10") == 0
    assert {(a.version, a.percent) for a in active_arms(rig.engine, CTR_MODEL)} == {(serving, 90.0), (canary, 10.0)}
    assert rig.triton.ready_versions(CTR_MODEL) == [serving, canary]
    shown = capsys.readouterr().out
    assert f"v{canary}: 10% of users" in shown and f"v{serving}: 90% of users" in shown

    assert _ecomai(rig, "models", "split", CTR_MODEL, f"{serving}=60", f"{canary}=30") == 1  # adds up to 90
    assert "percentages must add up to 100" in capsys.readouterr().out
    assert len(active_arms(rig.engine, CTR_MODEL)) == 2  # unchanged

    assert _ecomai(rig, "models", "stop", CTR_MODEL, str(canary)) == 0
    assert active_arms(rig.engine, CTR_MODEL) == [] and rig.triton.ready_versions(CTR_MODEL) == [serving]
    assert _ecomai(rig, "models", "split", CTR_MODEL) == 0
    assert "no traffic split" in capsys.readouterr().out
