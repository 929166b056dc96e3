"""Recommender decisions with in-memory fakes: reciprocal-rank fusion, business rules, diversity, filling k with
popular items, reasons, similar products, search, and the fallbacks when the ranker or the encoder is down."""

from __future__ import annotations

import pytest

from services.recs.recommender import RRF_K, ProductFilter, Recommender, RecsResult
from services.recs.recs_store import ProductRow
from shared.core.errors import NotFound
from shared.core.model_catalog import RECS_RANKER, TEXT_ENCODER
from tests.fakes import FakeInference, FakeRecsStore

NO_FILTER = ProductFilter()


def product(product_id: str, category: str = "shoes", in_stock: bool = True) -> ProductRow:
    # The title is the id, so the fake ranker can tell the candidates apart in the text it reads.
    return ProductRow(product_id, product_id, "", category, "acme", 20_000_000, "USD", in_stock)


def shop(*products: ProductRow, **fields) -> FakeRecsStore:
    return FakeRecsStore(catalogue={p.product_id: p for p in products}, users={"u1"}, **fields)


def recommender(store: FakeRecsStore, ranker_scores: dict[str, float] | None = None, down: tuple[str, ...] = ()):
    """A recommender whose ranker scores each candidate by id (ranker_text starts "candidate <title> category")."""
    scores = ranker_scores or {}
    client = FakeInference(
        scores={RECS_RANKER: lambda text: scores.get(text.removeprefix("candidate ").split(" category ")[0], 0.5)}
    )
    client.down.update(down)
    return Recommender(store, client), client


def ids(result: RecsResult) -> list[str]:
    return [item.product.product_id for item in result.items]


def rrf(*ranks: int) -> float:
    """The fused score of an item found at these 0-based ranks, one per source."""
    return sum(1.0 / (RRF_K + rank + 1) for rank in ranks)


# -- fusion, reasons, the ranker ---------------------------------------------------------------


def test_an_item_found_by_two_sources_beats_items_found_by_one():
    # b is second in both lists; a and c are first in one list each.
    store = shop(product("anchor"), product("a"), product("b"), product("c"), similar_text=["a", "b"])
    store.co_viewed = ["c", "b"]
    result = recommender(store)[0].similar("anchor", 3, None, NO_FILTER)
    assert ids(result) == ["b", "a", "c"]
    assert [it.score for it in result.items] == pytest.approx([rrf(1, 1), rrf(0), rrf(0)])
    assert [[code for code, _ in it.reasons] for it in result.items] == [
        ["SIMILAR_TEXT", "ALSO_VIEWED"],
        ["SIMILAR_TEXT"],
        ["ALSO_VIEWED"],
    ]
    assert result.total_matches == 3


def history_shop() -> FakeRecsStore:
    # u1 viewed h1 and h2 and bought h1; every product is also in the popular list (c first, then by id).
    store = shop(*(product(p) for p in ["a", "b", "c", "h1", "h2"]), similar_text=["a", "b"], co_viewed=["b"])
    store.history["u1"], store.bought["u1"], store.trending = ["h1", "h2"], {"h1"}, ["c"]
    return store


def test_recommend_orders_by_the_ranker_and_never_returns_what_was_bought():
    recs, client = recommender(history_shop(), {"a": 0.9, "c": 0.8, "h2": 0.3, "b": 0.1})
    result = recs.recommend("u1", 4, NO_FILTER)
    assert ids(result) == ["a", "c", "h2", "b"]  # fusion alone would say b, a, h2, c
    assert [it.score for it in result.items] == [0.9, 0.8, 0.3, 0.1]
    assert client.calls == [(RECS_RANKER, 4)]  # one batch, bought h1 never scored
    assert result.serving.model_name == RECS_RANKER and not result.serving.degraded


def test_reasons_name_every_source_that_found_the_item():
    result = recommender(history_shop())[0].recommend("u1", 4, NO_FILTER)
    reasons = {it.product.product_id: it.reasons for it in result.items}
    assert reasons["b"] == [
        ("SIMILAR_TEXT", "similar to h1, h2"),
        ("ALSO_VIEWED", "shoppers who viewed what you viewed also viewed this"),
        ("POPULAR", "trending in the shop"),
    ]
    assert reasons["h2"] == [("RECENTLY_VIEWED", "you looked at this recently"), ("POPULAR", "trending in the shop")]


def test_ranker_down_ranks_by_fusion_and_says_so():
    result = recommender(history_shop(), {"a": 0.9, "c": 0.8}, down=(RECS_RANKER,))[0].recommend("u1", 4, NO_FILTER)
    # sources: similar [a, b], co-viewed [b], recent [h1, h2], popular [c, a, b, h1, h2]
    assert ids(result) == ["b", "a", "h2", "c"]
    assert [it.score for it in result.items] == pytest.approx([rrf(1, 0, 2), rrf(0, 1), rrf(1, 4), rrf(0)])
    assert result.serving.degraded and result.serving.fallback == "retrieval_fusion"


def test_recommend_for_an_unknown_user_is_not_found():
    with pytest.raises(NotFound) as err:
        recommender(history_shop())[0].recommend("nobody", 4, NO_FILTER)
    assert err.value.field == "user_id"


# -- business rules, diversity, always k -------------------------------------------------------


def rules_shop() -> FakeRecsStore:
    store = shop(
        *(product(p) for p in ["anchor", "ok1", "ok2", "bought", "excluded"]),
        product("oos", in_stock=False),
        product("bag", category="bags"),
        similar_text=["oos", "bought", "excluded", "bag", "ok1", "ok2"],
    )
    store.history["u1"], store.bought["u1"] = ["bought"], {"bought"}
    return store


def test_business_rules_drop_out_of_stock_purchased_excluded_and_other_categories():
    filt = ProductFilter(categories=["shoes"], exclude_ids=["excluded"])
    result = recommender(rules_shop())[0].similar("anchor", 10, "u1", filt)
    assert ids(result) == ["ok1", "ok2"]  # nothing else in the shop passes the rules, so fewer than k
    assert result.total_matches == 6


def test_business_rules_let_out_of_stock_and_purchased_through_when_asked():
    filt = ProductFilter(["shoes"], ["excluded"], include_purchased=True, include_out_of_stock=True)
    result = recommender(rules_shop())[0].similar("anchor", 10, "u1", filt)
    assert ids(result) == ["oos", "bought", "ok1", "ok2"]


@pytest.mark.parametrize("max_per_category, expected", [(0, ["s1", "s2", "s3"]), (2, ["s1", "s2", "b1"])])
def test_max_per_category_spreads_results_over_categories(max_per_category, expected):
    store = shop(*(product(s) for s in ["s1", "s2", "s3"]), *(product(b, category="bags") for b in ["b1", "b2"]))
    store.trending = ["s1", "s2", "s3", "b1", "b2"]
    result = recommender(store)[0].recommend("u1", 3, NO_FILTER, max_per_category=max_per_category)
    assert ids(result) == expected


def test_few_matches_are_filled_with_popular_items_up_to_k():
    store = shop(product("boot"), product("x"), product("y"), product("z"), lexical={"boots": ["boot"]})
    store.trending = ["y", "x"]
    result = recommender(store)[0].search("boots", 3, None, NO_FILTER)
    assert ids(result) == ["boot", "y", "x"]
    assert [it.source for it in result.items] == ["lexical", "popular", "popular"]
    assert result.items[1].reasons == [("POPULAR", "popular in the shop")]
    assert result.items[0].score > result.items[1].score > result.items[2].score
    assert "1 matches for the query; filled with popular items" in result.serving.notes


# -- similar products --------------------------------------------------------------------------


def test_similar_never_returns_the_anchor():
    store = shop(product("anchor"), product("a"), product("b"), similar_text=["anchor", "a"], co_viewed=["anchor"])
    result = recommender(store)[0].similar("anchor", 5, None, NO_FILTER)
    assert ids(result) == ["a", "b"]  # b only as a popular fill
    assert result.total_matches == 1  # the anchor is not counted as a match of itself


def test_similar_without_embeddings_or_coviews_falls_back_to_popular_in_the_category():
    store = shop(product("anchor"), product("s1"), product("bag", category="bags"), trending=["bag", "s1"])
    result = recommender(store)[0].similar("anchor", 1, None, NO_FILTER)
    assert ids(result) == ["s1"]
    assert result.items[0].reasons == [("SAME_CATEGORY", "popular in shoes")]
    assert result.serving.degraded and result.serving.fallback == "popular_in_category"


def test_similar_to_an_unknown_product_or_for_an_unknown_user_is_not_found():
    recs = recommender(shop(product("anchor")))[0]
    with pytest.raises(NotFound) as err:
        recs.similar("ghost", 3, None, NO_FILTER)
    assert err.value.field == "product_id"
    with pytest.raises(NotFound) as err:
        recs.similar("anchor", 3, "nobody", NO_FILTER)
    assert err.value.field == "user_id"


# -- search ------------------------------------------------------------------------------------


def search_shop() -> FakeRecsStore:
    return shop(product("a"), product("b"), product("c"), lexical={"trail": ["a", "b"]}, semantic=["c", "a"])


def test_search_fuses_lexical_and_semantic_matches():
    result = recommender(search_shop())[0].search("trail", 3, None, NO_FILTER)
    assert ids(result) == ["a", "c", "b"]
    assert [code for code, _ in result.items[0].reasons] == ["TEXT_MATCH", "SEMANTIC_MATCH"]
    assert result.serving.model_name == TEXT_ENCODER and not result.serving.degraded


def test_search_with_the_encoder_down_is_lexical_only():
    result = recommender(search_shop(), down=(TEXT_ENCODER,))[0].search("trail", 3, None, NO_FILTER)
    assert ids(result) == ["a", "b", "c"]  # c only as a popular fill, no longer as a semantic match
    assert [it.source for it in result.items] == ["lexical", "lexical", "popular"]
    assert result.serving.degraded and result.serving.fallback == "lexical_only"
    assert result.total_matches == 2


@pytest.mark.parametrize("user_id, expected", [(None, ["s1", "b1"]), ("u1", ["b1", "s1"])])
def test_search_lifts_matches_in_categories_the_user_browses(user_id, expected):
    store = shop(product("s1"), product("b1", category="bags"), product("seen", category="bags"))
    store.lexical, store.history["u1"] = {"trail": ["s1", "b1"]}, ["seen"]
    result = recommender(store, down=(TEXT_ENCODER,))[0].search("trail", 2, user_id, NO_FILTER)
    assert ids(result) == expected
    boosted = ("PERSONALIZED", "you often browse bags") in result.items[expected.index("b1")].reasons
    assert boosted == (user_id is not None)
