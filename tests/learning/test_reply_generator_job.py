"""The reply generator's word-level tokenizer and config (pure; training and serving are tested end to end in
tests/services/test_chat_generator_e2e.py)."""

from __future__ import annotations

import pytest

from shared.learning.reply_generator_job import GeneratorConfig, build_tokenizer

PROMPT = "intent: order_status\ncustomer: where is ORD-100131?\norder: ORD-100131\ntotal: 45.99 USD\nreply: "
REPLY = "Order ORD-100131 from Nov 03 is shipped. Tracking number: 1Z9981."


def test_facts_are_single_tokens_and_decoding_gives_back_the_exact_text():
    tokenizer = build_tokenizer([PROMPT, REPLY])
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False).input_ids
    reply_ids = tokenizer(REPLY, add_special_tokens=False).input_ids
    tokens = tokenizer.convert_ids_to_tokens(reply_ids)
    assert " ORD-100131" in tokens and " 1Z9981" in tokens and " 03" in tokens  # a fact is copied in one step
    assert tokenizer.unk_token_id not in prompt_ids + reply_ids
    assert tokenizer.decode(prompt_ids + reply_ids) == PROMPT + REPLY  # pieces concatenate to the text
    streamed = "".join(tokenizer.decode([i]) for i in reply_ids)
    assert streamed == REPLY


def test_an_unseen_word_is_unknown_and_left_out_of_the_text():
    tokenizer = build_tokenizer([REPLY])
    ids = tokenizer("Order ORD-999999 is shipped.", add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Order is shipped."


def test_config_names_a_bad_value_and_scales_steps_with_the_data():
    with pytest.raises(ValueError, match="width 100"):
        GeneratorConfig(width=100, heads=8)
    assert GeneratorConfig.for_pairs(100).steps == GeneratorConfig().steps  # never fewer than the default
    assert GeneratorConfig.for_pairs(4000).steps == 2500 and GeneratorConfig.for_pairs(10**6).steps == 3000
