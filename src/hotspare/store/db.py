"""The SQLite index: connections, schema, and row ↔ value-type mapping.

One writer connection behind one lock serialises every change (SQLite allows one writer anyway,
and a Python-level lock turns "database is locked" retries into plain waiting). Readers get a
connection per thread: in WAL mode they see the last committed state and never block the writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from hotspare.store.models import RunInfo, SegmentInfo, WallSource

SCHEMA_VERSION = 1

SEGMENT_COLUMNS = (
    "segment_id, camera_id, run_id, seq, recorded_by, recorded_as, start_wall_us, start_media_90k, "
    "duration_90k, frame_count, head_skip_frames, bytes, init_bytes, sha256, relpath, "
    "reinsert_pending, imported_from, tail_skip_frames, head_skip_90k, tail_skip_90k, "
    "file_problem, committed_at_us"
)
RUN_COLUMNS = (
    "run_id, camera_id, recorded_by, recorded_as, anchor_wall_us, wall_source, started_wall_us, "
    "ended_wall_us, end_reason"
)


class SchemaError(RuntimeError):
    """The index was written by a newer hotspare, or is not a hotspare index at all."""


def now_us() -> int:
    return time.time_ns() // 1000


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("pragma journal_mode = wal")
    # FULL: a segment acknowledged to a re-inserting spare is deleted there, so a commit must
    # survive power loss; NORMAL in WAL mode could roll back the last commits. One fsync per
    # segment is cheap.
    conn.execute("pragma synchronous = full")
    conn.execute("pragma foreign_keys = on")
    conn.execute("pragma busy_timeout = 30000")
    return conn


def init_schema(conn: sqlite3.Connection, server_name: str) -> str:
    """Create tables if needed; return the name the store was created by."""
    sql = resources.files("hotspare.store").joinpath("schema.sql").read_text(encoding="utf-8")
    conn.executescript("begin immediate;\n" + sql + "\ncommit;")
    row = conn.execute("select schema_version, created_by from meta where id = 1").fetchone()
    if row is None:
        conn.execute(
            "insert into meta (id, schema_version, created_by, created_at_us) values (1, ?, ?, ?)",
            (SCHEMA_VERSION, server_name, now_us()),
        )
        return server_name
    version, created_by = row
    if version > SCHEMA_VERSION:
        raise SchemaError(f"index schema version {version} is newer than this hotspare "
                          f"({SCHEMA_VERSION})")
    return str(created_by)


def row_to_segment(row: tuple) -> SegmentInfo:  # type: ignore[type-arg]
    return SegmentInfo(
        segment_id=row[0], camera_id=row[1], run_id=row[2], seq=row[3], recorded_by=row[4],
        recorded_as=row[5], start_wall_us=row[6], start_media_90k=row[7], duration_90k=row[8],
        frame_count=row[9], head_skip_frames=row[10], bytes=row[11], init_bytes=row[12],
        sha256=row[13], relpath=row[14], reinsert_pending=bool(row[15]), imported_from=row[16],
        tail_skip_frames=row[17], head_skip_90k=row[18], tail_skip_90k=row[19],
        file_problem=row[20], committed_at_us=row[21],
    )


def row_to_run(row: tuple) -> RunInfo:  # type: ignore[type-arg]
    return RunInfo(
        run_id=row[0], camera_id=row[1], recorded_by=row[2], recorded_as=row[3],
        anchor_wall_us=row[4], wall_source=WallSource(row[5]), started_wall_us=row[6],
        ended_wall_us=row[7], end_reason=row[8],
    )


class Index:
    """The store's database handles: `write()` for transactions, `read()` for queries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = connect(path)
        self._lock = threading.RLock()
        self._held = threading.local()  # this thread's depth in `write()` / `locked()`
        self._local = threading.local()
        self._readers: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    @property
    def writer(self) -> sqlite3.Connection:
        """The raw writer connection; only inside `write()` or before the store is shared."""
        return self._writer

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction under the writer lock; rolled back on any exception."""
        with self._holding():
            if self._closed:
                raise RuntimeError("segment store is closed")
            conn = self._writer
            conn.execute("begin immediate")
            try:
                yield conn
                conn.execute("commit")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("rollback")
                raise

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the writer lock across file operations plus several transactions."""
        with self._holding():
            yield

    def holds_writer(self) -> bool:
        """Whether this thread holds the writer lock (`GroupCommit` must not queue it)."""
        return getattr(self._held, "depth", 0) > 0

    @contextmanager
    def _holding(self) -> Iterator[None]:
        with self._lock:
            self._held.depth = getattr(self._held, "depth", 0) + 1
            try:
                yield
            finally:
                self._held.depth -= 1

    def read(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("segment store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers = self._sweep(self._readers)
                self._readers.append((threading.current_thread(), conn))
        return conn

    @staticmethod
    def _sweep(readers: list[tuple[threading.Thread, sqlite3.Connection]]
               ) -> list[tuple[threading.Thread, sqlite3.Connection]]:
        """Close the read connections of threads that have ended. Threads come and go for the
        life of a store (request worker threads, a takeover's per-camera committers, re-insert
        upload pools), each with a connection of its own (three file descriptors in WAL mode);
        kept until the store closed, they ran a spare out of descriptors (20 000) in four
        64-camera takeovers. Swept when a new thread connects, so the open ones are bounded by
        the threads alive."""
        alive = []
        for thread, conn in readers:
            if thread.is_alive():
                alive.append((thread, conn))
            else:
                conn.close()
        return alive

    def close(self) -> None:
        with self._lock:
            self._closed = True
            with self._readers_lock:
                for _thread, c in self._readers:
                    c.close()
                self._readers.clear()
            self._writer.close()
