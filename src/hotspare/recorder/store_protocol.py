"""The slice of SegmentStore the recorder uses, as a Protocol.

The recorder depends on this shape rather than the concrete class so unit tests can pass a fake, and
so a spare's buffer store and a server's own store are interchangeable by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from hotspare.store.models import RunInfo, SegmentInfo, WallSource


class RecorderStore(Protocol):
    def begin_run(
        self, camera_id: str, recorded_as: str, anchor_wall_us: int, wall_source: WallSource
    ) -> RunInfo: ...

    def update_run_anchor(
        self, run_id: str, anchor_wall_us: int, wall_source: WallSource
    ) -> None: ...

    def segment_path(self, camera_id: str, run_id: str, seq: int) -> Path: ...

    def commit_segment(
        self,
        run_id: str,
        seq: int,
        start_media_90k: int,
        duration_90k: int,
        frame_count: int,
        init_bytes: int,
    ) -> SegmentInfo: ...

    def end_run(self, run_id: str, ended_wall_us: int, reason: str) -> None: ...
