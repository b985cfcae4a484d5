"""Re-insert: push one spare's buffered segments for one server into that server's store.

Protocol (docs/failover.md, "Re-insert"), per segment, oldest first:
1. check the claim still holds (a fenced write of the progress key, at most every
   PROGRESS_EVERY_SECONDS: a stale token stops here; the original also checks it on every import);
2. upload it to the original's import endpoint, which verifies SHA-256 and indexes it;
3. only after that segment's own acknowledgement, delete its buffer copy (row first, then file).
Up to WINDOW_SEGMENTS uploads are in flight at once (sent oldest first), so one segment's round
trip, fsyncs and index commit overlap the next ones'; a failure sends nothing more, waits for
what is already in flight and deletes only what was acknowledged. A crash between 2 and 3
re-sends segments the original already holds; the import is idempotent and answers `duplicate`,
so nothing is doubled. A crash before 2 leaves the segment in the buffer, so nothing is lost.
Progress in etcd is for operators and resumption statistics, never the source of truth: the
buffer store's remaining rows are.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from hotspare import metrics
from hotspare.client.node_client import NodeApiError, NodeClient
from hotspare.coordination.errors import FencingError
from hotspare.failover.rate_limit import RateLimiter
from hotspare.sitestate import layout
from hotspare.sitestate.layout import FENCING_HEADER
from hotspare.sitestate.values import ReinsertProgress
from hotspare.store.models import SegmentInfo
from hotspare.store.segment_store import SegmentStore
from hotspare.wire import ImportMetaIn, ImportOut

log = logging.getLogger("hotspare.failover.reinsert")

__all__ = ["FENCING_HEADER", "Fence", "FenceUnavailable", "NotYet", "RateLimiter", "Reinserter",
           "buffered_segments"]

REACH_WAIT_SECONDS = 15.0
"""Longest a segment waits for the original to record past it before it is sent anyway."""
PROGRESS_EVERY_SECONDS = 0.5
"""Progress goes to etcd at most this often: one write per segment cost ~4.5 ms of ~17 ms.
Fencing does not depend on it: the original checks the token on every import."""
WINDOW_SEGMENTS = 8
"""Imports in flight at once. One at a time left both machines idle most of each ~9 ms round
trip (network, the original's fsync and index commit, then the spare's delete); a few in flight
overlap those. Kept small because the original serialises index commits behind one writer lock
and one disk anyway, each in-flight upload holds a request and a temp file there, and after a
crash everything that was in flight is sent again (answered `duplicate`)."""
STEP_SEGMENTS = 32
"""Most segments one `step()` sends (~16 MB at 1 MB segments, tens of ms unthrottled): enough to
keep the window full, few enough that the spare's loop regains control often (it checks the
original's alive key and its own lease between steps)."""
STEP_SECONDS = 0.25
"""A step submits nothing new after this long (it still waits for what is in flight). At a low
`reinsert_bytes_per_second` the rate limiter, not the segment count, would otherwise make a step
last seconds; this keeps it within the spare loop's 0.5 s slice (REINSERT_SLICE_SECONDS)."""


class NotYet(Exception):
    """The oldest buffered segment overlaps what the original is still recording: wait.

    The original indexes its own open segment only when it closes it; a segment imported before
    that would not be recognised as a duplicate by the original's later commit, and its frames
    would be stored twice. So a segment goes only once the original's own recording has reached
    its end (or after REACH_WAIT_SECONDS, when the original may not be recording that camera:
    a possible duplicate is better than a gap, design decision 6, docs/design.md).
    """


class FenceUnavailable(Exception):
    """The original could not check our fencing token (etcd unreachable there): pause and retry.
    Not a refusal: our claim may well still hold, and a stand-down here would leave it behind."""


@dataclass(frozen=True)
class Fence:
    """The claim a re-insert runs under; None for a leftover buffer whose claim was lost."""

    server: str
    token: int

    @property
    def claim_key(self) -> str:
        return layout.claim(self.server)


class ProgressStore(Protocol):
    """Where the progress counts go (`hotspare.sitestate.access.SiteAccess` in the product)."""

    def progress(self, server: str, spare: str) -> ReinsertProgress | None: ...

    def put_progress(self, server: str, value: ReinsertProgress, token: int | None) -> None: ...

    def delete_progress(self, server: str, spare: str, token: int | None) -> None: ...

    def forget_buffer(self, server: str, spare: str, token: int | None) -> None: ...


def buffered_segments(store: SegmentStore, server: str, limit: int = 10_000) -> list[SegmentInfo]:
    """Every segment the buffer holds for `server`, oldest first (pending or not: a crash between
    commit and flagging must not hide a segment from re-insert)."""
    return store.list_recorded_as(server, limit)


@dataclass
class Progress:
    total: int
    done: int = 0
    bytes: int = 0
    last: str | None = None
    duplicates: int = 0

    def value(self, spare: str, url: str) -> ReinsertProgress:
        return ReinsertProgress(spare, url, self.total, self.done, self.bytes, self.last,
                                self.duplicates)


def load_progress(site: ProgressStore, server: str, spare: str, remaining: int) -> Progress:
    """Resume counts from etcd when a previous run left them; the buffer decides what is left.
    The stored counts may lag the buffer by a step (written before each upload); the total does
    not change during a re-insert, so what is done is the total minus what is left."""
    stored = site.progress(server, spare)
    if stored is None:
        return Progress(total=remaining)
    total = max(stored.total, remaining)
    return Progress(total=total, done=total - remaining, bytes=stored.bytes, last=stored.last,
                    duplicates=stored.duplicates)


class Reinserter:
    """Sends a bounded batch per `step()` so the caller's loop stays responsive between batches."""

    def __init__(self, site: ProgressStore, store: SegmentStore, server: str, spare: str,
                 spare_url: str, target: NodeClient, fence: Fence | None,
                 limiter: RateLimiter, *, window: int = WINDOW_SEGMENTS,
                 step_segments: int = STEP_SEGMENTS) -> None:
        if window < 1 or step_segments < 1:
            raise ValueError("window and step_segments must be at least 1")
        self.site = site
        self.store = store
        self.server = server
        self.spare = spare
        self.spare_url = spare_url
        self.target = target
        self.fence = fence
        self.limiter = limiter
        self.window = window
        self.step_segments = step_segments
        remaining = len(buffered_segments(store, server))
        self.progress = load_progress(site, server, spare, remaining)
        self._reach: dict[str, int] = {}
        self._waiting_since: dict[int, float] = {}
        self._progress_written = float("-inf")

    def _original_reached(self, segment: SegmentInfo) -> bool:
        """Has the original committed video of its own up to this segment's end?"""
        if self._reach.get(segment.camera_id, 0) >= segment.end_wall_us:
            return True
        # Only segments ending at or after this one's end can show it: asking from there keeps
        # the answer's first page (capped) on the original's own newest video even after an
        # outage of many hours, where asking from the segment's start filled the page with
        # older rows and the original never seemed to have caught up.
        listing = self.target.list_segments(segment.camera_id, segment.end_wall_us - 1,
                                            time.time_ns() // 1000)
        own = [s.end_wall_us for s in listing.segments if s.recorded_by == self.server]
        if own:
            self._reach[segment.camera_id] = max(own)
        return self._reach.get(segment.camera_id, 0) >= segment.end_wall_us

    @property
    def token(self) -> int | None:
        return None if self.fence is None else self.fence.token

    def _write_progress(self) -> None:
        self.site.put_progress(self.server, self.progress.value(self.spare, self.spare_url),
                               self.token)
        self._progress_written = time.monotonic()

    def start(self) -> None:
        """Flag every buffered segment pending and publish the starting counts."""
        pending = buffered_segments(self.store, self.server)
        self.store.set_reinsert_pending([s.segment_id for s in pending], True)
        self._write_progress()

    def step(self) -> SegmentInfo | None:
        """Re-insert up to `step_segments` of the oldest buffered segments, `window` in flight.

        Returns the newest segment acknowledged (its buffer copy deleted); None when the buffer
        is empty. Raises NotYet when the oldest segment must wait, FencingError when the claim is
        lost, FenceUnavailable when the original cannot check it now, or the first upload
        error; nothing is in flight when it returns or raises.
        """
        batch = buffered_segments(self.store, self.server, limit=self.step_segments)
        if not batch:
            return None
        sendable = self._sendable(batch)
        acked: list[tuple[SegmentInfo, ImportOut]] = []
        last: SegmentInfo | None = None
        error: BaseException | None = None
        in_flight: deque[tuple[SegmentInfo, Future[ImportOut]]] = deque()
        todo = iter(sendable)
        started = time.monotonic()
        submitted = 0
        with ThreadPoolExecutor(max_workers=self.window,
                                thread_name_prefix="reinsert") as pool:
            try:
                while True:
                    while error is None and len(in_flight) < self.window and (
                            submitted == 0 or time.monotonic() - started < STEP_SECONDS):
                        segment = next(todo, None)
                        if segment is None:
                            break
                        if time.monotonic() - self._progress_written >= PROGRESS_EVERY_SECONDS:
                            self._write_progress()  # fenced: a stale token raises FencingError
                        # Taken here, in submission order, so the bucket paces the whole window.
                        self.limiter.take(segment.bytes)
                        in_flight.append((segment, pool.submit(self._upload, segment)))
                        submitted += 1
                    if len(acked) >= self.window:
                        # After refilling, so the uploads go on while the spare deletes.
                        last = self._delete_acknowledged(acked) or last
                    if not in_flight:
                        break
                    segment, future = in_flight.popleft()
                    try:
                        acked.append((segment, future.result()))
                    except Exception as exc:  # the first error is re-raised below
                        error = error or exc
            except BaseException as exc:
                # Our own side failed (progress write, store): send nothing more, but still
                # collect what is in flight so acknowledged copies are deleted and none leaks.
                error = error or exc
                for segment, future in in_flight:
                    try:
                        acked.append((segment, future.result()))
                    except Exception:  # the first error (already kept) wins
                        continue
            finally:
                last = self._delete_acknowledged(acked) or last
        if error is not None:
            raise error
        return last

    def _sendable(self, batch: list[SegmentInfo]) -> list[SegmentInfo]:
        """The oldest-first prefix of `batch` the original has recorded past (NotYet rule).

        Only the oldest segment may wait REACH_WAIT_SECONDS and then go anyway; a later one
        that is not reached yet ends the prefix and is judged again in a later step."""
        first = batch[0]
        if not self._original_reached(first):
            since = self._waiting_since.setdefault(first.segment_id, time.monotonic())
            if time.monotonic() - since < REACH_WAIT_SECONDS:
                raise NotYet(first.segment_id)
            log.warning("%s has not recorded past segment %s of %s for %.0f s; sending it anyway",
                        self.server, first.seq, first.camera_id, REACH_WAIT_SECONDS)
        sendable = [first]
        for segment in batch[1:]:
            if not self._original_reached(segment):
                break
            sendable.append(segment)
        return sendable

    def _upload(self, segment: SegmentInfo) -> ImportOut:
        """One import (runs in a worker thread; NodeClient's httpx.Client is thread-safe)."""
        run = self.store.get_run(segment.run_id)
        assert run is not None, f"segment {segment.segment_id} has no run row"
        path = self.store.segment_file(segment)
        try:
            return self.target.import_segment(segment.camera_id, ImportMetaIn.of(segment, run),
                                              path)
        except NodeApiError as exc:
            if exc.error == "fencing_unavailable":
                raise FenceUnavailable(exc.detail) from exc
            if exc.error == "stale_fencing_token" and self.fence is not None:
                log.warning("%s refused an import under token %s: %s", self.server,
                            self.fence.token, exc.detail)
                raise FencingError(self.fence.claim_key, self.fence.token, None) from exc
            raise

    def _delete_acknowledged(
            self, acked: list[tuple[SegmentInfo, ImportOut]]) -> SegmentInfo | None:
        """Delete the buffer copies of segments the original's index acknowledged (inserted,
        trimmed or already held) — each only after its own acknowledgement — and count them;
        empties `acked` and returns the newest deleted.

        Batched: on the spare each delete is two index commits (FULL sync), an unlink and a
        directory fsync, which one at a time cost ~1.7 ms per segment of the loop's own time.
        Deleting later than possible is always safe: a crash before it re-sends those segments
        and the original answers `duplicate`."""
        if not acked:
            return None
        ids = [segment.segment_id for segment, _ in acked]
        self.store.set_reinsert_pending(ids, False)
        self.store.delete_segments(ids)
        for segment, result in acked:
            self.progress.done += 1
            self.progress.bytes += segment.bytes
            self.progress.last = f"{segment.camera_id}/{segment.run_id}/{segment.seq}"
            if result.status == "duplicate":
                self.progress.duplicates += 1
            metrics.REINSERT_BYTES.labels(self.server).inc(segment.bytes)
            metrics.REINSERT_SEGMENTS.labels(self.server, result.status).inc()
        newest = acked[-1][0]
        acked.clear()
        return newest

    def finish(self) -> None:
        self.site.delete_progress(self.server, self.spare, self.token)
        self.site.forget_buffer(self.server, self.spare, self.token)
