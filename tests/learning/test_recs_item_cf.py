"""EASE item_cf: the closed form equals a per-item ridge regression, it beats popularity where items go together,
and the materialized ``item_cf`` lists equal EASE computed directly from the same events."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from shared.demo_shop import generate_shop, load_shop
from shared.learning.item_cf import (
    ItemCFConfig,
    blend,
    ease_weights,
    fit_item_cf,
    interaction_matrix,
    neighbour_scores,
    top_neighbours,
    user_lists,
)
from shared.learning.item_cf_job import (
    KIND,
    USER_KIND,
    ItemCFJobConfig,
    ShopInteractions,
    fit_shop_item_cf,
    materialize_item_cf_lists,
)
from shared.learning.recs_metrics import full_ranking_metrics
from shared.learning.recs_training import popularity


def test_ease_equals_a_ridge_regression_of_each_item_on_the_others():
    rng = np.random.default_rng(3)
    x = (rng.random((40, 9)) < 0.3).astype(np.float64)
    lam = 2.5
    b = ease_weights(x, lam)
    for j in range(9):
        others = [i for i in range(9) if i != j]
        xo = x[:, others]
        ridge = np.linalg.solve(xo.T @ xo + lam * np.eye(8), xo.T @ x[:, j])
        assert b[others, j] == pytest.approx(ridge, abs=1e-9)
        assert b[j, j] == 0.0


def _cluster_world(seed: int = 5):
    """30 taste clusters of 6 items; each user takes 4 items of one cluster, plus one of 12 blockbusters that
    everyone shares. The held-out item is one more of the user's cluster: co-interaction predicts it, popularity
    cannot (the blockbusters are the most popular but never the target)."""
    rng = random.Random(seed)
    n_items, clusters = 30 * 6 + 12, 30
    train, hist, target = [], [], []
    for _ in range(400):
        c = rng.randrange(clusters)
        mine = rng.sample(range(c * 6, c * 6 + 6), 5)
        items = mine[:4] + [180 + rng.randrange(12)]
        train.append(items)
        hist.append(items)
        target.append([mine[4]])
    return n_items, train, hist, target


def test_item_cf_beats_popularity_on_a_world_of_items_that_go_together():
    n_items, train, hist, target = _cluster_world()
    cfg = ItemCFConfig(lambdas=(1.0, 10.0, 100.0), neighbours=20)
    cf = fit_item_cf(train[:300], n_items, hist[:300], target[:300], hist[:300], cfg)
    assert set(cf.record["tried"]) == {"1", "10", "100"} and cf.lam == cf.record["lambda"]
    pop_scores = np.broadcast_to(popularity(train[:300], n_items), (100, n_items))
    pop = full_ranking_metrics(pop_scores, target[300:], hist[300:])
    listed = user_lists(cf, hist[300:], 10)
    assert all(j not in hist[300 + u] for u, items in enumerate(listed) for j, _ in items)  # unseen items only
    for scores in (cf.scores(hist[300:]), neighbour_scores(hist[300:], cf.neighbours(cfg.neighbours), n_items)):
        m = full_ranking_metrics(scores, target[300:], hist[300:])
        assert m["hr@10"] > 0.95  # the user's 2 unseen cluster items rank first
        assert m["ndcg@10"] > pop["ndcg@10"] + 0.4, (m, pop)
    hits = [any(j == target[300 + u][0] for j, _ in items[:2]) for u, items in enumerate(listed)]
    assert np.mean(hits) > 0.95


def test_neighbours_keep_the_largest_weights_by_magnitude_and_scores_sum_them():
    b = np.array([[0.0, 0.5, -0.9, 0.1], [0.2, 0.0, 0.0, 0.3], [0.1, 0.1, 0.0, -0.05], [0.0, 0.0, 0.0, 0.0]])
    nb = top_neighbours(b, 2, lam=1.0)
    assert nb.rows(0) == [(2, pytest.approx(-0.9)), (1, pytest.approx(0.5))]
    assert nb.rows(1) == [(3, pytest.approx(0.3)), (0, pytest.approx(0.2))]
    assert nb.rows(3) == []  # zero weights are not neighbours
    scores = neighbour_scores([[0, 1], [1]], nb, 4, max_anchors=1)  # only the most recent (last) item counts
    assert scores[0] == pytest.approx([0.2, 0.0, 0.0, 0.3]) and scores[1] == pytest.approx([0.2, 0.0, 0.0, 0.3])
    with pytest.raises(ValueError, match="lambdas"):
        ItemCFConfig(lambdas=(0.0,))
    with pytest.raises(ValueError, match="cf_weight"):
        blend(scores, scores, scores > 0, 1.5)


def test_blend_is_scale_free_and_ranks_outside_the_candidates_last():
    ranker = np.array([[3.0, 1.0, 2.0, 9.0]])
    cf = np.array([[0.0, 10.0, 5.0, 7.0]])
    mask = np.array([[True, True, True, False]])
    assert np.argsort(-blend(ranker, cf, mask, 0.0))[0].tolist()[:3] == [0, 2, 1]
    assert np.argsort(-blend(ranker, cf, mask, 1.0))[0].tolist()[:3] == [1, 2, 0]
    assert np.array_equal(blend(ranker * 100, cf, mask, 0.3), blend(ranker, cf, mask, 0.3))
    assert blend(ranker, cf, mask, 0.5)[0, 3] == -np.inf


def _lists(engine, kind: str) -> dict[str, list]:
    with engine.connect() as conn:
        return dict(conn.execute(text("select key, items from recs_lists where kind = :k"), {"k": kind}).all())


def test_materialized_item_cf_lists_equal_ease_on_the_same_events(data_engine):
    load_shop(data_engine, generate_shop("tiny", seed=11))
    config = ItemCFJobConfig(model=ItemCFConfig(lambdas=(5.0, 50.0), neighbours=15, user_list=12, max_items=80))
    summary = materialize_item_cf_lists(data_engine, config)
    with data_engine.connect() as conn:
        events = conn.execute(text("select type, user_id, product_id, occurred_at from events")).all()
        products = set(conn.execute(text("select product_id from products")).scalars())
    stored, stored_users = _lists(data_engine, KIND), _lists(data_engine, USER_KIND)
    # the matrix from the raw rows: last touch per (user, product) within the window, top products by users
    ref = max(e.occurred_at for e in events)
    last: dict[str, dict[str, datetime]] = defaultdict(dict)
    for e in events:
        recent = ref - e.occurred_at < timedelta(days=config.days)
        if e.type in ("view", "cart", "purchase") and e.user_id and e.product_id in products and recent:
            seen = last[e.user_id].get(e.product_id)
            last[e.user_id][e.product_id] = max(seen, e.occurred_at) if seen else e.occurred_at
    users_of: dict[str, int] = defaultdict(int)
    for touched in last.values():
        for pid in touched:
            users_of[pid] += 1
    columns = sorted(users_of, key=lambda p: (-users_of[p], p))[: config.model.max_items]
    index = {p: i for i, p in enumerate(columns)}
    by_user = {
        u: [index[p] for p in sorted(touched, key=lambda p: (touched[p], p)) if p in index]
        for u, touched in sorted(last.items())
    }
    by_user = {u: h for u, h in by_user.items() if h}
    data = ShopInteractions(columns, list(by_user), list(by_user.values()))
    lam = fit_shop_item_cf(data, config.model).lam
    assert summary["item_cf_lambda"] == lam and summary["item_cf_validation"]["validation_users"] > 10
    x = interaction_matrix(data.histories, len(columns))
    b = ease_weights(x, lam)
    expected = {}
    for i, pid in enumerate(columns):
        order = sorted((j for j in range(len(columns)) if b[i, j] != 0), key=lambda j: (-abs(b[i, j]), j))
        expected[pid] = [(columns[j], b[i, j]) for j in order[: config.model.neighbours]]
    assert stored.keys() == {p for p, items in expected.items() if items}
    assert summary[KIND] == len(stored) > 50
    for pid, items in stored.items():
        assert [p for p, _ in items] == [p for p, _ in expected[pid]], pid
        assert [w for _, w in items] == pytest.approx([w for _, w in expected[pid]], abs=2e-6), pid
    # a user's list: Σ of B's rows over their products, their own products left out, best first
    assert stored_users.keys() == set(by_user) and summary[USER_KIND] == len(by_user)
    for u, (user_id, hist) in enumerate(by_user.items()):
        scores = x[u] @ b
        unseen = sorted((j for j in range(len(columns)) if j not in hist), key=lambda j: (-scores[j], j))
        want = [(columns[j], scores[j]) for j in unseen[: config.model.user_list]]
        got = stored_users[user_id]
        assert [w for _, w in got] == pytest.approx([w for _, w in want], abs=2e-6), user_id
        assert [p for p, _ in got] == [p for p, _ in want], user_id
    with data_engine.begin() as conn:  # a list whose key lost its events disappears
        conn.execute(text("insert into recs_lists (kind, key, items) values ('item_cf', 'gone', '[]')"))
    materialize_item_cf_lists(data_engine, config)  # idempotent
    assert _lists(data_engine, KIND) == stored and _lists(data_engine, USER_KIND) == stored_users
