"""SearchProducts' query embedding: cached per query words (case and spacing do not matter, the encoder is uncased)
for the TTL, and the answer names the text_encoder version that embedded the query, from the cache too."""

from __future__ import annotations

from services.recs.candidates import ProductFilter
from services.recs.recommender import Recommender
from services.recs.recs_store import ProductRow
from services.recs.search import query_key
from shared.core.model_catalog import TEXT_ENCODER
from tests.fakes import FakeInference, FakeRecsStore


def _shop() -> FakeRecsStore:
    rows = [ProductRow(p, p.upper(), "", "shoes", "acme", 1_000_000, "USD", True) for p in ("a", "b", "c")]
    return FakeRecsStore(catalogue={p.product_id: p for p in rows}, lexical={"trail": ["a"]}, ann=["c", "a"])


def test_a_repeated_query_is_embedded_once_and_reports_the_encoder_version():
    client = FakeInference(version=4)
    recs = Recommender(_shop(), client)
    first = recs.search("Trail  Shoes", 2, None, ProductFilter())
    again = recs.search("trail shoes", 2, None, ProductFilter())
    assert client.calls == [(TEXT_ENCODER, 1)]
    assert (first.serving.model_name, first.serving.model_version) == (TEXT_ENCODER, 4)
    assert (again.serving.model_name, again.serving.model_version) == (TEXT_ENCODER, 4)
    assert [it.product.product_id for it in first.items] == [it.product.product_id for it in again.items]


def test_without_a_ttl_every_query_reaches_the_encoder():
    client = FakeInference()
    recs = Recommender(_shop(), client, query_cache_ttl_s=0)
    for _ in range(3):
        recs.search("trail", 2, None, ProductFilter())
    assert client.calls == [(TEXT_ENCODER, 1)] * 3


def test_an_encoder_that_is_down_is_not_cached():
    client = FakeInference()
    client.down.add(TEXT_ENCODER)
    recs = Recommender(_shop(), client)
    assert recs.search("trail", 2, None, ProductFilter()).serving.fallback == "lexical_only"
    client.down.clear()
    result = recs.search("trail", 2, None, ProductFilter())
    assert not result.serving.degraded and result.serving.model_version == client.version


def test_query_key_is_the_lower_cased_words():
    assert query_key("  Cast IRON\tSkillet ") == "cast iron skillet"
