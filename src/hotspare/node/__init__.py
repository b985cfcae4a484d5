"""A hotspare node process: composes store, recorder engine and API (and later the failover roles)."""
