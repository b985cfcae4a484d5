"""A recording server's side of failover: its liveness key, and confirming a handback.

The key `alive/<server>` exists, bound to the server's lease, exactly while every camera is
recording (design decision 5, docs/design.md): a server that is up but not recording drops it so a
spare may step in. Losing etcd never touches the recorder (decision 6): this agent only stops
publishing, and re-grants a lease when etcd is back.

The value carries `confirmed`: true once every camera committed a segment in this process's life.
A covering spare waits for that before it stops recording (decision 7, handback order).

States (`ServerMode`, from one health snapshot per tick; `mode_of` is the rule):

    NOT_RECORDING ──every camera records──▶ RECORDING ──each committed enough──▶ CONFIRMED
    any ──a camera stops──▶ NOT_RECORDING: alive key dropped (a spare may step in); cameras a
                           covering spare holds the only session of are asked back (`returning/`)
    any ──lease assumed lost──▶ same mode, but CONFIRMED needs two new commits per camera
                           (the segment open at a freeze proves nothing), then republished

It answers the spares' questions through etcd (`asking/<server>/`, decision 5): a spare whose
probe goes unanswered asks, and a server that still talks to etcd deletes the question at once,
from its watch thread, so a server cut off from one spare only is not taken over. A server taken
over while its lease held (silent for a moment, then back) learns of the claim from a watch and
confirms afresh, as after a lost lease: otherwise its old `confirmed` key, written before the
claim, would never let the spare hand back.

It also publishes the commit watermarks (`watermarks/<server>`, no lease so they outlive a crash):
per camera, the wall time up to which video is durably committed. A spare holding a gapless
camera's pre-buffer writes from there on a takeover. One batched write per second at most.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum

from hotspare.coordination.errors import CoordinationError
from hotspare.failover.ticker import run_ticks
from hotspare.recorder.health import CameraHealth, CameraState
from hotspare.sitestate.access import HeldLease, SiteAccess
from hotspare.sitestate.events import EventSink
from hotspare.sitestate.values import Alive, Owner, Returning, Watermarks

log = logging.getLogger("hotspare.failover.server")

WATERMARK_INTERVAL_SECONDS = 1.0


class ServerMode(StrEnum):
    NOT_RECORDING = "not_recording"
    RECORDING = "recording"
    CONFIRMED = "confirmed"


def mode_of(cameras: Mapping[str, CameraHealth], base: Mapping[str, int],
            need: int) -> ServerMode:
    """Recording: every camera records. Confirmed: and each committed `need` segments more than
    `base` (its count when the process started, or when the lease was last lost)."""
    if not all(h.state is CameraState.RECORDING for h in cameras.values()):
        return ServerMode.NOT_RECORDING
    if all(h.segments_committed >= base.get(cid, 0) + need for cid, h in cameras.items()):
        return ServerMode.CONFIRMED
    return ServerMode.RECORDING


class ServerAgent:
    """Runs on its own thread beside the recorder; never raises into it."""

    def __init__(self, site: SiteAccess, name: str, url: str, lease_ttl: float,
                 health: Callable[[], Mapping[str, CameraHealth]], events: EventSink,
                 interval: float = 0.2) -> None:
        self.site = site
        self.name = name
        self.url = url
        self.lease_ttl = lease_ttl
        self.health = health
        self.events = events
        self.interval = interval
        self.boot = f"{os.getpid()}-{time.time_ns() // 1000}"
        self._keeper: HeldLease | None = None
        self._published: Alive | None = None
        self.mode = ServerMode.NOT_RECORDING
        self._returned_announced = False
        self._watermarks_at = 0.0
        # Commits each camera must add before `confirmed` (`mode_of`): one after a start; two
        # after a lease was lost while this process lived (frozen, cut off): `_notice_lost_lease`.
        self._confirm_base: dict[str, int] = {}
        self._confirm_need = 1
        self._blocked: list[str] | None = None  # cameras named in our `returning/` key
        self._watermarks: dict[str, int] = {}
        self._alive_revision = 0  # of our last `alive/` write
        self._claimed_token: int | None = None  # a claim seen by the watch, for the next tick
        self._watching = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-agent", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        """Once per process, retried each tick while etcd is away (a watch starts with a read)."""
        if self._watching:
            return
        try:
            self.site.answer_questions(self.name)  # asked before we started: we are here now
            self.site.watch_server(self.name, self._answer, self._claimed)
        except CoordinationError as exc:
            log.warning("%s cannot watch etcd for spares' questions yet (%s): a spare that loses "
                        "sight of it meanwhile may take it over although it records; retrying",
                        self.name, exc)
            return
        self._watching = True

    def _answer(self) -> None:
        """On the watch thread: answering must not wait for a tick."""
        try:
            self.site.answer_questions(self.name)
        except CoordinationError as exc:
            log.warning("cannot answer a spare's question through etcd (%s); it may take "
                        "over %s although it records", exc, self.name)

    def _claimed(self, token: int) -> None:
        self._claimed_token = token
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Graceful stop: give the key up at once so spares need not wait for the lease."""
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)
        if self._keeper is not None:
            self._keeper.stop(revoke=True)

    def _run(self) -> None:
        run_ticks(self.tick, self._stop, self._wake, self.interval, log,
                  f"liveness of {self.name} (recording continues)")

    def _notice_lost_lease(self, cameras: Mapping[str, CameraHealth]) -> None:
        """Before the mode is judged: a tick that judged first would publish `confirmed` from
        the old count under the new lease, and a spare would hand back on it."""
        if self._keeper is None or not self._keeper.assumed_lost():
            return
        self._keeper.stop(revoke=False)
        log.warning("liveness lease lost (%s); a spare may have taken over: handing back "
                    "needs two new segments per camera", self._keeper.lost_reason)
        self._confirm_base = {cid: h.segments_committed for cid, h in cameras.items()}
        self._confirm_need = 2
        self._returned_announced = False
        self._keeper = None
        self._published = None

    def _lease(self) -> HeldLease:
        if self._keeper is None or self._keeper.assumed_lost():
            self._notice_lost_lease(self.health())
            self._keeper = self.site.hold_lease(self.lease_ttl, "server")
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
        holder = self.site.claim_of(self.name)
        if holder is None:
            return  # nobody covers us: the sessions are someone else's (or the camera is busy)
        keeper = self._lease()
        self.site.ask_release(self.name, Returning(tuple(blocked)), keeper)
        self._blocked = blocked
        self.events.emit("blocked", self.name,
                         f"back and recording, except camera(s) {', '.join(blocked)}: they refuse "
                         f"another session while {holder.spare} records them; "
                         "asking it to let go", cameras=blocked)

    def _withdraw_request(self) -> None:
        if self._blocked is not None:
            self.site.withdraw_release(self.name)
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
        self.site.publish_watermarks(self.name, Watermarks(marks))
        self._watermarks, self._watermarks_at = marks, now

    def _notice_claim(self, cameras: Mapping[str, CameraHealth]) -> None:
        """A claim made after our last `alive/` write: a spare took us over while this process
        lived and (as far as we know) held its lease. Confirm afresh, like after a lost lease."""
        token, self._claimed_token = self._claimed_token, None
        if token is None or token <= self._alive_revision or self._published is None:
            return
        holder = self.site.claim_of(self.name)
        if holder is None or holder.token != token:
            return  # released meanwhile, or superseded: the next watch event says
        log.warning("%s took %s over (token %d) while it kept recording: both record now; "
                    "handing back needs two new segments per camera", holder.spare, self.name,
                    token)
        self.events.emit("displaced", self.name,
                         f"{holder.spare} took {self.name} over while it kept recording (it was "
                         "unreachable or frozen for a moment); both record until the handback, "
                         "which needs two new segments per camera; re-insert resolves the "
                         "duplicates", spare=holder.spare, token=token)
        self._confirm_base = {cid: h.segments_committed for cid, h in cameras.items()}
        self._confirm_need = 2
        self._returned_announced = False
        self._published = None

    def tick(self) -> None:
        self._watch()
        cameras = dict(self.health())  # one snapshot per tick, for every decision below
        self.publish_watermarks(cameras)
        self._notice_lost_lease(cameras)
        self._notice_claim(cameras)
        mode = mode_of(cameras, self._confirm_base, self._confirm_need)
        if mode is ServerMode.NOT_RECORDING:
            if self._published is not None:
                self.site.drop_alive(self.name)
                self._published = None
                self.events.emit("not_recording", self.name,
                                 "not every camera is recording: liveness key dropped")
            self.mode = mode
            self._ask_spare_to_let_go(cameras)
            return
        self._withdraw_request()
        keeper = self._lease()
        value = Alive(self.url, self.boot, mode is ServerMode.CONFIRMED)
        if value != self._published:
            first = self._published is None
            self._alive_revision = self.site.publish_alive(self.name, value, keeper)
            self._published = value
            if first:
                self.site.put_owner(self.name, Owner(self.name, self.url))
        self.mode = mode
        if mode is ServerMode.CONFIRMED and not self._returned_announced:
            self._returned_announced = True
            holder = self.site.claim_of(self.name)
            if holder is not None:
                self.events.emit("returned", self.name,
                                 "recording again with a committed segment per camera; "
                                 f"{holder.spare} may hand back")
