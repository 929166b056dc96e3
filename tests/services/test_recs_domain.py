"""Recommender decisions with in-memory fakes: reciprocal-rank fusion, the one ranker call and its reasons, business
rules, diversity, filling k, cold start, similar products, search and the fallbacks when the ranker, the encoder or
a source is down."""

from __future__ import annotations

import numpy as np
import pytest

from services.recs import ranker_call
from services.recs.candidates import RRF_K, ProductFilter, RecsResult
from services.recs.recommender import Recommender
from services.recs.recs_store import ProductRow
from shared.core.errors import NotFound
from shared.core.model_catalog import RECS_RANKER, TEXT_ENCODER
from tests.fakes import FakeInference, FakeRecsStore, fake_ranker, fake_vector

NO_FILTER = ProductFilter()


def product(product_id: str, category: str = "shoes", in_stock: bool = True) -> ProductRow:
    return ProductRow(product_id, product_id.upper(), "", category, "acme", 20_000_000, "USD", in_stock)


def shop(*products: ProductRow, **fields) -> FakeRecsStore:
    return FakeRecsStore(catalogue={p.product_id: p for p in products}, **fields)


def recommender(store: FakeRecsStore, ranker_scores: dict[str, float] | None = None, down: tuple[str, ...] = ()):
    """A recommender whose ranker scores each candidate by product id (0 for the others)."""
    client = FakeInference(tensors={RECS_RANKER: fake_ranker(ranker_scores or {}, list(store.catalogue))})
    client.down.update(down)
    return Recommender(store, client), client


def ids(result: RecsResult) -> list[str]:
    return [item.product.product_id for item in result.items]


def rrf(*ranks: int, weight: float = 1.0) -> float:
    """The fused score of an item found at these 0-based ranks, one per source."""
    return sum(weight / (RRF_K + rank + 1) for rank in ranks)


# -- recommend: sources, the ranker, reasons ---------------------------------------------------


def history_shop() -> FakeRecsStore:
    # u1 viewed h1 and h2 and bought h1; c is the only trending product.
    store = shop(*(product(p) for p in ["a", "b", "c", "h1", "h2"]), ann=["a", "b"], co_viewed=["b"])
    store.history["u1"], store.bought["u1"], store.trending = ["h1", "h2"], {"h1"}, ["c"]
    return store


def test_recommend_ranks_all_candidates_in_one_ranker_call_and_never_returns_what_was_bought():
    recs, client = recommender(history_shop(), {"a": 0.9, "c": 0.8, "h2": 0.3, "b": 0.1})
    result = recs.recommend("u1", 4, NO_FILTER)
    assert ids(result) == ["a", "c", "h2", "b"]  # fusion alone would say b, a, h2, c
    assert [it.score for it in result.items] == pytest.approx([0.9, 0.8, 0.3, 0.1])
    assert client.calls == [(RECS_RANKER, 1)]  # one request (one user row) for every candidate
    assert result.serving.model_name == RECS_RANKER and not result.serving.degraded


def test_the_ranker_reads_history_newest_first_and_every_eligible_candidate():
    store = history_shop()
    seen: dict[str, np.ndarray] = {}

    def spy(inputs):
        seen.update(inputs)
        return fake_ranker({}, list(store.catalogue))(inputs)

    recs = Recommender(store, FakeInference(tensors={RECS_RANKER: spy}))
    recs.recommend("u1", 2, NO_FILTER)
    assert seen["HIST_IDS"].tolist() == [[ranker_call.item_bucket("h1"), ranker_call.item_bucket("h2")]]
    assert seen["HIST_EMB"].shape == (1, 2, 384)
    assert np.allclose(seen["HIST_EMB"][0, 0], fake_vector("h1"))
    buckets = {ranker_call.item_bucket(p): p for p in store.catalogue}
    assert sorted(buckets[b] for b in seen["CAND_IDS"][0]) == ["a", "b", "c", "h2"]  # h1 was bought


def test_reasons_start_with_the_history_item_that_contributed_most():
    store = history_shop()
    store.vectors = {"a": fake_vector("h2"), "h2": fake_vector("h2"), "h1": fake_vector("h1")}
    result = recommender(store, {"a": 0.9})[0].recommend("u1", 4, NO_FILTER)
    reasons = {it.product.product_id: it.reasons for it in result.items}
    assert reasons["a"][0] == ("BECAUSE_YOU_VIEWED", "because you viewed H2")
    assert [code for code, _ in reasons["b"][1:]] == ["SIMILAR_TEXT", "ALSO_VIEWED", "ALSO_VIEWED"]
    assert ("ALSO_VIEWED", "shoppers who viewed H1") in reasons["b"]  # each anchor's co-occurrence list
    assert ("TRENDING", "trending in the shop") in reasons["c"]


def test_ranker_down_ranks_by_fusion_and_says_so():
    result = recommender(history_shop(), {"a": 0.9}, down=(RECS_RANKER,))[0].recommend("u1", 4, NO_FILTER)
    # sources: ann [a, b], co_view of h1 and of h2 [b], recent [h2], and at half weight the popular and trending
    # lists of the shop and of shoes (the history's category) [c]
    assert ids(result) == ["b", "c", "a", "h2"]
    expected = [rrf(1, 0, 0), rrf(0, 0, 0, 0, weight=0.5), rrf(0), rrf(0)]
    assert [it.score for it in result.items] == pytest.approx(expected)
    assert result.serving.degraded and result.serving.fallback == "retrieval_fusion"
    assert all(code != "BECAUSE_YOU_VIEWED" for it in result.items for code, _ in it.reasons)


def test_a_source_down_still_gives_k_items_and_says_so():
    store = history_shop()
    store.down = {"ann", "lists"}
    result = recommender(store, {"h2": 0.5})[0].recommend("u1", 4, NO_FILTER)
    assert len(result.items) == 4 and ids(result)[0] == "h2"
    assert result.serving.degraded and result.serving.fallback == "without_ann"


def test_an_unknown_user_gets_a_cold_start_list_without_the_ranker():
    recs, client = recommender(history_shop(), {"a": 0.9})
    result = recs.recommend("nobody", 3, NO_FILTER)
    assert ids(result) == ["c", "a", "b"]  # trending first, then the catalogue by id
    assert client.calls == [] and not result.serving.degraded
    assert any("cold start" in note for note in result.serving.notes)


def test_a_new_user_is_ranked_on_what_their_session_viewed():
    store = history_shop()
    store.sessions["s1"] = ["h2"]
    recs, client = recommender(store, {"b": 0.9})
    result = recs.recommend("newcomer", 2, NO_FILTER, session_id="s1")
    assert ids(result) == ["b", "a"] and client.calls == [(RECS_RANKER, 1)]
    assert result.serving.model_name == RECS_RANKER


def test_unknown_filter_entries_are_not_found_naming_the_entry():
    recs = recommender(history_shop())[0]
    with pytest.raises(NotFound) as err:
        recs.recommend("u1", 3, ProductFilter(categories=["shoes", "hats"]))
    assert err.value.field == "filter.categories[1]"
    with pytest.raises(NotFound) as err:
        recs.recommend("u1", 3, ProductFilter(exclude_ids=["ghost"]))
    assert err.value.field == "filter.exclude_product_ids[0]"


# -- business rules, diversity, always k -------------------------------------------------------


def rules_shop() -> FakeRecsStore:
    store = shop(
        *(product(p) for p in ["anchor", "ok1", "ok2", "bought", "excluded"]),
        product("oos", in_stock=False),
        product("bag", category="bags"),
        ann=["oos", "bought", "excluded", "bag", "ok1", "ok2"],
    )
    store.history["u1"], store.bought["u1"] = ["bought"], {"bought"}
    return store


def test_business_rules_drop_out_of_stock_purchased_excluded_and_other_categories():
    filt = ProductFilter(categories=["shoes"], exclude_ids=["excluded"])
    result = recommender(rules_shop(), down=(RECS_RANKER,))[0].similar("anchor", 10, "u1", filt)
    assert ids(result) == ["ok1", "ok2"]  # nothing else in the shop passes the rules, so fewer than k
    assert result.total_matches == 6


def test_business_rules_let_out_of_stock_and_purchased_through_when_asked():
    filt = ProductFilter(["shoes"], ["excluded"], include_purchased=True, include_out_of_stock=True)
    result = recommender(rules_shop(), down=(RECS_RANKER,))[0].similar("anchor", 10, "u1", filt)
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
    result = recommender(store, down=(TEXT_ENCODER,))[0].search("boots", 3, None, NO_FILTER)
    assert ids(result) == ["boot", "y", "x"]
    assert [it.source for it in result.items] == ["lexical", "popular", "popular"]
    assert result.items[1].reasons == [("POPULAR", "popular in the shop")]
    assert result.items[0].score > result.items[1].score > result.items[2].score
    assert "1 matches for the query" in result.serving.notes


# -- similar products --------------------------------------------------------------------------


def test_similar_ranks_with_the_anchor_as_history_and_never_returns_it():
    store = shop(product("anchor"), product("a"), product("b"), product("c"), ann=["anchor", "a"])
    store.co_viewed = ["anchor", "b"]
    recs, client = recommender(store, {"b": 0.7, "a": 0.2})
    result = recs.similar("anchor", 3, None, NO_FILTER)
    assert ids(result) == ["b", "a", "c"]  # c only as a popular fill
    assert result.total_matches == 2  # the anchor is not counted as a match of itself
    assert client.calls == [(RECS_RANKER, 1)]
    assert all(not code.startswith("BECAUSE") for it in result.items for code, _ in it.reasons)


def test_similar_without_embeddings_or_coviews_falls_back_to_popular_in_the_category():
    store = shop(product("anchor"), product("s1"), product("bag", category="bags"), trending=["bag", "s1"])
    store.no_embedding = {"anchor"}
    result = recommender(store)[0].similar("anchor", 1, None, NO_FILTER)
    assert ids(result) == ["s1"]
    assert result.items[0].reasons[0] == ("SAME_CATEGORY", "popular in shoes")
    assert result.serving.degraded and result.serving.fallback == "popular_in_category"


def test_similar_to_an_unknown_product_is_not_found():
    with pytest.raises(NotFound) as err:
        recommender(shop(product("anchor")))[0].similar("ghost", 3, None, NO_FILTER)
    assert err.value.field == "product_id"


# -- search ------------------------------------------------------------------------------------


def search_shop() -> FakeRecsStore:
    return shop(product("a"), product("b"), product("c"), lexical={"trail": ["a", "b"]}, ann=["c", "a"])


def test_search_fuses_full_text_typo_tolerant_and_semantic_matches():
    store = search_shop()
    store.fuzzy = {"trail": ["b"]}
    result = recommender(store)[0].search("trail", 3, None, NO_FILTER)
    assert ids(result) == ["a", "b", "c"]  # a: text + semantic; b: text + fuzzy; c: semantic only
    assert [code for code, _ in result.items[0].reasons] == ["TEXT_MATCH", "SEMANTIC_MATCH"]
    assert [code for code, _ in result.items[1].reasons] == ["TEXT_MATCH", "FUZZY_MATCH"]
    assert result.serving.model_name == TEXT_ENCODER and not result.serving.degraded


def test_search_with_the_encoder_down_is_lexical_only():
    result = recommender(search_shop(), down=(TEXT_ENCODER,))[0].search("trail", 3, None, NO_FILTER)
    assert ids(result) == ["a", "b", "c"]  # c only as a popular fill, no longer as a semantic match
    assert [it.source for it in result.items] == ["lexical", "lexical", "popular"]
    assert result.serving.degraded and result.serving.fallback == "lexical_only"
    assert result.total_matches == 2


def test_search_pages_through_matches():
    store = shop(*(product(f"p{i}") for i in range(5)), lexical={"q": [f"p{i}" for i in range(5)]})
    recs = recommender(store, down=(TEXT_ENCODER,))[0]
    first = recs.search("q", 2, None, NO_FILTER)
    second = recs.search("q", 2, None, NO_FILTER, offset=first.next_offset)
    last = recs.search("q", 2, None, NO_FILTER, offset=second.next_offset)
    assert (ids(first), ids(second), ids(last)) == (["p0", "p1"], ["p2", "p3"], ["p4"])
    assert (first.next_offset, second.next_offset, last.next_offset) == (2, 4, 0)
    assert first.total_matches == last.total_matches == 5


@pytest.mark.parametrize("user_id, expected", [(None, ["s1", "b1"]), ("u1", ["b1", "s1"])])
def test_search_lifts_matches_near_what_the_user_viewed(user_id, expected):
    store = shop(product("s1"), product("b1", category="bags"), product("seen", category="bags"))
    store.lexical, store.history["u1"] = {"trail": ["s1", "b1"]}, ["seen"]
    store.vectors = {"b1": fake_vector("seen")}
    result = recommender(store, down=(TEXT_ENCODER,))[0].search("trail", 2, user_id, NO_FILTER)
    assert ids(result) == expected
    boosted = ("PERSONALIZED", "close to what you viewed") in result.items[expected.index("b1")].reasons
    assert boosted == (user_id is not None)


def test_the_service_hashes_item_ids_like_the_trained_model():
    from shared.core import model_catalog

    model = pytest.importorskip("shared.learning.recs_ranker_model")
    assert model.ID_BUCKETS == model_catalog.RANKER_ID_BUCKETS
    assert model.MAX_HISTORY == ranker_call.MAX_HISTORY and model.MAX_CANDIDATES == ranker_call.MAX_CANDIDATES
    for pid in ["", "p1", "P-00042", "é-unicode"]:
        assert ranker_call.item_bucket(pid) == model_catalog.item_bucket(pid, model.ID_BUCKETS)
