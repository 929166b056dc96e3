"""Request validation helpers: pure logic."""

import pytest

from services.validation import bounded_int, bounded_text, id_list, optional_id, require_id
from shared.core.errors import InvalidArgument


def test_require_id_names_the_field():
    with pytest.raises(InvalidArgument, match="^user_id: is required"):
        require_id("user_id", "  ")
    with pytest.raises(InvalidArgument, match="^user_id: is longer than 128"):
        require_id("user_id", "x" * 129)
    assert require_id("user_id", " u1 ") == "u1"
    assert optional_id("user_id", "") is None


def test_bounded_int():
    assert bounded_int("k", 0, 1, 100, default=10) == 10
    with pytest.raises(InvalidArgument, match="^k: must be between 1 and 100, got -3"):
        bounded_int("k", -3, 1, 100)
    with pytest.raises(InvalidArgument, match="^k:"):
        bounded_int("k", 0, 1, 100)


def test_bounded_text():
    with pytest.raises(InvalidArgument, match="^query: is longer than 5"):
        bounded_text("query", "abcdefgh", 5)
    assert bounded_text("query", "", 5, required=False) == ""


def test_id_list_limits_and_dedupes():
    assert id_list("ad_ids", ["a", "b", "a"], 5) == ["a", "b"]
    with pytest.raises(InvalidArgument, match="^ad_ids: must not be empty"):
        id_list("ad_ids", [], 5, required=True)
    with pytest.raises(InvalidArgument, match="^ad_ids: has 3 items, at most 2"):
        id_list("ad_ids", ["a", "b", "c"], 2)
    with pytest.raises(InvalidArgument, match=r"^ad_ids\[1\]: is required"):
        id_list("ad_ids", ["a", ""], 5)
