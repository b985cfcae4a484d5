"""Bring files and index back into agreement after whatever the last process left behind.

Runs once at open, before any recorder writes. Rules (docs/store.md, "Reconcile"):

- a row whose file is missing or has the wrong size is kept and marked (`file_problem`), and
  logged as an error: deleting it would hide a loss, and the file may come back (a disk remounted);
- a file without a row in one of our runs is salvaged: cut to its readable prefix and indexed;
- a file we can't salvage (no complete fragment, unknown run, someone else's run) is moved to
  `quarantine/`, never deleted: it may be the only copy of those bytes; a good file whose row
  cannot be written (a full disk, an I/O error) stays where it is for the next start;
- a `<name>.deleting` mark is a file retention emptied for space before deleting its row: the row
  is deleted and the mark unlinked, so the deliberate deletion is never reported as a loss;
- a write the index refuses (a full disk) is reported and retried at the next start instead of
  stopping the store from opening: retention, which can free the disk, needs the store open;
- a file listed in `garbage` was deleted on purpose (retention) and is unlinked;
- a run of ours left open is closed with end_reason 'crash' at the end of its last segment;
- import staging files and `*.tmp` files are removed: no row can reference them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hotspare.store import layout, mp4, retention
from hotspare.store.db import RUN_COLUMNS, row_to_run
from hotspare.store.parts import StoreParts

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    rows_checked: int = 0
    files_checked: int = 0
    salvaged: int = 0  # files without a row that were indexed (possibly cut to their prefix)
    truncated_bytes: int = 0  # bytes cut off salvaged files (an unfinished last fragment)
    quarantined: int = 0
    missing_files: int = 0  # rows whose file is absent (marked, kept)
    bad_size: int = 0  # rows whose file has another size (marked, kept)
    recovered: int = 0  # marked rows whose file is back and right again
    runs_closed: int = 0
    temp_removed: int = 0
    garbage_removed: int = 0
    unknown_files: int = 0  # files under segments/ that are not ours; left alone
    space_marks_finished: int = 0  # files retention emptied for space whose rows went now
    index_deferred: int = 0  # good files without a row left in place: the index refused the row
    write_failures: int = 0  # steps whose index write failed (full disk); retried at next start
    messages: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.messages

    def note(self, level: int, message: str) -> None:
        self.messages.append(message)
        log.log(level, "reconcile: %s", message)

    def summary(self) -> str:
        return (f"rows={self.rows_checked} files={self.files_checked} salvaged={self.salvaged} "
                f"quarantined={self.quarantined} missing={self.missing_files} "
                f"bad_size={self.bad_size} recovered={self.recovered} "
                f"runs_closed={self.runs_closed} temp_removed={self.temp_removed} "
                f"garbage_removed={self.garbage_removed} unknown={self.unknown_files} "
                f"space_marks={self.space_marks_finished} deferred={self.index_deferred} "
                f"write_failures={self.write_failures}")


def reconcile(store: StoreParts) -> ReconcileReport:
    report = ReconcileReport()
    root = store.root
    with store.index.locked():
        _tolerant(report, "finish deletions retention began",
                  lambda: _finish_garbage(store, report))
        _remove_temp_files(root, report)
        marks: list[str] = []
        on_disk = _scan_segment_files(root, report, marks)
        if marks:
            if retention.finish_marks(store, marks):
                report.space_marks_finished = len(marks)
                report.note(logging.INFO, f"finished {len(marks)} deletion(s) for space that "
                                          "retention began before a stop")
            else:
                report.write_failures += 1
        indexed = _check_rows(store, on_disk, report, set(marks))
        for relpath in sorted(set(on_disk) - indexed):
            _adopt_orphan(store, relpath, report)
        _tolerant(report, "close runs left open", lambda: _close_open_runs(store, report))
    level = logging.INFO if report.clean else logging.WARNING
    log.log(level, "reconcile of %s: %s", root, report.summary())
    return report


def _tolerant(report: ReconcileReport, step: str, job: Callable[[], None]) -> None:
    """Run one step; an index that refuses the write (a full disk) is reported, not raised."""
    try:
        job()
    except sqlite3.OperationalError as e:
        report.write_failures += 1
        report.note(logging.ERROR, f"could not {step}: the index refused the write ({e}); "
                                   "retried at the next start; free disk space")


def _finish_garbage(store: StoreParts, report: ReconcileReport) -> None:
    db = store.index.read()
    for (relpath,) in db.execute("select relpath from garbage").fetchall():
        path = layout.to_path(store.root, relpath)
        if path.exists():
            path.unlink()
            layout.fsync_dir(path.parent)
            report.garbage_removed += 1
        with store.index.write() as w:
            w.execute("delete from garbage where relpath = ?", (relpath,))


def _remove_temp_files(root: Path, report: ReconcileReport) -> None:
    candidates = [p for p in (root / layout.INCOMING_DIR).iterdir() if p.is_file()]
    candidates += [p for p in (root / layout.SEGMENTS_DIR).rglob("*" + layout.TEMP_SUFFIX)
                   if p.is_file()]
    for p in candidates:
        p.unlink()
        report.temp_removed += 1
        report.note(logging.INFO, f"removed temporary file {layout.to_relpath(root, p)}")


def _scan_segment_files(root: Path, report: ReconcileReport,
                        marks: list[str]) -> dict[str, int]:
    """relpath → size of every segment-shaped file; other files are reported and left alone.
    The relpaths of retention's space marks are added to `marks`."""
    found: dict[str, int] = {}
    for p in (root / layout.SEGMENTS_DIR).rglob("*"):
        if not p.is_file():
            continue
        rel = layout.to_relpath(root, p)
        if rel.endswith(retention.MARK_SUFFIX):
            marked = rel[: -len(retention.MARK_SUFFIX)]
            if layout.parse_relpath(marked) is not None:
                marks.append(marked)
                continue
        if layout.parse_relpath(rel) is None:
            report.unknown_files += 1
            report.note(logging.WARNING, f"unknown file {rel} left in place")
            continue
        found[rel] = p.stat().st_size
    report.files_checked = len(found)
    return found


def _check_rows(store: StoreParts, on_disk: dict[str, int], report: ReconcileReport,
                marks: set[str]) -> set[str]:
    rows = store.index.read().execute(
        "select segment_id, camera_id, relpath, bytes, file_problem from segment").fetchall()
    report.rows_checked = len(rows)
    updates: list[tuple[str | None, int]] = []
    for seg_id, camera_id, relpath, size, problem in rows:
        if relpath in marks:
            continue  # being deleted for space; its row goes once the index can be written
        actual = on_disk.get(relpath)
        if actual is None:
            new: str | None = "missing"
            if problem != new:
                report.missing_files += 1
                report.note(logging.ERROR, f"camera {camera_id} segment {seg_id}: file {relpath} "
                                           "is missing; row kept, marked missing")
        elif actual != size:
            new = f"size {actual} bytes, indexed {size}"
            if problem != new:
                report.bad_size += 1
                report.note(logging.ERROR, f"camera {camera_id} segment {seg_id}: file {relpath} "
                                           f"has {actual} bytes, index says {size}; row marked")
        else:
            new = None
            if problem is not None:
                report.recovered += 1
                report.note(logging.WARNING, f"camera {camera_id} segment {seg_id}: file {relpath} "
                                             f"is back (was: {problem})")
        if new != problem:
            updates.append((new, seg_id))
    if updates:
        def mark_rows() -> None:
            with store.index.write() as db:
                db.executemany("update segment set file_problem = ? where segment_id = ?",
                               updates)
        _tolerant(report, "mark rows whose file is missing or changed", mark_rows)
    return {r[2] for r in rows}


def _adopt_orphan(store: StoreParts, relpath: str, report: ReconcileReport) -> None:
    key = layout.parse_relpath(relpath)
    assert key is not None
    path = layout.to_path(store.root, relpath)
    row = store.index.read().execute(
        f"select {RUN_COLUMNS} from run where run_id = ?", (key.run_id,)).fetchone()
    run = row_to_run(row) if row else None
    if run is None or run.camera_id != key.camera_id:
        quarantine(store.root, relpath, report, "no matching run in the index")
        return
    if run.recorded_by != store.server_name:
        # An import cut short between rename and insert: never acknowledged, so the sender still
        # has it and will send it again; indexing it here would skip the overlap rule.
        quarantine(store.root, relpath, report, f"unacknowledged import from {run.recorded_by}")
        return
    try:
        info = mp4.parse_path(path)
    except (mp4.Mp4Error, OSError) as e:
        quarantine(store.root, relpath, report, f"unreadable: {e}")
        return
    if not info.fragments:
        quarantine(store.root, relpath, report, "no complete fragment")
        return
    size = path.stat().st_size
    if info.readable_bytes < size:
        with path.open("r+b") as f:
            f.truncate(info.readable_bytes)
        report.truncated_bytes += size - info.readable_bytes
    layout.fsync_file(path)
    layout.fsync_dir(path.parent)
    sha = layout.sha256_file(path)
    try:
        seg = store.insert_own_segment(run, key.seq, info, size=info.readable_bytes, sha256=sha,
                                       relpath=relpath)
        with store.index.write() as w:
            # A run closed before this crash can't end before the video just found for it.
            w.execute("update run set ended_wall_us = ? where run_id = ? and ended_wall_us < ?",
                      (seg.end_wall_us, run.run_id, seg.end_wall_us))
    except sqlite3.Error as e:
        # The file is good; the index is what failed (full disk, I/O error). Quarantine would
        # take good video off the timeline for good (nothing re-indexes it by itself); left here,
        # the next start indexes it.
        report.index_deferred += 1
        report.note(logging.ERROR, f"camera {key.camera_id}: {relpath} is complete but its row "
                                   f"could not be written ({e}); left in place, indexed at the "
                                   "next start; free disk space")
        return
    except Exception as e:  # a row we can't insert must not stop the store from opening
        quarantine(store.root, relpath, report, f"could not index: {e}")
        return
    report.salvaged += 1
    cut = f", cut {size - info.readable_bytes} bytes of an unfinished fragment" \
        if info.readable_bytes < size else ""
    report.note(logging.WARNING, f"camera {key.camera_id}: salvaged {relpath} as segment "
                                 f"{seg.segment_id} ({seg.frame_count} frames{cut})")


def quarantine(root: Path, relpath: str, report: ReconcileReport, reason: str) -> None:
    dest = layout.move_to_quarantine(root, relpath)
    report.quarantined += 1
    report.note(logging.ERROR, f"moved {relpath} to {layout.to_relpath(root, dest)}: {reason}")


def _close_open_runs(store: StoreParts, report: ReconcileReport) -> None:
    db = store.index.read()
    open_runs = db.execute(
        "select run.run_id, run.camera_id, run.started_wall_us, max(segment.end_wall_us) "
        "from run left join segment on segment.run_id = run.run_id "
        "where run.ended_wall_us is null and run.recorded_by = ? group by run.run_id",
        (store.server_name,),
    ).fetchall()
    if not open_runs:
        return
    with store.index.write() as w:
        for run_id, camera_id, started, last_end in open_runs:
            ended = last_end if last_end is not None else started
            w.execute("update run set ended_wall_us = ?, end_reason = 'crash' where run_id = ?",
                      (ended, run_id))
            report.runs_closed += 1
            report.note(logging.WARNING, f"camera {camera_id}: run {run_id} was left open; "
                                         "closed with end_reason 'crash'")
