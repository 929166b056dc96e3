"""Extra training text for the shop's intent model beyond its own labelled examples, each with where it came from.

- ``phrases``: hand-written customer phrasings per shop intent (shared/learning/intent_phrases.py).
- ``abcd``: ABCD (Chen et al. 2021; ``../shared/data/abcd_sample``), a retail support ontology. Only the sample
  files are here, so its text is what they hold: the situation each subflow describes, turned into the customer's
  first person ("The customer wants to manage their address." -> "i want to manage my address."), the FAQ questions
  its agent guidelines list per subflow, and the opening customer turns of the 3 sample chats. ``ABCD_TO_SHOP`` maps
  each ABCD subflow to the shop label it means (None: no shop intent handles it, left out); reviewed by hand.
- ``out_of_scope``: hand-written off-topic messages, plus a sample of BANKING77 (``../shared/data/banking77``)
  questions from intents a shop assistant never handles (``BANKING77_OFF_TOPIC``: transfers, top-ups, ATMs,
  PINs, exchange rates; card payments, refunds and "charged twice" are left out because shop customers say those too).

The public data is optional: without ``data_dir`` only the hand-written sources are used.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

from shared.learning.intent_phrases import OUT_OF_SCOPE, OUT_OF_SCOPE_LABEL, SHOP_PHRASES

Example = tuple[str, str, str]  # text, label, source

# ABCD subflow -> shop intent. Reviewed one by one against the agent guidelines' description of each subflow.
ABCD_TO_SHOP: dict[str, str | None] = {
    # account_access: the shop hands account problems to a person (FAQ "How do I reset my password?")
    "recover_username": "human_agent",
    "recover_password": "human_agent",
    "reset_2fa": "human_agent",
    # manage_account
    "status_service_added": None,  # subscription services: the shop has none
    "status_service_removed": None,
    "status_shipping_question": "shipping_info",  # "free shipping to/from out of the country"
    "status_credit_missing": "refund_status",  # store credit missing
    "manage_change_address": "shipping_info",  # the shop's FAQ files address changes under shipping
    "manage_change_name": "human_agent",
    "manage_change_phone": "human_agent",
    "manage_payment_method": "payment_issue",
    # order_issue
    "status_mystery_fee": "payment_issue",
    "status_delivery_time": "order_status",
    "status_payment_method": "payment_issue",
    "status_quantity": "order_status",
    "manage_upgrade": "shipping_info",  # upgrade to overnight shipping
    "manage_downgrade": "shipping_info",
    "manage_create": None,  # add an item to a placed order: no shop intent
    "manage_cancel": "cancel_order",
    # product_defect
    "refund_initiate": "return_request",  # the shop refunds through a return
    "refund_update": "return_request",
    "refund_status": "refund_status",
    "return_stain": "return_request",
    "return_color": "return_request",
    "return_size": "return_request",
    # purchase_dispute
    "bad_price_competitor": "complaint",
    "bad_price_yesterday": "complaint",
    "out_of_stock_general": "product_question",
    "out_of_stock_one_item": "product_question",
    "promo_code_invalid": "payment_issue",
    "promo_code_out_of_date": "payment_issue",
    "mistimed_billing_already_returned": "refund_status",
    "mistimed_billing_never_bought": "payment_issue",
    # shipping_issue
    "status": "order_status",
    "manage": "shipping_info",
    "missing": "order_status",
    "cost": "shipping_info",
    # single_item_query: product FAQs
    "boots": "product_question",
    "shirt": "product_question",
    "jeans": "product_question",
    "jacket": "product_question",
    # storewide_query
    "pricing": None,  # gift wrapping, name stitching and shipping prices mixed
    "membership": None,
    "timing": None,
    "policy": None,  # subscriptions and policy mixes: ambiguous for the shop's labels
    # subscription_inquiry: the shop sells no subscriptions
    "status_active": None,
    "status_due_amount": None,
    "status_due_date": None,
    "manage_pay_bill": None,
    "manage_extension": None,
    "manage_dispute_bill": None,
    # troubleshoot_site
    "credit_card": "payment_issue",
    "shopping_cart": None,
    "search_results": None,
    "slow_speed": None,
}

BANKING77_OFF_TOPIC = (
    "atm_support", "automatic_top_up", "beneficiary_not_allowed", "cash_withdrawal_charge", "change_pin",
    "declined_cash_withdrawal", "exchange_charge", "exchange_rate", "exchange_via_app", "fiat_currency_support",
    "get_disposable_virtual_card", "getting_virtual_card", "pending_cash_withdrawal", "pending_top_up",
    "pending_transfer", "pin_blocked", "receiving_money", "top_up_by_bank_transfer_charge", "top_up_by_card_charge",
    "top_up_by_cash_or_cheque", "top_up_failed", "top_up_limits", "top_up_reverted", "topping_up_by_card",
    "transfer_fee_charged", "transfer_into_account", "transfer_not_received_by_recipient", "transfer_timing",
    "verify_source_of_funds", "verify_top_up", "wrong_exchange_rate_for_cash_withdrawal",
)  # fmt: skip

_FIRST_PERSON = (  # third-person guideline sentences -> what the customer would say
    (r"^(the )?customers? (is calling in to call|calling in) about", "i'm calling about"),
    (r"^(the )?customers? (believes|thinks) that", "i think"),
    (r"^(the )?customers? (believes|thinks)", "i think"),
    (r"^(the )?customers? (wants|want)", "i want"),
    (r"^(the )?customers? is", "i am"),
    (r"^(the )?customers? (has|have)", "i have"),
    (r"^(the )?customers? didn’t", "i didn't"),
    (r"^(the )?customer’s", "my"),
    (r"^(the )?customers? accidentally", "i accidentally"),
    (r"\band wants\b", "and want"),
    (r"^(the )?customers? cannot", "i cannot"),
    (r"^(the )?customers? (\w+)s\b", r"i \2"),
    (r"\btheir\b", "my"),
    (r"\bthey have\b", "i have"),
    (r"\bthey\b", "i"),
)
_SNAKE = re.compile(r"[^a-z0-9]+")


def _snake(name: str) -> str:
    return _SNAKE.sub("_", name.lower()).strip("_")


def _first_person(sentence: str) -> str:
    text = sentence.strip().lower()
    for pattern, repl in _FIRST_PERSON:
        text = re.sub(pattern, repl, text)
    return text


def _guideline_subflow(flow_key: str, title: str, ontology: dict[str, list[str]]) -> str | None:
    """The ontology subflow a guidelines title names ('Return Due to Size' -> 'return_size', 'Boots FAQ' ->
    'boots'), matched on shared words."""
    words = set(_snake(title.replace("Two-Factor Auth", "2fa").replace("Shipping Status", "status")).split("_"))
    words -= {"due", "to", "faq", "not", "updating", "working", "too", "invalid", "item", "shipping"} - {"shipping"}
    best, best_overlap = None, 0
    for sub in ontology.get(flow_key, []):
        overlap = len(words & set(sub.split("_")))
        if overlap > best_overlap:
            best, best_overlap = sub, overlap
    return best


def abcd_examples(folder: Path) -> list[Example]:
    """ABCD text mapped to shop labels (see module doc); [] when the folder is absent."""
    if not (folder / "guidelines.json").exists():
        return []
    ontology = json.loads((folder / "ontology.json").read_text())["intents"]["subflows"]
    guidelines = json.loads((folder / "guidelines.json").read_text())
    out: list[Example] = []
    for flow_title, flow in guidelines.items():
        flow_key = _snake(flow_title)
        for title, sub in flow.get("subflows", {}).items():
            label = ABCD_TO_SHOP.get(_guideline_subflow(flow_key, title, ontology) or "")
            if not label:
                continue
            instructions = sub.get("instructions") or []
            if len(instructions) >= 2 and "figuring out which question" in instructions[0]:
                questions = [q.strip(" ?.") for q in re.split(r",\s*", instructions[1]) if len(q.strip()) > 3]
                out += [(q.lower(), label, "abcd") for q in questions]
            elif instructions:
                sentences = re.split(r"(?<=\.)\s+", instructions[0].strip())
                situation = sentences[0]  # a short opener is followed by the substance: "Namely, they want..."
                if len(situation.split()) < 9 and len(sentences) > 1:
                    situation = f"{situation} {sentences[1]}"
                if situation.lower().startswith(("the customer", "customer")):
                    out.append((_first_person(situation), label, "abcd"))
    for convo in json.loads((folder / "abcd_sample.json").read_text()):
        label = ABCD_TO_SHOP.get(convo["scenario"]["subflow"])
        turns = [t for speaker, t in convo["original"] if speaker == "customer" and len(t.split()) >= 5]
        if label and turns:
            out.append((turns[0].lower(), label, "abcd"))
    return out


def banking77_off_topic(folder: Path, limit: int, seed: int) -> list[Example]:
    """Up to ``limit`` BANKING77 train questions of BANKING77_OFF_TOPIC intents, spread evenly over them."""
    path = folder / "train.csv"
    if not path.exists() or limit <= 0:
        return []
    keep = set(BANKING77_OFF_TOPIC)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [(r["text"].strip(), r["category"]) for r in csv.DictReader(fh) if r["category"] in keep]
    rng = random.Random(seed)
    rng.shuffle(rows)
    per_intent = max(1, limit // len(keep))
    taken: dict[str, int] = {}
    out: list[Example] = []
    for text, category in rows:
        if taken.get(category, 0) < per_intent and len(out) < limit:
            taken[category] = taken.get(category, 0) + 1
            out.append((text.lower(), OUT_OF_SCOPE_LABEL, "banking77"))
    return out


def extra_intent_examples(
    shop_labels: list[str], data_dir: Path | None, seed: int, oos_limit: int = 80
) -> list[Example]:
    """Phrases and ABCD examples for the labels the shop has, plus out-of-scope examples (always: the model's labels
    are the shop's plus ``out_of_scope``)."""
    known = set(shop_labels)
    out: list[Example] = [
        (t, label, "phrases") for label, texts in SHOP_PHRASES.items() if label in known for t in texts
    ]
    out += [(t, OUT_OF_SCOPE_LABEL, "out_of_scope") for t in OUT_OF_SCOPE]
    if data_dir is not None:
        out += [e for e in abcd_examples(data_dir / "abcd_sample") if e[1] in known]
        out += banking77_off_topic(data_dir / "banking77", oos_limit, seed)
    return out
