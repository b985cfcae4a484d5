"""Benchmark: re-insert throughput from a spare's buffer into the original, against raw HTTP."""
