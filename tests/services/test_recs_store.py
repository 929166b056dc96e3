"""RecsStore on a real Postgres (pgvector, pg_trgm) with the tiny demo shop: the user's history in one read,
product rows and embeddings cached, lists read by key, ANN from the HNSW index (a new product is retrievable as soon
as its embedding row exists), full-text and typo-tolerant search."""

from __future__ import annotations

import numpy as np
import pytest
from pgvector import Vector
from sqlalchemy import event, text

from services.recs.recs_store import RecsStore
from shared.core.model_catalog import EMBEDDING_DIM, TEXT_ENCODER
from shared.demo_shop import generate_shop, load_shop
from shared.learning.recs_lists import materialize_recs_lists
from tests.fakes import fake_vector


def _embed(engine, product_ids: list[str]) -> None:
    """Embedding rows as the embedding job writes them (fake vectors: no Triton in this test)."""
    with engine.begin() as conn:
        for pid in product_ids:
            conn.execute(
                text("""insert into embeddings (entity_type, entity_id, model_name, model_version, vector)
                        values ('product', :id, :m, 1, cast(:v as vector))
                        on conflict (entity_type, entity_id, model_name) do update set vector = excluded.vector"""),
                {"id": pid, "m": TEXT_ENCODER, "v": Vector(fake_vector(pid)).to_text()},
            )


@pytest.fixture
def shop_engine(data_engine):
    shop = generate_shop("tiny", seed=7)
    load_shop(data_engine, shop)
    _embed(data_engine, [p["product_id"] for p in shop.products])
    materialize_recs_lists(data_engine)
    return data_engine


@pytest.fixture
def store(shop_engine):
    store = RecsStore(shop_engine)
    yield store
    store.close()


def _count_queries(engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cur, sql, *a: seen.append(sql))
    return seen


def test_history_products_and_embeddings_read_once_per_ttl(shop_engine, store):
    with shop_engine.connect() as conn:
        user, expected = conn.execute(
            text("""
            select user_id, array_agg(product_id order by last_at desc, product_id) from (
                select user_id, product_id, max(occurred_at) as last_at from events
                where type in ('view', 'cart', 'purchase') and product_id is not null group by 1, 2) t
            group by user_id order by count(*) desc limit 1""")
        ).one()
    history, bought = store.user_history(user)
    assert history == expected[: len(history)] and 0 < len(history) <= 50
    queries = _count_queries(store.engine)
    rows = store.products(history[:10])
    vectors = store.embeddings(history[:10] + ["ghost"])
    assert len(queries) == 2  # ghost was not cached yet: one more lookup, then remembered as absent
    store.products(history[:10] + ["ghost"])
    store.embeddings(history[:5])
    assert len(queries) == 2
    assert set(rows) == set(history[:10]) and np.allclose(vectors[history[0]], fake_vector(history[0]), atol=1e-6)


def test_lists_are_read_by_key_and_popular_pads_with_the_catalogue(store):
    found = store.lists([("popular", "7d:all"), ("trending", "1d:all"), ("co_view", "p-00001"), ("popular", "x")])
    assert ("popular", "7d:all") in found and ("popular", "x") not in found
    scores = [s for _, s in found[("popular", "7d:all")]]
    assert scores == sorted(scores, reverse=True)
    electronics = store.popular(150, categories=["electronics"])
    rows = store.products([p for p, _ in electronics])
    assert all(rows[p].category == "electronics" and rows[p].in_stock for p, _ in electronics)
    assert len(electronics) == sum(1 for p in rows.values() if p.category == "electronics" and p.in_stock)


def test_ann_finds_a_new_product_as_soon_as_its_embedding_exists(shop_engine, store):
    with shop_engine.begin() as conn:
        conn.execute(
            text("""insert into products (product_id, title, category, price_micros)
                             values ('p-new', 'Brand New Gadget', 'electronics', 1000000)""")
        )
    probe = fake_vector("p-new") + 0.05 * fake_vector("noise")
    assert "p-new" not in [p for p, _ in store.nearest_to_vector(probe, 10)]
    _embed(shop_engine, ["p-new"])
    hits = store.nearest_to_vector(probe, 150)
    assert hits[0][0] == "p-new" and len(hits) == 121  # ef_search is raised so HNSW returns all that was asked
    assert store.embeddings(["p-new"])["p-new"].shape == (EMBEDDING_DIM,)


def test_search_matches_words_and_tolerates_typos(store):
    title = store.products(["p-00001"])["p-00001"].title  # "Nimbus Bluetooth Earbuds M250"
    word = title.split()[2].lower()
    text_hits, _ = store.lexical_search(word, 50)
    assert "p-00001" in [p for p, _ in text_hits]
    typo = word[:2] + word[3:]  # one letter dropped: no full-text match, a trigram match
    text_hits, fuzzy_hits = store.lexical_search(typo, 50)
    assert "p-00001" not in [p for p, _ in text_hits]
    assert "p-00001" in [p for p, _ in fuzzy_hits]


def test_session_history_is_the_sessions_products_newest_first(shop_engine, store):
    with shop_engine.connect() as conn:
        session, expected = conn.execute(
            text("""
            select session_id, array_agg(product_id order by last_at desc) from (
                select session_id, product_id, max(occurred_at) as last_at from events
                where type in ('view', 'cart', 'purchase') and product_id is not null and session_id is not null
                group by 1, 2) t
            group by session_id order by count(*) desc, session_id limit 1""")
        ).one()
    assert store.session_history(session) == expected[:50] and len(expected) > 1


def test_the_same_ann_vector_is_read_once_per_ttl_and_not_at_all_cached_without_one(shop_engine, store):
    probe = fake_vector("p-00001")
    queries = _count_queries(store.engine)
    first = store.nearest_to_vector(probe, 20)
    assert store.nearest_to_vector(probe.copy(), 20) == first and len(queries) == 1
    store.nearest_to_vector(probe, 30)  # another depth is another read
    assert len(queries) == 2
    uncached = RecsStore(shop_engine, ttl_s=0)
    seen = _count_queries(uncached.engine)
    assert uncached.nearest_to_vector(probe, 20) == uncached.nearest_to_vector(probe, 20) == first
    assert len(seen) == 2
    uncached.close()


def test_ef_search_comes_from_the_setting_and_deeper_lists_continue_past_it(shop_engine):
    shallow = RecsStore(shop_engine, ef_search=10)
    with shallow.engine.connect() as conn:
        assert conn.execute(text("show hnsw.ef_search")).scalar_one() == "10"
    hits = shallow.nearest_to_vector(fake_vector("p-00001"), 100)
    assert len(hits) == 100  # the iterative scan goes past the 10 the search depth alone would give
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    shallow.close()
    with pytest.raises(ValueError, match="ef_search"):
        RecsStore(shop_engine, ef_search=0)


def test_a_read_on_a_connection_the_server_dropped_is_retried_on_a_new_one(shop_engine, store):
    store.user_history("nobody")  # a pooled connection now exists
    with store.engine.connect() as conn:
        pid = conn.execute(text("select pg_backend_pid()")).scalar_one()
    with shop_engine.connect() as admin:
        assert admin.execute(text("select pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    assert store.session_history("no-such-session") == []  # the dead connection was replaced, not surfaced
