"""Replies phrased by a generative model (ECOMAI_CHAT_GENERATOR=triton): the route's Answer (its template and the
facts the tools returned) becomes a prompt, the model on Triton streams its continuation piece by piece, and each
piece is forwarded to the customer as soon as the fact guard (services/chat/fact_guard.py) has cleared it.

The template goes out instead, and the turn's serving info says degraded with fallback ``template_reply``, when
the generator cannot answer (Triton down, the model not loaded, the deadline passed), when the model states a fact
no tool returned (the stream is cancelled before that span is sent), or when it generates nothing. A cut after
some text already left sends the template on a new line: what was sent holds only checked facts. Plain domain code:
the generator is a ``shared.inference.generation.TextGenerator``."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator

from services.chat.fact_guard import FactGuard, FactViolation, titles_pattern
from services.chat.reply_prompt import prompt
from services.chat.turn import Answer, TurnContext
from shared.core.deadlines import DEADLINE_MARGIN_S, remaining_s
from shared.core.errors import ModelUnavailable
from shared.inference.generation import TextGenerator

FALLBACK = "template_reply"


class ReplyPhraser:
    def __init__(
        self,
        generator: TextGenerator,
        model: str,
        timeout_s: float,
        max_tokens: int,
        titles: Callable[[], dict[str, str]] | None = None,
        service_name: str = "chat",
    ):
        self.generator = generator
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.titles = titles  # product id -> title (ProductCatalog.titles, cached there and refreshed)
        self.service_name = service_name
        self._pattern: tuple[dict | None, re.Pattern[str] | None, int] = (None, None, 0)  # (titles, pattern, longest)
        self._lock = threading.Lock()

    def phrase(self, ctx: TurnContext, answer: Answer) -> Iterator[str]:
        """The answer's text pieces as the guard releases them, or the template when generation fails."""
        products, longest = self._products()
        allowed = [answer.template, ctx.message, *(value for _, value in answer.facts)]
        guard = FactGuard(allowed, products, window=longest + 1)
        left = remaining_s()  # the request's own deadline, when the server interceptor set one
        timeout_s = self.timeout_s if left is None else min(self.timeout_s, left - DEADLINE_MARGIN_S)
        if timeout_s <= 0:
            ctx.report.degrade(self.service_name, FALLBACK, "no time left to generate before the request's deadline")
            yield answer.template
            return
        stream = self.generator.generate(
            self.model, prompt(ctx.intent, ctx.message, answer.facts), self.max_tokens, timeout_s
        )
        sent, version, why = 0, 0, ""
        try:
            for piece in stream:
                version = piece.model_version or version
                out = guard.feed(piece.text)
                if out:
                    sent += len(out)
                    yield out
            out = guard.finish()
            if guard.text.strip():
                if out:
                    yield out
                ctx.models[self.model] = version
                ctx.report.notes.append(f"reply phrased by {self.model} v{version}")
                return
            why = f"{self.model} v{version} generated no text"
        except ModelUnavailable as exc:
            why = exc.message
        except FactViolation as exc:
            why = f"{self.model} v{version} cut: {exc} (after {sent} characters sent)"
        finally:
            stream.close()  # an unfinished generation is cancelled on the server
        ctx.report.degrade(self.service_name, FALLBACK, why)
        yield ("\n" if sent else "") + answer.template

    def _products(self) -> tuple[re.Pattern[str] | None, int]:
        """The catalog titles' pattern, rebuilt only when the catalog's cached titles change."""
        if self.titles is None:
            return None, 0
        titles = self.titles()
        with self._lock:
            if self._pattern[0] is not titles:
                self._pattern = (titles, titles_pattern(titles.values()), max(map(len, titles.values()), default=0))
            return self._pattern[1], self._pattern[2]
