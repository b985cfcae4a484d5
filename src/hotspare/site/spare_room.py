"""A spare's buffer room, and what it means for each server it could cover.

A spare records a failed server's video into its own data folder, and retention never deletes
video still owed to a server, so the free space there (above the retention reserve) is how long it
can cover. The spare measures it and publishes it in its record (`spares/<spare>`, `room`); every
node judges it against each server's rate with the functions here, so placement, the claim rule
(`site/eligibility.py`) and the protection report read one number the same way.

Two levels, each for a reason:
- *low*: less than the spare's `buffer_warn_seconds` of covering the server. It still covers it,
  but for less time than promised: the server's protection is degraded, and placement prefers
  another spare for the server's pre-buffers, so they are not on a disk about to fill.
- *no room*: not even two segments of the server's cameras (and at least `MIN_ROOM_BYTES`): it
  could not write what it records. It leaves the server to another spare that may take it, and
  claims only when there is none (recording somewhere beats nowhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from hotspare.site.model import RecordingServerConfig, camera_mbps

MIN_ROOM_BYTES = 1 << 20
"""Below this a store cannot be relied on to write anything (SQLite's log pages, one fragment)."""
SEGMENTS_NEEDED = 2
"""Segments of room a covering spare needs at least: the one it writes and the next."""


def cover_rate(server: RecordingServerConfig) -> float:
    """Bytes per second a spare writes while covering `server`: its failed-over cameras' stated
    `mbps` (the default where unset), as gapless placement budgets them."""
    return sum(camera_mbps(c) for c in server.failover_cameras()) * 1e6 / 8


def quantize(free_bytes: int) -> int:
    """Rounded down to two significant digits: the record changes (an etcd write) when the room
    moves by a few percent, not with every byte written, and every node sees the same value."""
    if free_bytes <= 0:
        return 0
    step = 10 ** max(0, len(str(free_bytes)) - 2)
    return free_bytes // step * step


class RoomLevel(IntEnum):
    """Ordered: a higher level is worse."""

    OK = 0
    LOW = 1
    NO_ROOM = 2


@dataclass(frozen=True)
class SpareRoom:
    """What a spare's record says about its buffer store."""

    free_bytes: int
    """Free space of its data folder above the retention reserve (quantized, never below 0)."""
    warn_seconds: float
    """The spare's `buffer_warn_seconds` (0: it warns never)."""

    def seconds_for(self, server: RecordingServerConfig) -> float:
        rate = cover_rate(server)
        return float("inf") if rate <= 0 else self.free_bytes / rate

    def needed_for(self, server: RecordingServerConfig) -> int:
        """The least room that lets the spare record `server`'s cameras at all."""
        return max(MIN_ROOM_BYTES,
                   int(SEGMENTS_NEEDED * server.recording.segment_seconds * cover_rate(server)))

    def level_for(self, server: RecordingServerConfig) -> RoomLevel:
        if self.free_bytes < self.needed_for(server):
            return RoomLevel.NO_ROOM
        if self.seconds_for(server) < self.warn_seconds:
            return RoomLevel.LOW
        return RoomLevel.OK

    def describe_for(self, spare: str, server: RecordingServerConfig) -> str:
        """One sentence for events and the report: the spare, the server, the numbers."""
        free = f"{human_bytes(self.free_bytes)} free above its retention reserve"
        if self.level_for(server) is RoomLevel.NO_ROOM:
            return (f"{spare}'s buffer store has no room to cover {server.name}: {free}, less "
                    f"than the {human_bytes(self.needed_for(server))} that "
                    f"{SEGMENTS_NEEDED} segments of its cameras need")
        return (f"{spare}'s buffer store has room for {human_seconds(self.seconds_for(server))} "
                f"of covering {server.name} ({cover_rate(server) * 8 / 1e6:.1f} Mbit/s): {free}"
                + (f", less than its buffer_warn_seconds ({human_seconds(self.warn_seconds)})"
                   if self.level_for(server) is RoomLevel.LOW else ""))


def human_bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


def human_seconds(seconds: float) -> str:
    if seconds == float("inf"):
        return "ever"
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
