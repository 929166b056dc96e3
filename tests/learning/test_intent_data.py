"""The intent training data: the held-out plain messages stay unseen, the ABCD mapping is explicit for every ABCD
subflow and only names shop intents, the BANKING77 off-topic intents exist, the split keeps every label on both
sides. Pure logic (the public data checks skip without ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.core.settings import PROJECT_ROOT
from shared.demo_shop.support import CHAT_INTENTS
from shared.learning.intent_heldout import HELDOUT_MESSAGES, heldout_for
from shared.learning.intent_job import labelled_intents, training_examples
from shared.learning.intent_phrases import OUT_OF_SCOPE, OUT_OF_SCOPE_LABEL, SHOP_PHRASES
from shared.learning.intent_sources import ABCD_TO_SHOP, BANKING77_OFF_TOPIC, abcd_examples, banking77_off_topic

DATA = PROJECT_ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"public data not found at {DATA}")


def test_heldout_covers_every_intent_and_out_of_scope_and_is_never_a_training_phrase() -> None:
    per_label: dict[str, int] = {}
    for _, label in HELDOUT_MESSAGES:
        per_label[label] = per_label.get(label, 0) + 1
    assert set(per_label) == set(CHAT_INTENTS) | {OUT_OF_SCOPE_LABEL}
    assert min(per_label.values()) >= 6
    trained = {t.lower() for texts in SHOP_PHRASES.values() for t in texts} | {t.lower() for t in OUT_OF_SCOPE}
    assert not [t for t, _ in HELDOUT_MESSAGES if t.lower() in trained]
    assert set(SHOP_PHRASES) == set(CHAT_INTENTS)
    assert {y for _, y in heldout_for(["greeting", "goodbye"])} == {"greeting", "goodbye"}


def test_split_drops_heldout_texts_and_duplicates_and_keeps_every_label_on_both_sides() -> None:
    shop = [(f"where is order {i}", "order_status") for i in range(10)] + [("hi", "greeting"), ("hello", "greeting")]
    examples = training_examples(shop, None)
    examples.append((HELDOUT_MESSAGES[0][0], HELDOUT_MESSAGES[0][1], "shop"))  # must not be trained on
    examples.append(("where is order 1", "order_status", "shop"))  # duplicate
    data, labels = labelled_intents(examples, 10_000, 10_000)
    assert labels == sorted(["greeting", "order_status", OUT_OF_SCOPE_LABEL])
    texts = [t for t, _ in data.train + data.eval]
    assert HELDOUT_MESSAGES[0][0] not in texts and len(texts) == len(set(t.lower() for t in texts))
    assert {y for _, y in data.train} == {y for _, y in data.eval} == {0, 1, 2}
    assert data.info["rows_by_source"]["phrases"] > 0 and data.info["rows_by_source"]["out_of_scope"] > 0


def test_one_shop_intent_is_not_enough() -> None:
    with pytest.raises(ValueError, match="at least 2 intents"):
        training_examples([("hi", "greeting")], None)


@needs_data
def test_abcd_mapping_names_every_subflow_and_only_shop_intents() -> None:
    ontology = json.loads((DATA / "abcd_sample" / "ontology.json").read_text())["intents"]["subflows"]
    subflows = {s for subs in ontology.values() for s in subs}
    assert subflows == set(ABCD_TO_SHOP)
    assert {label for label in ABCD_TO_SHOP.values() if label} <= set(CHAT_INTENTS)
    examples = abcd_examples(DATA / "abcd_sample")
    assert len(examples) > 30
    assert not [t for t, _, _ in examples if t.startswith("the customer")]  # turned into the customer's words
    assert ("just wanted to check on the status of a refund", "refund_status", "abcd") in examples


@needs_data
def test_banking77_off_topic_sample_is_spread_over_real_intents() -> None:
    categories = set(json.loads((DATA / "banking77" / "categories.json").read_text()))
    assert set(BANKING77_OFF_TOPIC) <= categories
    assert not {"request_refund", "transaction_charged_twice", "card_arrival"} & set(BANKING77_OFF_TOPIC)
    sample = banking77_off_topic(DATA / "banking77", 62, seed=1)
    assert len(sample) == 62 and {label for _, label, _ in sample} == {OUT_OF_SCOPE_LABEL}
    assert banking77_off_topic(Path("/nonexistent"), 10, seed=1) == []
