"""Retention: oldest first, by age and by free space; reinsert-pending video is never deleted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import record_segment

T0 = 1_700_000_000_000_000


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SegmentStore.open(tmp_path / "store", "rs1")
    run = s.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    for seq in range(6):  # T0 .. T0 + 2.4 s, 0.4 s each
        record_segment(s, run, seq, seq * 36_000, 10)
    s.end_run(run.run_id, T0 + 2_400_000, "stopped")
    yield s
    s.close()


def _seqs(s: SegmentStore) -> list[int]:
    return [x.seq for x in s.list_segments("cam1", 0, T0 + 10**9)]


def _garbage(s: SegmentStore) -> int:
    conn = sqlite3.connect(s.root / "index.sqlite3")
    n = conn.execute("select count(*) from garbage").fetchone()[0]
    conn.close()
    return n


def test_by_age_oldest_first_skipping_reinsert_pending(store: SegmentStore) -> None:
    segs = store.list_segments("cam1", 0, T0 + 10**9)
    store.set_reinsert_pending([segs[1].segment_id], True)
    files = [store.segment_file(s) for s in segs]
    # keep 1 s back from T0 + 2.4 s: segments ending at or before T0 + 1.4 s go (seq 0..2)
    rep = store.apply_retention(1_000_000, 0, T0 + 2_400_000)
    assert rep.deleted_by_age == 2 and rep.deleted_for_space == 0
    assert _seqs(store) == [1, 3, 4, 5]
    assert not files[0].exists() and files[1].exists() and not files[2].exists()
    assert rep.bytes_freed == segs[0].bytes + segs[2].bytes
    assert _garbage(store) == 0


def test_by_free_space(store: SegmentStore) -> None:
    segs = store.list_segments("cam1", 0, T0 + 10**9)
    store.set_reinsert_pending([segs[0].segment_id], True)
    size = segs[0].bytes
    # pretend the disk has 1 byte free plus whatever the store's files have given back
    total = sum(s.bytes for s in segs)

    def free() -> int:
        left = sum(p.stat().st_size for p in (store.root / "segments").rglob("*.mp4"))
        return 1 + total - left

    store.disk_free = free
    rep = store.apply_retention(None, 2 * size, T0)
    assert rep.deleted_for_space == 2 and not rep.space_short
    assert _seqs(store) == [0, 3, 4, 5]
    rep = store.apply_retention(None, 100 * size, T0)
    assert rep.space_short
    assert _seqs(store) == [0]  # only the segment still owed to another server is left


def test_files_and_rows_stay_consistent_across_reopen(store: SegmentStore) -> None:
    store.apply_retention(1_000_000, 0, T0 + 2_400_000)
    root = store.root
    store.close()
    with SegmentStore.open(root, "rs1") as again:
        assert again.last_reconcile is not None and again.last_reconcile.clean
        assert [x.seq for x in again.list_segments("cam1", 0, T0 + 10**9)] == [3, 4, 5]


def test_delete_segments_refuses_reinsert_pending(store: SegmentStore) -> None:
    segs = store.list_segments("cam1", 0, T0 + 10**9)
    store.set_reinsert_pending([segs[0].segment_id], True)
    assert store.delete_segments([segs[0].segment_id, segs[1].segment_id, 999]) == 1
    assert _seqs(store) == [0, 2, 3, 4, 5]
    assert not store.segment_file(segs[1]).exists() and _garbage(store) == 0
    store.set_reinsert_pending([segs[0].segment_id], False)
    assert store.delete_segments([segs[0].segment_id]) == 1
    assert _seqs(store) == [2, 3, 4, 5]
