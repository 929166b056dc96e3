"""The dialogue state of one conversation, kept in Postgres between turns (``conversations.state``): the action
waiting for a slot ("which order?"), the slots filled so far, the last turns, and how many turns in a row the
assistant did not understand. Any chat replica can answer the next message, because nothing lives in the process.
Pure logic: (de)serialisation, bounded history, and the summary a human agent reads on handoff."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

HISTORY_TURNS = 10  # turns kept in the state (the messages table keeps all of them)
TURN_CHARS = 300  # a stored turn is cut to this many characters
PENDING_TTL_TURNS = 3  # a pending action still unanswered after this many user turns is dropped


@dataclass
class Pending:
    """An action the customer asked for that still needs a slot, e.g. a return without an order number."""

    action: str  # an intent of ACTION_INTENTS, or "product_search"
    slots: dict[str, Any] = field(default_factory=dict)  # order_id, product_id, reason, max_price, min_price, query
    asked_for: str = ""  # the slot the last question asked for
    turns_waiting: int = 0


@dataclass
class DialogueState:
    pending: Pending | None = None
    history: list[dict[str, str]] = field(default_factory=list)  # {"role", "text", "intent"}, oldest first
    unclear_streak: int = 0  # low-confidence or out-of-scope turns in a row
    intents: list[str] = field(default_factory=list)  # every confident intent, for the handoff summary

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> DialogueState:
        data = data or {}
        pending = data.get("pending")
        return cls(
            pending=Pending(**pending) if pending else None,
            history=list(data.get("history", []))[-HISTORY_TURNS:],
            unclear_streak=int(data.get("unclear_streak", 0)),
            intents=list(data.get("intents", []))[-HISTORY_TURNS:],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pending": asdict(self.pending) if self.pending else None,
            "history": self.history[-HISTORY_TURNS:],
            "unclear_streak": self.unclear_streak,
            "intents": self.intents[-HISTORY_TURNS:],
        }

    def remember(self, role: str, text: str, intent: str = "") -> None:
        self.history.append({"role": role, "text": text[:TURN_CHARS], "intent": intent})
        del self.history[:-HISTORY_TURNS]

    def note_intent(self, intent: str) -> None:
        if intent and (not self.intents or self.intents[-1] != intent):
            self.intents.append(intent)
            del self.intents[:-HISTORY_TURNS]

    def age_pending(self) -> None:
        """Called once per user turn that did not fill the pending slot."""
        if self.pending is not None:
            self.pending.turns_waiting += 1
            if self.pending.turns_waiting >= PENDING_TTL_TURNS:
                self.pending = None


def handoff_summary(user_id: str, state: DialogueState, reason: str) -> str:
    """What a human agent reads first: who, why, what was asked, what is still open, the last messages."""
    parts = [f"Customer {user_id}. Handoff: {reason}."]
    if state.intents:
        parts.append("Topics: " + ", ".join(i.replace("_", " ") for i in state.intents) + ".")
    if state.pending is not None:
        slots = ", ".join(f"{k}={v}" for k, v in state.pending.slots.items()) or "no details yet"
        parts.append(f"Open request: {state.pending.action.replace('_', ' ')} ({slots}).")
    said = [t["text"] for t in state.history if t["role"] == "user"][-3:]
    if said:
        parts.append("Customer said: " + " | ".join(f'"{s}"' for s in said))
    return " ".join(parts)
