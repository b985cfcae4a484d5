"""Benchmark: crash a recording server under a hot spare and measure takeover and lost video."""
