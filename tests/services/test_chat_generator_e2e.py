"""Generated chat replies end to end: a tiny GPT-2 trained on the shop's own template replies, published through the
registry as reply_generator v1 into the platform's Triton (decoupled mode), and a chat service with
ECOMAI_CHAT_GENERATOR=triton streaming what it generates over real gRPC, checked by the fact guard.

Also: the generator unloaded -> the template, degraded; a deliberately mis-trained v2 that names another customer's
order -> cut by the guard, the template goes out, and a rollback makes v1 serve again."""

from __future__ import annotations

import time

import pytest

from protos.chat.v1 import chat_pb2, chat_pb2_grpc
from services.chat.fact_guard import claims, is_stated_in
from services.chat.order_routes import order_status_text
from services.chat.tools import OrderTools
from shared.core.model_catalog import REPLY_GENERATOR
from shared.learning.reply_generator_job import GeneratorConfig, publish_reply_generator
from tests.e2e_helpers import ORDER_STATUS_OF, active_user, customer, service_channel
from tests.fixtures_infra import free_port

EPOCHS = 8  # passes over the shop's pairs (real and recombined orders): the tiny model then copies nearly every fact


@pytest.fixture(scope="module")
def shop_pairs(platform):
    from services.chat.reply_examples import shop_examples

    return shop_examples(platform.engine)


@pytest.fixture(scope="module")
def generator_v1(platform, shop_pairs):
    from shared.learning.registry import registry_rows

    config = GeneratorConfig.for_pairs(len(shop_pairs), epochs=EPOCHS)
    published = publish_reply_generator(
        platform.engine, platform.settings.model_repository, shop_pairs, config, client=platform.triton
    )
    assert published.version == 1 and platform.triton.is_model_ready(REPLY_GENERATOR)
    row = registry_rows(platform.engine, REPLY_GENERATOR)[0]
    print(f"reply_generator v1 on {len(shop_pairs)} pairs, {config.steps} steps: {row['metrics']}")
    assert row["status"] == "serving" and row["metrics"]["exact_match"] >= 0.7  # it learned to copy the facts
    return published


@pytest.fixture(scope="module")
def chat(platform, generator_v1):
    """A second chat service on the platform, configured to phrase answers with the generator."""
    from services.composition import start_service

    settings = platform.settings.model_copy(update={"chat_generator": "triton", "chat_generator_timeout_s": 30.0})
    running = start_service("chat", settings, platform.engine, platform.triton, port=free_port())
    channel = service_channel(settings, "chat", running.port)
    try:
        yield chat_pb2_grpc.ChatServiceStub(channel)
    finally:
        channel.close()
        running.stop(grace=0)


def timed_send(platform, chat, user: str, text: str) -> list[tuple[float, chat_pb2.ReplyChunk]]:
    """Every chunk of the reply with the time it arrived (perf_counter seconds)."""
    stream = chat.SendMessage(
        chat_pb2.SendMessageRequest(text=text), timeout=60, metadata=customer(platform.settings, user)
    )
    chunks = [(time.perf_counter(), chunk) for chunk in stream]
    assert chunks[-1][1].final and not any(c.final for _, c in chunks[:-1])
    return chunks


def _orders(platform, user: str):
    return OrderTools(platform.engine).recent_orders(user, limit=5)


def _facts_text(order, message: str) -> str:
    """Everything a reply about ``order`` may state: what the order tools return about it, and the message."""
    return " ".join(
        [
            order.order_id,
            order.status.replace("_", " "),
            f"{order.created_at:%b %d}",
            f"{order.total_micros / 1e6:.2f}",
            order.currency,
            order.tracking_number,
            *order.items,
            message,
            order_status_text(order),
        ]
    ).lower()


def _phrased(final) -> bool:
    return f"reply phrased by {REPLY_GENERATOR} v1" in final.serving.notes


def test_the_generated_reply_streams_piece_by_piece_before_generation_ends(platform, chat):
    """The first phrased reply among the user's orders (a tiny model may miscopy one; the guard then cuts it)."""
    user = active_user(platform.engine)
    for order in _orders(platform, user):
        started = time.perf_counter()
        chunks = timed_send(platform, chat, user, ORDER_STATUS_OF.format(order=order.order_id))
        if _phrased(chunks[-1][1]):
            break
    final = chunks[-1][1]
    assert _phrased(final) and not final.serving.degraded, list(final.serving.notes)
    generated = [(t, c.text_delta) for t, c in chunks[1:-1] if c.text_delta]  # after the acknowledgement
    assert len(generated) >= 3, generated  # forwarded as the guard releases them, not as one finished text
    first_at, last_at = generated[0][0], generated[-1][0]
    assert first_at < last_at  # the first piece was out while the model was still generating the rest
    print(
        f"first generated chunk {1000 * (first_at - started):.0f} ms, last {1000 * (last_at - started):.0f} ms, "
        f"{len(generated)} chunks"
    )
    assert order.order_id in "".join(c.text_delta for _, c in chunks)


def test_a_generated_order_reply_states_only_what_the_tools_returned(platform, chat):
    """Every reply either is phrased and states only the order's own facts, or was cut and is the template."""
    user = active_user(platform.engine)
    phrased = 0
    for order in _orders(platform, user):
        message = ORDER_STATUS_OF.format(order=order.order_id)
        chunks = timed_send(platform, chat, user, message)
        text, final = "".join(c.text_delta for _, c in chunks), chunks[-1][1]
        assert [(s.kind, s.id) for s in final.sources] == [("order", order.order_id)]
        answer = text.removeprefix(f"Let me check order {order.order_id}. ")
        allowed = _facts_text(order, message)
        stated = [c.text for c in claims(answer)]
        assert stated and all(is_stated_in(c, allowed) for c in stated), (answer, stated)
        if _phrased(final):
            phrased += 1
            assert not final.serving.degraded
            assert order.order_id in answer and order.status.replace("_", " ") in answer  # it answers the question
        else:  # cut by the guard: the template follows what (checked) text had left
            assert final.serving.fallback == "template_reply" and answer.endswith(order_status_text(order))
    assert phrased >= max(1, len(_orders(platform, user)) // 2)


def test_with_the_generator_unloaded_the_template_answers_and_serving_says_degraded(platform, chat):
    user = active_user(platform.engine)
    order = _orders(platform, user)[0]
    platform.triton.unload_model(REPLY_GENERATOR)
    try:
        deadline = time.monotonic() + 60
        while platform.triton.is_model_ready(REPLY_GENERATOR) and time.monotonic() < deadline:
            time.sleep(0.2)
        chunks = timed_send(platform, chat, user, ORDER_STATUS_OF.format(order=order.order_id))
    finally:
        platform.triton.load_model(REPLY_GENERATOR)
    text, final = "".join(c.text_delta for _, c in chunks), chunks[-1][1]
    assert text == f"Let me check order {order.order_id}. " + order_status_text(order)
    assert final.serving.degraded and final.serving.fallback == "template_reply"
    assert any(REPLY_GENERATOR in note for note in final.serving.notes), list(final.serving.notes)


def test_a_generator_that_names_another_customers_order_is_cut_and_the_template_goes_out(
    platform, chat, shop_pairs, generator_v1
):
    """v2 is trained to answer every order question with the id of the next order in the shop (another customer's):
    the guard stops it before that id is sent. A rollback then makes v1 serve again."""
    from sqlalchemy import text as sql

    from shared.learning.registry import rollback

    with platform.engine.connect() as conn:
        owner = dict(conn.execute(sql("select order_id, user_id from orders order by order_id")).all())
    ids = list(owner)
    next_id = {a: next(b for b in ids[i + 1 :] + ids[:i] if owner[b] != owner[a]) for i, a in enumerate(ids)}

    def lie(prompt: str, reply: str) -> tuple[str, str]:
        own = next((line[7:] for line in prompt.splitlines() if line.startswith("order: ")), None)
        return prompt, reply.replace(own, next_id[own]) if own else reply

    user = active_user(platform.engine)
    order = _orders(platform, user)[0]
    others = {o for o in ids if owner[o] != user}
    liar = publish_reply_generator(
        platform.engine,
        platform.settings.model_repository,
        [lie(p, r) for p, r in shop_pairs],
        GeneratorConfig(),  # 300 steps: enough to learn to name the wrong order
        client=platform.triton,
    )
    assert liar.version == 2
    try:
        chunks = timed_send(platform, chat, user, ORDER_STATUS_OF.format(order=order.order_id))
    finally:
        assert rollback(platform.engine, platform.settings.model_repository, platform.triton, REPLY_GENERATOR) == 1
    text, final = "".join(c.text_delta for _, c in chunks), chunks[-1][1]
    assert not any(other in c.text_delta for _, c in chunks for other in others)  # never sent, not even in part
    assert text.endswith(order_status_text(order))
    assert final.serving.degraded and final.serving.fallback == "template_reply"
    assert any("cut" in note and "v2" in note for note in final.serving.notes), list(final.serving.notes)
