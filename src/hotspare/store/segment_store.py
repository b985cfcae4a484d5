"""The segment store: segment files on local disk plus their SQLite index.

Write order is the whole durability story: the recorder writes and closes the file, then
`commit_segment` fsyncs it and its directory and only then inserts the row. A row therefore never
points at bytes that a power cut could take back; a file without a row is what a crash leaves, and
`reconcile` (run by `open`) salvages it. See docs/store.md.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hotspare.store import importer, layout, mp4, reconcile, retention
from hotspare.store.db import (
    RUN_COLUMNS,
    SEGMENT_COLUMNS,
    Index,
    init_schema,
    now_us,
    row_to_run,
    row_to_segment,
)
from hotspare.store.frame_cache import FrameCache
from hotspare.store.group_commit import GroupCommit
from hotspare.store.importer import ImportMeta, ImportResult, Received
from hotspare.store.lockfile import LOCK_NAME, StoreLock
from hotspare.store.models import RunInfo, SegmentInfo, WallSource, media_to_wall_us
from hotspare.store.parts import MAX_SEGMENT_US, StoreError, StoreParts
from hotspare.store.reconcile import ReconcileReport
from hotspare.store.retention import RetentionReport
from hotspare.store.timeline import SpanRow, Timeline, clip_timeline, spans_from_rows

__all__ = ["DEFAULT_MAX_GAP_US", "SegmentStore", "StoreError"]

log = logging.getLogger(__name__)

DEFAULT_MAX_GAP_US = 45_000  # one frame at 25 fps plus 5 ms of jitter
# commit_segment reads a segment up to this size into memory once (walk + hash); larger ones are
# streamed. 64 MB is about two minutes of a 4 Mbit/s camera.
COMMIT_READ_WHOLE_MAX = 64 * 1024 * 1024


class SegmentStore:
    """Files + index of one server's store (its own, or a spare's buffer store)."""

    def __init__(self, root: Path, server_name: str, index: Index, lock: StoreLock) -> None:
        self.root = root
        self.server_name = server_name
        self._index = index
        self._lock = lock
        self._durable_dirs: set[Path] = set()
        # Free space of the store's disk; a seam so retention can be tested without filling a disk.
        self.disk_free: Callable[[], int] = lambda: shutil.disk_usage(self.root).free
        self.last_reconcile: ReconcileReport | None = None
        # What retention freed before reconcile when the store was opened on a short disk.
        self.open_retention: RetentionReport | None = None
        self._pending_marks: list[str] = []
        self._imports: GroupCommit[Any, Any] = GroupCommit()  # shared by every `parts`
        self._own: GroupCommit[Any, SegmentInfo] = GroupCommit()  # likewise
        self._frames = FrameCache()  # likewise
        # The retention policy `open` was given: imports make room by it (`ensure_room`), and
        # `on_retention` hears of every pass made outside the node's retention loop.
        self.min_free_bytes = 0
        self.max_age_us: int | None = None
        self.on_retention: Callable[[RetentionReport], None] | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, root: Path, server_name: str, *, min_free_bytes: int = 0,
             max_age_us: int | None = None) -> SegmentStore:
        """Open (creating if needed) and reconcile; one process per store (a lock file).

        With `min_free_bytes`, a disk with less free space gets a space-only retention pass
        (files first) before reconcile writes anything: reconcile on a full disk would fail, and
        a node that cannot open its store can never run the retention that would free it."""
        layout.check_id("server_name", server_name)
        root = Path(root).resolve()
        layout.make_dirs_durable(root.parent, root)
        lock = StoreLock.acquire(root / LOCK_NAME)
        index: Index | None = None
        try:
            for sub in (layout.SEGMENTS_DIR, layout.INCOMING_DIR):
                layout.make_dirs_durable(root, root / sub)
            before_open = None
            if min_free_bytes > 0 and shutil.disk_usage(root).free < max(
                    min_free_bytes, retention.OPEN_HEADROOM_BYTES):
                before_open = retention.free_space_before_open(root, min_free_bytes, max_age_us,
                                                               now_us())
            index = Index(root / layout.INDEX_NAME)
            created_by = init_schema(index.writer, server_name)
            if created_by != server_name:
                log.warning("store %s was created by server %r, now opened as %r",
                            root, created_by, server_name)
            store = cls(root, server_name, index, lock)
            store.open_retention = before_open
            store.min_free_bytes, store.max_age_us = min_free_bytes, max_age_us
            store.last_reconcile = reconcile.reconcile(store.parts)
        except BaseException:
            if index is not None:
                index.close()
            lock.release()
            raise
        return store

    def close(self) -> None:
        self._index.close()
        self._lock.release()

    def __enter__(self) -> SegmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def index(self) -> Index:
        """The database handles, for the store's own modules (reconcile, import, retention)."""
        return self._index

    @property
    def parts(self) -> StoreParts:
        """What the store's jobs work on; made per call so that `disk_free` set by a test counts."""
        return StoreParts(self.root, self.server_name, self._index, self.disk_free,
                          self._pending_marks, self._imports, self._own, self._frames)

    # ------------------------------------------------------------------ runs

    def begin_run(self, camera_id: str, recorded_as: str, anchor_wall_us: int,
                  wall_source: WallSource) -> RunInfo:
        layout.check_id("camera_id", camera_id)
        layout.check_id("recorded_as", recorded_as)
        wall_source = WallSource(wall_source)
        run_id = f"r{now_us():x}{secrets.token_hex(4)}"
        with self._index.write() as db:
            db.execute(
                "insert into run (run_id, camera_id, recorded_by, recorded_as, anchor_wall_us, "
                "wall_source, started_wall_us, created_at_us) values (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, camera_id, self.server_name, recorded_as, anchor_wall_us,
                 wall_source.value, anchor_wall_us, now_us()),
            )
        return RunInfo(run_id, camera_id, self.server_name, recorded_as, anchor_wall_us,
                       wall_source, anchor_wall_us, None, None)

    def update_run_anchor(self, run_id: str, anchor_wall_us: int, wall_source: WallSource) -> None:
        wall_source = WallSource(wall_source)
        with self._index.write() as db:
            run = self._run_row(db, run_id)
            delta = anchor_wall_us - run.anchor_wall_us
            db.execute(
                "update run set anchor_wall_us = ?, wall_source = ?, started_wall_us = ?, "
                "ended_wall_us = ended_wall_us + ? where run_id = ?",
                (anchor_wall_us, wall_source.value, anchor_wall_us, delta, run_id),
            )
            for seg_id, start_media in db.execute(
                "select segment_id, start_media_90k from segment where run_id = ?", (run_id,)
            ).fetchall():
                start = media_to_wall_us(anchor_wall_us, start_media)
                db.execute(
                    "update segment set start_wall_us = ?, "
                    "end_wall_us = ? + (end_wall_us - start_wall_us) where segment_id = ?",
                    (start, start, seg_id),
                )

    def end_run(self, run_id: str, ended_wall_us: int, reason: str) -> None:
        with self._index.write() as db:
            run = self._run_row(db, run_id)
            last_end = db.execute(
                "select max(end_wall_us) from segment where run_id = ?", (run_id,)
            ).fetchone()[0]
            ended = max(ended_wall_us, run.started_wall_us)
            if last_end is not None:
                # A run can't end before the video it holds.
                ended = max(ended, last_end)
            db.execute("update run set ended_wall_us = ?, end_reason = ? where run_id = ?",
                       (ended, reason, run_id))

    def get_run(self, run_id: str) -> RunInfo | None:
        row = self._index.read().execute(
            f"select {RUN_COLUMNS} from run where run_id = ?", (run_id,)
        ).fetchone()
        return row_to_run(row) if row else None

    def list_runs(self, camera_id: str, from_wall_us: int, to_wall_us: int, *,
                  limit: int | None = None,
                  after: tuple[int, str] | None = None) -> list[RunInfo]:
        """Runs overlapping [from, to), oldest first; at most `limit` (in SQL), those sorting
        after `after` = (started_wall_us, run_id) of the previous page's last run."""
        sql = (f"select {RUN_COLUMNS} from run where camera_id = ? and started_wall_us < ? "
               "and (ended_wall_us is null or ended_wall_us > ?)")
        args: list[object] = [camera_id, to_wall_us, from_wall_us]
        if after is not None:
            sql += " and started_wall_us >= ? and (started_wall_us, run_id) > (?, ?)"
            args += [after[0], after[0], after[1]]
        sql += " order by started_wall_us, run_id"
        if limit is not None:
            sql += " limit ?"
            args.append(limit)
        rows = self._index.read().execute(sql, args).fetchall()
        return [row_to_run(r) for r in rows]

    # ------------------------------------------------------------------ segments

    def segment_path(self, camera_id: str, run_id: str, seq: int) -> Path:
        """Where the recorder writes the file; parent directories are created (durably) here."""
        path = layout.to_path(self.root, layout.segment_relpath(camera_id, run_id, seq))
        if path.parent not in self._durable_dirs:
            layout.make_dirs_durable(self.root, path.parent)
            self._durable_dirs.add(path.parent)
        return path

    def commit_segment(self, run_id: str, seq: int, start_media_90k: int, duration_90k: int,
                       frame_count: int, init_bytes: int) -> SegmentInfo:
        """Index a segment file the recorder has written and closed.

        The file is the truth: its boxes give frame count, duration, start and init length; when the
        recorder's numbers differ we log a warning and index what the file holds, because reconcile
        and re-insert verification later read the same boxes.
        """
        layout.check_seq(seq)
        run = self.get_run(layout.check_id("run_id", run_id))
        if run is None:
            raise StoreError(f"commit_segment: unknown run {run_id!r}")
        if run.recorded_by != self.server_name:
            raise StoreError(f"commit_segment: run {run_id!r} was recorded by {run.recorded_by!r}")
        relpath = layout.segment_relpath(run.camera_id, run_id, seq)
        path = layout.to_path(self.root, relpath)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise StoreError(f"commit_segment: {relpath} does not exist") from None
        # One read serves both the box walk and the hash: re-reading 2 MB for SHA-256 after a
        # seek-per-box walk cost ~1 ms more per segment (docs/recorder.md, "CPU"). A segment too
        # large to hold in memory comfortably is walked and hashed from the file instead.
        data = path.read_bytes() if size <= COMMIT_READ_WHOLE_MAX else None
        try:
            info = mp4.parse_bytes(data) if data is not None else mp4.parse_path(path)
        except mp4.Mp4Error as e:
            raise StoreError(f"commit_segment: {relpath}: {e}") from e
        if not info.fragments:
            raise StoreError(f"commit_segment: {relpath} has no complete fragment "
                             f"({info.trailing_note})")
        if not info.complete:
            log.warning("camera %s segment %s: %s; indexing the readable prefix of %d bytes",
                        run.camera_id, relpath, info.trailing_note, info.readable_bytes)
            with path.open("r+b") as f:
                f.truncate(info.readable_bytes)
            if data is not None:
                data = data[:info.readable_bytes]
        ours = (start_media_90k, duration_90k, frame_count, init_bytes)
        theirs = (info.start_media_90k, info.duration_90k, info.frame_count, info.init_bytes)
        if ours != theirs:
            # The muxer has to guess the last frame's duration when the packet carries none, so a
            # duration off by less than a frame is expected and not worth a warning.
            last = info.frame_durations_90k()[-1]
            near = abs(duration_90k - info.duration_90k) < max(last, 1)
            same_rest = ours[:1] + ours[2:] == theirs[:1] + theirs[2:]
            level = logging.DEBUG if (same_rest and near) else logging.WARNING
            log.log(level, "camera %s segment %s: recorder said (start_media_90k, duration_90k, "
                        "frame_count, init_bytes)=%s but the file holds %s; indexing the file's",
                        run.camera_id, relpath, ours, theirs)
        layout.fsync_file(path)
        layout.fsync_dir(path.parent)
        if data is not None:
            # The bytes read before the fsync are the file's: one writer, closed before commit.
            sha, size = hashlib.sha256(data).hexdigest(), len(data)
        else:
            sha, size = layout.sha256_file(path), path.stat().st_size
        return self.parts.insert_own_segment(run, seq, info, size=size, sha256=sha,
                                             relpath=relpath)

    def list_segments(self, camera_id: str, from_wall_us: int, to_wall_us: int, *,
                      limit: int | None = None,
                      after: tuple[int, int] | None = None) -> list[SegmentInfo]:
        """Segments overlapping [from, to) whose files are present, oldest first.

        `limit` is applied in SQL and `after` = (start_wall_us, segment_id) of the previous page's
        last row continues from there: the (camera_id, start_wall_us) index holds rows in exactly
        this order (segment_id is the rowid), so a page costs its own rows, wherever it starts.
        """
        sql = (f"select {SEGMENT_COLUMNS} from segment where camera_id = ? and start_wall_us < ? "
               "and start_wall_us >= ? and end_wall_us > ? and file_problem is null")
        args: list[object] = [camera_id, to_wall_us, from_wall_us - MAX_SEGMENT_US, from_wall_us]
        if after is not None:
            sql += " and start_wall_us >= ? and (start_wall_us, segment_id) > (?, ?)"
            args += [after[0], after[0], after[1]]
        sql += " order by start_wall_us, segment_id"
        if limit is not None:
            sql += " limit ?"
            args.append(limit)
        rows = self._index.read().execute(sql, args).fetchall()
        return [row_to_segment(r) for r in rows]

    def latest_segments(self, camera_id: str, from_wall_us: int, to_wall_us: int,
                        count: int) -> list[SegmentInfo]:
        """The newest `count` segments overlapping [from, to), oldest first (a live window): read
        newest first with a limit, so a busy lookback never loads more than the window."""
        rows = self._index.read().execute(
            f"select {SEGMENT_COLUMNS} from segment where camera_id = ? and start_wall_us < ? "
            "and start_wall_us >= ? and end_wall_us > ? and file_problem is null "
            "order by start_wall_us desc, segment_id desc limit ?",
            (camera_id, to_wall_us, from_wall_us - MAX_SEGMENT_US, from_wall_us, count),
        ).fetchall()
        return [row_to_segment(r) for r in reversed(rows)]

    def get_segment(self, segment_id: int) -> SegmentInfo | None:
        row = self._index.read().execute(
            f"select {SEGMENT_COLUMNS} from segment where segment_id = ?", (segment_id,)
        ).fetchone()
        return row_to_segment(row) if row else None

    def list_reinsert_pending(self, limit: int = 100) -> list[SegmentInfo]:
        """Segments still to be copied elsewhere, oldest first (the re-insert order)."""
        rows = self._index.read().execute(
            f"select {SEGMENT_COLUMNS} from segment where reinsert_pending = 1 "
            "order by start_wall_us, segment_id limit ?", (limit,),
        ).fetchall()
        return [row_to_segment(r) for r in rows]

    def list_recorded_as(self, recorded_as: str, limit: int = 10_000) -> list[SegmentInfo]:
        """Segments recorded for one identity, oldest first, pending or not: a spare's buffer for
        one server. One indexed query, because re-insert asks it once per segment it sends."""
        rows = self._index.read().execute(
            f"select {SEGMENT_COLUMNS} from segment where recorded_as = ? "
            "order by start_wall_us, segment_id limit ?", (recorded_as, limit),
        ).fetchall()
        return [row_to_segment(r) for r in rows]

    def segment_file(self, segment: SegmentInfo) -> Path:
        """Absolute path of a segment's file (for download/HLS)."""
        return self.parts.segment_file(segment)

    def incoming_path(self) -> Path:
        """A fresh staging path on the store's disk: an upload written here is renamed, not copied,
        by `import_segment`. Anything left here is deleted at the next open."""
        return self.parts.incoming_path()

    def cameras(self) -> list[str]:
        rows = self._index.read().execute(
            "select distinct camera_id from run order by camera_id").fetchall()
        return [r[0] for r in rows]

    def set_reinsert_pending(self, segment_ids: list[int], pending: bool) -> None:
        with self._index.write() as db:
            db.executemany("update segment set reinsert_pending = ? where segment_id = ?",
                           [(int(pending), i) for i in segment_ids])

    def delete_segments(self, segment_ids: list[int]) -> int:
        """Delete segments now (a spare's copy once the original acknowledged it); returns how many.

        Segments still marked reinsert_pending are refused (skipped): clear the mark first, so that
        deleting owed video takes two deliberate steps. Same crash-safe order as retention.
        """
        rows = []
        read = self._index.read()
        for seg_id in segment_ids:
            row = read.execute("select segment_id, camera_id, relpath, bytes from segment "
                               "where segment_id = ? and reinsert_pending = 0",
                               (seg_id,)).fetchone()
            if row is not None:
                rows.append(tuple(row))
        with self._index.locked():
            return retention.delete_rows(self.parts, rows)[0]

    # ------------------------------------------------------------------ delegated jobs

    def timeline(self, camera_id: str, from_wall_us: int, to_wall_us: int,
                 max_gap_us: int = DEFAULT_MAX_GAP_US, *, max_segments: int | None = None,
                 max_spans: int | None = None) -> Timeline:
        """Spans and gaps of [from, to), read as a stream of a few columns per segment.

        At most `max_segments` rows are read (a SQL limit); when more exist, or more than
        `max_spans` spans are found, the answer covers [from, next_from) and says so.
        """
        sql = ("select run_id, recorded_by, recorded_as, "
               "start_wall_us + head_skip_90k * 1000000 / 90000, "
               "start_wall_us + (duration_90k - tail_skip_90k) * 1000000 / 90000, "
               "frame_count - head_skip_frames - tail_skip_frames, start_wall_us "
               "from segment where camera_id = ? and start_wall_us < ? and start_wall_us >= ? "
               "and end_wall_us > ? and file_problem is null order by start_wall_us, segment_id")
        args: list[object] = [camera_id, to_wall_us, from_wall_us - MAX_SEGMENT_US, from_wall_us]
        if max_segments is not None:
            sql += " limit ?"
            args.append(max_segments + 1)
        cursor = self._index.read().execute(sql, args)
        read: Iterable[SpanRow] = (cursor if max_segments is None
                                   else itertools.islice(cursor, max_segments))
        spans = spans_from_rows(read, max_gap_us)
        unread = cursor.fetchone()  # the first row past the cap: the answer ends at its start
        cursor.close()
        return clip_timeline(spans, camera_id, from_wall_us, to_wall_us, max_gap_us,
                             max_spans=max_spans, cut_wall_us=unread[6] if unread else None)

    def import_segment(self, meta: ImportMeta, data: Path, *,
                       known_camera: Callable[[str], bool] | None = None,
                       imported_from: str | None = None,
                       received: Received | None = None,
                       guard: Callable[[], None] | None = None) -> ImportResult:
        return importer.import_segment(self.parts, meta, data, known_camera=known_camera,
                              imported_from=imported_from, received=received, guard=guard)

    def apply_retention(self, max_age_us: int | None, min_free_bytes: int,
                        now_wall_us: int) -> RetentionReport:
        return retention.apply_retention(self.parts, max_age_us, min_free_bytes, now_wall_us)

    def ensure_room(self, nbytes: int) -> bool:
        """Whether `nbytes` more fit and still leave the retention reserve free, making room by
        retention (oldest first) when they do not. False only when retention cannot: the rest is
        video owed elsewhere, or the disk is filled by something that is not ours."""
        if self.disk_free() - nbytes >= self.min_free_bytes:
            return True
        if self.min_free_bytes > 0:
            report = self.apply_retention(self.max_age_us, self.min_free_bytes + nbytes, now_us())
            if self.on_retention is not None:
                self.on_retention(report)
        return self.disk_free() - nbytes >= self.min_free_bytes

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _run_row(db: sqlite3.Connection, run_id: str) -> RunInfo:
        row = db.execute(f"select {RUN_COLUMNS} from run where run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"unknown run {run_id!r}")
        return row_to_run(row)

