"""Simulated RTSP cameras for tests and demos; see docs/camera-sim.md.

Only `sei`, `framelog`, `options`, `interpreter` and `launcher` are importable from the product
venv; the rest needs GStreamer (gi).
"""
