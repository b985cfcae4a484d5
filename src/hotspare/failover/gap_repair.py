"""Gap repair: holes in a gapless camera's own recording filled from the designated spare's
pre-buffer (issue 12, docs/failover.md "Gap repair").

A server whose link to its cameras drops for a moment (a flapping link, lost UDP packets, a
session that dropped and came back) keeps its lease and is not taken over, so its recording of
that moment has a hole; the designated spare, on another link, holds those very frames in its
hot-standby pre-buffer. Once a second the spare lists, in one request per server (`GET
/segments?camera=…`; per camera from a server too old for it), the recent segments of every
camera it pre-buffers there; a hole between two of them (more than half a frame) that opened
while its session was buffering is queued for the writer thread, which has it cut out of the
pre-buffer in whole GOPs (`CameraWorker.copy_span`: from the keyframe at or before the hole
through the last GOP before the server's next segment; the demux thread only copies the
packets), writes it as a run of its own into a transient store and uploads it through the
re-insert import
(`X-Hotspare-Repair: gap`, the spare's own credential; `hotspare.api.fencing` lets it in only
while no claim exists and only from a spare whose `standby/` record pre-buffers that server; while
this spare holds the server's claim itself, during its re-insert, under that claim's token).
The importer judges overlap frame by frame, so what the server already holds is dropped and only
the hole's frames are stored. A hole that began before the pre-buffer's oldest frame is reported
(`gap_not_repairable`) once; a repaired one as `gap_repaired`.

Pull, not push: the server's index is the truth about what it holds, whatever made the hole, and
the server needs no new state. Cost: one segment listing per server a second.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from hotspare import metrics
from hotspare.client.node_client import NodeApiError, NodeClient
from hotspare.coordination.errors import CoordinationError
from hotspare.recorder.worker import CameraWorker
from hotspare.site.model import SiteConfig
from hotspare.sitestate.events import EventSink
from hotspare.sitestate.layout import FENCING_HEADER, REPAIR_HEADER, fence
from hotspare.store.models import SegmentInfo, WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.timefmt import format_wall_us
from hotspare.tls import PeerTls
from hotspare.wire import MAX_LIST_CAMERAS, ImportMetaIn, SegmentOut

log = logging.getLogger("hotspare.failover.gap_repair")

REPAIR_EVERY_SECONDS = 1.0
LOOKBACK_SECONDS = 30.0
"""Holes are looked for this far back: older than the pre-buffer's horizon (≈ 10 s) they are
reported as not repairable, older than this they are not looked at any more."""
SPAN_TIMEOUT_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 5.0
QUEUE_SIZE = 256
"""Holes waiting for the writer thread; one found while it is full is looked for again a second
later (`hotspare_gap_repair_queue_full`)."""
PER_CAMERA_SECONDS = 300.0
"""A server too old for the multi-camera listing is listed per camera this long before it is
asked again (it may have been upgraded)."""
HOLE_MIN_FRAMES = 0.5
"""A hole is a stretch between two segments longer than this many frames (clock jitter between
runs is well under a frame)."""


@dataclass(frozen=True)
class Hole:
    from_us: int
    to_us: int

    @property
    def seconds(self) -> float:
        return (self.to_us - self.from_us) / 1e6


class Listed(Protocol):
    """What a segment listing row gives the hole search (`hotspare.wire.SegmentOut`)."""

    @property
    def start_wall_us(self) -> int: ...
    @property
    def end_wall_us(self) -> int: ...
    @property
    def duration_90k(self) -> int: ...
    @property
    def frame_count(self) -> int: ...


def holes_in(segments: Iterable[Listed]) -> list[Hole]:
    """The stretches no listed segment covers between the first and the last (any recorder:
    an imported segment covers its stretch too), longer than HOLE_MIN_FRAMES of the segment
    before them."""
    holes: list[Hole] = []
    reach: int | None = None
    frame_us = 0.0
    for segment in sorted(segments, key=lambda s: s.start_wall_us):
        if reach is not None and segment.start_wall_us - reach > HOLE_MIN_FRAMES * frame_us:
            holes.append(Hole(reach, segment.start_wall_us))
        if reach is None or segment.end_wall_us > reach:
            reach = segment.end_wall_us
            if segment.frame_count > 0:
                frame_us = segment.duration_90k * 100 / 9 / segment.frame_count  # µs
    return holes


Sessions = Callable[[], dict[tuple[str, str], CameraWorker]]
"""(server, camera) → the spare's standby worker (`StandbyPool.sessions`)."""
Connect = Callable[[str], NodeClient | None]
"""A client of a recording server, by name (None: not in the site)."""
Fence = Callable[[str], int | None]
"""This spare's claim token on a server while it holds the claim (None: no claim of ours)."""


@dataclass(frozen=True)
class _Job:
    """A hole for the writer thread."""

    server: str
    camera: str
    worker: CameraWorker
    hole: Hole

    @property
    def key(self) -> tuple[str, str, int]:
        return self.server, self.camera, self.hole.from_us


class GapRepair:
    """Two threads of the spare: one finds holes, the other has their frames cut out of the
    pre-buffers, writes and uploads them (a slow upload or disk does not delay the search)."""

    def __init__(self, spare: str, sessions: Sessions, connect: Connect, events: EventSink,
                 store_root: Path, claimed: Fence = lambda server: None,
                 covered_until: Callable[[str], int] = lambda server: 0,
                 queue_size: int = QUEUE_SIZE) -> None:
        """`store_root`: where a span is written before its upload; emptied here (what an
        earlier process left there is a copy of a pre-buffer, worthless after a restart).
        `claimed`: while this spare holds the server's claim (its re-insert, after its recorder
        stopped, with standby sessions held through it: handback.py), a repair is an upload
        under that claim, with its fencing token, not a repair without claim.
        `covered_until`: wall µs up to which the server was covered by a claim (any spare's):
        a hole before it is the takeover's, which its re-insert fills; judging it here reported
        covered time as lost (`gap_not_repairable`) on backup and handback standby sessions."""
        self.spare = spare
        self._sessions = sessions
        self._connect = connect
        self._claimed = claimed
        self._covered_until = covered_until
        self._events = events
        self._root = store_root
        shutil.rmtree(store_root, ignore_errors=True)
        self._stores: dict[str, SegmentStore] = {}  # the writer's
        # Kept alive between passes (one TLS setup); the finder's listings and the writer's
        # uploads each on their own (an upload marks its client's headers).
        self._clients: dict[str, NodeClient] = {}
        self._upload_clients: dict[str, NodeClient] = {}
        self._per_camera_until: dict[str, float] = {}  # server → monotonic s (too old to batch)
        self._down_until: dict[str, float] = {}  # server → monotonic s its uploads wait for
        self._lock = threading.Lock()  # the hole records below, shared by both threads
        self._settled: dict[tuple[str, str, int], int] = {}  # (server, camera, from) → to
        self._told: dict[tuple[str, str, int], int] = {}  # holes reported or warned about once
        self._told_full: dict[tuple[str, str, int], int] = {}  # holes the full queue turned away
        self._queued: set[tuple[str, str, int]] = set()  # in the queue or being written
        self._jobs: queue.Queue[_Job | None] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gap-repair", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="gap-repair-writer",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._writer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2 * REQUEST_TIMEOUT_SECONDS)
        while True:  # nobody queues any more: what waits is dropped, then the writer told
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        self._jobs.put_nowait(None)
        if self._writer.is_alive():
            self._writer.join(SPAN_TIMEOUT_SECONDS + 2 * REQUEST_TIMEOUT_SECONDS)
        for store in self._stores.values():
            store.close()
        self._stores.clear()
        for clients in (self._clients, self._upload_clients):
            for client in clients.values():
                client.close()
            clients.clear()

    def _run(self) -> None:
        while not self._stop.wait(REPAIR_EVERY_SECONDS):
            try:
                self.repair_once()
            except Exception:  # a bug must not end the repairs for good
                log.exception("gap repair pass failed; trying again in %.0f s",
                              REPAIR_EVERY_SECONDS)

    def repair_once(self) -> None:
        """One search over every camera this spare pre-buffers: its holes are queued for the
        writer thread (`write_queued` writes them on the caller's thread instead)."""
        by_server: dict[str, list[tuple[str, CameraWorker, int]]] = {}
        for (server, camera), worker in sorted(self._sessions().items()):
            since = worker.standby_since_us
            if since is not None and worker.in_standby:
                by_server.setdefault(server, []).append((camera, worker, since))
        for server in set(self._clients) - set(by_server):
            self._clients.pop(server).close()
        now = time.time_ns() // 1000
        self._forget_before(now - int(LOOKBACK_SECONDS * 1e6))
        for server, cameras in by_server.items():
            if self._stop.is_set():
                return
            client = self._clients.get(server) or self._connect(server)
            if client is None:
                continue
            self._clients[server] = client
            listed = self._list(server, client, [c for c, _, _ in cameras], now)
            if listed is None:
                # The server does not answer now: a fresh connection at the next pass.
                self._clients.pop(server).close()
                continue
            covered = self._covered_until(server)
            for camera, worker, since in cameras:
                for hole in holes_in(listed.get(camera, ())):
                    if hole.from_us >= max(since, covered):
                        self._queue(_Job(server, camera, worker, hole))

    def _list(self, server: str, client: NodeClient, cameras: list[str],
              now: int) -> dict[str, list[SegmentOut]] | None:
        """The server's segments of the look-back, by camera: one request (per 256 cameras),
        or one per camera from a server that does not know that route yet (version skew).
        None when the server does not answer."""
        from_us = now - int(LOOKBACK_SECONDS * 1e6)
        listed: dict[str, list[SegmentOut]] = {}
        try:
            if time.monotonic() >= self._per_camera_until.get(server, 0.0):
                try:
                    for at in range(0, len(cameras), MAX_LIST_CAMERAS):
                        answer = client.list_cameras_segments(
                            cameras[at:at + MAX_LIST_CAMERAS], from_us, now)
                        listed.update((one.camera_id, one.segments) for one in answer.cameras)
                    return listed
                except NodeApiError as exc:
                    if exc.status != 404 or exc.error != "not_found":
                        raise
                    log.info("gap repair: %s does not know the multi-camera segment listing "
                             "(an older version); listing its %d camera(s) one request each "
                             "(asked again in %.0f s)", server, len(cameras), PER_CAMERA_SECONDS)
                    self._per_camera_until[server] = time.monotonic() + PER_CAMERA_SECONDS
            for camera in cameras:
                listed[camera] = client.list_segments(camera, from_us, now).segments
        except (httpx.HTTPError, NodeApiError) as exc:
            log.debug("gap repair: cannot list %s's segments: %s", server, exc)
            return None
        return listed

    def _queue(self, job: _Job) -> None:
        with self._lock:
            if job.key in self._settled or job.key in self._queued:
                return
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                first = job.key not in self._told_full
                self._told_full[job.key] = job.hole.to_us
            else:
                self._queued.add(job.key)
                return
        metrics.GAP_REPAIR_QUEUE_FULL.labels(job.server).inc()
        log.log(logging.WARNING if first else logging.DEBUG,
                "gap repair of %s's %s (%.2f s from %s) waits: %d holes are queued already "
                "(the uploads to the servers are slow, or very many holes opened at once); "
                "looked for again each second while %s's pre-buffer holds it",
                job.server, job.camera, job.hole.seconds, format_wall_us(job.hole.from_us),
                self._jobs.maxsize, self.spare)

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._write(job)

    def write_queued(self) -> None:
        """Write every hole queued so far on this thread (tests; the writer thread not run)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._write(job)

    def _write(self, job: _Job) -> None:
        try:
            if self._stop.is_set() or time.monotonic() < self._down_until.get(job.server, 0.0):
                return  # its server did not answer just now: found again at a later pass
            client = self._upload_clients.get(job.server) or self._connect(job.server)
            if client is None:
                return
            self._upload_clients[job.server] = client
            if not self._repair(job.server, job.camera, job.worker, client, job.hole):
                self._upload_clients.pop(job.server).close()
                self._down_until[job.server] = time.monotonic() + REPAIR_EVERY_SECONDS
        except Exception:  # a bug must not end the repairs for good
            log.exception("gap repair of %s's %s failed", job.server, job.camera)
        finally:
            with self._lock:
                self._queued.discard(job.key)

    def _forget_before(self, oldest_us: int) -> None:
        with self._lock:
            for known in (self._settled, self._told, self._told_full):
                for key, to_us in list(known.items()):
                    if to_us < oldest_us:
                        del known[key]

    def _settle(self, key: tuple[str, str, int], to_us: int) -> None:
        with self._lock:
            self._settled[key] = to_us

    def _first_time(self, key: tuple[str, str, int], to_us: int) -> bool:
        """True the first time a hole is to be told about (its later retries stay quiet)."""
        with self._lock:
            if key in self._told:
                return False
            self._told[key] = to_us
            return True

    def _store(self, server: str) -> SegmentStore:
        store = self._stores.get(server)
        if store is None:
            store = SegmentStore.open(self._root / server, self.spare)
            self._stores[server] = store
        return store

    def _repair(self, server: str, camera: str, worker: CameraWorker, client: NodeClient,
                hole: Hole) -> bool:
        """Fill one hole; False when the server did not answer (tried again next pass)."""
        store = self._store(server)
        copy = worker.copy_span(hole.from_us, hole.to_us, store, SPAN_TIMEOUT_SECONDS)
        if copy is None:
            return True  # not pre-buffering now (taken over, reconnecting): nothing to give
        key = (server, camera, hole.from_us)
        reach = copy.reach_wall_us
        if (reach is None or reach > hole.from_us) and self._first_time(key, hole.to_us):
            lost_to = hole.to_us if reach is None else min(hole.to_us, reach)
            self._not_repairable(server, camera, Hole(hole.from_us, lost_to))
        run = store.get_run(copy.run_id) if copy.run_id is not None else None
        segments = [s for s in store.list_recorded_as(server) if s.run_id == copy.run_id] \
            if run is not None else []
        if run is not None and run.wall_source is not WallSource.CAMERA:
            # Timed by our clock (no sender report yet): the importer could not tell the frames
            # the server holds from new ones and would store them twice; the next pass may find
            # the session timed by the camera.
            log.info("gap repair of %s's %s: the pre-buffer's span is not timed by the camera's "
                     "clock yet; not sent, tried again", server, camera)
            _drop(store, segments)
            return True
        frames = stored = 0
        answered = True
        _mark(client, server, self._claimed(server))
        try:
            for segment in segments:
                assert run is not None
                out = client.import_segment(segment.camera_id, ImportMetaIn.of(segment, run),
                                            store.segment_file(segment))
                if out.segment is not None and out.status != "duplicate":
                    stored += 1
                    frames += (out.segment.frame_count - out.segment.head_skip_frames
                               - out.segment.tail_skip_frames)
        except NodeApiError as exc:
            if exc.error != "fencing_required":
                level = logging.WARNING if self._first_time(key, hole.to_us) else logging.DEBUG
                log.log(level, "gap repair of %s's %s (%.2f s from %s) refused by %s: %s; trying "
                            "again while the pre-buffer holds it", server, camera, hole.seconds,
                            format_wall_us(hole.from_us), server, exc.detail)
            elif self._claimed(server) is None:
                # Another spare claimed the server meanwhile: its re-insert brings the video home.
                self._settle(key, hole.to_us)
        except httpx.HTTPError as exc:
            log.debug("gap repair of %s's %s: upload failed (%s); next pass", server, camera, exc)
            answered = False
        else:
            self._settle(key, hole.to_us)
        finally:
            _drop(store, segments)
        if stored:  # every stored import has its event (the chaos soak's stale-import check)
            self._repaired(server, camera, hole, frames)
        return answered

    def _repaired(self, server: str, camera: str, hole: Hole, frames: int) -> None:
        metrics.GAP_REPAIRED_FRAMES.labels(server, camera).inc(frames)
        message = (f"{self.spare} repaired a {hole.seconds:.2f} s gap in {server}'s recording of "
                   f"{camera} from {format_wall_us(hole.from_us)}: {frames} frame(s) from its "
                   f"hot-standby pre-buffer ({server}'s own session lost them: its link dropped "
                   "or the session was cut)")
        log.info("%s", message)
        self._emit("gap_repaired", server, message, camera=camera,
                   seconds=round(hole.seconds, 3), frames=frames, from_us=hole.from_us,
                   to_us=hole.to_us)

    def _not_repairable(self, server: str, camera: str, lost: Hole) -> None:
        metrics.GAP_UNREPAIRED_SECONDS.labels(server, camera).inc(lost.seconds)
        message = (f"{self.spare} cannot repair {lost.seconds:.2f} s of a gap in {server}'s "
                   f"recording of {camera} from {format_wall_us(lost.from_us)}: that video is "
                   "older than its hot-standby pre-buffer reaches, so it is lost. Check the "
                   f"network between {server} and the camera, and that {server} answers "
                   f"{self.spare} (the repair asks it for its segments every second)")
        log.warning("%s", message)
        self._emit("gap_not_repairable", server, message, camera=camera,
                   seconds=round(lost.seconds, 3), from_us=lost.from_us, to_us=lost.to_us)

    def _emit(self, kind: str, server: str, message: str, **data: object) -> None:
        try:
            self._events.emit(kind, server, message, **data)
        except CoordinationError as exc:
            log.warning("event %s for %s not written (etcd: %s)", kind, server, exc)


def _mark(client: NodeClient, server: str, token: int | None) -> None:
    """A gap repair without a claim, or an upload under our claim (the writer thread owns
    `client`)."""
    headers = client._http.headers
    if token is None:
        headers.pop(FENCING_HEADER, None)
        headers[REPAIR_HEADER] = "gap"
    else:
        headers.pop(REPAIR_HEADER, None)
        headers[FENCING_HEADER] = fence(server, token)


def _drop(store: SegmentStore, segments: Sequence[SegmentInfo]) -> None:
    """The span's copy goes after its attempt: a later pass cuts it afresh if needed."""
    ids = [s.segment_id for s in segments]
    if ids:
        store.set_reinsert_pending(ids, False)
        store.delete_segments(ids)


def site_connect(peers: PeerTls, token: str, config: Callable[[], SiteConfig | None]) -> Connect:
    """Clients of the site's recording servers by name, with this node's own credential
    (`token`: the original knows the sender by it)."""
    def connect(server: str) -> NodeClient | None:
        site = config()
        target = None if site is None else site.recording_server(server)
        if target is None:
            return None
        return NodeClient.for_peer(peers, target.address, token, REQUEST_TIMEOUT_SECONDS)
    return connect
