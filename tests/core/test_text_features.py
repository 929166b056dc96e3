"""The one text layout every model reads (pure): stable wording, bounded lists, the candidate first."""

from __future__ import annotations

from shared.core.text_features import MAX_KEYWORDS, Ad, Product, ad_text, price_bucket, product_text, ranker_text


def test_text_features_are_stable_and_bounded():
    ad = Ad("Trail  shoes -20%", "shoes", tuple(f"k{i}" for i in range(MAX_KEYWORDS + 3)), ("active",))
    keywords = ", ".join(f"k{i}" for i in range(MAX_KEYWORDS))
    assert ad_text(ad, "Light\nand fast.") == f"Trail shoes -20% category shoes keywords {keywords}. Light and fast."
    assert ad_text(Ad("Tents", ""), "") == "Tents category none"
    product = Product("Trail Runner  X", "shoes", "Acme", 59_990_000, description="light\nand fast")
    assert ranker_text([], product) == "candidate Trail Runner X category shoes brand Acme mid price | history none"
    assert product_text(product).endswith("mid price. light and fast")
    assert price_bucket(0) == "unknown price" and price_bucket(500_000_000) == "premium price"
