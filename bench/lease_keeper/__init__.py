"""`python -m bench.lease_keeper`: a lease keepalive on a CPU-starved host (run.py)."""
