"""What one segment's commit costs, part by part, on a segment shaped like a camera's.

    .venv/bin/python -m bench.recording.commit_cost                 # 40 commits, thread CPU

The segment is written by the recorder's own `SegmentWriter` (per-frame fragments + flush, the
default) from synthetic frames the size of a 1080p25 4 Mbit/s camera's (a 100 kB keyframe per
second, 20 kB P-frames; 4 s, 100 fragments, ≈ 2.3 MB); each frame is a real tiny H.264 frame
padded with a filler NAL unit, in Annex B form as FFmpeg's RTP depacketiser hands frames over
(the muxer makes length-prefixed NAL units of it; the store's box walk never looks into it).
Each commit runs `SegmentStore.commit_segment` on a fresh copy of it; beside the whole commit,
its parts are timed one by one in the order the commit runs them (read, box walk, fsync of file
and directory, SHA-256; the SQLite row is the rest), each on the calling thread's CPU clock
(`time.thread_time`), which counts this thread's work only (a shared machine still moves it by
cache and frequency effects: take the median of several runs), with the thread's page faults
(`RUSAGE_THREAD`, Linux), which do not depend on the load.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path

import av

from hotspare.recorder.segment_writer import SegmentWriter
from hotspare.store import layout, mp4
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import _encoded

FPS = 25
FRAME_90K = 90_000 // FPS


def _padded(frame: bytes, size: int) -> bytes:
    """A real (tiny) encoded frame in Annex B form, as FFmpeg's RTP depacketiser hands frames
    over, padded to `size` bytes with a filler-data NAL unit (random bytes without a zero, so no
    start code inside)."""
    pad = max(0, size - len(frame) - 5)
    return frame + b"\x00\x00\x00\x01\x0c" + bytes(b | 1 for b in os.urandom(pad))


def write_camera_segment(path: Path, seconds: int = 4, key_bytes: int = 100_000,
                         p_bytes: int = 20_000) -> int:
    """A segment as the recorder writes it; returns its frame count."""
    frames = seconds * FPS
    extradata, encoded = _encoded(frames, FPS, FPS, 64)  # keyframes carry SPS/PPS in band
    with av.open(str(path), "w", format="mp4", options={"movflags": "empty_moov"}) as tmpl:
        stream = tmpl.add_stream("h264", rate=FPS)
        stream.width, stream.height = 1920, 1080
        stream.time_base = Fraction(1, 90_000)
        stream.codec_context.extradata = extradata
        writer = SegmentWriter(path.with_suffix(".seg"), stream, 0)
        for i, (frame, _, key) in enumerate(encoded):
            packet = av.Packet(_padded(frame, key_bytes if key else p_bytes))
            packet.is_keyframe = key
            writer.write(packet, i * FRAME_90K, i * FRAME_90K, FRAME_90K)
        writer.close(frames * FRAME_90K)
    path.with_suffix(".seg").replace(path)
    return frames


def _fsync(path: Path) -> None:
    layout.fsync_file(path)
    layout.fsync_dir(path.parent)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recording.commit_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--commits", type=int, default=40)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hotspare-commit-cost-"))
    try:
        source = work / "source.mp4"
        frames = write_camera_segment(source)
        size = source.stat().st_size
        store = SegmentStore.open(work / "store", "bench")
        run = store.begin_run("cam-1", "bench", time.time_ns() // 1000, WallSource.LOCAL)
        init = mp4.parse_path(source).init_bytes
        parts: dict[str, list[float]] = {k: [] for k in (
            "read", "box walk", "fsync file+dir", "SHA-256", "SQLite row", "whole commit")}

        faults: dict[str, list[int]] = {k: [] for k in parts}

        def timed(name: str, fn: Callable[[], object]) -> object:
            f0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            t = time.thread_time()
            result = fn()
            parts[name].append(time.thread_time() - t)
            faults[name].append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - f0)
            return result

        for seq in range(args.commits):
            # The parts, one by one, on a copy the store never indexes ...
            copy = work / f"part-{seq}.mp4"
            shutil.copyfile(source, copy)
            data = timed("read", copy.read_bytes)
            assert isinstance(data, bytes)
            timed("box walk", partial(mp4.parse_bytes, data))
            timed("fsync file+dir", partial(_fsync, copy))
            timed("SHA-256", partial(_sha256, data))
            copy.unlink()
            # ... and the whole commit on the store's own file (its SQLite row is the rest).
            path = store.segment_path("cam-1", run.run_id, seq)
            shutil.copyfile(source, path)
            timed("whole commit", partial(store.commit_segment, run.run_id, seq, 0,
                                          frames * FRAME_90K, frames, init))
        parts["SQLite row"] = [w - sum(parts[k][i] for k in ("read", "box walk",
                                                             "fsync file+dir", "SHA-256"))
                               for i, w in enumerate(parts["whole commit"])]
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_minute = 60 / 4  # 4 s segments
    print(f"segment: {size} bytes, {frames} frames, 100 fragments; {args.commits} commits; "
          "median thread CPU per commit, and per camera-minute (15 segments)")
    for name, values in parts.items():
        ms = statistics.median(values) * 1000
        minflt = statistics.median(faults[name]) if faults[name] else 0
        print(f"  {name:16s} {ms:7.2f} ms   {ms * per_minute / 1000:.4f} s/camera-minute   "
              f"{minflt:5.0f} page faults")
    print("  (SQLite row = whole commit − the four parts timed alone: the row, get_run, stat,"
          " the warning check)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
