"""A failover server's reconcile loop: detect, claim, assume identity, hand back, re-insert.

Level-triggered: every tick re-reads what it needs from etcd (watches only wake it early), so a
missed or repeated notification cannot lead it astray. States (docs/failover.md):

    idle ──failed server, eligible, claim won──▶ covering ──original confirmed──▶ reinserting
      ▲                                            │  ▲                               │
      └──────── lease lost / stale token ◀─────────┘  └── original failed again ──────┤
      └─────────────────────────── buffer empty, claim released ◀─────────────────────┘

Everything done under a claim carries its fencing token: etcd writes are fenced puts, and each
re-insert upload is preceded by a fenced progress write, so a spare that was frozen past its lease
is refused at its first step and stands down.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hotspare.client.node_client import NodeApiError, NodeClient
from hotspare.config.models import SiteMembership
from hotspare.coordination.errors import CoordinationError, FencingError
from hotspare.coordination.etcd_adapter import Coordinator, LeaseKeeper
from hotspare.coordination.models import KeyValue
from hotspare.failover import keys
from hotspare.failover.detection import ServerTrack, judge
from hotspare.failover.events import EventLog
from hotspare.failover.probe import HealthProber
from hotspare.failover.reinsert import (
    FENCING_HEADER,
    Fence,
    NotYet,
    RateLimiter,
    Reinserter,
    buffered_segments,
)
from hotspare.failover.site_view import SiteView
from hotspare.failover.standby_pool import DESIGNATED_GRACE_SECONDS, StandbyPool, status_json
from hotspare.failover.ticker import run_ticks
from hotspare.recorder.engine import Recorder
from hotspare.recorder.health import CameraState
from hotspare.site.eligibility import DOWN, SpareState, SpareStatus, can_spare_take
from hotspare.site.model import RecordingServerConfig
from hotspare.site.standby_plan import StandbyPlan, plan_standby
from hotspare.store.models import SegmentInfo
from hotspare.store.segment_store import SegmentStore

log = logging.getLogger("hotspare.failover.spare")

HEARTBEAT_SECONDS = 1.0
REINSERT_SLICE_SECONDS = 0.5


@dataclass
class Coverage:
    """The one server this spare acts for, and the claim it acts under."""

    server: str
    token: int | None
    store: SegmentStore
    recorder: Recorder | None = None
    claimed_at: float = 0.0
    recording_announced: bool = False
    last_heartbeat: float = 0.0
    reinserter: Reinserter | None = None
    last_report: float = 0.0
    cameras: tuple[Any, ...] = ()
    gapless_wanted: tuple[str, ...] = ()
    released: set[str] = field(default_factory=set)
    """Cameras let go because the returning server could not get a session for them."""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def fence(self) -> Fence | None:
        return None if self.token is None else Fence(keys.claim(self.server), self.token)


class SpareView:
    """What the spare's own API shows: the buffer store and recorder of the server it acts for."""

    def __init__(self, idle_store: SegmentStore, on_store: Callable[[SegmentStore], None]) -> None:
        self.idle_store = idle_store
        self._on_store = on_store
        self._recorder: Recorder | None = None
        self._cameras: set[str] = set()

    def show(self, store: SegmentStore | None, recorder: Recorder | None,
             cameras: set[str]) -> None:
        self._recorder = recorder
        self._cameras = cameras
        self._on_store(store or self.idle_store)

    def health(self) -> dict[str, Any]:
        recorder = self._recorder
        return dict(recorder.health()) if recorder is not None else {}

    def known_cameras(self) -> set[str]:
        return set(self._cameras)


class SpareAgent:
    def __init__(self, coord: Coordinator, name: str, url: str, token: str, data_dir: Path,
                 settings: SiteMembership, site: SiteView, events: EventLog,
                 view: SpareView) -> None:
        self.coord = coord
        self.name = name
        self.url = url
        self.token = token
        self.data_dir = data_dir
        self.settings = settings
        self.site = site
        self.events = events
        self.view = view
        self.prober = HealthProber(token, settings.probe_timeout_seconds, settings.tls_ca_file,
                                   lambda: bool(site.current and site.current.config.site.tls))
        self._probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")
        self.limiter = RateLimiter(settings.reinsert_bytes_per_second)
        self.tracks: dict[str, ServerTrack] = {}
        self.coverage: Coverage | None = None
        self.mode = "idle"
        self._keeper: LeaseKeeper | None = None
        self._published: str | None = None
        self._stores: dict[str, SegmentStore] = {}
        self._retry_at = 0.0
        self._failed_at: dict[str, float] = {}  # server -> when first judged failed (grace)
        self.standby = StandbyPool(settings, self._store, _reinsert_flagger,
                                   data_dir / "standby")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spare-agent", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread.start()

    def wake(self, *_: object) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(15.0)
        cov = self.coverage
        if cov is not None and cov.recorder is not None:
            cov.recorder.stop()
        self.standby.stop_all()
        for store in self._stores.values():
            store.close()
        self._probes.shutdown(wait=False)
        self.prober.close()
        if self._keeper is not None:
            # Graceful stop: revoking the lease deletes our claim now, so another spare can take
            # over at once instead of after the TTL. Our buffer is re-inserted when we return.
            self._keeper.stop(revoke=True)

    def _run(self) -> None:
        run_ticks(self.tick, self._stop, self._wake, self.settings.probe_interval_seconds, log,
                  f"spare {self.name}")

    # ------------------------------------------------------------------ etcd state

    def _lease(self) -> LeaseKeeper:
        """Our lease, re-granted when lost.

        Losing the lease does not by itself stop a covering spare: while etcd is unreachable
        nobody else can claim either, and stopping would turn an etcd outage into a recording gap
        (decision 6). The next fenced write decides: refused means someone else holds the claim
        (or it expired), and the spare stands down at once.
        """
        if self._keeper is None or self._keeper.assumed_lost():
            if self._keeper is not None:
                log.warning("lease %x lost: %s", self._keeper.id, self._keeper.lost_reason)
                self._keeper.stop(revoke=False)
                self._keeper = None
                self._published = None
                self.standby.forget_published()
                if self.coverage is not None:
                    self.coverage.last_heartbeat = 0.0  # prove the claim at the next tick
            self._keeper = self.coord.hold_lease(self.settings.lease_ttl_seconds, role="spare")
            self._published = None
            self.standby.forget_published()
        return self._keeper

    def _publish(self, keeper: LeaseKeeper) -> None:
        cov = self.coverage
        if cov is not None and cov.token is None:
            # A leftover buffer's re-insert holds no claim: to the others this spare is free.
            state = {"state": "idle", "covering": None, "leftover": cov.server}
        else:
            state = {"state": self.mode, "covering": cov.server if cov else None}
        value = json.dumps({**state, "url": self.url}, sort_keys=True)
        if value != self._published:
            self.coord.put(keys.spare(self.name), value, lease=keeper.lease)
            self._published = value
        standby = self.standby.due_for_publish()
        if standby is not None:
            self.coord.put(keys.standby(self.name), status_json(standby), lease=keeper.lease)

    def _status(self) -> SpareStatus:
        if self.coverage is not None and self.coverage.token is not None:
            return SpareStatus(SpareState.COVERING, self.coverage.server)
        return SpareStatus(SpareState.IDLE)

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

    # ------------------------------------------------------------------ the loop

    def tick(self) -> bool:
        """One reconcile pass; True when there is more work to do at once (re-insert)."""
        keeper = self._lease()
        self.site.maybe_reload()
        applied = self.site.current
        if applied is None or applied.config.failover_server(self.name) is None:
            self.standby.reconcile([])
            self._publish(keeper)
            return False
        if self.mode == "covering":
            self._covering_tick(keeper)
        elif self.mode == "reinserting":
            cov = self.coverage
            if cov is not None and cov.token is None and self._idle_tick(keeper, leftover=False):
                self._publish(keeper)  # a leftover re-insert yields to a takeover
                return False
            more = self._reinsert_tick(keeper)
            self._publish(keeper)
            return more
        else:
            self._idle_tick(keeper)
        self._publish(keeper)
        return False

    def _idle_tick(self, keeper: LeaseKeeper, leftover: bool = True) -> bool:
        """Detect and claim; True when a claim was won. With `leftover`, first look for a
        leftover buffer to re-insert (a re-insert without a claim keeps the spare free, so its
        loop calls this with `leftover=False` between segments and yields to a takeover)."""
        applied = self.site.current
        assert applied is not None
        alive = self.coord.get_prefix(keys.ALIVE_PREFIX).by_key()
        claims = self.coord.get_prefix(keys.CLAIMS_PREFIX).by_key()
        # A leftover buffer whose server is back and recording: re-insert it (no claim needed:
        # the server is its own owner again; the import is idempotent).
        if leftover and time.monotonic() >= self._retry_at:
            for name, store in sorted(self._stores.items()):
                kv = alive.get(keys.alive(name))
                if kv is not None and _confirmed(kv) and buffered_segments(store, name, 1):
                    self._begin_reinsert(name, store, token=None)
                    return False
        spares = self.coord.get_prefix(keys.SPARES_PREFIX).by_key()
        states = {k.removeprefix(keys.SPARES_PREFIX): _spare_status(v) for k, v in spares.items()}
        states[self.name] = self._status()
        allotment = applied.allotment()
        me = applied.config.failover_server(self.name)
        assert me is not None
        plan = plan_standby(applied.config, allotment, states)
        self._reconcile_standby(plan)
        servers = sorted(applied.config.recording_servers, key=lambda s: s.name)
        unclaimed = [s for s in servers if keys.claim(s.name) not in claims]
        claimed = False
        for server in servers:
            if keys.claim(server.name) in claims:
                self.tracks.setdefault(server.name, ServerTrack()).clear()  # someone acts for it
        # In parallel: one hung host must not delay the detection of every other server.
        probes = dict(zip([s.name for s in unclaimed],
                          self._probes.map(lambda s: self.prober.probe(s.address), unclaimed),
                          strict=True))
        for server in unclaimed:
            track = self.tracks.setdefault(server.name, ServerTrack())
            probe = probes[server.name]
            now = time.monotonic()
            verdict = judge(track, keys.alive(server.name) in alive, probe, now,
                            self.settings.startup_grace_seconds)
            if verdict.suspect and not track.announced:
                track.announced = True
                self.events.emit("suspected", server.name, verdict.reason)
            if not verdict.failed:
                self._failed_at.pop(server.name, None)
                continue
            failed_at = self._failed_at.setdefault(server.name, now)
            designated = plan.designated(server.name)
            if (designated not in (None, self.name)
                    and states.get(designated, DOWN).state is SpareState.IDLE
                    and now - failed_at < DESIGNATED_GRACE_SECONDS):
                continue  # its gapless cameras' pre-buffer is there: let it claim first
            decision = can_spare_take(me, server, allotment, states[self.name])
            if not decision.allowed:
                text = "; ".join(f.message for f in decision.findings)
                if track.refusal_reported != text:
                    track.refusal_reported = text
                    self.events.emit("refused", server.name, f"{self.name} may not take over: "
                                     f"{text}", reasons=[r.value for r in decision.reasons])
                continue
            if self._claim(server, keeper, verdict.reason, track):
                self._failed_at.pop(server.name, None)
                # Go on through the list: other servers that failed together are now refused
                # with "spare not free", so the operator learns of them at once.
                claimed = True
                states[self.name] = self._status()
        return claimed

    def _claim(self, server: RecordingServerConfig, keeper: LeaseKeeper, reason: str,
               track: ServerTrack) -> bool:
        value = json.dumps({"spare": self.name, "url": self.url, "lease": keeper.id,
                            "at_us": time.time_ns() // 1000})
        started = time.monotonic()
        result = self.coord.create_if_absent(keys.claim(server.name), value, lease=keeper.lease)
        if not result.created or result.kv is None:
            holder = result.kv.json().get("spare") if result.kv is not None else "?"
            log.info("claim on %s lost to %s", server.name, holder)
            return False
        token = result.kv.create_revision
        previous = self.coverage
        if previous is not None and previous.reinserter is not None:
            previous.reinserter.target.close()  # a leftover re-insert: resumes when idle again
        suspected_for = started - (track.suspect_since or started)
        self.events.emit("claimed", server.name,
                         f"{self.name} claimed {server.name} (token {token}): {reason}",
                         token=token, detected_after_s=round(suspected_for, 3),
                         claim_ms=round((time.monotonic() - started) * 1000, 1))
        track.clear()
        cov = Coverage(server.name, token, self._store(server.name), claimed_at=time.monotonic())
        self.coverage = cov
        try:
            self.coord.put_fenced(keys.owner(server.name),
                                  json.dumps({"node": self.name, "url": self.url,
                                              "token": token}),
                                  claim_key=keys.claim(server.name), token=token)
        except FencingError:
            self._stand_down("claim gone right after it was made")
            return False
        self._start_recorder(cov, server)
        self.mode = "covering"
        self._publish(keeper)
        return True

    def _reconcile_standby(self, plan: StandbyPlan) -> None:
        """Hold exactly the hot-standby sessions the placement gives this spare."""
        applied = self.site.current
        assert applied is not None
        wanted = []
        for assignment in plan.for_spare(self.name):
            server = applied.config.recording_server(assignment.server)
            camera = next((c for c in server.cameras if c.id == assignment.camera), None) \
                if server is not None else None
            if server is not None and camera is not None:
                wanted.append((server, camera))
        self.standby.reconcile(wanted)

    def _watermarks(self, server: str) -> dict[str, int]:
        """The failed server's last published commit watermarks (wall µs per camera)."""
        try:
            kv = self.coord.get(keys.watermarks(server))
            raw = kv.json().get("cameras", {}) if kv is not None else {}
            return {str(c): int(v) for c, v in raw.items()}
        except (CoordinationError, ValueError, TypeError, AttributeError) as exc:
            log.warning("no commit watermarks for %s (%s): gapless cameras write their whole "
                        "pre-buffer", server, exc)
            return {}

    def _start_recorder(self, cov: Coverage, server: RecordingServerConfig) -> None:
        store = cov.store
        cameras = server.failover_cameras()
        standby = self.standby.take(server.name)
        marks = self._watermarks(server.name) if standby else {}
        cov.recorder = Recorder(server.name, cameras, store, server.recording,
                                on_segment=_reinsert_flagger(store), standby=standby,
                                watermarks=marks)
        cov.cameras = tuple(cameras)
        cov.recording_announced = False
        cov.released = set()
        cov.gapless_wanted = tuple(c.id for c in server.gapless_cameras())
        cov.recorder.start()
        self.view.show(store, cov.recorder, {c.id for c in cameras})

    # ------------------------------------------------------------------ covering

    def _covering_tick(self, keeper: LeaseKeeper) -> None:
        cov = self.coverage
        assert cov is not None and cov.token is not None and cov.recorder is not None
        now = time.monotonic()
        if now - cov.last_heartbeat >= HEARTBEAT_SECONDS:
            try:
                self.coord.put_fenced(keys.covering(cov.server),
                                      json.dumps({"spare": self.name, "token": cov.token,
                                                  "at_us": time.time_ns() // 1000}),
                                      claim_key=keys.claim(cov.server), token=cov.token,
                                      lease=keeper.lease)
            except FencingError as exc:
                self._stand_down(f"fenced write refused: {exc}", refused=True)
                return
            cov.last_heartbeat = now
        self.standby.reconcile([])  # covering: this spare cannot take a second server
        applied = self.site.current
        server = applied.config.recording_server(cov.server) if applied else None
        self._release_blocked(cov)
        wanted = [] if server is None else [c for c in server.failover_cameras()
                                            if c.id not in cov.released]
        if server is not None and tuple(wanted) != cov.cameras:
            cov.recorder.update_cameras(wanted)
            cov.cameras = tuple(wanted)
            self.view.show(cov.store, cov.recorder, {c.id for c in wanted})
        health = cov.recorder.health()
        if (not cov.recording_announced and health
                and all(h.state is CameraState.RECORDING for h in health.values())):
            cov.recording_announced = True
            gapless = _gapless_data(cov)
            self.events.emit("recording", cov.server,
                             f"{self.name} records {len(health)} camera(s) as {cov.server}"
                             + _gapless_summary(gapless),
                             after_claim_s=round(now - cov.claimed_at, 3), gapless=gapless)
            short = {c: ("no standby session" if not v["prebuffered"] else
                         "pre-buffer did not reach back to the watermark")
                     for c, v in gapless.items() if not v["covered"]}
            if short:
                self.events.emit("gapless_fallback", cov.server,
                                 f"{self.name}: gapless camera(s) of {cov.server} lost part of "
                                 "the takeover window like standard cameras: "
                                 + "; ".join(f"{c} ({why})" for c, why in sorted(short.items()))
                                 + " (see `hotspare protection`)",
                                 cameras=sorted(short), reasons=short)
        kv = self.coord.get(keys.alive(cov.server))
        # Only a liveness value written after our claim counts: a crashed server's key outlives
        # the process until its lease runs out, still saying `confirmed`.
        if kv is not None and kv.mod_revision > cov.token and _confirmed(kv):
            self.events.emit("handback", cov.server,
                             f"{cov.server} confirmed a committed segment per camera; "
                             f"{self.name} stops recording")
            cov.recorder.stop()
            cov.recorder = None
            self._begin_reinsert(cov.server, cov.store, cov.token)

    def _release_blocked(self, cov: Coverage) -> None:
        """The returning server asks for cameras whose only session we hold (`returning/`): let
        them go, so it can record them and the handback can happen. Their video from now until it
        connects is lost — a few seconds, against a handback that would otherwise never come."""
        kv = self.coord.get(keys.returning(cov.server))
        if kv is None or cov.token is None or kv.mod_revision <= cov.token:
            return
        try:
            asked = {str(c) for c in kv.json().get("blocked", [])}
        except (ValueError, AttributeError):
            return
        new = (asked & {c.id for c in cov.cameras}) - cov.released
        if new:
            cov.released |= new
            self.events.emit("released", cov.server,
                             f"{self.name} stops recording {', '.join(sorted(new))} so that "
                             f"{cov.server} can get their only session; the rest follows at the "
                             "handback", cameras=sorted(new))

    def _stand_down(self, reason: str, refused: bool = False) -> None:
        """Stop acting for the server at once; the buffer stays for a later re-insert."""
        cov = self.coverage
        if cov is None:
            return
        if not refused and cov.token is not None:
            # Prove it: a write under the old token must now be refused.
            try:
                self.coord.put_fenced(keys.covering(cov.server), "{}",
                                      claim_key=keys.claim(cov.server), token=cov.token)
            except FencingError:
                refused = True
            except CoordinationError:
                pass
        if cov.recorder is not None:
            cov.recorder.stop()
            cov.recorder = None
        self.coverage = None
        self.mode = "idle"
        self.view.show(None, None, set())
        self.events.emit("stood_down", cov.server,
                         f"{self.name} stands down for {cov.server}: {reason}",
                         token=cov.token, stale_write_refused=refused)

    # ------------------------------------------------------------------ re-insert

    def _begin_reinsert(self, server: str, store: SegmentStore, token: int | None) -> None:
        applied = self.site.current
        assert applied is not None
        target_cfg = applied.config.recording_server(server)
        if target_cfg is None:
            log.warning("buffer for %s, which is no longer in the site; kept", server)
            self._retry_at = time.monotonic() + 30
            return
        headers = {} if token is None else {FENCING_HEADER: f"{keys.claim(server)}:{token}"}
        client = NodeClient.for_peer(self.prober.peers, target_cfg.address, self.token, 30.0)
        client._http.headers.update(headers)
        cov = self.coverage if self.coverage is not None and self.coverage.server == server \
            else Coverage(server, token, store)
        self.coverage = cov
        cov.reinserter = Reinserter(self.coord, store, server, self.name, self.url, client,
                                    cov.fence, self.limiter)
        cov.reinserter.start()
        self.mode = "reinserting"
        self.view.show(store, None, set())
        p = cov.reinserter.progress
        self.events.emit("reinserting", server, f"re-inserting {p.done}/{p.total} segment(s) "
                         f"from {self.name} into {server}", done=p.done, total=p.total)
        cov.last_report = time.monotonic()

    def _reinsert_tick(self, keeper: LeaseKeeper) -> bool:
        cov = self.coverage
        assert cov is not None and cov.reinserter is not None
        r = cov.reinserter
        kv = self.coord.get(keys.alive(cov.server))
        if kv is None:
            # The original failed again mid re-insert. Under our claim we cover it again.
            r.target.close()
            cov.reinserter = None
            applied = self.site.current
            server = applied.config.recording_server(cov.server) if applied else None
            if cov.token is not None and server is not None:
                self.events.emit("suspected", cov.server, "failed again during re-insert; "
                                 f"{self.name} records it again under token {cov.token}")
                self._start_recorder(cov, server)
                self.mode = "covering"
            else:
                self.coverage = None
                self.mode = "idle"
                self.view.show(None, None, set())
            return False
        deadline = time.monotonic() + REINSERT_SLICE_SECONDS
        try:
            while time.monotonic() < deadline:
                if r.step() is None:
                    self._finish_reinsert(cov)
                    return False
        except FencingError as exc:
            r.target.close()
            cov.reinserter = None
            self._stand_down(f"re-insert refused: {exc}", refused=True)
            return False
        except NotYet:
            return False  # the original is still recording the time of the next segment
        except (NodeApiError, httpx.HTTPError, OSError) as exc:
            log.warning("re-insert into %s paused: %s", cov.server, exc)
            self._wake.wait(1.0)
            return False
        now = time.monotonic()
        if now - cov.last_report >= 2.0:
            cov.last_report = now
            p = r.progress
            self.events.emit("reinserting", cov.server, f"re-inserting {p.done}/{p.total}",
                             done=p.done, total=p.total, bytes=p.bytes)
        return True

    def _finish_reinsert(self, cov: Coverage) -> None:
        r = cov.reinserter
        assert r is not None
        p = r.progress
        r.finish()
        r.target.close()
        released = False
        if cov.token is not None:
            released = self.coord.release_claim(keys.claim(cov.server), cov.token)
        self.events.emit("done", cov.server,
                         f"re-insert from {self.name} complete: {p.done}/{p.total} segment(s), "
                         f"{p.bytes} bytes ({p.duplicates} already held); "
                         + ("claim released" if released else "no claim held"),
                         done=p.done, total=p.total, bytes=p.bytes, duplicates=p.duplicates)
        self.coverage = None
        self.mode = "idle"
        self.view.show(None, None, set())


def _reinsert_flagger(store: SegmentStore) -> Callable[[SegmentInfo], None]:
    """A spare's segments are owed to the server they were recorded for: flag each at commit so
    retention keeps it until re-insert has delivered it."""

    def flag(segment: SegmentInfo) -> None:
        store.set_reinsert_pending([segment.segment_id], True)

    return flag


def _gapless_data(cov: Coverage) -> dict[str, Any]:
    """Per gapless camera, what its hot standby wrote at the takeover (for events and tests)."""
    workers = cov.recorder.workers() if cov.recorder is not None else {}
    out: dict[str, Any] = {}
    for camera_id in cov.gapless_wanted:
        act = workers[camera_id].activation if camera_id in workers else None
        out[camera_id] = {
            "prebuffered": act is not None,
            "covered": bool(act and act.covered),
            "frames": act.frames if act else 0,
            "lead_s": (round((act.from_wall_us - act.first_wall_us) / 1e6, 3)
                       if act and act.from_wall_us and act.first_wall_us else None),
        }
    return out


def _gapless_summary(data: dict[str, Any]) -> str:
    if not data:
        return ""
    covered = sum(1 for v in data.values() if v["covered"])
    return f"; gapless: {covered}/{len(data)} camera(s) written from the commit watermark"


def _confirmed(kv: KeyValue) -> bool:
    try:
        return bool(kv.json().get("confirmed"))
    except (ValueError, AttributeError):
        return False


def _spare_status(kv: KeyValue) -> SpareStatus:
    try:
        raw = kv.json()
    except ValueError:
        return SpareStatus(SpareState.DOWN)
    if raw.get("state") in ("covering", "reinserting") and raw.get("covering"):
        return SpareStatus(SpareState.COVERING, str(raw["covering"]))
    return SpareStatus(SpareState.IDLE)
