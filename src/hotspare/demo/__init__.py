"""The demo site: everything hotspare does, on one machine, with simulated cameras."""
