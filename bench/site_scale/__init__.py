"""Benchmark: a site of many simulated recording servers and spares on one 3-member etcd."""
