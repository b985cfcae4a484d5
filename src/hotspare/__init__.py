"""hotspare: a network video recorder whose recording servers are guarded by hot spares."""

__version__ = "0.1.0"
