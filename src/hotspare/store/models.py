"""Value types that cross the store's boundary.

Times follow Moonfire NVR's model (docs/time.md): media time counts 90 kHz ticks of the camera's RTP
clock from the start of its run; wall time is microseconds since the Unix epoch (UTC), taken from the
camera's RTCP sender reports when it sends them, from the recording server's clock otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TICKS_PER_SECOND = 90_000


class WallSource(StrEnum):
    """Where a run's wall-clock anchor came from; `camera` lines up across servers, `local` may not."""

    CAMERA = "camera"
    LOCAL = "local"


@dataclass(frozen=True)
class RunInfo:
    """One unbroken camera connection (one RTSP session) as recorded by one server."""

    run_id: str
    camera_id: str
    recorded_by: str
    recorded_as: str
    anchor_wall_us: int
    wall_source: WallSource
    started_wall_us: int
    ended_wall_us: int | None
    end_reason: str | None


@dataclass(frozen=True)
class SegmentInfo:
    """One indexed segment: a standalone fragmented MP4 file starting on a keyframe."""

    segment_id: int
    camera_id: str
    run_id: str
    seq: int
    recorded_by: str
    recorded_as: str
    start_wall_us: int
    start_media_90k: int
    duration_90k: int
    frame_count: int
    head_skip_frames: int
    bytes: int
    init_bytes: int
    sha256: str
    relpath: str
    reinsert_pending: bool
    imported_from: str | None

    @property
    def end_wall_us(self) -> int:
        return self.start_wall_us + self.duration_90k * 1_000_000 // TICKS_PER_SECOND
