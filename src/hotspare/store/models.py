"""Value types that cross the store's boundary.

Times follow Moonfire NVR's model (docs/time.md): media time counts 90 kHz ticks of the camera's
RTP clock from the start of its run; wall time is microseconds since the Unix epoch (UTC), taken
from the camera's RTCP sender reports when it sends them, from the recording server's clock
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TICKS_PER_SECOND = 90_000


class WallSource(StrEnum):
    """Where a run's wall-clock anchor came from; `camera` lines up across servers, `local`
    may not."""

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
    # Added after the first draft, with defaults so older call sites keep working.
    tail_skip_frames: int = 0
    head_skip_90k: int = 0  # media duration of the head_skip_frames (not recorded time)
    tail_skip_90k: int = 0
    file_problem: str | None = None  # set by reconcile when the file is missing or the wrong size
    committed_at_us: int = 0

    @property
    def end_wall_us(self) -> int:
        return self.start_wall_us + ticks_to_us(self.duration_90k)

    @property
    def recorded_start_wall_us(self) -> int:
        """Start of the time this segment adds to the timeline (after skipped head frames)."""
        return self.start_wall_us + ticks_to_us(self.head_skip_90k)

    @property
    def recorded_end_wall_us(self) -> int:
        return self.start_wall_us + ticks_to_us(self.duration_90k - self.tail_skip_90k)

    @property
    def recorded_frames(self) -> int:
        return self.frame_count - self.head_skip_frames - self.tail_skip_frames


def ticks_to_us(ticks: int) -> int:
    """90 kHz ticks to microseconds, rounded down; the one conversion every module uses."""
    return ticks * 1_000_000 // TICKS_PER_SECOND


def media_to_wall_us(anchor_wall_us: int, media_90k: int) -> int:
    """Wall time of a media time within a run whose media time 0 is at `anchor_wall_us`."""
    return anchor_wall_us + ticks_to_us(media_90k)
