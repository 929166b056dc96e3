"""Held-out plain customer messages with their intent: the evaluation set of the shop's intent model.

Written by hand, in the way people type into a support chat (mixed case, typos, no order numbers, several clauses),
and never used for training: not generated from the demo shop's templates (shared/demo_shop/support.py) and not in
the training phrasings (shared/learning/intent_phrases.py). It starts with the two messages the templates-only model
misrouted (issue 8). Every shop intent has 6 messages and ``out_of_scope`` 12, so per-intent accuracy means the same
thing everywhere. The training job reports accuracy on it (``plain_accuracy``) next to the template eval split, and
``ecomai bench intents --dataset shop`` compares models on it.
"""

from __future__ import annotations

from shared.learning.intent_phrases import OUT_OF_SCOPE_LABEL

HELDOUT_MESSAGES: tuple[tuple[str, str], ...] = (
    ("do you have waterproof hiking boots under 50 dollars", "recommend_products"),
    ("my package never arrived and I'm furious", "complaint"),
    # order_status
    ("Hi, I ordered a lamp 5 days ago and haven't heard anything, is it on the way?", "order_status"),
    ("when's my delivery getting here", "order_status"),
    ("Can you see if my order has been dispatched", "order_status"),
    ("tracking says label created but nothing since", "order_status"),
    ("I'd like an update on the order I placed last Tuesday", "order_status"),
    ("how much longer until my parcel arrives?", "order_status"),
    # return_request
    ("These sneakers pinch my toes, I want to send them back", "return_request"),
    ("how can I return a blender I bought last week", "return_request"),
    ("the dress came in the wrong size, can I exchange it?", "return_request"),
    ("Item arrived scratched. I'd like to return it.", "return_request"),
    ("Is it possible to return an opened item", "return_request"),
    ("I need to return the kettle, it stopped working", "return_request"),
    # refund_status
    ("I returned my order ages ago, when do I see the money", "refund_status"),
    ("has the refund for my returned jacket been issued", "refund_status"),
    ("my bank still doesn't show the refund you promised", "refund_status"),
    ("how many days until the refund lands in my account?", "refund_status"),
    ("You got my return on the 3rd, where is my refund??", "refund_status"),
    ("Just checking whether my money back has been processed", "refund_status"),
    # cancel_order
    ("I ordered this by accident, please cancel it", "cancel_order"),
    ("can you cancel my order from this morning before it ships", "cancel_order"),
    ("Please don't ship my order, I no longer need it", "cancel_order"),
    ("How do I cancel what I just bought", "cancel_order"),
    ("cancel order pls", "cancel_order"),
    ("I want to cancel the purchase I made an hour ago", "cancel_order"),
    # shipping_info
    ("Do you ship to Ireland?", "shipping_info"),
    ("how much does delivery cost for a small order", "shipping_info"),
    ("What's the fastest delivery option you have", "shipping_info"),
    ("Is delivery free if I spend over 50?", "shipping_info"),
    ("do you deliver to Norway and how long does it take", "shipping_info"),
    ("Can I have my order delivered on a Saturday?", "shipping_info"),
    # payment_issue
    ("my visa card keeps getting declined on your site", "payment_issue"),
    ("I've been charged twice for the same order", "payment_issue"),
    ("Can I pay with a gift card and a credit card together?", "payment_issue"),
    ("The checkout page says payment failed but money left my account", "payment_issue"),
    ("Do you accept Mastercard?", "payment_issue"),
    ("why did you charge my card 20 dollars more than the total", "payment_issue"),
    # product_question
    ("is the grey hoodie machine washable", "product_question"),
    ("Does this phone case fit the newer model?", "product_question"),
    ("what is the capacity of the water bottle", "product_question"),
    ("Are the headphones noise cancelling?", "product_question"),
    ("how long is the warranty on the coffee grinder", "product_question"),
    ("Is the large size of this coat in stock right now", "product_question"),
    # recommend_products
    ("looking for a birthday present for my sister, she likes painting", "recommend_products"),
    ("Show me some cheap wireless mice", "recommend_products"),
    ("what running shoes would you suggest for a beginner", "recommend_products"),
    ("I need a rain jacket in medium under $60", "recommend_products"),
    ("any good board games for a family of four?", "recommend_products"),
    ("Find me a desk lamp that's not too expensive", "recommend_products"),
    # human_agent
    ("I'd like to chat with an actual person please", "human_agent"),
    ("get me someone from your support team", "human_agent"),
    ("Can I talk to somebody on the phone?", "human_agent"),
    ("you're not understanding me, I want a real agent", "human_agent"),
    ("connect me with a supervisor now", "human_agent"),
    ("human please", "human_agent"),
    # greeting
    ("Hello there!", "greeting"),
    ("hey, good morning", "greeting"),
    ("Hi, is anyone available?", "greeting"),
    ("heyyy", "greeting"),
    ("Good evening!", "greeting"),
    ("hi hi", "greeting"),
    # goodbye
    ("ok that's everything, thank you!", "goodbye"),
    ("Thanks for sorting that out, bye", "goodbye"),
    ("great, that's all for today", "goodbye"),
    ("Thank you, have a good one", "goodbye"),
    ("cool thanks bye", "goodbye"),
    ("That answers my question, thanks a lot", "goodbye"),
    # complaint
    ("This is the worst service I've ever received", "complaint"),
    ("I'm really upset, the box was crushed and nobody cares", "complaint"),
    ("Three weeks and still nothing, this is outrageous", "complaint"),
    ("I'm sick of waiting on hold and getting no answers", "complaint"),
    ("the quality is shocking, I feel ripped off", "complaint"),
    ("your driver left my parcel in the rain, absolutely unacceptable", "complaint"),
    # out_of_scope
    ("what's the weather in London today", OUT_OF_SCOPE_LABEL),
    ("who wrote pride and prejudice", OUT_OF_SCOPE_LABEL),
    ("can you do my taxes", OUT_OF_SCOPE_LABEL),
    ("how do I transfer money to a friend's bank account", OUT_OF_SCOPE_LABEL),
    ("what's the best way to learn guitar", OUT_OF_SCOPE_LABEL),
    ("tell me something funny", OUT_OF_SCOPE_LABEL),
    ("how tall is mount everest", OUT_OF_SCOPE_LABEL),
    ("what's the score of the basketball game", OUT_OF_SCOPE_LABEL),
    ("my ATM card got stuck in the machine", OUT_OF_SCOPE_LABEL),
    ("give me a recipe for lasagna", OUT_OF_SCOPE_LABEL),
    ("what year did world war two end", OUT_OF_SCOPE_LABEL),
    ("how do I top up my prepaid phone", OUT_OF_SCOPE_LABEL),
)


def heldout_for(labels: list[str]) -> list[tuple[str, str]]:
    """The held-out messages whose intent is among ``labels`` (a shop with other intents is measured on its own)."""
    known = set(labels)
    return [(t, y) for t, y in HELDOUT_MESSAGES if y in known]
