"""Tiny H.264 clips for recorder tests, encoded with PyAV's bundled x264 (no camera, no network).

The recorder reads RTSP through the same PyAV demux path, so a local file exercises its segment
cutting and muxing exactly.
"""

from __future__ import annotations

from pathlib import Path

import av


def make_h264_file(path: Path, frames: int = 60, gop: int = 10, *, width: int = 64,
                   height: int = 48, annexb: bool = False) -> Path:
    """A tiny H.264 file (PyAV's bundled x264), GOP `gop`, 25 fps. `annexb`: a raw Annex-B
    stream with the parameter sets repeated before every keyframe, as a camera sends them."""
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
    with av.open(str(path), "w", format="h264" if annexb else None) as out:
        stream = out.add_stream(
            "libx264",
            rate=25,
            options={
                "preset": "ultrafast",
                "x264-params": params + (":repeat-headers=1" if annexb else ""),
            },
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 5) % 256]) * plane.buffer_size)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_h264_aac_file(path: Path, seconds: float = 2.0, gop: int = 10) -> Path:
    """A tiny H.264 (25 fps, GOP `gop`) + AAC (16 kHz mono, 1 024-sample frames) file, both
    streams from time 0: a camera with audio, without the network."""
    frames = round(seconds * 25)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={
            "preset": "ultrafast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=16_000, layout="mono")
        for i in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 5) % 256]) * plane.buffer_size)
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        sound = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        for i in range(round(seconds * 16_000 / 1024)):
            sound.planes[0].update(bytes(4 * 1024))
            sound.sample_rate, sound.pts = 16_000, i * 1024
            for packet in audio.encode(sound):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)
    return path
