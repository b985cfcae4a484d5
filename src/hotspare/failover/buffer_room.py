"""A spare's buffer store, judged before it is needed.

A spare records a failed server's cameras into its own data folder until the server is back and
the buffer is re-inserted; retention never deletes video still owed to a server, so a spare whose
disk fills while it covers stops recording those cameras. That must be known while there is still
time to act, not at the takeover: every few seconds the spare compares the free space of its data
folder (above the retention reserve) with what it would write while covering the protected server
with the most video (the cameras' stated `mbps`, as gapless placement budgets them), and says so
with an event (`buffer_low`, then `buffer_ok` when it recovers) and a warning in its log when that
is less than `buffer_warn_seconds` of cover, `buffer_full` when it could not even write (no room,
site/spare_room.py).

The others learn it from the spare's record (`RoomGauge`, measured at most once a second and at
a claim): placement keeps pre-buffers off a spare low on room, the protection report shows the
servers it would cover as degraded, and a spare without room leaves a failed server to another
spare that may take it (`may_claim`, the rule `site.eligibility.leave_to`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from hotspare.failover.detection import ServerTrack
from hotspare.failover.spare_work import SpareContext
from hotspare.failover.ticker import run_ticks
from hotspare.site.eligibility import IDLE, Reason, SpareStatus, leave_to
from hotspare.site.model import RecordingServerConfig
from hotspare.site.spare_room import RoomLevel, SpareRoom, cover_rate, quantize
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.events import EventSink

log = logging.getLogger("hotspare.failover.buffer_room")

LOW, OK, FULL = "buffer_low", "buffer_ok", "buffer_full"
GAUGE_SECONDS = 1.0
"""How often a spare measures its room for its record (a `statvfs`; the record is written only
when the quantized value changes)."""


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
    need = [(server.name, cover_rate(server)) for server in applied.config.recording_servers]
    return max(need, key=lambda pair: pair[1], default=None)


class RoomGauge:
    """A spare's room as its record carries it: free space of its data folder above the
    retention reserve, quantized (`spare_room.quantize`), measured at most every
    `GAUGE_SECONDS` unless asked `fresh` (a claim decides on the disk as it is now)."""

    def __init__(self, data_dir: Path, reserve_bytes: int, warn_seconds: float, *,
                 disk_free: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.data_dir = data_dir
        self.reserve_bytes = reserve_bytes
        self.warn_seconds = warn_seconds
        self.disk_free = disk_free or (lambda: shutil.disk_usage(data_dir).free)
        self.clock = clock
        self._room: SpareRoom | None = None
        self._at = float("-inf")

    def room(self, fresh: bool = False) -> SpareRoom | None:
        now = self.clock()
        if fresh or now - self._at >= GAUGE_SECONDS:
            self._at = now
            try:
                free = self.disk_free()
            except OSError as exc:
                log.warning("cannot measure the free space of %s (%s): its room is published "
                            "as unknown", self.data_dir, exc)
                self._room = None
            else:
                self._room = SpareRoom(quantize(max(0, free - self.reserve_bytes)),
                                       self.warn_seconds)
        return self._room


def may_claim(ctx: SpareContext, server: RecordingServerConfig,
              states: Mapping[str, SpareStatus], room: SpareRoom | None, track: ServerTrack,
              data_dir: Path) -> bool:
    """The claim rule for this spare's room (`site.eligibility.leave_to`), with its events,
    once per episode: without room it leaves `server` to another spare that has room and may
    take it (`refused`, reason `spare_no_room`), and claims only when there is none
    (`buffer_full`: it records once there is room)."""
    if room is None or room.level_for(server) is not RoomLevel.NO_ROOM:
        return True
    applied = ctx.applied_now()
    me = applied.config.failover_server(ctx.name)
    assert me is not None
    states = {**states, ctx.name: replace(states.get(ctx.name, IDLE), room=room)}
    others = leave_to(me, server, applied.config.failover_servers, applied.allotment(), states)
    text = room.describe_for(ctx.name, server)
    todo = f"free space on {ctx.name}'s data disk ({data_dir}) or give it a larger one"
    key = f"{Reason.SPARE_NO_ROOM.value}: {', '.join(others)}"
    if track.refusal_reported != key:
        track.refusal_reported = key
        if others:
            message = (f"{ctx.name} leaves {server.name} to {' or '.join(others)}: {text}; "
                       f"{todo}")
            ctx.events.emit("refused", server.name, message, reasons=[Reason.SPARE_NO_ROOM.value],
                            spare=ctx.name, free_bytes=room.free_bytes, leave_to=list(others))
        else:
            message = (f"{ctx.name} claims {server.name} although {text}: no other spare may take "
                       f"it now, and recording once there is room beats nobody recording; its "
                       f"cameras are not recorded until then: {todo} now")
            ctx.events.emit(FULL, server.name, message, spare=ctx.name,
                            free_bytes=room.free_bytes)
        log.warning("%s", message)
    return not others


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
        self.level: RoomLevel | None = None
        self.last: BufferRoom | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> BufferRoom | None:
        applied = self.current()
        cover = None if applied is None else largest_cover(applied)
        if applied is None or cover is None or self.warn_seconds <= 0:
            return None
        room = BufferRoom(max(0, self.disk_free() - self.reserve_bytes), cover[0], cover[1])
        self.last = room
        server = applied.config.recording_server(room.server)
        spare_room = SpareRoom(room.free_bytes, self.warn_seconds)
        level = RoomLevel.OK if server is None else spare_room.level_for(server)
        data = {"spare": self.spare, "for_server": room.server, "free_bytes": room.free_bytes,
                "seconds": round(room.seconds, 1)}
        if level is not self.level and (self.level is not None or level is not RoomLevel.OK):
            if level is RoomLevel.NO_ROOM:
                assert server is not None
                message = (f"{spare_room.describe_for(self.spare, server)} ({self.data_dir}): "
                           "it leaves a failed server to another spare that "
                           "may take it, and claims one only when none can (then recording "
                           "nothing until there is room). Free space there now")
                log.warning("%s", message)
                self.events.emit(FULL, None, message, **data)
            elif level is RoomLevel.LOW:
                message = describe(self.spare, room, self.warn_seconds, self.data_dir)
                log.warning("%s", message)
                self.events.emit(LOW, None, message, **data)
            else:
                message = (f"{self.spare}'s buffer store has room again: "
                           f"{room.seconds / 60:.0f} min of covering {room.server}")
                log.info("%s", message)
                self.events.emit(OK, None, message, **data)
        self.level = level
        self.low = level is not RoomLevel.OK
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
