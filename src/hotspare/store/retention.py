"""Oldest-first deletion by age and by free disk space; a spare's unsent video is never deleted.

Order of a deletion (docs/store.md, "Retention"): in one transaction the row is deleted and its path
recorded in `garbage`; then the file is unlinked; then the garbage entry is removed. A crash at any
point leaves either the row (nothing happened) or a garbage entry (reconcile finishes the unlink and
does not mistake the file for an orphan to salvage). A row never points at a deleted file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hotspare.store import layout
from hotspare.store.db import now_us
from hotspare.store.parts import StoreParts

log = logging.getLogger(__name__)
_BATCH = 64


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
    read = store.index.read()
    for camera_id, run_id in dirs:
        d = store.root / layout.SEGMENTS_DIR / camera_id / run_id
        layout.fsync_dir(d)
        ended = read.execute("select ended_wall_us is not null from run where run_id = ?",
                             (run_id,)).fetchone()
        if ended and ended[0]:
            try:
                d.rmdir()  # an ended run's directory, once empty; an open run may still write
                layout.fsync_dir(d.parent)
            except OSError:
                pass
    with store.index.write() as db:
        db.executemany("delete from garbage where relpath = ?", [(r,) for r in unlinked])
    return len(gone), freed


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
        with store.index.write() as db:
            db.executemany("delete from garbage where relpath = ?", [(r,) for r in done])
    return len(done)


def apply_retention(store: StoreParts, max_age_us: int | None, min_free_bytes: int,
                    now_wall_us: int) -> RetentionReport:
    report = RetentionReport()
    read = store.index.read()
    candidates = ("select segment_id, camera_id, relpath, bytes from segment "
                  "where reinsert_pending = 0 {cond} order by start_wall_us, segment_id limit ?")
    with store.index.locked():
        retry_garbage(store)
        if max_age_us is not None:
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
        while free < min_free_bytes:
            rows = read.execute(candidates.format(cond=""), (1,)).fetchall()
            if not rows:
                report.space_short = True
                log.error("store %s: %d bytes free, below the minimum %d, and nothing left that "
                          "retention may delete", store.root, free, min_free_bytes)
                break
            n, freed = delete_rows(store, rows)
            report.bytes_freed += freed
            report.deleted_for_space += n
            report.deleted_ids.append(rows[0][0])
            free = store.disk_free()
        report.free_bytes_after = free
    if report.deleted:
        log.info("retention on %s: deleted %d by age, %d for space, %d bytes freed", store.root,
                 report.deleted_by_age, report.deleted_for_space, report.bytes_freed)
    return report
