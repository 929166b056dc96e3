"""The services' in-process TTL cache (pure logic): one load for all missing keys, absent keys remembered for the
TTL, everything reloaded after it."""

from __future__ import annotations

from shared.core.ttl_cache import TtlCache


def test_missing_keys_load_once_per_ttl_and_absent_keys_are_remembered():
    now = [0.0]
    loads: list[list[str]] = []
    cache: TtlCache[str, int] = TtlCache(ttl_s=30, clock=lambda: now[0])

    def load(keys: list[str]) -> dict[str, int]:
        loads.append(keys)
        return {k: len(k) for k in keys if k != "ghost"}

    assert cache.get_many(["a", "bb", "ghost"], load) == {"a": 1, "bb": 2}
    assert cache.get_many(["a", "bb", "ghost", "ccc"], load) == {"a": 1, "bb": 2, "ccc": 3}
    assert loads == [["a", "bb", "ghost"], ["ccc"]]  # the ghost is not asked for again within the TTL
    now[0] = 31.0
    cache.get_many(["a", "ghost"], load)
    assert loads[-1] == ["a", "ghost"]
