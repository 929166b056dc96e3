"""The ads service's CTR feature read on a real Postgres: one round trip for the user and the candidates, each
ad's part (facts, counters, text embedding) reused for the TTL, the user's part read on every request."""

from __future__ import annotations

import numpy as np
from sqlalchemy import insert, text

from services.ads.ctr_inputs import CtrInputsReader, read_ctr_inputs
from shared.core.model_catalog import EMBEDDING_DIM, TEXT_ENCODER
from shared.learning.ctr_features import ClickCounts
from shared.store import schema as db


def _shop(engine) -> np.ndarray:
    vector = np.linspace(-1, 1, EMBEDDING_DIM, dtype=np.float32)
    with engine.begin() as conn:
        conn.execute(insert(db.User), [{"user_id": "u1", "segment": "active", "country": "US"}])
        conn.execute(insert(db.Campaign), [{"campaign_id": "c1", "advertiser": "Trek", "name": "x"}])
        ads = [{"ad_id": a, "campaign_id": "c1", "title": f"{a} tents", "category": "outdoor", "bid_micros": 1}
               for a in ("a1", "a2")]  # fmt: skip
        conn.execute(insert(db.Ad), ads)
        conn.execute(
            insert(db.Feature),
            [
                {"entity_type": "ad", "entity_id": "a1", "name": "ctr_counts", "value": _counts(30, 10)},
                {"entity_type": "user", "entity_id": "u1", "name": "ctr_profile", "value": {"interactions": 2}},
            ],
        )
        conn.execute(
            insert(db.Embedding),
            [
                {
                    "entity_type": "ad",
                    "entity_id": "a1",
                    "model_name": TEXT_ENCODER,
                    "model_version": 1,
                    "vector": vector.tolist(),
                }
            ],
        )
    return vector


def _counts(impressions: int, clicks: int) -> dict:
    return {"impressions": impressions, "clicks": clicks}


def _set(engine, entity_type: str, name: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("update features set value = cast(:v as jsonb) where entity_type = :t and name = :n"),
            {"v": value, "t": entity_type, "n": name},
        )


def test_ads_features_are_reused_for_the_ttl_and_the_users_part_is_read_every_time(data_engine):
    vector = _shop(data_engine)
    now = [100.0]
    reader = CtrInputsReader(data_engine, ttl_s=30, clock=lambda: now[0])
    first = reader.read("u1", ["a1", "a2", "gone"])
    assert sorted(first.ads) == ["a1", "a2"] and first.profile.interactions == 2
    np.testing.assert_allclose(first.ads["a1"][2], vector, atol=1e-6)
    assert not first.ads["a2"][2].any()  # no embedding yet: zeros
    assert first.ads["a1"][1].ad == ClickCounts(30, 10) and first.ads["a2"][1].ad == ClickCounts()

    _set(data_engine, "ad", "ctr_counts", '{"impressions": 40, "clicks": 12}')
    _set(data_engine, "user", "ctr_profile", '{"interactions": 5}')
    now[0] = 129.0
    within = reader.read("u1", ["a1", "a2"])
    assert within.ads["a1"][1].ad == ClickCounts(30, 10)  # the ad's counters from memory
    assert within.profile.interactions == 5  # the user's part is always read
    assert read_ctr_inputs(data_engine, "u1", ["a1"]).ads["a1"][1].ad == ClickCounts(40, 12)  # the store changed

    now[0] = 130.5
    after = reader.read("u1", ["a1"])
    assert list(after.ads) == ["a1"] and after.ads["a1"][1].ad == ClickCounts(40, 12)  # expired: read again


def test_a_request_whose_ads_are_all_in_memory_still_reads_the_user(data_engine):
    _shop(data_engine)
    now = [0.0]
    reader = CtrInputsReader(data_engine, ttl_s=30, clock=lambda: now[0])
    reader.read("u1", ["a1"])
    anonymous = reader.read("", ["a1"])
    assert anonymous.profile.interactions == 0 and not anonymous.user_vector.any() and list(anonymous.ads) == ["a1"]
    assert reader.read("u1", ["a1"]).profile.interactions == 2
    assert reader.read("u1", []).ads == {}
