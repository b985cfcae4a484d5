"""Oldest-first deletion by age and by free disk space; a spare's unsent video is never deleted.

Order of a deletion by age (docs/store.md, "Retention"): in one transaction the row is deleted and
its path recorded in `garbage`; then the file is unlinked; then the garbage entry is removed. A
crash at any point leaves either the row (nothing happened) or a garbage entry (reconcile finishes
the unlink and does not mistake the file for an orphan to salvage).

Deletion for space goes files first, because on a full disk SQLite cannot write the transaction
that row-first needs and so would free nothing: the file is renamed to `<name>.deleting` (a rename
needs no free blocks, and the name is the journal), truncated to 0 bytes (the space comes back),
and only then are the rows deleted and the marks unlinked. A crash in between leaves marks, which
reconcile finishes (rows deleted, marks unlinked) before it checks rows against files, so a row
whose file is gone is never mistaken for lost video.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hotspare.store import layout
from hotspare.store.db import now_us
from hotspare.store.parts import StoreParts

log = logging.getLogger(__name__)
_BATCH = 64
# Free space a store opened on a short disk gets at least, whatever `min_free_bytes` says: SQLite
# needs its shared-memory file (32 KB) and a few log pages before reconcile can write anything.
OPEN_HEADROOM_BYTES = 256 * 1024
# Suffix of a segment file being deleted for space: renamed, truncated, row not yet deleted.
MARK_SUFFIX = ".deleting"


@dataclass
class EarlyDeletion:
    """Segments of one camera deleted for space before `max_age_days`: the operator was promised
    that video and must hear that it is gone (a WARNING, a counter, a site event)."""

    camera_id: str
    segments: int
    from_wall_us: int
    to_wall_us: int

    def describe(self) -> str:
        return (f"camera {self.camera_id}: {self.segments} segment(s) recorded "
                f"{_stamp(self.from_wall_us)} to {_stamp(self.to_wall_us)}")


def _stamp(wall_us: int) -> str:
    return datetime.fromtimestamp(wall_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RetentionReport:
    deleted_by_age: int = 0
    deleted_for_space: int = 0
    bytes_freed: int = 0
    free_bytes_after: int = 0
    # True when free space stayed below the minimum because only reinsert-pending (or no)
    # segments were left: the operator must add disk or finish re-insert.
    space_short: bool = False
    deleted_ids: list[int] = field(default_factory=list)
    # Per camera, what the space pass deleted before its max_age (empty when max_age is unset:
    # then deleting the oldest for space is the configured policy, not a broken promise).
    early: dict[str, EarlyDeletion] = field(default_factory=dict)
    # Files already emptied for space whose rows could not be deleted yet (index write failed);
    # the next pass, or reconcile at the next start, finishes them.
    unfinished_marks: int = 0

    def note_early(self, camera_id: str, start_us: int, end_us: int) -> None:
        e = self.early.get(camera_id)
        if e is None:
            self.early[camera_id] = EarlyDeletion(camera_id, 1, start_us, end_us)
        else:
            e.segments += 1
            e.from_wall_us = min(e.from_wall_us, start_us)
            e.to_wall_us = max(e.to_wall_us, end_us)

    @property
    def deleted(self) -> int:
        return self.deleted_by_age + self.deleted_for_space


def delete_rows(store: StoreParts,
                rows: list[tuple[int, str, str, int]]) -> tuple[int, int]:
    """Delete these (segment_id, camera_id, relpath, bytes) rows, then their files.

    Returns (rows deleted, bytes freed); rows marked reinsert_pending are left alone.
    """
    gone: list[tuple[int, str, str, int]] = []
    with store.index.write() as db:
        at = now_us()
        for row in rows:
            cur = db.execute("delete from segment where segment_id = ? and reinsert_pending = 0",
                             (row[0],))
            if cur.rowcount == 1:
                db.execute("insert or replace into garbage (relpath, camera_id, deleted_at_us) "
                           "values (?, ?, ?)", (row[2], row[1], at))
                gone.append(row)
    freed = 0
    dirs: set[tuple[str, str]] = set()
    unlinked: list[str] = []
    for _id, _cam, relpath, size in gone:
        try:
            layout.to_path(store.root, relpath).unlink()
            freed += size
        except FileNotFoundError:
            pass
        except OSError as e:
            # e.g. Windows refuses to unlink a file being served; the garbage entry stays and
            # the unlink is retried by the next retention pass or reconcile.
            log.warning("could not delete %s yet: %s", relpath, e)
            continue
        unlinked.append(relpath)
        key = layout.parse_relpath(relpath)
        if key is not None:
            dirs.add((key.camera_id, key.run_id))
    remove_empty_run_dirs(store, dirs)
    with store.index.write() as db:
        db.executemany("delete from garbage where relpath = ?", [(r,) for r in unlinked])
    return len(gone), freed


def remove_empty_run_dirs(store: StoreParts, dirs: set[tuple[str, str]]) -> None:
    """Make the unlinks durable and drop the folders of ended runs that are now empty."""
    read = store.index.read()
    for camera_id, run_id in dirs:
        d = store.root / layout.SEGMENTS_DIR / camera_id / run_id
        try:
            layout.fsync_dir(d)
        except OSError:
            continue
        ended = read.execute("select ended_wall_us is not null from run where run_id = ?",
                             (run_id,)).fetchone()
        if ended and ended[0]:
            try:
                d.rmdir()  # an ended run's directory, once empty; an open run may still write
                layout.fsync_dir(d.parent)
            except OSError:
                pass


def mark_path(path: Path) -> Path:
    """Where a segment file goes while it is deleted for space (see the module docstring)."""
    return path.with_name(path.name + MARK_SUFFIX)


def _empty_for_space(root: Path, relpath: str) -> bool:
    """Rename the file to its mark, make the rename durable, then give its blocks back.

    False when there is nothing to free (the file is gone and no mark exists) or the rename was
    refused (a file being served on Windows): the row is left as it is."""
    path = layout.to_path(root, relpath)
    mark = mark_path(path)
    try:
        os.replace(path, mark)
    except FileNotFoundError:
        return mark.exists()  # marked by an earlier pass whose row deletion failed
    except OSError as e:
        log.warning("store %s: could not delete %s for space yet: %s", root, relpath, e)
        return False
    try:
        layout.fsync_dir(path.parent)
    except OSError as e:
        # Without a durable rename a crash could leave an emptied file under its own name,
        # which reconcile would report as damaged video: keep the bytes this time.
        log.warning("store %s: could not sync folder of %s (%s); not emptied", root, relpath, e)
        return True
    os.truncate(mark, 0)
    return True


def _mark_oldest(root: Path, read: sqlite3.Connection, disk_free: Callable[[], int],
                 min_free_bytes: int, max_age_us: int | None, now_wall_us: int,
                 report: RetentionReport, marked: list[str]) -> int:
    """Empty the oldest deletable segment files, in order, until `min_free_bytes` are free;
    their relpaths are appended to `marked`. Returns the free bytes."""
    seen = set(marked)
    free = disk_free()
    after = (-(1 << 62), -1)
    while free < min_free_bytes:
        rows = read.execute(
            "select segment_id, camera_id, relpath, bytes, start_wall_us, end_wall_us "
            "from segment where reinsert_pending = 0 and start_wall_us >= ? "
            "and (start_wall_us, segment_id) > (?, ?) order by start_wall_us, segment_id "
            "limit ?", (after[0], after[0], after[1], _BATCH)).fetchall()
        if not rows:
            report.space_short = True
            log.error("store %s: %d bytes free, below the minimum %d, and nothing left that "
                      "retention may delete (only video still owed to another server); add "
                      "disk space or let re-insert finish", root, free, min_free_bytes)
            break
        for seg_id, camera_id, relpath, size, start, end in rows:
            after = (start, seg_id)
            if relpath in seen or not _empty_for_space(root, relpath):
                continue
            seen.add(relpath)
            marked.append(relpath)
            report.deleted_for_space += 1
            report.bytes_freed += size
            report.deleted_ids.append(seg_id)
            if max_age_us is not None and end > now_wall_us - max_age_us:
                report.note_early(camera_id, start, end)
            free = disk_free()
            if free >= min_free_bytes:
                break
    return free


def free_space_before_open(root: Path, min_free_bytes: int, max_age_us: int | None,
                           now_wall_us: int) -> RetentionReport:
    """The space-only pass of a store opened on a short disk, before its index is opened.

    On a disk with no free block SQLite cannot even open the index for writing (its shared-memory
    file needs blocks), so the oldest files are chosen from a read-only view and emptied; their
    rows are deleted by reconcile, which finds the marks. A log a crash left is read through its
    existing wal-index; without one, the database file alone is read (`immutable`): rows only in
    the log are then not seen, so never deleted."""
    report = RetentionReport()
    index = root / layout.INDEX_NAME
    if not index.is_file():
        return report
    min_free_bytes = max(min_free_bytes, OPEN_HEADROOM_BYTES)
    uri = index.resolve().as_uri()
    try:
        read = sqlite3.connect(f"{uri}?mode=ro", uri=True)
        read.execute("select 1 from segment limit 1").fetchall()
    except sqlite3.Error:
        read = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
    try:
        marked: list[str] = []
        report.free_bytes_after = _mark_oldest(
            root, read, lambda: shutil.disk_usage(root).free, min_free_bytes, max_age_us,
            now_wall_us, report, marked)
    except sqlite3.Error as e:
        # An index without tables or unreadable: open goes on and says what is wrong with it.
        log.error("store %s: could not read the index to free space before opening it (%s)",
                  root, e)
    finally:
        read.close()
    _log_report(root, report, min_free_bytes)
    return report


def finish_marks(store: StoreParts, relpaths: list[str]) -> bool:
    """Delete the rows of files already emptied for space, then unlink their marks.

    Rows go without looking at `reinsert_pending`: a file is marked only while its row is not
    pending, under the writer lock, and its bytes are gone anyway. False (marks kept, rows kept)
    when the index cannot be written yet."""
    if not relpaths:
        return True
    try:
        with store.index.write() as db:
            db.executemany("delete from segment where relpath = ?", [(r,) for r in relpaths])
    except sqlite3.OperationalError as e:
        log.error("store %s: %d segment file(s) were deleted for space but their index rows "
                  "could not be removed yet (%s); retrying at the next retention pass and at "
                  "the next start", store.root, len(relpaths), e)
        return False
    dirs: set[tuple[str, str]] = set()
    for relpath in relpaths:
        mark_path(layout.to_path(store.root, relpath)).unlink(missing_ok=True)
        key = layout.parse_relpath(relpath)
        if key is not None:
            dirs.add((key.camera_id, key.run_id))
    remove_empty_run_dirs(store, dirs)
    return True


def free_space(store: StoreParts, min_free_bytes: int, max_age_us: int | None,
               now_wall_us: int, report: RetentionReport) -> int:
    """Files-first deletion of the oldest segments until `min_free_bytes` are free.

    Works on a disk with no free block at all (renames and truncates need none); the rows go in
    one transaction at the end, once the freed space lets SQLite write. Returns the free bytes."""
    while True:
        marked: list[str] = list(store.pending_marks)
        done = report.deleted_for_space
        free = _mark_oldest(store.root, store.index.read(), store.disk_free, min_free_bytes,
                            max_age_us, now_wall_us, report, marked)
        if not marked:
            return free
        if not finish_marks(store, marked):
            store.pending_marks[:] = marked
            report.unfinished_marks = len(marked)
            if report.space_short or report.deleted_for_space == done:
                return store.disk_free()
            continue  # the index needed more than was free (a checkpoint grows it): free more
        report.unfinished_marks = 0
        store.pending_marks.clear()
        _shrink_log(store)
        # Deleting the rows grows the index's log a little: go round again until it fits.
        free = store.disk_free()
        if free >= min_free_bytes or report.space_short or report.deleted_for_space == done:
            return free


def _shrink_log(store: StoreParts) -> None:
    """Give the index's write-ahead log back to the disk: on a short disk every page counts, and
    the log only grows until a checkpoint. Best effort (a reader's snapshot may hold it)."""
    try:
        with store.index.locked():
            store.index.writer.execute("pragma wal_checkpoint(truncate)").fetchall()
    except sqlite3.Error as e:
        log.debug("store %s: checkpoint after deleting for space failed: %s", store.root, e)


def retry_garbage(store: StoreParts) -> int:
    """Unlink files whose rows are already gone (an earlier unlink failed); returns how many."""
    done: list[str] = []
    for (relpath,) in store.index.read().execute("select relpath from garbage").fetchall():
        try:
            layout.to_path(store.root, relpath).unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not delete %s yet: %s", relpath, e)
            continue
        done.append(relpath)
    if done:
        try:
            with store.index.write() as db:
                db.executemany("delete from garbage where relpath = ?", [(r,) for r in done])
        except sqlite3.OperationalError as e:
            # A full disk: the files are gone, the entries name nothing; the next pass drops them.
            log.warning("store %s: could not drop %d garbage entries yet: %s", store.root,
                        len(done), e)
    return len(done)


def _log_report(root: Path, report: RetentionReport, min_free_bytes: int) -> None:
    for early in report.early.values():
        log.warning("retention on %s deleted video before max_age_days to keep %d bytes free: "
                    "%s; add disk space, or lower max_age_days or the cameras' bitrate so that "
                    "the promised days fit", root, min_free_bytes, early.describe())
    if report.deleted:
        log.info("retention on %s: deleted %d by age, %d for space, %d bytes freed", root,
                 report.deleted_by_age, report.deleted_for_space, report.bytes_freed)


def apply_retention(store: StoreParts, max_age_us: int | None, min_free_bytes: int,
                    now_wall_us: int) -> RetentionReport:
    """Space first (files first, so it works on a full disk), then age (rows first)."""
    report = RetentionReport()
    read = store.index.read()
    candidates = ("select segment_id, camera_id, relpath, bytes from segment "
                  "where reinsert_pending = 0 {cond} order by start_wall_us, segment_id limit ?")
    with store.index.locked():
        retry_garbage(store)
        free = free_space(store, min_free_bytes, max_age_us, now_wall_us, report)
        if max_age_us is not None and not report.unfinished_marks:
            cutoff = now_wall_us - max_age_us
            while True:
                rows = read.execute(candidates.format(cond="and end_wall_us <= ?"),
                                    (cutoff, _BATCH)).fetchall()
                if not rows:
                    break
                n, freed = delete_rows(store, rows)
                report.bytes_freed += freed
                report.deleted_by_age += n
                report.deleted_ids += [r[0] for r in rows]
                if len(rows) < _BATCH:
                    break
            free = store.disk_free()
        report.free_bytes_after = free
    _log_report(store.root, report, min_free_bytes)
    return report
