"""hotspare: a network video recorder whose recording servers are protected by hot-spare failover servers."""

__version__ = "0.1.0"
