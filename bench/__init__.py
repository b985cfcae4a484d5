"""Benchmarks that back the numbers in docs/ (run from the repository root)."""
