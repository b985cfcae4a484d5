"""Per-camera health, as the node's health endpoint and a spare's probe read it.

A spare decides whether a recording server is really recording from these values (design
decision 5, docs/design.md), so `state` is deliberately coarse and `error` is written for an
operator, never containing a password.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from enum import StrEnum


class CameraState(StrEnum):
    """`recording` only once frames are being written; anything else means video is being lost."""

    CONNECTING = "connecting"
    RECORDING = "recording"
    FAILING = "failing"
    STANDBY = "standby"
    """A spare's hot-standby session for a gapless camera: connected and pre-buffering, not
    writing (nothing is lost while in this state: the camera's own server records it)."""


@dataclass(frozen=True)
class CameraHealth:
    """A snapshot; copied out under a lock so readers never see a half-updated camera."""

    camera_id: str
    state: CameraState
    last_frame_wall_us: int | None = None
    last_commit_wall_us: int | None = None
    committed_until_wall_us: int | None = None
    """End of the last committed segment (the commit watermark a server publishes for spares)."""
    run_id: str | None = None
    error: str | None = None
    consecutive_failures: int = 0
    error_kind: str | None = None
    """For programs: why the last connect failed (`server_error`: the camera answered 5xx, e.g.
    out of streaming sessions; `unauthorized`; `other`); None once recording."""
    segments_committed: int = 0
    frames_recorded: int = 0


class HealthCell:
    """One worker's mutable health, written by the worker thread and read by anyone."""

    def __init__(self, camera_id: str) -> None:
        self._lock = threading.Lock()
        self._value = CameraHealth(camera_id=camera_id, state=CameraState.CONNECTING)
        self._last_frame_wall_us: int | None = None

    def get(self) -> CameraHealth:
        with self._lock:
            return replace(self._value, last_frame_wall_us=self._last_frame_wall_us)

    def last_frame(self, wall_us: int) -> None:
        """Called per packet: a plain assignment (atomic in CPython) instead of a locked copy."""
        self._last_frame_wall_us = wall_us

    def update(self, **changes: object) -> None:
        with self._lock:
            self._value = replace(self._value, **changes)  # type: ignore[arg-type]

    def add(self, *, segments: int = 0, frames: int = 0) -> None:
        """Counters are bumped from two threads (demux and commit), so add under the lock."""
        with self._lock:
            v = self._value
            self._value = replace(
                v,
                segments_committed=v.segments_committed + segments,
                frames_recorded=v.frames_recorded + frames,
            )
