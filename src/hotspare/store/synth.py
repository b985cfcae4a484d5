"""Small, real fragmented MP4 segments made with PyAV, for tests of the store, API and re-insert.

The files have the exact shape the recorder writes (ftyp+moov, then a moof+mdat per keyframe
interval, sample times = the run's media time), so tests exercise the real box walker and a real
demuxer instead of a mock. Encoding is cached; each call only remuxes.
"""

from __future__ import annotations

import fractions
import functools
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import av
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

if TYPE_CHECKING:
    from hotspare.store.models import RunInfo, SegmentInfo
    from hotspare.store.segment_store import SegmentStore

# Keeps the run's media time in each fragment's tfdt: FFmpeg rebases every file to start at 0
# unless `frag_discont` comes with `delay_moov` (here) or `avoid_negative_ts=disabled` (the
# recorder's choice). One fragment per GOP, so tests can cut a file inside a multi-frame fragment.
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+frag_discont+delay_moov"
_TB = fractions.Fraction(1, 90_000)


@functools.lru_cache(maxsize=32)
def _encoded(frames: int, gop: int, fps: int,
             size: int) -> tuple[bytes, tuple[tuple[bytes, int, bool], ...]]:
    """(extradata, ((payload, pts_90k, keyframe), ...)) of `frames` frames of tiny H.264."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width = size
    enc.height = size
    enc.pix_fmt = "yuv420p"
    enc.time_base = _TB
    enc.framerate = fractions.Fraction(fps, 1)
    enc.gop_size = gop
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0",
                   "keyint_min": str(gop), "sc_threshold": "0", "forced-idr": "1"}
    step = 90_000 // fps
    out: list[tuple[bytes, int, bool]] = []
    packets = []
    for i in range(frames):
        frame = VideoFrame(size, size, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7) % 256]) * plane.buffer_size)
        frame.pts = i * step
        frame.time_base = _TB
        packets += enc.encode(frame)
    packets += enc.encode(None)
    for p in packets:
        assert p.pts is not None
        out.append((bytes(p), int(p.pts), bool(p.is_keyframe)))
    return bytes(enc.extradata or b""), tuple(out)


def write_segment(path: Path, start_media_90k: int = 0, frames: int = 10, *, gop: int = 5,
                  fps: int = 25, size: int = 32, timescale: int = 90_000,
                  movflags: str = MOVFLAGS, options: dict[str, str] | None = None,
                  hole: tuple[int, int] | None = None, audio: bool = False) -> None:
    """Write a segment of `frames` frames starting (on a keyframe) at `start_media_90k`.

    Each `gop` frames make one fragment. Frame duration is 90000 // fps ticks. `hole=(n, ticks)`
    shifts every frame from the n-th on by `ticks` (n a multiple of `gop`): frames a frozen
    recorder never received. `audio`: a second track of AAC (8 kHz mono, silence) over the
    same time, as the recorder writes a camera's audio.
    """
    extradata, packets = _encoded(frames, gop, fps, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = {"movflags": movflags, **(options or {})}
    with av.open(str(path), "w", format="mp4", options=opts) as out:
        stream = out.add_stream("h264", rate=fps)
        stream.width = size
        stream.height = size
        stream.time_base = fractions.Fraction(1, timescale)
        stream.codec_context.extradata = extradata
        sound = _audio(out, start_media_90k, frames * _TB.denominator // fps) if audio else []
        for index, (payload, pts, key) in enumerate(packets):
            pkt = av.Packet(payload)
            shift = hole[1] if hole is not None and index >= hole[0] else 0
            pkt.pts = pkt.dts = pts + start_media_90k + shift
            pkt.time_base = _TB
            pkt.is_keyframe = key
            pkt.stream = stream
            out.mux(pkt)
        for packet in sound:
            out.mux(packet)


def _audio(out: av.container.OutputContainer, start_90k: int,
           length_90k: int) -> list[av.Packet]:
    """An AAC track's packets (silence) over [start, start + length) of media time."""
    rate = 8000
    stream = out.add_stream("aac", rate=rate, layout="mono")
    stream.time_base = fractions.Fraction(1, rate)
    first = start_90k * rate // _TB.denominator
    end = (start_90k + length_90k) * rate // _TB.denominator
    frames: list[AudioFrame | None] = []
    for at in range(first, end, 1024):
        frame = AudioFrame(format="fltp", layout="mono", samples=1024)
        frame.planes[0].update(bytes(4 * 1024))
        frame.sample_rate = rate
        frame.pts = at
        frame.time_base = stream.time_base
        frames.append(frame)
    return [packet for frame in [*frames, None] for packet in stream.encode(frame)
            if packet.pts is not None and packet.pts >= first]


def decode_count(path: Path) -> int:
    """Frames a real demuxer + decoder gets out of the file (checks a salvaged prefix plays)."""
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def record_segment(store: SegmentStore, run: RunInfo, seq: int, start_media_90k: int,
                   frames: int = 10, *, gop: int = 5, fps: int = 25,
                   hole: tuple[int, int] | None = None) -> SegmentInfo:
    """What the recorder does for one segment: write the file at segment_path(), then commit
    (the duration spans the `hole`, as the recorder's does)."""
    path = store.segment_path(run.camera_id, run.run_id, seq)
    write_segment(path, start_media_90k, frames, gop=gop, fps=fps, hole=hole)
    span = frames * (90_000 // fps) + (hole[1] if hole is not None else 0)
    return store.commit_segment(run.run_id, seq, start_media_90k, span, frames, 0)


def insert_rows_only(db: sqlite3.Connection, camera_id: str, server: str, start_wall_us: int,
                     runs: int, segments_per_run: int, *, segment_us: int = 4_000_000,
                     bytes_each: int = 2000, tag: str = "rows") -> int:
    """Index rows of back-to-back segments with no files behind them, inside the caller's
    transaction: a store of weeks costs seconds, for tests and benchmarks of what reads cost
    (listing, paging, caps), where real files would only add time. Returns the rows written."""
    duration_90k = segment_us * 90 // 1000
    for r in range(runs):
        run = f"r{r:05d}{tag}"
        begin = start_wall_us + r * segments_per_run * segment_us
        db.execute("insert into run (run_id, camera_id, recorded_by, recorded_as, anchor_wall_us, "
                   "wall_source, started_wall_us, ended_wall_us, end_reason, created_at_us) "
                   "values (?, ?, ?, ?, ?, 'camera', ?, ?, ?, 0)",
                   (run, camera_id, server, server, begin, begin,
                    begin + segments_per_run * segment_us, tag))
        db.executemany(
            "insert into segment (camera_id, run_id, seq, recorded_by, recorded_as, "
            "start_wall_us, end_wall_us, start_media_90k, duration_90k, frame_count, bytes, "
            "init_bytes, sha256, relpath, committed_at_us) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, 100, ?, 800, ?, ?, 0)",
            ((camera_id, run, seq, server, server, begin + seq * segment_us,
              begin + (seq + 1) * segment_us, seq * duration_90k, duration_90k, bytes_each,
              f"{r:08x}{seq:056x}", f"segments/{camera_id}/{run}/{seq:06d}.mp4")
             for seq in range(segments_per_run)))
    return runs * segments_per_run
