"""A recording server's side of failover: its liveness key, and confirming a handback.

The key `alive/<server>` exists, bound to the server's lease, exactly while every camera is
recording (DESIGN decision 5): a server that is up but not recording drops it so a spare may step
in. Losing etcd never touches the recorder (decision 6): this agent only stops publishing, and
re-grants a lease when etcd is back.

The value carries `confirmed`: true once every camera committed a segment in this process's life.
A covering spare waits for that before it stops recording (decision 7, handback order).

It also publishes the commit watermarks (`watermarks/<server>`, no lease so they outlive a crash):
per camera, the wall time up to which video is durably committed. A spare holding a gapless
camera's pre-buffer writes from there on a takeover. One batched write per second at most.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hotspare.coordination.etcd_adapter import Coordinator, LeaseKeeper
from hotspare.failover import keys
from hotspare.failover.events import EventLog
from hotspare.failover.ticker import run_ticks
from hotspare.recorder.health import CameraHealth, CameraState

log = logging.getLogger("hotspare.failover.server")

WATERMARK_INTERVAL_SECONDS = 1.0


class ServerAgent:
    """Runs on its own thread beside the recorder; never raises into it."""

    def __init__(self, coord: Coordinator, name: str, url: str, lease_ttl: float,
                 health: Callable[[], Mapping[str, CameraHealth]], events: EventLog,
                 interval: float = 0.2) -> None:
        self.coord = coord
        self.name = name
        self.url = url
        self.lease_ttl = lease_ttl
        self.health = health
        self.events = events
        self.interval = interval
        self.boot = f"{os.getpid()}-{time.time_ns() // 1000}"
        self._keeper: LeaseKeeper | None = None
        self._published: str | None = None
        self._returned_announced = False
        self._watermarks_at = 0.0
        # Commits each camera must add before `confirmed` (see `state`): one after a start; two
        # after a lease was lost while this process lived (frozen or cut off), see `_lease`.
        self._confirm_base: dict[str, int] = {}
        self._confirm_need = 1
        self._blocked: list[str] | None = None  # cameras named in our `returning/` key
        self._watermarks: dict[str, int] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-agent", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Graceful stop: give the key up at once so spares need not wait for the lease."""
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)
        if self._keeper is not None:
            self._keeper.stop(revoke=True)

    def state(self, cameras: Mapping[str, CameraHealth]) -> tuple[bool, bool]:
        """(every camera recording, every camera committed enough segments to hand back)

        After a freeze (SIGSTOP, a hung host) the segment open at the freeze is committed at the
        thaw with only the frames from before it, perhaps with a hole where the camera dropped
        its backlog; only the segment after it proves recording resumed. So after a lease was
        lost while this process lived, two new commits per camera are needed, not one.
        """
        recording = all(h.state is CameraState.RECORDING for h in cameras.values())
        confirmed = recording and all(
            h.segments_committed >= self._confirm_base.get(cid, 0) + self._confirm_need
            for cid, h in cameras.items())
        return recording, confirmed

    def _run(self) -> None:
        run_ticks(self.tick, self._stop, self._wake, self.interval, log,
                  f"liveness of {self.name} (recording continues)")

    def _lease(self) -> LeaseKeeper:
        if self._keeper is None or self._keeper.assumed_lost():
            if self._keeper is not None:
                self._keeper.stop(revoke=False)
                log.warning("liveness lease lost (%s); a spare may have taken over: handing back "
                            "needs two new segments per camera", self._keeper.lost_reason)
                self._confirm_base = {cid: h.segments_committed
                                      for cid, h in self.health().items()}
                self._confirm_need = 2
                self._returned_announced = False
            self._keeper = None
            self._published = None
            self._keeper = self.coord.hold_lease(self.lease_ttl, role="server")
        return self._keeper

    def _ask_spare_to_let_go(self, cameras: Mapping[str, CameraHealth]) -> None:
        """Back from a failure, but some cameras answer 5xx (out of streaming sessions) while
        everything else records: the covering spare holds their only session. Without this the
        handback waits for ever — we never record every camera, the spare never stops. Ask it,
        through `returning/<server>`, to release those cameras; we get them at our next retry."""
        blocked = sorted(cid for cid, h in cameras.items()
                         if h.state is CameraState.FAILING and h.error_kind == "server_error")
        others_ok = all(h.state is CameraState.RECORDING
                        for cid, h in cameras.items() if cid not in blocked)
        if not blocked or not others_ok:
            self._withdraw_request()
            return
        if blocked == self._blocked:
            return
        holder = self.coord.get(keys.claim(self.name))
        if holder is None:
            return  # nobody covers us: the sessions are someone else's (or the camera is busy)
        keeper = self._lease()
        self.coord.put(keys.returning(self.name),
                       json.dumps({"blocked": blocked, "at_us": time.time_ns() // 1000}),
                       lease=keeper.lease)
        self._blocked = blocked
        self.events.emit("blocked", self.name,
                         f"back and recording, except camera(s) {', '.join(blocked)}: they refuse "
                         f"another session while {holder.json().get('spare')} records them; "
                         "asking it to let go", cameras=blocked)

    def _withdraw_request(self) -> None:
        if self._blocked is not None:
            self.coord.delete(keys.returning(self.name))
            self._blocked = None

    def publish_watermarks(self, cameras: Mapping[str, CameraHealth]) -> None:
        """Per camera, the end of the last committed segment; only when one moved, ≤ 1/s."""
        now = time.monotonic()
        if now - self._watermarks_at < WATERMARK_INTERVAL_SECONDS:
            return
        marks = {cid: h.committed_until_wall_us for cid, h in cameras.items()
                 if h.committed_until_wall_us is not None}
        if not marks or marks == self._watermarks:
            return
        self.coord.put(keys.watermarks(self.name),
                       json.dumps({"cameras": marks, "at_us": time.time_ns() // 1000},
                                  sort_keys=True))
        self._watermarks, self._watermarks_at = marks, now

    def tick(self) -> None:
        cameras = dict(self.health())  # one snapshot per tick, for every decision below
        self.publish_watermarks(cameras)
        recording, confirmed = self.state(cameras)
        if not recording:
            if self._published is not None:
                self.coord.delete(keys.alive(self.name))
                self._published = None
                self.events.emit("not_recording", self.name,
                                 "not every camera is recording: liveness key dropped")
            self._ask_spare_to_let_go(cameras)
            return
        self._withdraw_request()
        keeper = self._lease()
        value: dict[str, Any] = {"url": self.url, "boot": self.boot, "confirmed": confirmed}
        text = json.dumps(value, sort_keys=True)
        if text != self._published:
            first = self._published is None
            self.coord.put(keys.alive(self.name), text, lease=keeper.lease)
            self._published = text
            if first:
                self.coord.put(keys.owner(self.name), json.dumps({"node": self.name,
                                                                   "url": self.url}))
        if confirmed and not self._returned_announced:
            self._returned_announced = True
            holder = self.coord.get(keys.claim(self.name))
            if holder is not None:
                self.events.emit("returned", self.name,
                                 "recording again with a committed segment per camera; "
                                 f"{holder.json().get('spare')} may hand back")
