"""The protection report, live: configuration + licences + the spares' states in etcd.

`hotspare.site.report.protection_report` is pure; this module feeds it what the running site says:
each spare's registration (`spares/<name>`, lease-bound, so a dead spare's key is gone: *down*),
the claims (`claims/<server>`: the spare holding one is *covering* that server) and the spares'
hot-standby sessions for gapless cameras (`standby/<spare>`), all from one snapshot. The same
function backs `hotspare protection`, `GET /api/v1/site/protection` on every site node, and the
`ProtectionMonitor` that raises an event when a server's protection changes, so the three can
never disagree with each other or with the spares' takeover decisions (`site/eligibility.py`).

Who raises protection events: every site node runs a monitor, and the monitors agree through etcd.
Each keeps the last announced state of every server under `protection/<server>` and replaces it
with a compare-and-set on its mod revision; only the node whose write wins emits the event, so an
event is raised once however many nodes notice. Every node rather than the master alone, because
the change that matters most ("the last spare went down", "the master died") must be reported
by whichever node is still up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from hotspare.api.problems import COMMON_RESPONSES, ApiError, Problem
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import KeyValue
from hotspare.failover import keys
from hotspare.failover.events import EventLog
from hotspare.failover.site_config import AppliedSite
from hotspare.failover.ticker import run_ticks
from hotspare.site.eligibility import DOWN, SpareState, SpareStatus
from hotspare.site.model import SiteConfig
from hotspare.site.protection_change import ServerProtectionState, describe_change
from hotspare.site.report import (
    ProtectionReport,
    StandbySession,
    parse_standby,
    protection_report,
)

log = logging.getLogger("hotspare.failover.protection")

PROTECTION_PREFIX = keys.PROTECTION_PREFIX

EVENT_KIND = "protection"


def protection_key(server: str) -> str:
    return keys.protection(server)


def _spare_value(kv: KeyValue) -> SpareStatus:
    try:
        raw = kv.json()
    except ValueError:
        return DOWN
    if not isinstance(raw, dict):
        return DOWN
    if raw.get("state") in ("covering", "reinserting") and raw.get("covering"):
        return SpareStatus(SpareState.COVERING, str(raw["covering"]))
    return SpareStatus(SpareState.IDLE)


def live_spare_states(coord: Coordinator, site: SiteConfig,
                      revision: int | None = None) -> dict[str, SpareStatus]:
    """Each configured spare's state from one consistent etcd snapshot (at `revision`, if given).

    No registration: down. A claim held by a registered spare makes it covering that server even
    if its own key lags behind (it is published after the claim is won).
    """
    spares = coord.get_prefix(keys.SPARES_PREFIX, revision=revision)
    claims = coord.get_prefix(keys.CLAIMS_PREFIX, revision=spares.revision)
    registered = spares.by_key()
    states: dict[str, SpareStatus] = {}
    for spare in site.failover_servers:
        kv = registered.get(keys.spare(spare.name))
        states[spare.name] = DOWN if kv is None else _spare_value(kv)
    for kv in claims.kvs:
        server = kv.key.removeprefix(keys.CLAIMS_PREFIX)
        try:
            holder = kv.json().get("spare")
        except (ValueError, AttributeError):
            continue
        current = states.get(str(holder))
        if current is not None and current.state is not SpareState.DOWN:
            states[str(holder)] = SpareStatus(SpareState.COVERING, server)
    return states


def live_standby(coord: Coordinator, site: SiteConfig,
                 revision: int | None = None) -> tuple[dict[str, dict[str, StandbySession]], int]:
    """What each configured spare publishes under `standby/<spare>` (lease-bound: a spare that is
    down has none), and the revision read at, so spare states can be read in the same snapshot."""
    result = coord.get_prefix(keys.STANDBY_PREFIX, revision=revision)
    published = result.by_key()
    standby: dict[str, dict[str, StandbySession]] = {}
    for spare in site.failover_servers:
        kv = published.get(keys.standby(spare.name))
        if kv is None:
            continue
        try:
            standby[spare.name] = parse_standby(kv.json())
        except ValueError:
            standby[spare.name] = {}  # unreadable: its sessions show as not running
    return standby, result.revision


def live_report(coord: Coordinator, applied: AppliedSite,
                now: datetime | None = None) -> ProtectionReport:
    """Spare states, claims and standby sessions from one etcd snapshot."""
    standby, revision = live_standby(coord, applied.config)
    return protection_report(applied.config, live_spare_states(coord, applied.config, revision),
                             applied.licences.licences, now or datetime.now(UTC), standby)


def report_json(report: ProtectionReport, applied: AppliedSite) -> dict[str, Any]:
    """The report plus the licences the stored configuration names that do not count."""
    data = report.to_dict()
    data["config_revision"] = applied.mod_revision
    data["refused_licences"] = [
        {"source": r.source, "reason": r.reason.value, "message": str(r)}
        for r in applied.licences.refused
    ]
    return data


def protection_router(source: Callable[[], dict[str, Any]]) -> APIRouter:
    """`GET /site/protection` (mounted under /api/v1 behind the node's bearer token)."""
    router = APIRouter(tags=["site"], responses=COMMON_RESPONSES)

    @router.get(
        "/site/protection",
        summary="Which recording servers are protected, why not, and every spare's licence",
        responses={503: {"model": Problem,
                         "description": "etcd or the site configuration is not available"}},
    )
    def get_protection() -> dict[str, Any]:
        try:
            return source()
        except CoordinationError as exc:
            raise ApiError(503, "etcd_unavailable",
                           f"live spare states cannot be read from etcd: {exc}") from None
        except LookupError as exc:
            raise ApiError(503, "no_site_configuration", str(exc)) from None

    return router


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
        report = live_report(self.coord, applied, self.wall())
        now = self.clock()
        settled: dict[str, ServerProtectionState] = {}
        for protection in report.servers:
            state = ServerProtectionState.of(protection)
            seen = self._seen.get(protection.server)
            if seen is None or seen[0].fingerprint != state.fingerprint:
                self._seen[protection.server] = (state, now)
                seen = (state, now)
            if now - seen[1] >= self.settle:
                settled[protection.server] = state
        for gone in set(self._seen) - {p.server for p in report.servers}:
            del self._seen[gone]
        if now - self._started < self.start_grace:
            return []
        stored = self.coord.get_prefix(PROTECTION_PREFIX).by_key()
        announced = []
        for server, state in sorted(settled.items()):
            kv = stored.get(protection_key(server))
            old = _stored_state(kv)
            if old is not None and old.fingerprint == state.fingerprint:
                continue
            value = json.dumps({**state.to_json(), "node": self.node,
                                "at_us": time.time_ns() // 1000}, sort_keys=True)
            written = self.coord.put_if_revision(protection_key(server), value,
                                                 kv.mod_revision if kv is not None else 0)
            if written is None:
                continue  # another node recorded this change first; it announces it
            change = describe_change(server, old, state)
            if change is not None:
                self.events.emit(EVENT_KIND, server, change.message, **change.data)
                announced.append(server)
        for key, kv in stored.items():
            server = key.removeprefix(PROTECTION_PREFIX)
            if applied.config.recording_server(server) is None:
                self.coord.delete_if_revision(key, kv.mod_revision)  # server left the site
        return announced


def _stored_state(kv: KeyValue | None) -> ServerProtectionState | None:
    if kv is None:
        return None
    try:
        raw = kv.json()
    except ValueError:
        return None
    return ServerProtectionState.from_json(raw) if isinstance(raw, dict) else None
