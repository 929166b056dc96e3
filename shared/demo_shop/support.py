"""Customer-support content of the demo shop: FAQ entries and templated chat utterances per intent."""

from __future__ import annotations

import random

CHAT_INTENTS = (
    "order_status",
    "return_request",
    "refund_status",
    "cancel_order",
    "shipping_info",
    "payment_issue",
    "product_question",
    "recommend_products",
    "human_agent",
    "greeting",
    "goodbye",
    "complaint",
)

FAQ = (  # (question, answer, intent, tags)
    (
        "How long does shipping take?",
        "Standard shipping takes 3-5 business days; express takes 1-2 business days.",
        "shipping_info",
        ["shipping"],
    ),
    (
        "How much does shipping cost?",
        "Shipping is free on orders over $50; otherwise standard shipping is $4.99.",
        "shipping_info",
        ["shipping", "fees"],
    ),
    (
        "Do you ship internationally?",
        "We ship to the US, Canada, the UK and most of the EU. Duties are shown at checkout.",
        "shipping_info",
        ["shipping", "international"],
    ),
    (
        "How do I track my order?",
        "Open Orders in your account or ask me for your order status; shipped orders have a tracking number.",
        "order_status",
        ["orders", "tracking"],
    ),
    (
        "My order hasn't arrived yet. What should I do?",
        "Orders can take up to 5 business days. If it is later than "
        "that, ask me for its status and I will check the tracking.",
        "order_status",
        ["orders", "delay"],
    ),
    (
        "What is your return policy?",
        "You can return most items within 30 days of delivery, unused and in the original packaging.",
        "return_request",
        ["returns"],
    ),
    (
        "How do I return an item?",
        "Ask me to start a return for your order; you will get a prepaid return label by email.",
        "return_request",
        ["returns"],
    ),
    (
        "Are return shipping costs covered?",
        "Returns are free for defective or wrong items; otherwise a $5 label fee is deducted from the refund.",
        "return_request",
        ["returns", "fees"],
    ),
    (
        "When will I get my refund?",
        "Refunds are issued within 5 business days after we receive the return, to the original payment method.",
        "refund_status",
        ["refunds"],
    ),
    (
        "Can I get a refund for a cancelled order?",
        "Yes, cancelled orders are refunded in full within 3 business days.",
        "refund_status",
        ["refunds", "cancel"],
    ),
    (
        "Can I cancel my order?",
        "Orders can be cancelled until they ship. Ask me to cancel and give the order number.",
        "cancel_order",
        ["cancel"],
    ),
    (
        "Can I change my order after placing it?",
        "Until an order ships you can cancel it and order again; we cannot edit items of a placed order.",
        "cancel_order",
        ["orders", "cancel"],
    ),
    (
        "Which payment methods do you accept?",
        "We accept Visa, Mastercard, American Express, PayPal and gift cards.",
        "payment_issue",
        ["payment"],
    ),
    (
        "My payment was declined. What can I do?",
        "Check the card details and billing address, or try another method. Your bank may also block online payments.",
        "payment_issue",
        ["payment"],
    ),
    (
        "I was charged twice for my order.",
        "A second charge is usually a pending authorisation that disappears in "
        "3-5 days. If not, contact us with the order number.",
        "payment_issue",
        ["payment", "billing"],
    ),
    (
        "Do products come with a warranty?",
        "Electronics have a 2-year warranty; other items a 1-year warranty against manufacturing defects.",
        "product_question",
        ["warranty"],
    ),
    (
        "How do I make a warranty claim?",
        "Tell us the order number and describe the defect; we repair, replace or refund the item.",
        "product_question",
        ["warranty"],
    ),
    (
        "Is this product in stock?",
        "Product pages show live stock; I can also check a product for you.",
        "product_question",
        ["stock"],
    ),
    (
        "How do I reset my password?",
        "Use 'Forgot password' on the sign-in page; a reset link arrives by email within minutes.",
        "human_agent",
        ["account"],
    ),
    (
        "How do I delete my account?",
        "A support agent can close your account; ask me to connect you to a human.",
        "human_agent",
        ["account", "privacy"],
    ),
    (
        "How do I update my shipping address?",
        "Change addresses under Account > Addresses. Orders that have shipped keep their address.",
        "shipping_info",
        ["account", "shipping"],
    ),
    (
        "Can I talk to a person?",
        "Yes, ask for a human agent at any time and I will hand the conversation over.",
        "human_agent",
        ["support"],
    ),
    (
        "Do you have gift cards?",
        "Yes, digital gift cards from $10 to $500 are available and never expire.",
        "payment_issue",
        ["payment", "gifts"],
    ),
    (
        "How do I file a complaint?",
        "Tell me what went wrong; I record it and a supervisor replies within 2 business days.",
        "complaint",
        ["support", "complaint"],
    ),
    (
        "Can you recommend products for me?",
        "Yes, ask me for suggestions and I will pick products based on what you like.",
        "recommend_products",
        ["recommendations"],
    ),
)

TEMPLATES: dict[str, tuple[str, ...]] = {
    "order_status": (
        "where is my order {order}",
        "what's the status of order {order}",
        "has my order shipped yet",
        "track my package",
        "when will my {product} arrive",
        "my order {order} hasn't arrived",
        "can you check on order {order}",
        "is {order} on its way",
        "where's my {product}",
        "i ordered a {product} last week, where is it",
        "tracking number for {order} please",
        "did you ship my order already",
    ),
    "return_request": (
        "i want to return my {product}",
        "how do i send back order {order}",
        "the {product} doesn't fit, can i return it",
        "start a return for {order}",
        "i'd like to return an item",
        "return the {product} i bought",
        "the {product} arrived broken, i want to send it back",
        "can i exchange my {product}",
        "i need a return label for {order}",
        "i changed my mind about the {product}",
    ),
    "refund_status": (
        "where is my refund",
        "when do i get my money back for {order}",
        "refund status for {order}",
        "i returned the {product} but got no refund",
        "has my refund been processed",
        "how long until the refund for {order} arrives",
        "i'm still waiting for my refund",
        "did you refund order {order}",
        "money back for the {product}?",
    ),
    "cancel_order": (
        "cancel my order {order}",
        "i want to cancel {order}",
        "please cancel the {product} order",
        "can i still cancel my order",
        "stop order {order} from shipping",
        "i ordered by mistake, cancel it",
        "cancel the order i just placed",
        "don't send order {order}",
        "how do i cancel {order}",
    ),
    "shipping_info": (
        "how long does shipping take",
        "do you ship to {country}",
        "how much is delivery",
        "is shipping free",
        "what are the delivery options",
        "can i get express shipping",
        "how fast can you deliver a {product}",
        "do you deliver on weekends",
        "what does shipping to {country} cost",
        "which carriers do you use",
    ),
    "payment_issue": (
        "my card was declined",
        "i was charged twice for {order}",
        "payment failed at checkout",
        "can i pay with paypal",
        "why was my card charged for {order}",
        "which cards do you accept",
        "the payment for my {product} didn't go through",
        "i got billed the wrong amount",
        "can i use a gift card",
        "checkout keeps rejecting my card",
    ),
    "product_question": (
        "is the {product} waterproof",
        "does the {product} come with a warranty",
        "what size is the {product}",
        "is the {product} in stock",
        "tell me more about the {product}",
        "what's the battery life of the {product}",
        "is the {product} good for beginners",
        "what material is the {product} made of",
        "does the {product} have a warranty",
        "how heavy is the {product}",
    ),
    "recommend_products": (
        "can you recommend a {noun}",
        "what {noun} should i buy",
        "suggest a gift for my {person}",
        "i'm looking for a good {noun}",
        "show me something like the {product}",
        "any {noun} recommendations",
        "what's popular in {category}",
        "help me find a {noun} under $50",
        "what do you recommend for {person}",
        "find me a nice {noun}",
    ),
    "human_agent": (
        "i want to talk to a human",
        "let me speak to an agent",
        "connect me to customer service",
        "is there a real person i can talk to",
        "transfer me to a representative",
        "i need a human, not a bot",
        "can i call someone",
        "get me a supervisor",
        "agent please",
        "i'd rather talk to a person about {order}",
    ),
    "greeting": (
        "hi",
        "hello",
        "hey there",
        "good morning",
        "hi, i need some help",
        "hello, anyone there",
        "good evening",
        "hey",
        "hiya",
        "greetings",
    ),
    "goodbye": (
        "bye",
        "thanks, that's all",
        "goodbye",
        "see you",
        "that's everything, thank you",
        "have a nice day",
        "thanks for the help, bye",
        "ok bye",
        "that solved it, thanks",
        "cheers, bye",
    ),
    "complaint": (
        "this is unacceptable",
        "your service is terrible",
        "i'm very unhappy with my {product}",
        "the {product} broke after two days",
        "i've been waiting forever for {order}",
        "worst shopping experience ever",
        "i want to file a complaint",
        "the delivery driver was rude",
        "you sent me the wrong {product}",
        "nobody answers my emails about {order}",
    ),
}
PREFIXES = ("", "", "", "hi, ", "hey, ", "hello, ", "excuse me, ", "um ", "quick question: ")
SUFFIXES = ("", "", "", "?", " please", " thanks", "!", " asap", " :(")
PERSONS = ("mom", "dad", "sister", "brother", "friend", "boss", "kids", "wife", "husband")


def make_faq_entries() -> list[dict]:
    return [
        {"faq_id": f"faq-{i + 1:03d}", "question": q, "answer": a, "intent": intent, "tags": tags}
        for i, (q, a, intent, tags) in enumerate(FAQ)
    ]


def make_intent_examples(
    rng: random.Random, per_intent: int, products: list[dict], order_ids: list[str], countries: tuple[str, ...]
) -> list[dict]:
    """``per_intent`` distinct utterances per intent, slots filled from the shop's products and orders."""
    examples: list[dict] = []
    orders = order_ids or ["ORD-100001"]
    for intent in CHAT_INTENTS:
        seen: set[str] = set()
        attempts = 0
        while len(seen) < per_intent and attempts < per_intent * 50:
            attempts += 1
            product = rng.choice(products)
            short = " ".join(product["title"].split()[1:-1]).lower()  # drop brand and model code
            text = rng.choice(TEMPLATES[intent]).format(
                order=rng.choice(orders),
                product=rng.choice((short, product["title"].lower(), product["attributes"]["noun"])),
                noun=product["attributes"]["noun"],
                category=product["category"],
                country=rng.choice(countries),
                person=rng.choice(PERSONS),
            )
            text = (rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)).strip()
            if rng.random() < 0.3:
                text = text[0].upper() + text[1:]
            seen.add(text)
        examples.extend({"text": t, "intent": intent, "source": "demo"} for t in sorted(seen))
    rng.shuffle(examples)
    return examples
