"""Bench-only floors: what PyAV itself costs per camera, with as little Python as a loop can have.

The recorder's CPU is PyAV's demux + mux plus our own per-packet Python plus the store's commit.
Running these loops beside the recorder in the same benchmark run splits that sum into parts
measured under the same load (docs/recorder.md, "Where the CPU goes"):

- `pyav-demux`: open the camera exactly as the recorder does and drop every packet;
- `pyav-remux`: the same plus `SegmentWriter` (the recorder's fMP4 writer and fragment policy),
  cut every 4 s on a keyframe, timestamps left as the camera sent them; no store, no clock, no
  health, no commit.

How the demux loop opens its camera (`OPEN_MODES`), to price FFmpeg's interrupt callback over UDP
(docs/recorder.md, *Camera faults*): `plain` (no callback), `session` (as the recorder opens a
UDP camera: PyAV's callback installed, idle during reads), `pyav-timeout` (PyAV's own read
timeout: the callback takes the GIL on every check).
"""

from __future__ import annotations

import threading
from pathlib import Path

import av
import av.container

from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder.segment_writer import SegmentWriter
from hotspare.recorder.source import CameraSource

OPEN_MODES = ("plain", "session", "pyav-timeout")
PYAV_READ_TIMEOUT_S = 10.0


def _open(camera: CameraConfig, timeout_s: float, mode: str) -> av.container.InputContainer:
    source = CameraSource.from_config(camera)
    if mode == "session":
        return source.open_session(timeout_s)[0]
    if mode == "pyav-timeout":
        return av.open(camera.url, options=source.ffmpeg_options(timeout_s),
                       timeout=(timeout_s, PYAV_READ_TIMEOUT_S))
    return source.open(timeout_s)


def run_floor(camera: CameraConfig, out_dir: Path | None, settings: RecordingSettings,
              stop: threading.Event, open_mode: str = "plain") -> None:
    """One camera until `stop`; `out_dir` None: demux only."""
    container = _open(camera, settings.open_timeout_seconds, open_mode)
    stream = container.streams.video[0]
    segment_ticks = round(settings.segment_seconds / stream.time_base) if stream.time_base else 0
    writer: SegmentWriter | None = None
    start = seq = last = 0
    try:
        for packet in container.demux(stream):
            if stop.is_set():
                break
            if out_dir is None or not packet.size or packet.pts is None:
                continue
            pts = packet.pts
            if writer is None and not packet.is_keyframe:
                continue
            if writer is not None and packet.is_keyframe and pts - start >= segment_ticks:
                writer.close(pts)
                writer = None
            if writer is None:
                start, seq = pts, seq + 1
                writer = SegmentWriter(
                    out_dir / f"{seq:05d}.mp4", stream, pts,
                    flush_every_frame=settings.flush_every_frame,
                    fragment_seconds=settings.fragment_seconds,
                )
            writer.write(packet, pts, pts, pts - last if 0 < last < pts else 0)
            last = pts
    finally:
        if writer is not None:
            writer.close(last)
        container.close()


def start_floors(cameras: list[CameraConfig], store_root: Path | None,
                 settings: RecordingSettings, stop: threading.Event,
                 open_mode: str = "plain") -> list[threading.Thread]:
    """One thread per camera, files (if any) where the benchmark counts the recorder's."""
    threads = []
    for camera in cameras:
        out = None if store_root is None else store_root / "segments" / camera.id
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        t = threading.Thread(target=run_floor, args=(camera, out, settings, stop, open_mode),
                             daemon=True)
        t.start()
        threads.append(t)
    return threads

