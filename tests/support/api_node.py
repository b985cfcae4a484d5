"""A node API in process over a real SegmentStore holding real fMP4 segments, for the API tests.

Segments are encoded with PyAV (libx264, tiny frames) in the layout the recorder writes, so the
store's own MP4 checks, hashes and HLS byte ranges are exercised on genuine files. The `node`
fixture (tests/unit/conftest.py) is `open_node`; `record_run` fills any store the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from fastapi.testclient import TestClient

from hotspare.api.app import create_app
from hotspare.store import mp4
from hotspare.store.models import RunInfo, SegmentInfo, WallSource
from hotspare.store.segment_store import SegmentStore

TOKEN = "test-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVER = "rec-a"
CAMERA = "cam-1"
T0 = 1_764_104_400_000_000  # 2025-11-25T21:00:00Z, µs
FPS = 25
TICKS_PER_FRAME = 90_000 // FPS
FRAMES_PER_SEGMENT = 10


def make_segment(
    path: Path, start_frame: int, frames: int = FRAMES_PER_SEGMENT, shade: int = 0
) -> None:
    """One standalone fragmented MP4 whose sample times are the run's media time (90 kHz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {
        "movflags": "frag_keyframe+empty_moov+default_base_moof+frag_discont",
        "avoid_negative_ts": "disabled",
        "video_track_timescale": "90000",
    }
    with av.open(str(path), "w", format="mp4", options=options) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 90_000)
        stream.codec_context.options = {"bf": "0", "g": str(frames)}
        for i in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(start_frame + i + shade) * 7 % 256]) * plane.buffer_size)
            frame.pts = (start_frame + i) * TICKS_PER_FRAME
            frame.time_base = Fraction(1, 90_000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def add_segment(store: SegmentStore, run: RunInfo, seq: int, shade: int = 0) -> SegmentInfo:
    path = store.segment_path(run.camera_id, run.run_id, seq)
    make_segment(path, seq * FRAMES_PER_SEGMENT, shade=shade)
    return store.commit_segment(
        run.run_id,
        seq,
        seq * FRAMES_PER_SEGMENT * TICKS_PER_FRAME,
        FRAMES_PER_SEGMENT * TICKS_PER_FRAME,
        FRAMES_PER_SEGMENT,
        mp4.parse_path(path).init_bytes,
    )


def record_run(
    store: SegmentStore,
    camera: str,
    anchor_wall_us: int,
    segments: int,
    *,
    end: bool = True,
    recorded_as: str | None = None,
    shade: int = 0,
) -> tuple[RunInfo, list[SegmentInfo]]:
    run = store.begin_run(
        camera, recorded_as or store.server_name, anchor_wall_us, WallSource.CAMERA
    )
    committed = [add_segment(store, run, seq, shade) for seq in range(segments)]
    if end:
        store.end_run(run.run_id, committed[-1].end_wall_us, "test")
    return run, committed


@dataclass
class Node:
    store: SegmentStore
    client: TestClient
    segments: list[SegmentInfo]
    runs: list[RunInfo]
    health: dict[str, Any] = field(default_factory=dict)
    cameras: set[str] = field(default_factory=lambda: {CAMERA, "cam-2"})


@contextmanager
def open_node(tmp_path: Path) -> Iterator[Node]:
    """Camera cam-1: run A (3 segments from T0), a gap, run B (2 segments from T0 + 5 s)."""
    store = SegmentStore.open(tmp_path / "store", SERVER)
    run_a, segs_a = record_run(store, CAMERA, T0, 3)
    run_b, segs_b = record_run(store, CAMERA, T0 + 5_000_000, 2, end=False)
    state = Node(
        store=store,
        client=None,  # type: ignore[arg-type]
        segments=segs_a + segs_b,
        runs=[run_a, run_b],
    )
    app = create_app(
        store,
        health=lambda: state.health,
        token=TOKEN,
        server_name=SERVER,
        known_cameras=lambda: state.cameras,
        clock=lambda: T0 + 60_000_000,
        max_import_bytes=1 << 20,
    )
    try:
        with TestClient(app, base_url="http://node.test") as client:
            state.client = client
            yield state
    finally:
        store.close()
