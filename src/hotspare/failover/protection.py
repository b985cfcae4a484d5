"""Protection events: every site node watches the live protection report and announces changes.

Who raises protection events: every site node runs a monitor, and the monitors agree through etcd.
Each keeps the last announced state of every server under `protection/<server>` and replaces it
with a compare-and-set on its mod revision; only the node whose write wins emits the event, so an
event is raised once however many nodes notice. Every node rather than the master alone, because
the change that matters most ("the last spare went down", "the master died") must be reported
by whichever node is still up. The report itself is `hotspare.sitestate.protection.live_report`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.failover.ticker import run_ticks
from hotspare.site.protection_change import ServerProtectionState, describe_change
from hotspare.site.report import ProtectionReport
from hotspare.sitestate.access import EtcdSite
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.events import EventLog
from hotspare.sitestate.protection import live_report
from hotspare.sitestate.snapshot import SiteState
from hotspare.sitestate.values import ProtectionRecord

log = logging.getLogger("hotspare.failover.protection")

EVENT_KIND = "protection"
REPORT_REUSE_SECONDS = 5.0
"""A report is made again when the snapshot's keys or the configuration change, and at least
this often by the wall clock (licences expire with time alone). Making it costs ~30 ms of CPU at
200 servers, on every node every second, where the keys it reads rarely change (issue 14)."""


class ProtectionMonitor:
    """Evaluates the live report on a timer (and when woken) and announces changes once per site.

    A state must hold for `settle` seconds before it is announced, so a spare restarting or a
    takeover's few hundred milliseconds between claim and registration do not raise two events.
    A node that has just started waits `start_grace` seconds first: the rest of the site is
    usually starting too, and "spare-1 is down" for the seconds before it registers is noise.
    """

    def __init__(self, coord: Coordinator, node: str, current: Callable[[], AppliedSite | None],
                 events: EventLog, *, interval: float = 1.0, settle: float = 2.0,
                 start_grace: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.coord = coord
        self.site = EtcdSite(coord)
        self.node = node
        self.current = current
        self.events = events
        self.interval = interval
        self.settle = settle
        self.clock = clock
        self.wall = wall
        self._started = clock()
        self.start_grace = start_grace
        self._seen: dict[str, tuple[ServerProtectionState, float]] = {}
        self._report: tuple[Hashable, ProtectionReport] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="protection-monitor",
                                        daemon=True)

    def start(self) -> None:
        self._started = self.clock()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def wake(self, *_: object) -> None:
        self._wake.set()

    def _run(self) -> None:
        def once() -> None:  # tick() returns what it announced, not "more to do"
            self.tick()

        run_ticks(once, self._stop, self._wake, self.interval, log, "protection check")

    def tick(self) -> list[str]:
        """One evaluation; returns the servers whose change this node announced."""
        applied = self.current()
        if applied is None:
            return []
        state = SiteState.read(self.coord)
        wall = self.wall()
        key = (state.fingerprint, applied.mod_revision, id(applied),
               int(wall.timestamp() // REPORT_REUSE_SECONDS))
        if self._report is None or self._report[0] != key:
            self._report = (key, live_report(state, applied, wall))
        report = self._report[1]
        now = self.clock()
        settled: dict[str, ServerProtectionState] = {}
        for protection in report.servers:
            current = ServerProtectionState.of(protection)
            seen = self._seen.get(protection.server)
            if seen is None or seen[0].fingerprint != current.fingerprint:
                self._seen[protection.server] = (current, now)
                seen = (current, now)
            if now - seen[1] >= self.settle:
                settled[protection.server] = current
        for gone in set(self._seen) - {p.server for p in report.servers}:
            del self._seen[gone]
        if now - self._started < self.start_grace:
            return []
        announced = []
        for server, state_now in sorted(settled.items()):
            kv = state.protection.get(server)
            record = state.protection_record(server)
            old = None if record is None else record.state
            if old is not None and old.fingerprint == state_now.fingerprint:
                continue
            written = self.site.swap_protection(
                server, ProtectionRecord(state_now, self.node),
                kv.mod_revision if kv is not None else 0)
            if not written:
                continue  # another node recorded this change first; it announces it
            change = describe_change(server, old, state_now)
            if change is not None:
                self.events.emit(EVENT_KIND, server, change.message, **change.data)
                announced.append(server)
        for server, kv in state.protection.items():
            if applied.config.recording_server(server) is None:
                self.site.drop_protection(server, kv.mod_revision)  # server left the site
        return announced
