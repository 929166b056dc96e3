"""A small in-process cache with a time to live, for what every request of a service reads and few requests
change (an ad's facts and counters, product rows with their embeddings, the materialized lists): the same rows
serve every shopper, and the jobs that rewrite them run every few minutes at most, so a short TTL adds little
staleness and saves most of a request's database work. A miss is filled for all missing keys in one call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

CACHE_TTL_S = 30.0  # the default time to live
MAX_ENTRIES = 200_000  # bounds memory on a huge catalogue (one entry = a row + 1.5 kB of embedding)


class TtlCache(Generic[K, V]):
    """``get_many(keys, load)``: cached values of fresh keys, ``load(missing)`` for the rest, in one call.
    Keys that ``load`` does not return are remembered as absent (``None``) for the TTL too, so an unknown id costs
    one lookup per TTL, not one per request. Thread-safe; the load runs outside the lock."""

    def __init__(
        self, ttl_s: float = CACHE_TTL_S, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES
    ):
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_entries = max_entries  # past it the cache starts over (entries of big values: set it lower)
        self._entries: dict[K, tuple[float, V | None]] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[K], load: Callable[[list[K]], dict[K, V]]) -> dict[K, V]:
        now = self.clock()
        found: dict[K, V] = {}
        missing: list[K] = []
        with self._lock:
            for key in dict.fromkeys(keys):
                entry = self._entries.get(key)
                if entry is None or entry[0] <= now:
                    missing.append(key)
                elif entry[1] is not None:
                    found[key] = entry[1]
        if missing:
            loaded = load(missing)
            expires = now + self.ttl_s
            with self._lock:
                if len(self._entries) + len(missing) > self.max_entries:
                    self._entries.clear()
                for key in missing:
                    value = loaded.get(key)
                    self._entries[key] = (expires, value)
                    if value is not None:
                        found[key] = value
        return found

    def get(self, key: K, load: Callable[[], V]) -> V:
        """One value, loaded by ``load()`` when missing or expired."""
        return self.get_many([key], lambda _keys: {key: load()})[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
