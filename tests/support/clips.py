"""Tiny H.264 clips for recorder tests, encoded with PyAV's bundled x264 (no camera, no network).

The recorder reads RTSP through the same PyAV demux path, so a local file exercises its segment
cutting and muxing exactly.
"""

from __future__ import annotations

from pathlib import Path

import av


def make_h264_file(path: Path, frames: int = 60, gop: int = 10) -> Path:
    """A tiny H.264 file (PyAV's bundled x264), GOP `gop`, 25 fps."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(
            "libx264",
            rate=25,
            options={
                "preset": "ultrafast",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
            },
        )
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 5) % 256]) * plane.buffer_size)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
