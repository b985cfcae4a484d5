"""Typed HTTP client for a node's API (CLI, failover re-insert, tests); imports no FastAPI."""
