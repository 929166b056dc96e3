"""Benchmarks: measured against a running platform or the demo shop; each prints JSON plus a short table."""
