"""Benchmark: what one bounded read costs a node (time and peak memory), before and after caps."""
