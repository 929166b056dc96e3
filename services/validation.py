"""Request checks shared by the servicers. Each raises InvalidArgument naming the offending field."""

from __future__ import annotations

from collections.abc import Sequence

from shared.core.errors import InvalidArgument
from shared.store.event_rules import MAX_ID_LENGTH


def _no_nul(field: str, value: str) -> None:
    if "\x00" in value:  # Postgres text cannot hold NUL: a query with it fails inside the database
        raise InvalidArgument(field, "must not contain NUL characters")


def require_id(field: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(field, "is required")
    _no_nul(field, value)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(field, f"is longer than {MAX_ID_LENGTH} characters")
    return value


def optional_id(field: str, value: str) -> str | None:
    return require_id(field, value) if value.strip() else None


def bounded_int(field: str, value: int, low: int, high: int, default: int | None = None) -> int:
    """``value`` within [low, high]; 0 means ``default`` when one is given (proto3 has no 'unset' for ints)."""
    if value == 0 and default is not None:
        return default
    if not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low} and {high}, got {value}")
    return value


def bounded_text(field: str, value: str, max_length: int, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidArgument(field, "is required")
    if len(value) > max_length:
        raise InvalidArgument(field, f"is longer than {max_length} characters ({len(value)})")
    _no_nul(field, value)
    return value


def id_list(field: str, values: Sequence[str], max_items: int, required: bool = False) -> list[str]:
    if required and not values:
        raise InvalidArgument(field, "must not be empty")
    if len(values) > max_items:
        raise InvalidArgument(field, f"has {len(values)} items, at most {max_items} allowed")
    out = []
    for i, value in enumerate(values):
        out.append(require_id(f"{field}[{i}]", value))
    return list(dict.fromkeys(out))
