"""A spare's buffer store, judged before it is needed.

A spare records a failed server's cameras into its own data folder until the server is back and
the buffer is re-inserted; retention never deletes video still owed to a server, so a spare whose
disk fills while it covers stops recording those cameras. That must be known while there is still
time to act, not at the takeover: every few seconds the spare compares the free space of its data
folder (above the retention reserve) with what it would write while covering the protected server
with the most video (the cameras' stated `mbps`, as gapless placement budgets them), and says so
with an event (`buffer_low`, then `buffer_ok` when it recovers) and a warning in its log when that
is less than `buffer_warn_seconds` of cover.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hotspare.failover.ticker import run_ticks
from hotspare.site.model import camera_mbps
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.events import EventSink

log = logging.getLogger("hotspare.failover.buffer_room")

LOW, OK = "buffer_low", "buffer_ok"


@dataclass(frozen=True)
class BufferRoom:
    free_bytes: int
    """Free space of the data folder above the retention reserve (never below 0)."""
    server: str
    """The protected server whose cameras need the most."""
    bytes_per_second: float

    @property
    def seconds(self) -> float:
        if self.bytes_per_second <= 0:
            return float("inf")
        return self.free_bytes / self.bytes_per_second


def largest_cover(applied: AppliedSite) -> tuple[str, float] | None:
    """(server, bytes per second) of the server whose cameras a spare would write the most of."""
    need = [(server.name, sum(camera_mbps(c) for c in server.cameras) * 1e6 / 8)
            for server in applied.config.recording_servers]
    return max(need, key=lambda pair: pair[1], default=None)


def describe(spare: str, room: BufferRoom, warn_seconds: float, data_dir: Path) -> str:
    return (f"{spare}'s buffer store has room for {room.seconds / 60:.0f} min of covering "
            f"{room.server} ({room.bytes_per_second * 8 / 1e6:.1f} Mbit/s): "
            f"{room.free_bytes / 1e9:.2f} GB free in {data_dir} above the retention reserve, "
            f"less than buffer_warn_seconds ({warn_seconds:.0f} s). Free space there or give the "
            f"spare a larger disk: covering longer than that, it stops recording the cameras")


class BufferRoomMonitor:
    """Checks the room every `interval` seconds; announces each change between low and enough
    once (an event and a log line), from the spare itself, since only it sees its disk."""

    def __init__(self, spare: str, data_dir: Path, reserve_bytes: int, warn_seconds: float,
                 current: Callable[[], AppliedSite | None], events: EventSink, *,
                 interval: float = 5.0,
                 disk_free: Callable[[], int] | None = None) -> None:
        self.spare = spare
        self.data_dir = data_dir
        self.reserve_bytes = reserve_bytes
        self.warn_seconds = warn_seconds
        self.current = current
        self.events = events
        self.interval = interval
        self.disk_free = disk_free or (lambda: shutil.disk_usage(data_dir).free)
        self.low: bool | None = None  # unknown until the first check
        self.last: BufferRoom | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> BufferRoom | None:
        applied = self.current()
        cover = None if applied is None else largest_cover(applied)
        if cover is None or self.warn_seconds <= 0:
            return None
        room = BufferRoom(max(0, self.disk_free() - self.reserve_bytes), cover[0], cover[1])
        self.last = room
        low = room.seconds < self.warn_seconds
        if low and self.low is not True:
            message = describe(self.spare, room, self.warn_seconds, self.data_dir)
            log.warning("%s", message)
            self.events.emit(LOW, None, message, spare=self.spare, for_server=room.server,
                             free_bytes=room.free_bytes, seconds=round(room.seconds, 1))
        elif not low and self.low is True:
            message = (f"{self.spare}'s buffer store has room again: {room.seconds / 60:.0f} min "
                       f"of covering {room.server}")
            log.info("%s", message)
            self.events.emit(OK, None, message, spare=self.spare, for_server=room.server,
                             free_bytes=room.free_bytes, seconds=round(room.seconds, 1))
        self.low = low
        return room

    def _tick(self) -> bool:
        self.check()
        return False

    def start(self) -> None:
        self._thread = threading.Thread(
            target=run_ticks, name="buffer-room", daemon=True,
            args=(self._tick, self._stop, self._wake, self.interval, log, "buffer room"))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
