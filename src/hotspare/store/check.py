"""Offline store check: does a store still keep every promise its schema states?

Reconcile (at every open) only compares file sizes with rows and tidies what a crash left behind; it
never reads video, so a flipped byte, a row whose times disagree with its file, or two recordings of
one camera by one server on top of each other go unnoticed until someone plays them back. This
check reads everything once and says what is wrong and what to do (Moonfire NVR's `db check` is
the model).

Read only unless asked to repair: the index is opened read-only (or a copy of it is, when a crash
left a write-ahead log that a read-only reader would have to recover next to the store), nothing is
created, moved or locked, so it may run beside a live node. `repair=True` takes the store's lock
(no node may have the store open) and makes only the changes listed in docs/store.md ("Checking a
store"): none deletes or rewrites video, and most are what reconcile does at the next open anyway.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from hotspare.store import layout, mp4, retention
from hotspare.store.db import SCHEMA_VERSION, connect
from hotspare.store.lockfile import LOCK_NAME, StoreLock, StoreLocked
from hotspare.store.models import media_to_wall_us, ticks_to_us
from hotspare.store.parts import MAX_SEGMENT_90K

Severity = Literal["error", "warning", "info"]
# Wall times are derived from the run's anchor with one rounding; the importer accepts ±1 µs.
WALL_TOLERANCE_US = 1
# Findings past this many of one kind are counted but not printed (--json has them all): a store
# whose every file is gone needs a screenful saying so, not a million lines.
MAX_LISTED_PER_KIND = 200


@dataclass
class Finding:
    """One thing wrong (or worth knowing) about one object of the store."""

    severity: Severity
    kind: str
    where: str  # a relpath, "segment 12", "run r…", "index"
    message: str  # what is wrong, with the numbers
    action: str  # what the operator (or the node's next start) should do
    camera: str | None = None
    repaired: str | None = None  # what --repair did about it
    fix: Callable[[_Repairer], str] | None = field(default=None, repr=False, compare=False)

    def line(self) -> str:
        label = "REPAIRED" if self.repaired else self.severity.upper()
        cam = f" camera {self.camera}:" if self.camera else ""
        text = f"{label:<8} {self.kind:<17} {self.where}:{cam} {self.message}"
        if self.repaired:
            return f"{text} -> {self.repaired}"
        return f"{text}; {self.action}" if self.action else text

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "kind": self.kind, "where": self.where,
                "camera": self.camera, "message": self.message, "action": self.action,
                "repaired": self.repaired}


@dataclass
class CheckReport:
    """Everything one check found in one store, plus what it looked at."""

    root: Path
    created_by: str | None = None
    schema_version: int | None = None
    live: bool | None = None  # a node holds the store's lock (None: could not tell)
    snapshot: bool = False  # the index was read from a copy (a crash left a write-ahead log)
    hashed: bool = True
    runs: int = 0
    segments: int = 0
    files: int = 0
    bytes_checked: int = 0
    quarantined_files: int = 0
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    @property
    def problems(self) -> list[Finding]:
        """Findings still wrong after the check (and any repair): errors and warnings."""
        return [f for f in self.findings if f.severity != "info" and not f.repaired]

    @property
    def clean(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "info": 0, "repaired": 0}
        for f in self.findings:
            out["repaired" if f.repaired else f.severity] += 1
        return out

    def lines(self) -> Iterator[str]:
        """One line per finding, at most MAX_LISTED_PER_KIND of a kind, then the summary."""
        shown: dict[str, int] = defaultdict(int)
        for f in self.findings:
            shown[f.kind] += 1
            if shown[f.kind] <= MAX_LISTED_PER_KIND:
                yield f.line()
        for kind, n in shown.items():
            if n > MAX_LISTED_PER_KIND:
                yield (f"...      {kind:<17} {n - MAX_LISTED_PER_KIND} more not listed "
                       "(--json lists all)")
        yield self.summary()

    def summary(self) -> str:
        c = self.counts()
        state = "clean" if self.clean else "NOT clean"
        who = f"created by {self.created_by}, " if self.created_by else ""
        live = {True: "; a node had it open (in-flight files are notes, not problems)",
                False: "", None: "; could not tell whether a node has it open"}[self.live]
        hashed = "" if self.hashed else "; SHA-256 not checked (--no-hash)"
        if self.snapshot:
            hashed += "; index read from a copy (a crash left its write-ahead log)"
        return (f"store {self.root}: {state} ({who}{self.runs} runs, {self.segments} segments, "
                f"{self.files} files, {self.bytes_checked} bytes read, "
                f"{self.quarantined_files} in quarantine/): {c['error']} errors, "
                f"{c['warning']} warnings, {c['repaired']} repaired{hashed}{live}")

    def to_json(self) -> dict[str, Any]:
        return {"store": str(self.root), "clean": self.clean, "created_by": self.created_by,
                "schema_version": self.schema_version, "live": self.live,
                "snapshot": self.snapshot, "hashed": self.hashed, "runs": self.runs,
                "segments": self.segments, "files": self.files,
                "bytes_checked": self.bytes_checked,
                "quarantined_files": self.quarantined_files, "counts": self.counts(),
                "findings": [f.to_json() for f in self.findings]}


class CheckError(RuntimeError):
    """The store could not be checked at all (not found, locked for --repair, not an index)."""


def find_stores(path: Path) -> list[Path]:
    """Store directories at or below `path`: a store itself, or a node's data dir holding
    `store/`, `idle-store/` and a spare's `buffer/<server>/` stores."""
    if not path.exists():
        raise CheckError(f"{path} does not exist; give the node's data_dir (see its node.toml) "
                         "or a store directory")
    if not path.is_dir():
        raise CheckError(f"{path} is not a directory; give the node's data_dir or a store "
                         "directory")
    if (path / layout.INDEX_NAME).is_file():
        return [path]
    found = sorted({p.parent for pattern in (f"*/{layout.INDEX_NAME}", f"*/*/{layout.INDEX_NAME}")
                    for p in path.glob(pattern) if p.is_file()})
    if not found:
        raise CheckError(f"no store under {path}: no {layout.INDEX_NAME} in it or in its "
                         "sub-directories; give the node's data_dir or a store directory")
    return found


def lock_held(root: Path) -> bool | None:
    """Whether some process holds the store's lock, found without touching the lock.

    Taking it, even for an instant, could make a node starting at that moment refuse to open its
    store; Linux lists every flock in /proc/locks, so we read that. None where we cannot tell."""
    lock = root / LOCK_NAME
    try:
        st = lock.stat()
    except FileNotFoundError:
        return False
    if not sys.platform.startswith("linux"):
        return None
    try:
        text = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 7909 fe:00:2188470 0 EOF"; blocked waiters start with "->"
        if len(parts) < 6 or parts[1] == "->":
            continue
        fields = parts[5].split(":")
        if len(fields) == 3 and fields[2].isdigit() and int(fields[2]) == st.st_ino:
            try:
                major, minor = int(fields[0], 16), int(fields[1], 16)
            except ValueError:
                continue
            if (major, minor) == (os.major(st.st_dev), os.minor(st.st_dev)):
                return True
    return False


@contextmanager
def _open_index(root: Path, report: CheckReport) -> Iterator[sqlite3.Connection]:
    """A read-only view of the index that leaves nothing behind in the store.

    `mode=ro` alone still creates `-wal`/`-shm` files next to the database. With no log present
    the database file is all there is, and `immutable=1` reads it without them. A crash may leave a
    log holding the last commits; reading it needs a writable wal-index, so those two files are
    copied out and read there. A live node's store is read through its own log (`mode=ro`): the
    files exist already and copying them mid-write could give a torn view.
    """
    index = root / layout.INDEX_NAME
    wal = root / (layout.INDEX_NAME + "-wal")
    uri = index.resolve().as_uri()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if report.live:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    elif wal.exists() and wal.stat().st_size > 0:
        tmp = tempfile.TemporaryDirectory(prefix="hotspare-check-")
        copy = Path(tmp.name) / layout.INDEX_NAME
        shutil.copyfile(index, copy)
        shutil.copyfile(wal, Path(tmp.name) / wal.name)
        report.snapshot = True
        conn = sqlite3.connect(copy)
    else:
        conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()
        if tmp is not None:
            tmp.cleanup()


def check_store(root: Path, *, repair: bool = False, hash_files: bool = True) -> CheckReport:
    """Check one store directory (which holds index.sqlite3); repair the safe findings if asked.

    Raises CheckError when it cannot check at all: no index, a newer schema, or (repair) a node
    holding the store.
    """
    root = Path(root).resolve()
    if not (root / layout.INDEX_NAME).is_file():
        raise CheckError(f"{root} has no {layout.INDEX_NAME}: not a store directory")
    report = CheckReport(root=root, hashed=hash_files)
    lock: StoreLock | None = None
    if repair:
        try:
            lock = StoreLock.acquire(root / LOCK_NAME)
        except StoreLocked:
            lock = None
        if lock is None:
            raise CheckError(f"{root}: a node has this store open ({LOCK_NAME} is held); stop "
                             "that node before --repair (a plain check may run alongside it)")
        report.live = False
    else:
        report.live = lock_held(root)
    try:
        with _open_index(root, report) as conn:
            _Checker(root, conn, report).run()
        if repair:
            _Repairer(root).apply(report)
    finally:
        if lock is not None:
            lock.release()
    return report


class _Checker:
    def __init__(self, root: Path, conn: sqlite3.Connection, report: CheckReport) -> None:
        self.root = root
        self.db = conn
        self.report = report
        self.runs: dict[str, sqlite3.Row] = {}
        self.segments: list[sqlite3.Row] = []

    def add(self, severity: Severity, kind: str, where: str, message: str, action: str,
            camera: str | None = None,
            fix: Callable[[_Repairer], str] | None = None) -> None:
        self.report.add(Finding(severity, kind, where, message, action, camera, fix=fix))

    def run(self) -> None:
        if not self._check_meta():
            return
        try:
            self._run()
        except sqlite3.DatabaseError as e:  # e.g. "database disk image is malformed"
            self.add("error", "integrity", "index", f"reading the index failed: {e}",
                     "the index file is damaged; stop, copy the store aside and restore "
                     f"{layout.INDEX_NAME} from a backup before starting a node")

    def _run(self) -> None:
        self._check_sqlite()
        self.runs = {r["run_id"]: r for r in self.db.execute("select * from run")}
        self.segments = self.db.execute(
            "select * from segment order by camera_id, run_id, seq").fetchall()
        self.report.runs, self.report.segments = len(self.runs), len(self.segments)
        self._check_constraints()
        self._check_runs()
        for seg in self.segments:
            self._check_row(seg)
        self._check_media_order()
        self._check_overlap()
        self._check_files()
        self._check_garbage()

    # ------------------------------------------------------------------ the database itself

    def _check_meta(self) -> bool:
        """False when nothing else can be trusted (no meta row, or a newer schema)."""
        try:
            rows = self.db.execute("select schema_version, created_by from meta").fetchall()
        except sqlite3.DatabaseError as e:
            self.add("error", "schema", "index", f"{layout.INDEX_NAME} has no readable meta "
                     f"table ({e})", "this is not a hotspare store index, or it is damaged; "
                     "restore it from a backup")
            return False
        if len(rows) != 1:
            self.add("error", "schema", "index", f"meta has {len(rows)} rows, must have exactly 1",
                     "the index is damaged; restore it from a backup")
            return False
        version, created_by = rows[0]
        self.report.schema_version, self.report.created_by = version, created_by
        if version > SCHEMA_VERSION:
            raise CheckError(f"{self.root}: index schema version {version} is newer than this "
                             f"hotspare ({SCHEMA_VERSION}); check it with the hotspare that wrote "
                             "it")
        if version != SCHEMA_VERSION:
            self.add("error", "schema", "index", f"schema version {version}, this hotspare knows "
                     f"only {SCHEMA_VERSION}", "the index was not written by a released hotspare; "
                     "do not start a node on it before finding out where it came from")
        return True

    def _check_sqlite(self) -> None:
        for (msg,) in self.db.execute("pragma integrity_check"):
            if msg != "ok":
                self.add("error", "integrity", "index", f"SQLite integrity_check: {msg}",
                         "the index file is damaged; stop, copy the store aside, restore "
                         f"{layout.INDEX_NAME} from a backup or ask for help before starting "
                         "a node")
        for row in self.db.execute("pragma foreign_key_check"):
            table, rowid, parent = row[0], row[1], row[2]
            self.add("error", "foreign_key", f"{table} row {rowid}",
                     f"refers to a {parent} row that does not exist",
                     "a segment without its run has no wall-time anchor; restore the index from a "
                     "backup")

    def _check_constraints(self) -> None:
        """The schema's CHECK constraints, row by row: SQLite enforces them on write but its
        integrity_check (3.40 at least) does not re-verify them, and a row written with checks off
        or by another tool would pass unnoticed. Skip counts are checked with the file."""
        for table, id_col, cond, text in _CONSTRAINTS:
            try:
                rows = self.db.execute(
                    f"select {id_col}, camera_id from {table} where {cond}").fetchall()
            except sqlite3.OperationalError:
                continue  # a column this schema version does not have
            for row in rows:
                self.add("error", "constraint", f"{table} {row[0]}", f"breaks the schema's "
                         f"rule {text}", "the row was not written by hotspare; restore the index "
                         "from a backup or report it", row[1])

    # ------------------------------------------------------------------ runs

    def _check_runs(self) -> None:
        last_end: dict[str, int] = {}
        for seg in self.segments:
            end = self._end_wall(seg)
            last_end[seg["run_id"]] = max(end, last_end.get(seg["run_id"], end))
        for run_id, run in sorted(self.runs.items()):
            where, cam = f"run {run_id}", run["camera_id"]
            if run["started_wall_us"] != run["anchor_wall_us"]:
                self.add("error", "run_time", where,
                         f"started_wall_us {run['started_wall_us']} differs from anchor_wall_us "
                         f"{run['anchor_wall_us']}", "the run row was edited by hand or by a "
                         "broken writer; report it", cam)
            ended = run["ended_wall_us"]
            if ended is None:
                if self.report.live:
                    continue  # a recording in progress
                ours = run["recorded_by"] == self.report.created_by
                self.add("warning", "run_open", where, "run was never ended (the recorder's "
                         "process stopped without closing it)",
                         "the node's next start closes it as 'crash'" if ours else
                         f"it was recorded by {run['recorded_by']}; a node named "
                         f"{run['recorded_by']} closes it when it opens this store", cam)
                continue
            held = last_end.get(run_id)
            if held is not None and ended < held:
                self.add("warning", "run_end", where,
                         f"ends at {ended} µs but its last segment ends at {held} µs",
                         "--repair moves the run's end to its last segment's end", cam,
                         fix=partial(_Repairer.extend_run, run_id=run_id, end_wall_us=held))

    # ------------------------------------------------------------------ rows

    @staticmethod
    def _end_wall(seg: sqlite3.Row) -> int:
        if "end_wall_us" in seg.keys():
            return int(seg["end_wall_us"])
        return int(seg["start_wall_us"]) + ticks_to_us(seg["duration_90k"])

    def _check_row(self, seg: sqlite3.Row) -> None:
        where = f"segment {seg['segment_id']} ({seg['relpath']})"
        cam = seg["camera_id"]
        try:
            expected_rel = layout.segment_relpath(cam, seg["run_id"], seg["seq"])
        except layout.InvalidId as e:
            expected_rel = None
            self.add("error", "row_ids", where, str(e), "ids become path components; the row was "
                     "not written by hotspare, restore the index from a backup", cam)
        if expected_rel is not None and seg["relpath"] != expected_rel:
            self.add("error", "relpath", where, f"relpath should be {expected_rel}",
                     "the row points at another segment's name; report it", cam)
        run = self.runs.get(seg["run_id"])
        if run is not None:
            theirs = (run["camera_id"], run["recorded_by"], run["recorded_as"])
            ours = (cam, seg["recorded_by"], seg["recorded_as"])
            if theirs != ours:
                self.add("error", "run_mismatch", where,
                         f"(camera, recorded_by, recorded_as) = {ours}, its run says {theirs}",
                         "listings and re-insert would attribute this video to the wrong "
                         "server or camera; report it", cam)
            want = media_to_wall_us(run["anchor_wall_us"], seg["start_media_90k"])
            if abs(seg["start_wall_us"] - want) > WALL_TOLERANCE_US:
                self.add("error", "wall_time", where,
                         f"start_wall_us {seg['start_wall_us']} but run anchor "
                         f"{run['anchor_wall_us']} + media {seg['start_media_90k']} (90 kHz) "
                         f"gives {want} ({(seg['start_wall_us'] - want) / 1000:+.1f} ms)",
                         "the segment shows at the wrong time in timelines and playback; report "
                         "it", cam)
        if "end_wall_us" in seg.keys():
            want_end = seg["start_wall_us"] + ticks_to_us(seg["duration_90k"])
            if abs(seg["end_wall_us"] - want_end) > WALL_TOLERANCE_US:
                self.add("error", "wall_time", where,
                         f"end_wall_us {seg['end_wall_us']} but start + duration gives "
                         f"{want_end}", "range queries would miss or misplace it; report it", cam)
        if seg["duration_90k"] > MAX_SEGMENT_90K:
            self.add("error", "duration", where,
                     f"{seg['duration_90k'] / 90_000:.1f} s long; the store indexes at most "
                     f"{MAX_SEGMENT_90K // 90_000} s", "listings look back only that far and "
                     "would miss part of it; report it", cam)
        skipped = seg["head_skip_frames"] + seg["tail_skip_frames"]
        if skipped >= seg["frame_count"]:
            self.add("error", "skips", where,
                     f"head_skip_frames {seg['head_skip_frames']} + tail_skip_frames "
                     f"{seg['tail_skip_frames']} >= frame_count {seg['frame_count']}",
                     "a segment with no counted frame should never have been stored; report it",
                     cam)
        elif seg["head_skip_90k"] + seg["tail_skip_90k"] >= seg["duration_90k"]:
            self.add("error", "skips", where,
                     f"skipped time {seg['head_skip_90k'] + seg['tail_skip_90k']} >= duration "
                     f"{seg['duration_90k']} (90 kHz)", "report it", cam)
        own = seg["imported_from"] is None and seg["recorded_as"] != seg["recorded_by"]
        if seg["reinsert_pending"] and not own:
            why = ("it was imported from " + seg["imported_from"] if seg["imported_from"]
                   else f"it was recorded by {seg['recorded_by']} as itself")
            self.add("error", "reinsert_flag", where,
                     f"reinsert_pending is set but {why}: only a spare's own recording under "
                     "another server's identity is owed to anyone",
                     "retention never deletes it, so the disk fills up; report it", cam)

    # ------------------------------------------------------------------ media and wall time

    def _check_media_order(self) -> None:
        """Within a run, seq order is media order and segments do not overlap in media time (the
        recorder cuts one stream at keyframes). Gaps are allowed: a crash loses a segment, the
        re-insert of a buffer deletes them, a camera may drop frames."""
        by_run: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for seg in self.segments:
            by_run[seg["run_id"]].append(seg)
        for segs in by_run.values():
            for prev, cur in pairwise(segs):
                where = f"segment {cur['segment_id']} ({cur['relpath']})"
                prev_end = prev["start_media_90k"] + prev["duration_90k"]
                # The last frame's duration is the muxer's guess, so up to one frame may overlap.
                frame = prev["duration_90k"] // max(prev["frame_count"], 1)
                if cur["start_media_90k"] <= prev["start_media_90k"]:
                    self.add("error", "media_order", where,
                             f"seq {cur['seq']} starts at media {cur['start_media_90k']}, not "
                             f"after seq {prev['seq']} ({prev['start_media_90k']})",
                             "seq must follow media time within a run; report it",
                             cur["camera_id"])
                elif cur["start_media_90k"] < prev_end - frame:
                    self.add("error", "overlap", where,
                             f"starts {(prev_end - cur['start_media_90k']) / 90:.1f} ms before "
                             f"seq {prev['seq']} of the same run ends (media time)",
                             "one stream cannot hold the same moment twice; report it",
                             cur["camera_id"])

    def _check_overlap(self) -> None:
        """Recordings of one camera by one machine never overlap in wall time: a server runs one
        recorder per camera, and a run begins only after the last one ended. Only runs anchored
        on the camera's clock are compared across runs; a server clock may be off by more than
        a frame. Different machines may overlap (the import trims only leading and trailing
        duplicates, keeps the middle ones, and never trims local-anchored video)."""
        groups: dict[tuple[str, str], list[tuple[int, int, sqlite3.Row]]] = defaultdict(list)
        for seg in self.segments:
            run = self.runs.get(seg["run_id"])
            if run is None:
                continue
            start = seg["start_wall_us"] + ticks_to_us(seg["head_skip_90k"])
            end = seg["start_wall_us"] + ticks_to_us(seg["duration_90k"] - seg["tail_skip_90k"])
            groups[(seg["camera_id"], seg["recorded_by"])].append((start, end, seg))
        for (camera, machine), items in groups.items():
            items.sort(key=lambda t: (t[0], t[2]["segment_id"]))
            latest: tuple[int, sqlite3.Row] | None = None
            for start, end, seg in items:
                if latest is not None:
                    prev_end, prev = latest
                    frame = prev["duration_90k"] // max(prev["frame_count"], 1)
                    same_run = prev["run_id"] == seg["run_id"]
                    both_camera = (self.runs[prev["run_id"]]["wall_source"] == "camera"
                                   and self.runs[seg["run_id"]]["wall_source"] == "camera")
                    if not same_run and both_camera and start < prev_end - ticks_to_us(frame):
                        self.add("error", "overlap", f"segment {seg['segment_id']} "
                                 f"({seg['relpath']})",
                                 f"overlaps segment {prev['segment_id']} ({prev['relpath']}) by "
                                 f"{(prev_end - start) / 1000:.1f} ms of wall time; both were "
                                 f"recorded by {machine}",
                                 "one server cannot record a camera twice at once: the camera's "
                                 "clock jumped or a row was edited; play both to see which is "
                                 "right and report it", camera)
                if latest is None or end > latest[0]:
                    latest = (end, seg)

    # ------------------------------------------------------------------ files

    def _check_files(self) -> None:
        root, report = self.root, self.report
        on_disk: dict[str, Path] = {}
        marks: set[str] = set()
        seg_dir = root / layout.SEGMENTS_DIR
        for p in sorted(seg_dir.rglob("*")) if seg_dir.is_dir() else []:
            if not p.is_file():
                continue
            rel = layout.to_relpath(root, p)
            if p.name.endswith(layout.TEMP_SUFFIX):
                self._temp_file(rel)
            elif (p.name.endswith(retention.MARK_SUFFIX)
                  and layout.parse_relpath(rel[: -len(retention.MARK_SUFFIX)]) is not None):
                marks.add(rel[: -len(retention.MARK_SUFFIX)])
                self.add("info" if report.live else "warning", "space_mark", rel,
                         "retention emptied this segment for space; its row goes next",
                         "nothing to do: the next retention pass or the node's next start "
                         "deletes the row and this file", _camera_of_dir(rel))
            elif layout.parse_relpath(rel) is None:
                self.add("warning", "unknown_file", rel, "not a segment name hotspare writes",
                         "nothing uses it and no node touches it: move it out of the store",
                         _camera_of_dir(rel))
            else:
                on_disk[rel] = p
        incoming = root / layout.INCOMING_DIR
        for p in sorted(incoming.iterdir()) if incoming.is_dir() else []:
            if p.is_file():
                self._temp_file(layout.to_relpath(root, p))
        quarantine = root / layout.QUARANTINE_DIR
        report.quarantined_files = sum(1 for p in quarantine.rglob("*") if p.is_file()) \
            if quarantine.is_dir() else 0
        report.files = len(on_disk)
        garbage = {r[0] for r in self.db.execute("select relpath from garbage")}
        indexed = set()
        for seg in self.segments:
            indexed.add(seg["relpath"])
            if seg["relpath"] not in marks:  # being deleted on purpose, not lost
                self._check_file(seg, on_disk.get(seg["relpath"]))
        for rel in sorted(set(on_disk) - indexed - garbage):
            self._orphan(rel, on_disk[rel])

    def _temp_file(self, rel: str) -> None:
        severity: Severity = "info" if self.report.live else "warning"
        self.add(severity, "temp_file", rel, "temporary file (an upload or a write in progress)",
                 "no row refers to it; the node's next start deletes it", _camera_of_dir(rel))

    def _check_file(self, seg: sqlite3.Row, path: Path | None) -> None:
        where = f"segment {seg['segment_id']} ({seg['relpath']})"
        cam, mark, seg_id = seg["camera_id"], seg["file_problem"], seg["segment_id"]
        marked = f" (marked '{mark}')" if mark else ""
        if path is None:
            self.add("error", "missing", where, f"file is missing{marked}: "
                     f"{seg['bytes']} bytes of video lost",
                     "if the disk or a backup has it, put it back at that path (the next start "
                     "clears the mark); if the spare that recorded it still holds a copy, its "
                     "re-insert restores it; otherwise the loss is final and the row records it",
                     cam, fix=None if mark == "missing" else
                     partial(_Repairer.mark, segment_id=seg_id, problem="missing"))
            return
        size = path.stat().st_size
        if size != seg["bytes"]:
            new = f"size {size} bytes, indexed {seg['bytes']}"
            self.add("error", "file_size", where,
                     f"file has {size} bytes, the index says {seg['bytes']}{marked}",
                     "the file was cut or overwritten: restore it from a backup or a spare's copy; "
                     "the row is kept so the loss stays visible", cam,
                     fix=None if mark == new else partial(_Repairer.mark, segment_id=seg_id,
                                                          problem=new))
            return
        self.report.bytes_checked += size if self.report.hashed else 0
        if self.report.hashed:
            try:
                sha = layout.sha256_file(path)
            except OSError as e:
                self.add("error", "file_unreadable", where, f"cannot be read: {e}",
                         "the disk cannot give it back: check the kernel log (dmesg) and the "
                         "disk's health (SMART); restore it from a backup or a spare's copy",
                         cam)
                return
            if sha != seg["sha256"]:
                self.add("error", "file_hash", where,
                         f"SHA-256 of the file is {sha[:16]}…, the index says "
                         f"{seg['sha256'][:16]}… (same size: bytes changed on disk){marked}",
                         "the disk corrupted it or something wrote into it: restore it from a "
                         "backup or a spare's copy, and check the disk (SMART, dmesg)", cam)
                return
        try:
            info = mp4.parse_path(path)
        except (mp4.Mp4Error, OSError) as e:
            self.add("error", "file_unreadable", where, f"not a readable segment: {e}",
                     "restore it from a backup or a spare's copy; report it", cam)
            return
        if not info.complete:
            self.add("error", "file_tail", where,
                     f"{info.trailing_note or 'no complete fragment'}",
                     "commit cuts every file to its readable prefix, so this file changed after "
                     "commit; report it", cam)
        said = (seg["init_bytes"], seg["frame_count"], seg["duration_90k"], seg["start_media_90k"])
        found = (info.init_bytes, info.frame_count, info.duration_90k, info.start_media_90k)
        if info.fragments and said != found:
            self.add("error", "row_mismatch", where,
                     f"(init_bytes, frame_count, duration_90k, start_media_90k) = {said} in the "
                     f"index, {found} in the file", "the index was edited or written by a "
                     "broken writer; timelines and re-insert use the index's numbers; report it",
                     cam)
            return
        self._check_skips(seg, info, where)
        if mark:
            self.add("warning", "stale_mark", where,
                     f"marked '{mark}' but the file is back and matches its row"
                     + ("" if self.report.hashed else " (size only)"),
                     "the next start clears the mark; --repair does it now"
                     if self.report.hashed else "the next start clears the mark", cam,
                     fix=partial(_Repairer.mark, segment_id=seg_id, problem=None)
                     if self.report.hashed else None)

    def _check_skips(self, seg: sqlite3.Row, info: mp4.Mp4Info, where: str) -> None:
        """Skip counts are frames of the file (the importer's overlap rule): their 90 kHz
        durations must be exactly those frames' durations (`frame_durations_90k`)."""
        head, tail = seg["head_skip_frames"], seg["tail_skip_frames"]
        frames = info.frame_count  # = the row's frame_count here: the row was compared first
        if head < 0 or tail < 0 or head + tail >= frames:
            return  # reported with the row
        durations = info.frame_durations_90k()
        want = (sum(durations[:head]), sum(durations[frames - tail:]) if tail else 0)
        have = (seg["head_skip_90k"], seg["tail_skip_90k"])
        if want != have:
            self.add("error", "skips", where,
                     f"(head_skip_90k, tail_skip_90k) = {have}, the skipped frames of the file "
                     f"last {want}", "the recorded interval in timelines is off; report it",
                     seg["camera_id"])

    def _orphan(self, rel: str, path: Path) -> None:
        key = layout.parse_relpath(rel)
        assert key is not None
        run = self.runs.get(key.run_id)
        if (self.report.live and run is not None and run["ended_wall_us"] is None
                and run["camera_id"] == key.camera_id):
            self.add("info", "orphan_file", rel, "file without a row in an open run (being "
                     "written)", "", key.camera_id)
            return
        reason: str | None = None
        if run is None or run["camera_id"] != key.camera_id:
            reason = "no matching run in the index"
        elif run["recorded_by"] != self.report.created_by:
            reason = f"an import from {run['recorded_by']} cut short before its row was written"
        else:
            try:
                info = mp4.parse_path(path)
                if not info.fragments:
                    reason = "no complete fragment"
            except (mp4.Mp4Error, OSError) as e:
                reason = f"unreadable: {e}"
        if reason is None:
            self.add("warning", "orphan_file", rel, "file without a row",
                     "the node's next start indexes it (it belongs to one of its own runs and "
                     "holds complete fragments)", key.camera_id)
            return
        self.add("warning", "orphan_file", rel, f"file without a row ({reason})",
                 "--repair (or the node's next start) moves it to quarantine/, where it is kept "
                 "for inspection", key.camera_id,
                 fix=partial(_Repairer.quarantine, relpath=rel))

    def _check_garbage(self) -> None:
        rows = {s["relpath"]: s for s in self.segments}
        for g in self.db.execute("select relpath, camera_id from garbage"):
            rel, cam = g["relpath"], g["camera_id"]
            present = layout.to_path(self.root, rel).exists()
            if rel in rows:
                self.add("error", "garbage_conflict", rel,
                         f"listed for deletion, yet segment {rows[rel]['segment_id']} refers to it",
                         "the node's next start would delete indexed video; --repair drops the "
                         "deletion entry (keeping video is the safe side)", cam,
                         fix=partial(_Repairer.drop_garbage, relpath=rel))
            elif present:
                self.add("warning", "garbage_pending", rel,
                         "retention deleted its row; the file is still there",
                         "the node's next start deletes the file (the check never deletes "
                         "video)", cam)
            else:
                self.add("warning", "garbage_leftover", rel,
                         "deletion entry for a file already gone",
                         "--repair (or the node's next start) drops the entry", cam,
                         fix=partial(_Repairer.drop_garbage, relpath=rel))


# (table, id column, SQL condition a violating row meets, the rule as schema.sql states it)
_CONSTRAINTS: tuple[tuple[str, str, str, str], ...] = (
    ("run", "run_id", "wall_source not in ('camera', 'local')", "wall_source is camera or local"),
    ("run", "run_id", "ended_wall_us < started_wall_us", "ended_wall_us >= started_wall_us"),
    ("segment", "segment_id", "seq < 0", "seq >= 0"),
    ("segment", "segment_id", "start_media_90k < 0", "start_media_90k >= 0"),
    ("segment", "segment_id", "duration_90k <= 0", "duration_90k > 0"),
    ("segment", "segment_id", "frame_count <= 0", "frame_count > 0"),
    ("segment", "segment_id", "min(head_skip_frames, head_skip_90k, tail_skip_frames, "
     "tail_skip_90k) < 0", "skip counts >= 0"),
    ("segment", "segment_id", "bytes <= 0 or init_bytes <= 0 or init_bytes >= bytes",
     "0 < init_bytes < bytes"),
    ("segment", "segment_id", "length(sha256) != 64 or sha256 glob '*[^0-9a-f]*'",
     "sha256 is 64 lower-case hex digits"),
    ("segment", "segment_id", "reinsert_pending not in (0, 1)", "reinsert_pending is 0 or 1"),
    ("segment", "segment_id", "end_wall_us < start_wall_us", "end_wall_us >= start_wall_us"),
)


def _camera_of_dir(rel: str) -> str | None:
    parts = rel.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == layout.SEGMENTS_DIR else None


class _Repairer:
    """The safe repairs, each with the store locked and in its own transaction, so that a
    failure midway leaves every repair either done or not."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = connect(self.root / layout.INDEX_NAME)
        return self._db

    def apply(self, report: CheckReport) -> None:
        try:
            for f in report.findings:
                if f.fix is not None and not f.repaired:
                    try:
                        f.repaired = f.fix(self)
                    except (OSError, sqlite3.Error) as e:
                        f.message += f" (repair failed: {e})"
                    f.fix = None
        finally:
            if self._db is not None:
                self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        self.db.execute("begin immediate")
        try:
            self.db.execute(sql, args)
            self.db.execute("commit")
        except BaseException:
            self.db.execute("rollback")
            raise

    def mark(self, segment_id: int, problem: str | None) -> str:
        self._write("update segment set file_problem = ? where segment_id = ?",
                    (problem, segment_id))
        if problem is None:
            return "mark cleared (the file's SHA-256 matches the row)"
        return (f"row kept, marked '{problem}' (left out of listings and timelines; a re-insert "
                "of the same segment restores the file)")

    def extend_run(self, run_id: str, end_wall_us: int) -> str:
        self._write("update run set ended_wall_us = ? where run_id = ? and ended_wall_us < ?",
                    (end_wall_us, run_id, end_wall_us))
        return f"run end set to {end_wall_us} µs"

    def drop_garbage(self, relpath: str) -> str:
        self._write("delete from garbage where relpath = ?", (relpath,))
        return "deletion entry dropped; the file (if any) is kept"

    def quarantine(self, relpath: str) -> str:
        """The same move reconcile makes (`layout.move_to_quarantine`)."""
        dest = layout.move_to_quarantine(self.root, relpath)
        return f"moved to {layout.to_relpath(self.root, dest)}"
