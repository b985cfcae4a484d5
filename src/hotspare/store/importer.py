"""Re-insert: take one segment recorded elsewhere (a spare's buffer) into this store, verified.

All or nothing: the upload is staged under `incoming/`, verified there (hash, boxes, metadata), and
only then renamed to its final name and indexed in one transaction; any failure removes what was
staged. Idempotent: a segment already here — same (run_id, seq), same hash, or video this store
already holds for that camera and time — is acknowledged as a duplicate and not stored twice.
The overlap rule is in docs/store.md.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import os
import re
import shutil
import sqlite3
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hotspare.store import layout, mp4
from hotspare.store.db import RUN_COLUMNS, SEGMENT_COLUMNS, now_us, row_to_run, row_to_segment
from hotspare.store.models import (
    RunInfo,
    SegmentInfo,
    WallSource,
    media_to_wall_us,
    ticks_to_us,
)
from hotspare.store.parts import MAX_SEGMENT_US, StoreParts, insert_segment

log = logging.getLogger(__name__)
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class ImportRejected(Exception):
    """The segment was refused and nothing of it was kept.

    `reason` is for the operator; `status` is the HTTP status the API should answer with
    (400 bad request, 404 unknown camera, 409 conflicts with what is stored, 422 the file does not
    match its metadata).
    """

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class ImportMeta:
    """What the sender's index says about the segment (its SegmentInfo plus its run's anchor).

    The importer's input, whoever calls it; over HTTP it travels as `hotspare.wire.ImportMetaIn`,
    which converts to and from this in one place and does the JSON parsing, so there is no second
    JSON form here to drift from it.
    """

    camera_id: str
    run_id: str
    seq: int
    recorded_by: str
    recorded_as: str
    start_wall_us: int
    start_media_90k: int
    duration_90k: int
    frame_count: int
    init_bytes: int
    sha256: str
    anchor_wall_us: int
    wall_source: WallSource

    @classmethod
    def from_segment(cls, seg: SegmentInfo, run: RunInfo) -> ImportMeta:
        """The metadata a sender puts next to a segment it re-inserts."""
        return cls(seg.camera_id, seg.run_id, seg.seq, seg.recorded_by, seg.recorded_as,
                   seg.start_wall_us, seg.start_media_90k, seg.duration_90k, seg.frame_count,
                   seg.init_bytes, seg.sha256, run.anchor_wall_us, run.wall_source)


ImportStatus = Literal["inserted", "duplicate", "trimmed"]


@dataclass(frozen=True)
class Received:
    """What the caller already did to the bytes it hands over, so the import does not redo it.

    The API streams an upload into `store.incoming_path()`, hashing every chunk and fsyncing the
    file before it calls the importer; hashing and syncing the same megabyte again doubled the
    per-segment cost of re-insert (docs/failover.md). Trusted only for a file the importer renames
    in place (one under `incoming/`): a copy it makes itself is new bytes, hashed and synced anew.
    """

    sha256: str
    """Lower-case hex SHA-256 of exactly the bytes now at the path, computed as they arrived."""
    synced: bool
    """The file's data was fsynced after its last write (its directory entry need not be)."""


@dataclass(frozen=True)
class ImportResult:
    """`segment` is the stored row ('inserted'/'trimmed'), or the existing identical row
    ('duplicate' by id or hash); None for a duplicate fully covered by other segments, listed in
    `covered_by`."""

    status: ImportStatus
    segment: SegmentInfo | None
    covered_by: tuple[int, ...] = ()
    message: str = ""


def _validate_meta(meta: ImportMeta, store: StoreParts,
                   known_camera: Callable[[str], bool] | None) -> None:
    try:
        layout.check_id("camera_id", meta.camera_id)
        layout.check_id("run_id", meta.run_id)
        layout.check_id("recorded_by", meta.recorded_by)
        layout.check_id("recorded_as", meta.recorded_as)
        layout.check_seq(meta.seq)
    except layout.InvalidId as e:
        raise ImportRejected(str(e), 400) from e
    if not isinstance(meta.sha256, str) or not _SHA_RE.match(meta.sha256):
        raise ImportRejected("sha256 must be 64 lower-case hex digits", 400)
    try:
        WallSource(meta.wall_source)
    except ValueError as e:
        raise ImportRejected(f"wall_source {meta.wall_source!r} must be camera or local",
                             400) from e
    for name in ("start_media_90k", "duration_90k", "frame_count", "init_bytes"):
        v = getattr(meta, name)
        if not isinstance(v, int) or v < (0 if name == "start_media_90k" else 1):
            raise ImportRejected(f"{name} {v!r} out of range", 400)
    if meta.recorded_by == store.server_name:
        raise ImportRejected(f"segment claims to be recorded by this server ({store.server_name}); "
                             "a store never imports its own recordings", 409)
    expected_start = media_to_wall_us(meta.anchor_wall_us, meta.start_media_90k)
    if abs(expected_start - meta.start_wall_us) > 1:
        raise ImportRejected(f"start_wall_us {meta.start_wall_us} does not match anchor "
                             f"{meta.anchor_wall_us} + start_media_90k {meta.start_media_90k} "
                             f"(= {expected_start})", 400)
    if known_camera is not None and not known_camera(meta.camera_id):
        raise ImportRejected(f"unknown camera {meta.camera_id!r}", 404)


def _verify_file(meta: ImportMeta, path: Path, known_sha256: str | None = None) -> mp4.Mp4Info:
    """Hash (unless the caller hashed these very bytes), parse and compare with the metadata."""
    sha = known_sha256 if known_sha256 is not None else layout.sha256_file(path)
    if sha != meta.sha256:
        raise ImportRejected(f"SHA-256 mismatch: metadata says {meta.sha256}, received file "
                             f"hashes to {sha} (corrupt or truncated upload)")
    try:
        info = mp4.parse_path(path)
    except mp4.Mp4Error as e:
        raise ImportRejected(f"not a fragmented MP4 segment: {e}") from e
    if not info.complete:
        raise ImportRejected(f"segment file is incomplete: {info.trailing_note or 'no fragment'}")
    try:
        mp4.check_frames(path, info)
    except mp4.Mp4Error as e:
        raise ImportRejected(f"the segment's frames are damaged: {e}") from e
    checks = (("init_bytes", meta.init_bytes, info.init_bytes),
              ("frame_count", meta.frame_count, info.frame_count),
              ("duration_90k", meta.duration_90k, info.duration_90k),
              ("start_media_90k", meta.start_media_90k, info.start_media_90k))
    for name, said, found in checks:
        if said != found:
            raise ImportRejected(f"{name} mismatch: metadata says {said}, file holds {found}")
    return info


def _stage(store: StoreParts, data: Path) -> tuple[Path, bool]:
    """(staged path, whether it is our own copy to delete on failure)."""
    incoming = store.root / layout.INCOMING_DIR
    if data.resolve().parent == incoming:
        return data.resolve(), False  # the API wrote it in place (store.incoming_path()): rename
    staged = store.incoming_path()
    shutil.copyfile(data, staged)
    return staged, True


def _coverage(store: StoreParts, db: sqlite3.Connection, meta: ImportMeta,
              info: mp4.Mp4Info) -> tuple[int, int, int, int, tuple[int, ...]]:
    """(head frames, head 90k, tail frames, tail 90k, covering segment ids) of this segment's
    frames that existing segments of the camera already hold.

    Frame by frame: a frame counts as held when its midpoint falls inside a frame some existing
    segment really holds (times from each fragment's `tfdt`). Servers' wall times agree to well
    under half a frame when both anchor on the camera's RTCP clock. Segment intervals are not
    enough: a segment whose recorder froze and lost its camera's backlog spans a hole, and judging
    by its interval would drop a spare's recording of that hole as "held" (issue 6, SIGSTOP).
    """
    durations = info.frame_durations_90k()
    if WallSource(meta.wall_source) is not WallSource.CAMERA:
        # A server clock can be off by more than a frame: trimming on it could hide real video.
        # Split brain may cost duplicates, never gaps, so such segments are stored whole.
        return 0, 0, 0, 0, ()
    start = meta.start_wall_us
    frames = [(start + ticks_to_us(s - info.start_media_90k), ticks_to_us(d))
              for s, d in info.frame_times_90k()]
    end = max(a + d for a, d in frames)
    cols = ", ".join(f"segment.{c.strip()}" for c in SEGMENT_COLUMNS.split(","))
    rows = db.execute(
        f"select {cols} from segment join run on run.run_id = segment.run_id "
        "where segment.camera_id = ? and segment.start_wall_us < ? "
        "and segment.start_wall_us >= ? and segment.end_wall_us > ? "
        "and segment.file_problem is null and run.wall_source = 'camera'",
        (meta.camera_id, end, start - MAX_SEGMENT_US, start),
    ).fetchall()
    held = _held_frames(store, [row_to_segment(r) for r in rows], start)
    starts = [a for a, _, _ in held]
    covered: list[bool] = []
    used: set[int] = set()
    for a, d in frames:
        mid = a + d // 2
        i = bisect.bisect_right(starts, mid) - 1
        hit = held[i][2] if i >= 0 and held[i][0] <= mid < held[i][1] else None
        covered.append(hit is not None)
        if hit is not None:
            used.add(hit)
    head = 0
    while head < len(covered) and covered[head]:
        head += 1
    if head == len(covered):
        return head, sum(durations), 0, 0, tuple(sorted(used))
    tail = 0
    while covered[len(covered) - 1 - tail]:
        tail += 1
    return (head, sum(durations[:head]), tail, sum(durations[len(durations) - tail:]),
            tuple(sorted(used)))


def _held_frames(store: StoreParts, segments: list[SegmentInfo],
                 since_us: int) -> list[tuple[int, int, int]]:
    """(start, end, segment id) in wall µs of every counted frame of `segments` ending after
    `since_us`, sorted and without overlaps between neighbours' starts (first wins).

    A file that cannot be parsed holds nothing here: storing the import then costs a duplicate,
    while trusting the row could cost the only copy of that video. A segment committed lately
    is not parsed again (`frame_cache`), only looked for.
    """
    out: list[tuple[int, int, int]] = []
    for seg in segments:
        info = store.frames.get(seg.segment_id, seg.sha256)
        if info is not None and not store.segment_file(seg).is_file():
            continue  # gone since (retention frees files before rows): holds nothing
        if info is None:
            try:
                info = mp4.parse_path(store.segment_file(seg))
            except (OSError, mp4.Mp4Error) as exc:
                log.warning("import overlap check: cannot read %s (%s); not counted as held",
                            seg.relpath, exc)
                continue
        times = info.frame_times_90k()
        counted = times[seg.head_skip_frames:len(times) - seg.tail_skip_frames]
        # The muxer stretches the last frame before a hole over the hole (sample duration = next
        # sample's time minus its own): a frame holds at most 1.25 typical frame lengths. Not
        # 1.5: the next frame's midpoint lies exactly there, and an import anchored a few µs
        # earlier lost it to the trim (the frame after a UDP loss, chaos soak).
        typical = statistics.median_low(d for _, d in times) if times else 0
        for s, d in counted:
            a = seg.start_wall_us + ticks_to_us(s - info.start_media_90k)
            b = a + ticks_to_us(min(d, typical + typical // 4))
            if b > since_us:
                out.append((a, b, seg.segment_id))
    out.sort()
    return out


def import_segment(store: StoreParts, meta: ImportMeta, data: Path, *,
                   known_camera: Callable[[str], bool] | None = None,
                   imported_from: str | None = None,
                   received: Received | None = None,
                   guard: Callable[[], None] | None = None) -> ImportResult:
    """Verify and index one segment, all or nothing (module docstring, docs/store.md).

    `received` says the bytes at `data` were already hashed (and maybe fsynced) by the caller;
    the hash is still compared with the metadata and the file still parsed, only the repeated
    work is skipped. `guard` is called inside the index transaction that would store the
    segment, before anything is written; whatever it raises undoes the import and propagates
    (the API re-checks there that the uploader still holds its claim, `hotspare.api.fencing`).
    """
    _validate_meta(meta, store, known_camera)
    if not data.is_file():
        raise ImportRejected(f"no data at {data}", 400)
    staged, ours = _stage(store, data)
    if ours:
        received = None  # our own copy: its bytes were neither hashed nor synced by anyone
    try:
        info = _verify_file(meta, staged, received.sha256 if received is not None else None)
        if received is None or not received.synced:
            # Outside the writer lock, so one import's fsync does not hold up another's commit.
            # Done for duplicates too (rare, and cheap next to losing an acknowledged file).
            layout.fsync_file(staged)
        job = _Job(meta, info, staged, imported_from or meta.recorded_by, guard or _no_guard)
        result: ImportResult = store.imports.run(job, store.index.locked,
                                                 lambda jobs: _commit_batch(store, jobs),
                                                 store.index.holds_writer)
        return result
    finally:
        if ours and staged.exists():
            staged.unlink()


SAME_TIME_TOLERANCE_US = 1_000
"""Two rows with equal bytes whose starts differ by less than this are one recording."""


def _no_guard() -> None:
    return None


@dataclass(frozen=True)
class _Job:
    """One verified, staged import waiting for the index writer."""

    meta: ImportMeta
    info: mp4.Mp4Info
    staged: Path
    imported_from: str
    guard: Callable[[], None]


@dataclass
class _Placed:
    """What a batch changed on disk before its transaction commits, undone if it does not."""

    files: list[Path] = dataclasses.field(default_factory=list)
    dirs: set[Path] = dataclasses.field(default_factory=set)
    asked: set[object] = dataclasses.field(default_factory=set)
    """Guards already answered yes in this batch (`_ask`)."""

    def undo(self, files: list[Path]) -> None:
        for final in files:
            final.unlink(missing_ok=True)
            self.files.remove(final)
        for d in {f.parent for f in files}:
            layout.fsync_dir(d)


def _commit_batch(store: StoreParts, jobs: Sequence[_Job]) -> list[ImportResult | BaseException]:
    """Commit `jobs` in one transaction, under the writer lock (`group_commit`).

    Each job sees the rows of the jobs before it (one connection, one transaction), so the
    duplicate and overlap judgements are those of one import after another; each runs in a
    savepoint, so one refused job undoes only itself. The renamed files' folders are fsynced
    once each before the commit, so no committed row names a file a crash could lose. If the
    commit itself fails, every job fails and every file it placed is removed. A guard is asked
    once per batch for equal askers (`_ask`): the API's fencing recheck is an etcd read, and
    eight of them in a row under the writer lock held up every camera's commit."""
    placed = _Placed()
    outcomes: list[ImportResult | BaseException] = []
    try:
        with store.index.write() as w:
            for job in jobs:
                w.execute("savepoint import_one")
                mine = len(placed.files)
                try:
                    outcomes.append(_commit(store, w, job, placed))
                except Exception as exc:
                    w.execute("rollback to import_one")
                    placed.undo(placed.files[mine:])
                    outcomes.append(exc)
                finally:
                    w.execute("release import_one")
            for d in sorted(placed.dirs):
                layout.fsync_dir(d)
    except BaseException as exc:
        placed.undo(list(placed.files))
        return [exc] * len(jobs)
    return outcomes


def _ask(guard: Callable[[], None], placed: _Placed) -> None:
    """Call `guard` unless a guard bound to an equal object already said yes in this batch:
    the same question (one sender, one claim) asked again within one transaction under the
    writer lock gets the same answer. A refusal is never reused: each refused job asks."""
    asker = getattr(guard, "__self__", None)
    try:
        known = asker is not None and asker in placed.asked
    except TypeError:  # an unhashable asker: ask every time
        asker, known = None, False
    if known:
        return
    guard()
    if asker is not None:
        placed.asked.add(asker)


def _commit(store: StoreParts, db: sqlite3.Connection, job: _Job,
            placed: _Placed) -> ImportResult:
    """One import inside the batch's transaction `db` (the writer's)."""
    meta, info, staged, imported_from, guard = (job.meta, job.info, job.staged,
                                                job.imported_from, job.guard)
    same = db.execute(f"select {SEGMENT_COLUMNS} from segment where run_id = ? and seq = ?",
                      (meta.run_id, meta.seq)).fetchone()
    if same is not None:
        seg = row_to_segment(same)
        if seg.sha256 == meta.sha256 and seg.camera_id == meta.camera_id:
            if seg.file_problem is not None:
                return _restore(store, db, seg, staged, guard, placed)
            return ImportResult("duplicate", seg, message="already stored (same run and seq)")
        raise ImportRejected(f"run {meta.run_id} seq {meta.seq} is already stored with other "
                             f"content (sha256 {seg.sha256})", 409)
    # Only a row whose file is really here may answer "duplicate": the sender deletes its copy.
    # Equal bytes are the same video only for the same camera at the same time: two cameras (or
    # one camera at two times) can produce identical files, e.g. black frames behind a lens cap.
    twin = db.execute(f"select {SEGMENT_COLUMNS} from segment where sha256 = ? "
                      "and camera_id = ? and abs(start_wall_us - ?) <= ? "
                      "and file_problem is null limit 1",
                      (meta.sha256, meta.camera_id, meta.start_wall_us,
                       SAME_TIME_TOLERANCE_US)).fetchone()
    if twin is not None:
        return ImportResult("duplicate", row_to_segment(twin), message="already stored (same hash)")
    run_row = db.execute(f"select {RUN_COLUMNS} from run where run_id = ?",
                         (meta.run_id,)).fetchone()
    run = row_to_run(run_row) if run_row else None
    if run is not None:
        theirs = (run.camera_id, run.recorded_by, run.recorded_as, run.anchor_wall_us,
                  run.wall_source.value)
        said = (meta.camera_id, meta.recorded_by, meta.recorded_as, meta.anchor_wall_us,
                WallSource(meta.wall_source).value)
        if theirs != said:
            raise ImportRejected(f"run {meta.run_id} is stored as (camera, recorded_by, "
                                 f"recorded_as, anchor, wall_source)={theirs}, segment says "
                                 f"{said}", 409)
    head, head_90k, tail, tail_90k, covering = _coverage(store, db, meta, info)
    if head == info.frame_count:
        return ImportResult("duplicate", None, covering,
                            "every frame is already stored in other segments")
    relpath = layout.segment_relpath(meta.camera_id, meta.run_id, meta.seq)
    final = layout.to_path(store.root, relpath)
    if final.exists():
        raise ImportRejected(f"{relpath} exists on disk without an index row; refusing to "
                             "overwrite (reconcile at next start will look at it)", 409)
    # The staged file's data is already durable (import_segment synced it, or the caller did,
    # before the lock); what remains is its name in the final directory (fsynced by the batch
    # before it commits), then the row.
    _ask(guard, placed)
    layout.make_dirs_durable(store.root, final.parent)
    os.replace(staged, final)
    placed.files.append(final)
    placed.dirs.add(final.parent)
    if run is None:
        run = RunInfo(meta.run_id, meta.camera_id, meta.recorded_by, meta.recorded_as,
                      meta.anchor_wall_us, WallSource(meta.wall_source),
                      meta.anchor_wall_us, None, "imported")
        db.execute(
            "insert into run (run_id, camera_id, recorded_by, recorded_as, anchor_wall_us, "
            "wall_source, started_wall_us, ended_wall_us, end_reason, imported_from, "
            "created_at_us) values (?, ?, ?, ?, ?, ?, ?, ?, 'imported', ?, ?)",
            (run.run_id, run.camera_id, run.recorded_by, run.recorded_as,
             run.anchor_wall_us, run.wall_source.value, run.started_wall_us,
             run.started_wall_us, imported_from, now_us()),
        )
    seg = insert_segment(db, run, meta.seq, info, size=final.stat().st_size,
                         sha256=meta.sha256, relpath=relpath, head_skip=(head, head_90k),
                         tail_skip=(tail, tail_90k), imported_from=imported_from)
    store.frames.put(seg.segment_id, seg.sha256, info)
    # An imported run's end follows the latest video it holds here.
    db.execute("update run set ended_wall_us = max(coalesce(ended_wall_us, 0), ?) "
               "where run_id = ? and imported_from is not null",
               (seg.end_wall_us, run.run_id))
    if head or tail:
        msg = f"stored; {head} leading and {tail} trailing frames were already stored"
        log.info("import camera %s run %s seq %d: %s", meta.camera_id, meta.run_id, meta.seq, msg)
        return ImportResult("trimmed", seg, covering, msg)
    return ImportResult("inserted", seg, covering, "stored")


def _restore(store: StoreParts, db: sqlite3.Connection, seg: SegmentInfo, staged: Path,
             guard: Callable[[], None], placed: _Placed) -> ImportResult:
    """The row is here but reconcile found its file missing or damaged: put the verified bytes
    back (the hash matches the row) and clear the mark."""
    _ask(guard, placed)  # under the writer lock, before the file is put back
    final = layout.to_path(store.root, seg.relpath)
    # The staged file's data was synced before the lock (import_segment); its folder is
    # fsynced by the batch before the mark is cleared for good (the commit).
    layout.make_dirs_durable(store.root, final.parent)
    os.replace(staged, final)
    placed.files.append(final)
    placed.dirs.add(final.parent)
    db.execute("update segment set file_problem = null where segment_id = ?", (seg.segment_id,))
    log.warning("import restored the file of camera %s segment %d (%s), which was %s",
                seg.camera_id, seg.segment_id, seg.relpath, seg.file_problem)
    return ImportResult("inserted", dataclasses.replace(seg, file_problem=None),
                        message=f"restored a file that was {seg.file_problem}")
