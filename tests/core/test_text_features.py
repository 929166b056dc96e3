"""The one text layout every model reads (pure): stable wording, bounded lists, the candidate first."""

from __future__ import annotations

from shared.core.text_features import Ad, Product, User, ctr_text, price_bucket, product_text, ranker_text


def test_text_features_are_stable_and_bounded():
    user, ad = User("bargain_hunter", "US"), Ad("Trail shoes -20%", "shoes", ("running", "trail"), ("active",))
    text = ctr_text(user, ad, "home_top", 2, ["shoes", "outdoor"] * 5)
    assert text == (
        "ad Trail shoes -20% category shoes | slot home_top position 2"
        " | user segment bargain_hunter country US recent shoes, outdoor, shoes, outdoor, shoes"
        " | targets active keywords running, trail"
    )
    product = Product("Trail Runner  X", "shoes", "Acme", 59_990_000, description="light\nand fast")
    assert ranker_text([], product) == "candidate Trail Runner X category shoes brand Acme mid price | history none"
    assert product_text(product).endswith("mid price. light and fast")
    assert price_bucket(0) == "unknown price" and price_bucket(500_000_000) == "premium price"
