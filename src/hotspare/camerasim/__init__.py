"""Simulated RTSP cameras for tests and demos; see docs/camera-sim.md.

Only `sei` and `framelog` are importable from the product venv; the rest needs GStreamer (gi).
"""
