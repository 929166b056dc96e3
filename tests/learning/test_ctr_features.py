"""The serving batch (columns, the ad's part cached) equals the training rows (one impression at a time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from shared.learning.ctr_features import (
    AdCounters,
    AdFacts,
    ClickCounts,
    UserProfile,
    build_batch,
    categorical_row,
    cosine,
    numeric_row,
)

AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _ads(rng: np.random.Generator) -> list[tuple[AdFacts, AdCounters, np.ndarray]]:
    ads = []
    for i in range(40):
        facts = AdFacts(
            f"ad-{i}", f"c-{i % 7}", f"adv-{i % 3}", ["shoes", "kitchen", "outdoor", ""][i % 4],
            ["Acme boots", "Zen pan", "", "Acme tent"][i % 4], ["sport", "home"][: i % 3],
            None if i % 5 == 0 else 1_000_000 * (i + 1),
        )  # fmt: skip
        counters = AdCounters(ClickCounts(i * 10, i), ClickCounts(i * 100, i * 3), ClickCounts())
        vector = rng.normal(size=384).astype(np.float32) if i % 6 else np.zeros(384, np.float32)
        ads.append((facts, counters, vector))
    return ads


def test_batch_equals_the_training_rows_for_every_kind_of_user():
    rng = np.random.default_rng(0)
    ads = _ads(rng)
    users = [
        UserProfile(),  # anonymous
        UserProfile("u-1", "sport", "US", 12, {"shoes": 5, "outdoor": 4}, {"acme": 6}, AT - timedelta(hours=30)),
        UserProfile("u-2", "home", "DE", 3, {"kitchen": 3}, {}, None),
    ]
    for user in users:
        vector = rng.normal(size=384).astype(np.float32)
        for position in (1, 3, 40):
            batch = build_batch(user, vector, ads, "home_top", position, AT)
            cat = np.asarray([categorical_row(user, ad, "home_top", position) for ad, _, _ in ads], dtype=np.int64)
            num = np.asarray([numeric_row(user, ad, c, AT, cosine(v, vector)) for ad, c, v in ads], dtype=np.float32)
            np.testing.assert_array_equal(batch.cat, cat)
            np.testing.assert_allclose(batch.num, num, rtol=1e-6, atol=1e-6)
            assert batch.user_text.shape == (len(ads), 384)


def test_an_empty_batch_has_the_model_shapes():
    batch = build_batch(UserProfile(), np.zeros(384, np.float32), [], "home_top", 1, AT)
    assert batch.cat.shape == (0, 10) and batch.num.shape == (0, 14) and batch.ad_text.shape == (0, 384)
