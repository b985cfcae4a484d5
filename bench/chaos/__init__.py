"""Chaos soak: random faults on a whole site, then every frame accounted for (see run.py)."""
