"""What the store's jobs (reconcile, import, retention) work on, below the `SegmentStore` class.

`SegmentStore` composes those jobs; if they took the store itself they would have to import it,
and the store them, a cycle the import graph test forbids. So they take `StoreParts` — the folder,
the index, whose store it is, its disk's free space — and the one segment INSERT they share lives
here too, next to the error it raises.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotspare.store import layout, mp4
from hotspare.store.db import SEGMENT_COLUMNS, Index, now_us, row_to_segment
from hotspare.store.frame_cache import FrameCache
from hotspare.store.group_commit import GroupCommit
from hotspare.store.models import RunInfo, SegmentInfo, ticks_to_us

# Longest segment we index. Range queries look this far back before `from_wall_us` so that they can
# use the (camera_id, start_wall_us) index; the recorder cuts at most every 60 s.
MAX_SEGMENT_90K = 600 * 90_000
MAX_SEGMENT_US = ticks_to_us(MAX_SEGMENT_90K)


class StoreError(RuntimeError):
    """A store operation was refused; the message says which object and why."""


@dataclass(frozen=True)
class StoreParts:
    """One open store's folder, index and owner, as its jobs see it (the store owns them)."""

    root: Path
    server_name: str
    index: Index
    disk_free: Callable[[], int]
    # Segment files retention emptied for space whose rows it could not delete yet (a full disk
    # refused the transaction): owned by the store, so the next pass finishes them.
    pending_marks: list[str] = field(default_factory=list)
    # Imports waiting for the index writer, committed together (`group_commit`, `importer`).
    imports: GroupCommit[Any, Any] = field(default_factory=GroupCommit)
    # Our own segments' rows waiting for it, committed together (`insert_own_segment`).
    own: GroupCommit[_OwnRow, SegmentInfo] = field(default_factory=GroupCommit)
    # Frame times of segments committed lately, for the import's overlap check (`frame_cache`).
    frames: FrameCache = field(default_factory=FrameCache)

    def segment_file(self, segment: SegmentInfo) -> Path:
        return layout.to_path(self.root, segment.relpath)

    def incoming_path(self) -> Path:
        """A fresh staging path on the store's disk: an upload written here is renamed, not copied,
        by the importer. Anything left here is deleted at the next open."""
        return self.root / layout.INCOMING_DIR / f"{secrets.token_hex(8)}{layout.TEMP_SUFFIX}"

    def insert_own_segment(self, run: RunInfo, seq: int, info: mp4.Mp4Info, *, size: int,
                           sha256: str, relpath: str) -> SegmentInfo:
        """Insert one row for a file of ours already durable on disk (commit and reconcile).

        Rows of several cameras that wait for the writer at once share one transaction (one
        WAL sync): 64 cameras committing a transaction each held the writer lock so much of each
        second on a busy host that a re-insert's imports, queued behind them, crawled (64-camera
        gapless takeover: ~4 segments/s; bench/README.md, *Commit contention*)."""
        row = _OwnRow(run, seq, info, size, sha256, relpath)
        return self.own.run(row, self.index.locked, self._insert_own_rows,
                            self.index.holds_writer)

    def _insert_own_rows(self, rows: Sequence[_OwnRow]) -> list[SegmentInfo | BaseException]:
        """One transaction. A row the index refuses (a constraint: SQLite undoes that statement
        alone and the transaction goes on) fails only its own commit; any other error fails
        them all, as the transaction may be gone with it."""
        outcomes: list[SegmentInfo | BaseException] = []
        with self.index.write() as db:
            for row in rows:
                # Video recorded under an assumed identity is a spare's buffer: it must reach
                # the original before retention may touch it, even if nobody marks it later.
                pending = row.run.recorded_as != row.run.recorded_by
                try:
                    seg = insert_segment(db, row.run, row.seq, row.info, size=row.size,
                                         sha256=row.sha256, relpath=row.relpath,
                                         reinsert_pending=pending)
                    outcomes.append(seg)
                    self.frames.put(seg.segment_id, seg.sha256, row.info)
                except sqlite3.IntegrityError as e:
                    outcomes.append(StoreError(f"{row.relpath}: cannot index ({e}); "
                                               "already indexed?"))
                except StoreError as e:  # refused, nothing inserted
                    outcomes.append(e)
        return outcomes


@dataclass(frozen=True)
class _OwnRow:
    """One of our own segment files, durable on disk, waiting for its index row."""

    run: RunInfo
    seq: int
    info: mp4.Mp4Info
    size: int
    sha256: str
    relpath: str


RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
"""`insert ... returning` (SQLite 3.35, 2021): the row back from the insert itself. Without it,
one more statement reads it back."""
_INSERT_SEGMENT = (
    "insert into segment (camera_id, run_id, seq, recorded_by, recorded_as, "
    "start_wall_us, end_wall_us, start_media_90k, duration_90k, frame_count, "
    "head_skip_frames, head_skip_90k, tail_skip_frames, tail_skip_90k, bytes, "
    "init_bytes, sha256, relpath, reinsert_pending, imported_from, committed_at_us) "
    "select ?, run_id, ?, ?, ?, anchor_wall_us + ?, anchor_wall_us + ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "?, ?, ?, ?, ?, ? from run where run_id = ?"
)
"""The segment row, its wall times from the run's anchor as the index holds it (an anchor may
be corrected after the run began, so the caller's copy of the run is not trusted for it)."""


def insert_segment(db: sqlite3.Connection, run: RunInfo, seq: int, info: mp4.Mp4Info, *,
                   size: int, sha256: str, relpath: str, head_skip: tuple[int, int] = (0, 0),
                   tail_skip: tuple[int, int] = (0, 0), reinsert_pending: bool = False,
                   imported_from: str | None = None) -> SegmentInfo:
    """The one INSERT of a segment row, inside the caller's transaction; wall time from the run.
    One statement: each one is a GIL hand-off while the writer lock is held, and with 64 cameras
    committing, the three this took (anchor, insert, read back) kept a re-insert's imports
    queued behind the lock (bench/README.md, *Commit contention*)."""
    if info.duration_90k <= 0 or info.duration_90k > MAX_SEGMENT_90K:
        raise StoreError(f"{relpath}: duration {info.duration_90k} (90 kHz) out of range")
    start_us = ticks_to_us(info.start_media_90k)  # the wall times: the run's anchor + these
    args = (run.camera_id, seq, run.recorded_by, run.recorded_as, start_us,
            start_us + ticks_to_us(info.duration_90k), info.start_media_90k, info.duration_90k,
            info.frame_count, head_skip[0], head_skip[1], tail_skip[0], tail_skip[1], size,
            info.init_bytes, sha256, relpath, int(reinsert_pending), imported_from, now_us(),
            run.run_id)
    if RETURNING:
        row = db.execute(_INSERT_SEGMENT + f" returning {SEGMENT_COLUMNS}", args).fetchone()
    else:
        cur = db.execute(_INSERT_SEGMENT, args)
        row = None if cur.rowcount == 0 else db.execute(
            f"select {SEGMENT_COLUMNS} from segment where segment_id = ?",
            (cur.lastrowid,)).fetchone()
    if row is None:
        raise StoreError(f"{relpath}: its run {run.run_id!r} is not in the index")
    return row_to_segment(row)
