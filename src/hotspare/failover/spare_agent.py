"""A failover server's reconcile loop: one state machine (spare_states.py), four jobs.

Level-triggered: every tick reads the site once (`SiteState`, one etcd revision; watches only
wake it early), so a missed or repeated notification cannot lead it astray. Per state, one job
runs and returns a signal; `next_state` says where the signal leads, and `_enter` does what
entering that state takes:

    Idle         leftover buffers; detection (spare_detect), claim (takeover)
                 -> LeftoverReady, ClaimWon
    Covering     prove the claim, follow the config (takeover); handback (handback)
                 -> Refused, Confirmed
    Reinserting  re-insert slices (reinsert_job); without a claim, detection first
                 -> BufferEmpty, FailedAgain, Refused, ClaimWon

Everything done under a claim carries its fencing token, and a stand-down always tries to release
the claim (fenced, so it never deletes another's): a claim left behind would keep every spare off
that server until this one restarted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from hotspare.config.models import SiteMembership
from hotspare.failover import handback, takeover
from hotspare.failover.buffer_room import RoomGauge, may_claim
from hotspare.failover.detection import ServerTrack
from hotspare.failover.gap_repair import GapRepair, site_connect
from hotspare.failover.probe import HealthProber
from hotspare.failover.probe_watch import ProbeWatch
from hotspare.failover.rate_limit import RateLimiter
from hotspare.failover.reinsert import buffered_segments
from hotspare.failover.reinsert_job import ReinsertJob
from hotspare.failover.spare_detect import Detector
from hotspare.failover.spare_states import (
    ClaimWon,
    Covering,
    Idle,
    LeftoverReady,
    Refused,
    Reinserting,
    Signal,
    SpareMode,
    next_state,
)
from hotspare.failover.spare_view import SpareView
from hotspare.failover.spare_work import AppliedSource, Coverage, SpareContext
from hotspare.failover.stand_down import stand_down
from hotspare.failover.standby_pool import StandbyPool
from hotspare.failover.ticker import run_ticks
from hotspare.site.eligibility import SpareState, SpareStatus
from hotspare.site.model import RecordingServerConfig
from hotspare.site.standby_plan import plan_standby
from hotspare.sitestate.access import HeldLease, SiteAccess
from hotspare.sitestate.events import EventSink
from hotspare.sitestate.snapshot import SiteState
from hotspare.sitestate.values import SpareRecord
from hotspare.store.segment_store import SegmentStore

log = logging.getLogger("hotspare.failover.spare")

LEFTOVER_RETRY_SECONDS = 30.0


class SpareAgent:
    def __init__(self, site: SiteAccess, name: str, url: str, token: str, data_dir: Path,
                 settings: SiteMembership, applied: AppliedSource, events: EventSink,
                 view: SpareView, room: RoomGauge | None = None) -> None:
        """`room`: measures this spare's buffer room for its record and its claims (None: not
        published, never standing aside)."""
        self.ctx = SpareContext(name, url, site, events, view, settings, applied)
        self.room = room
        self.name = name
        self.data_dir = data_dir
        self.settings = settings
        self.prober = HealthProber(token, settings.probe_timeout_seconds, settings.tls_ca_file,
                                   lambda: bool(applied.current
                                                and applied.current.config.site.tls))
        self.detector = Detector(self.ctx, self.prober)
        self.probe_watch = ProbeWatch(self.prober, self.connection_closed)
        self.reinsert = ReinsertJob(self.ctx, token, self.prober.peers,
                                    RateLimiter(settings.reinsert_bytes_per_second), self._pause)
        self.state: SpareMode = Idle()
        self.coverage: Coverage | None = None
        self._keeper: HeldLease | None = None
        self._published: SpareRecord | None = None
        self._stores: dict[str, SegmentStore] = {}
        self._retry_at = 0.0
        self.standby = StandbyPool(settings, self._store, data_dir / "standby")
        self.gap_repair = GapRepair(  # holes in a pre-buffered camera's own recording
            name, self.standby.sessions, site_connect(
                self.prober.peers, token,
                lambda: applied.current.config if applied.current else None),
            events, data_dir / "repair", self._claim_token, self._covered_until)
        self._covered_seen: dict[str, int] = {}  # server → wall µs it was last seen covered
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spare-agent", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    @property
    def mode(self) -> str:
        return self.state.name

    def start(self) -> None:
        self._thread.start()
        self.probe_watch.start()
        self.gap_repair.start()

    def wake(self, *_: object) -> None:
        self._wake.set()

    def connection_closed(self, address: str) -> None:
        """A server closed our kept-alive probe connection: perhaps its process died."""
        self.detector.hurry(address)
        self.wake()

    def _pause(self, seconds: float) -> None:
        self._wake.wait(seconds)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.gap_repair.stop()
        self.probe_watch.stop()
        if self._thread.is_alive():
            self._thread.join(15.0)
        cov = self.coverage
        if cov is not None and cov.recorder is not None:
            cov.recorder.stop()
        self.standby.stop_all()
        for store in self._stores.values():
            store.close()
        self.detector.close()
        self.prober.close()
        if self._keeper is not None:
            # Graceful stop: revoking the lease deletes our claim now, so another spare can take
            # over at once instead of after the TTL. Our buffer is re-inserted when we return.
            self._keeper.stop(revoke=True)

    def _covered_until(self, server: str) -> int:
        """Wall µs up to which `server`'s own recording may lack what a claim's re-insert brings
        home (read by the gap repair's thread, which leaves holes before it alone)."""
        return self._covered_seen.get(server, 0)

    def _note_covered(self, site: SiteState) -> None:
        """A server is covered while a claim on it exists and it has not confirmed its return
        since: holes in its own recording up to now are the claim's to fill, not gaps."""
        now = time.time_ns() // 1000
        for server, claim in site.claims.items():
            alive = site.alive.get(server)
            if alive is None or not alive.confirmed_after(claim.token):
                self._covered_seen[server] = now

    def _claim_token(self, server: str) -> int | None:
        """Our claim's token on `server` while we hold it (read by the gap repair's thread)."""
        state = self.state
        if isinstance(state, Covering | Reinserting) and state.server == server:
            return state.token
        return None

    def _run(self) -> None:
        run_ticks(self.tick, self._stop, self._wake, self.settings.probe_interval_seconds, log,
                  f"spare {self.name}")

    def _store(self, server: str) -> SegmentStore:
        store = self._stores.get(server)
        if store is None:
            store = SegmentStore.open(self.data_dir / "buffer" / server, self.name)
            self._stores[server] = store
        return store

    def open_leftover_buffers(self) -> None:
        """At start: a buffer left by an earlier run is re-inserted once its server is back."""
        root = self.data_dir / "buffer"
        if root.is_dir():
            for path in sorted(root.iterdir()):
                if path.is_dir():
                    self._store(path.name)

    # ------------------------------------------------------------------ lease and record

    def _lease(self) -> HeldLease:
        """Our lease, re-granted when lost. Losing it does not by itself stop a covering spare:
        while etcd is unreachable nobody else can claim either, and stopping would turn an etcd
        outage into a recording gap (decision 6). The next fenced write decides: refused means
        someone else holds the claim (or it expired), and the spare stands down at once."""
        if self._keeper is None or self._keeper.assumed_lost():
            if self._keeper is not None:
                log.warning("lease %x lost: %s", self._keeper.id, self._keeper.lost_reason)
                self._keeper.stop(revoke=False)
                self._keeper = None
                if self.coverage is not None:
                    self.coverage.last_heartbeat = 0.0  # prove the claim at the next tick
            self._keeper = self.ctx.site.hold_lease(self.settings.lease_ttl_seconds, "spare")
            self._published = None
            self.standby.forget_published()
        return self._keeper

    def record(self) -> SpareRecord:
        """What `spares/<me>` says. A leftover re-insert holds no claim: to the others this
        spare is free (`idle`, with `leftover`)."""
        state = self.state
        room = None if self.room is None else self.room.room()
        if isinstance(state, Reinserting) and state.token is None:
            return SpareRecord("idle", self.ctx.url, None, leftover=state.server, room=room)
        server = state.server if isinstance(state, Covering | Reinserting) else None
        return SpareRecord(state.name, self.ctx.url, server, room=room)

    def _publish(self, keeper: HeldLease) -> None:
        record = self.record()
        if record != self._published:
            self.ctx.site.publish_spare(self.name, record, keeper)
            self._published = record
        standby = self.standby.due_for_publish()
        if standby is not None:
            self.ctx.site.publish_standby(self.name, standby, keeper)

    def status(self) -> SpareStatus:
        """Our availability for eligibility: covering while we hold a claim."""
        state = self.state
        room = None if self.room is None else self.room.room()
        if isinstance(state, Covering | Reinserting) and state.token is not None:
            return SpareStatus(SpareState.COVERING, state.server, room)
        return SpareStatus(SpareState.IDLE, room=room)

    # ------------------------------------------------------------------ the loop

    def tick(self) -> bool:
        """One reconcile pass; True when there is more work to do at once (re-insert)."""
        keeper = self._lease()
        self.ctx.applied.maybe_reload()
        applied = self.ctx.applied.current
        if applied is None or applied.config.failover_server(self.name) is None:
            self.standby.reconcile([])
            self._publish(keeper)
            return False
        site = self.ctx.site.read()
        self._note_covered(site)
        more = False
        state = self.state
        if isinstance(state, Idle):
            self._apply(self._idle(site, keeper, leftover=True))
        elif isinstance(state, Covering):
            self._apply(self._covering(site, keeper))
        else:
            if state.token is None:  # a leftover re-insert yields to a takeover
                self._idle(site, keeper, leftover=False)
            if self.state is state:
                signal, more = self.reinsert.tick(self._cov(), site)
                self._apply(signal)
        self._publish(keeper)
        return more

    def _idle(self, site: SiteState, keeper: HeldLease, leftover: bool) -> Signal | None:
        """With `leftover`, first look for a leftover buffer whose server is back and confirmed
        (no claim needed: the server owns its identity again; the import is idempotent). Then
        detect and claim; a claim won is applied at once (`_claim`), so that the detection goes
        on with this spare no longer free."""
        applied = self.ctx.applied_now()
        if leftover and time.monotonic() >= self._retry_at:
            for name, store in sorted(self._stores.items()):
                alive = site.alive.get(name)
                if alive is None or not alive.confirmed or not buffered_segments(store, name, 1):
                    continue
                if applied.config.recording_server(name) is None:
                    log.warning("buffer for %s, which is no longer in the site; kept", name)
                    self._retry_at = time.monotonic() + LEFTOVER_RETRY_SECONDS
                    break
                return LeftoverReady(name)
        states = {name: site.spare_status(name) for name in site.spares}
        states[self.name] = self.status()
        plan = plan_standby(applied.config, applied.allotment(), states)
        self.standby.follow(plan.for_spare(self.name), applied.config)
        self.detector.run(site, states, plan, self.status,
                          lambda server, reason, track: self._claim(server, keeper, reason,
                                                                    track, states))
        return None

    def _claim(self, server: RecordingServerConfig, keeper: HeldLease, reason: str,
               track: ServerTrack, states: dict[str, SpareStatus]) -> bool:
        room = None if self.room is None else self.room.room(fresh=True)
        if not may_claim(self.ctx, server, states, room, track, self.data_dir):
            return False
        if not self._buffer_usable(server.name, track):
            return False
        signal = takeover.claim(self.ctx, server, keeper, reason, track)
        if signal is None:
            return False
        previous = self.coverage
        if previous is not None and previous.reinserter is not None:
            previous.reinserter.target.close()  # a leftover re-insert: resumes when idle again
            previous.reinserter = None
        store = self._store(signal.server)
        self.coverage = Coverage(signal.server, signal.token, store, claimed_at=time.monotonic(),
                                 early=takeover.open_sessions(self.ctx, server, store,
                                                              self.standby))
        self._apply(signal)
        if not isinstance(self.state, Covering):
            return False  # the claim was gone at once
        self._publish(keeper)
        return True

    def _buffer_usable(self, server: str, track: ServerTrack) -> bool:
        """Open the server's buffer store before claiming it: a claim won by a spare that then
        cannot open its store (disk full: SQLite refuses even to open its log) was held forever
        with no one recording (chaos soak, `takeover_on_full_disk`). Refused instead, with a
        `refused` event once per episode, so another spare claims (after the designated grace)."""
        try:
            self._store(server)
        except (sqlite3.Error, OSError) as exc:
            text = (f"{self.name} may not take over: its buffer store for {server} cannot be "
                    f"opened ({exc}); free space on {self.name}'s data disk "
                    f"({self.data_dir})")
            if track.refusal_reported != text:
                track.refusal_reported = text
                log.warning("%s", text)
                self.ctx.events.emit("refused", server, text, reasons=["buffer_unusable"])
            return False
        return True

    def _covering(self, site: SiteState, keeper: HeldLease) -> Signal | None:
        cov = self._cov()
        refused = takeover.prove(self.ctx, cov, keeper)
        if refused is not None:
            return refused
        # Covering, this spare cannot take a second server; once the original is back, standby
        # sessions to its gapless cameras, held through the re-insert (handback.py).
        self.standby.reconcile(handback.kept_standby(self.ctx, cov)
                               if handback.returned(cov, site) else [])
        handback.release_blocked(self.ctx, cov, site)
        takeover.follow(self.ctx, cov)
        return handback.due(self.ctx, cov, site, self.standby)

    def _cov(self) -> Coverage:
        assert self.coverage is not None
        return self.coverage

    # ------------------------------------------------------------------ transitions

    def _apply(self, signal: Signal | None) -> None:
        if signal is None:
            return
        before, after = self.state, next_state(self.state, signal)
        self.state = after
        log.debug("spare %s: %s --%s--> %s", self.name, before, type(signal).__name__, after)
        self._enter(before, after, signal)

    def _enter(self, before: SpareMode, after: SpareMode, signal: Signal) -> None:
        if isinstance(signal, Refused):
            assert isinstance(before, Covering | Reinserting)
            self._stand_down(before.server, before.token, signal)
        elif isinstance(after, Covering):
            self._cover(after, again=not isinstance(signal, ClaimWon))
        elif isinstance(after, Reinserting):
            self._begin_reinsert(after)
        elif isinstance(after, Idle):
            self.coverage = None
            self.ctx.view.show(None, None, set())

    def _begin_reinsert(self, state: Reinserting) -> None:
        cov = self.coverage
        if cov is None or cov.server != state.server:
            cov = self.coverage = Coverage(state.server, state.token, self._store(state.server))
        if not self.reinsert.begin(cov):
            self._apply(Refused("the server left the site configuration", proven=False))

    def _cover(self, state: Covering, again: bool) -> None:
        """Won a claim (owner record, then record), or the original failed again mid re-insert
        (under our claim we cover it again)."""
        server = self.ctx.applied_now().config.recording_server(state.server)
        refused = (Refused("the server left the site configuration", proven=False)
                   if server is None else None if again else
                   takeover.own(self.ctx, state.server, state.token))
        if refused is not None or server is None:
            self._apply(refused)
            return
        if again:
            self.ctx.events.emit("suspected", state.server, "failed again during re-insert; "
                                 f"{self.name} records it again under token {state.token}")
        takeover.start_recorder(self.ctx, self._cov(), server, self.standby)

    def _stand_down(self, server: str, token: int | None, why: Refused) -> None:
        stand_down(self.ctx, self.coverage, server, token, why)
        self.coverage = None
