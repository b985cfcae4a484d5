"""The index's per-thread read connections end with their threads: a store outlives thousands of
short-lived threads (request workers, a takeover's committers, re-insert upload pools), and a
connection kept per dead thread held three file descriptors each until a spare ran out of them."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from hotspare.store.segment_store import SegmentStore


def _read_in_threads(store: SegmentStore, count: int) -> list[sqlite3.Connection]:
    used: list[sqlite3.Connection] = []

    def one() -> None:
        conn = store.parts.index.read()
        conn.execute("select count(*) from segment").fetchone()
        used.append(conn)

    for _ in range(count):
        thread = threading.Thread(target=one)
        thread.start()
        thread.join()
    return used


def test_the_read_connections_of_ended_threads_are_closed(tmp_path: Path) -> None:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    try:
        used = _read_in_threads(store, 50)
        mine = store.parts.index.read()  # a new thread connecting sweeps the ended ones
        assert len(store.parts.index._readers) <= 2  # this thread's, and at most the last one's
        for conn in used[:-1]:
            with pytest.raises(sqlite3.ProgrammingError):
                conn.execute("select 1")
        assert mine.execute("select 1").fetchone() == (1,)
    finally:
        store.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
def test_file_descriptors_stay_bounded_as_threads_come_and_go(tmp_path: Path) -> None:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    try:
        _read_in_threads(store, 20)
        before = len(list(Path("/proc/self/fd").iterdir()))
        _read_in_threads(store, 200)
        after = len(list(Path("/proc/self/fd").iterdir()))
        assert after - before <= 6, (before, after)  # was ~3 per thread: +600
    finally:
        store.close()
