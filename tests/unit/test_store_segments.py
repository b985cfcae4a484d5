"""SegmentStore basics with a real SQLite index and real fMP4 files: runs, commit, listing."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from hotspare.store.layout import InvalidId
from hotspare.store.lockfile import StoreLocked
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore, StoreError
from hotspare.store.synth import record_segment, write_segment

T0 = 1_700_000_000_000_000  # µs since epoch


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SegmentStore.open(tmp_path / "store", "rs1")
    yield s
    s.close()


def test_open_creates_layout_with_wal(store: SegmentStore) -> None:
    assert (store.root / "index.sqlite3").is_file()
    assert (store.root / "segments").is_dir()
    conn = sqlite3.connect(store.root / "index.sqlite3")
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert store.last_reconcile is not None and store.last_reconcile.clean


def test_commit_and_list(store: SegmentStore) -> None:
    run = store.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    segs = [record_segment(store, run, seq, seq * 36_000, 10) for seq in range(3)]
    assert [s.start_wall_us for s in segs] == [T0, T0 + 400_000, T0 + 800_000]
    assert all(s.end_wall_us == s.start_wall_us + 400_000 for s in segs)
    assert segs[0].relpath == f"segments/cam1/{run.run_id}/000000.mp4"
    assert store.segment_file(segs[1]).is_file()
    assert len(segs[2].sha256) == 64 and segs[2].bytes == store.segment_file(segs[2]).stat().st_size
    assert not segs[0].reinsert_pending
    listed = store.list_segments("cam1", T0 + 399_999, T0 + 400_001)
    assert [s.seq for s in listed] == [0, 1]
    assert store.list_segments("cam1", T0 + 1_200_000, T0 + 2_000_000) == []
    assert store.get_segment(segs[1].segment_id) == segs[1]
    assert store.get_segment(9999) is None
    assert store.cameras() == ["cam1"]
    store.end_run(run.run_id, T0 + 1_000_000, "stopped")  # earlier than the last frame's end
    (got,) = store.list_runs("cam1", T0, T0 + 1)
    assert got.ended_wall_us == T0 + 1_200_000 and got.end_reason == "stopped"


def test_commit_trusts_the_file_over_the_recorder(store: SegmentStore,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    run = store.begin_run("cam1", "rs1", T0, WallSource.LOCAL)
    write_segment(store.segment_path("cam1", run.run_id, 0), 0, 10)
    with caplog.at_level(logging.WARNING):
        seg = store.commit_segment(run.run_id, 0, 0, 99, 7, 1)
    assert (seg.frame_count, seg.duration_90k) == (10, 36_000)
    assert "file holds" in caplog.text


@pytest.mark.parametrize("read_whole", [True, False])
def test_commit_hashes_exactly_the_indexed_bytes(store: SegmentStore, read_whole: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Commit reads a segment once for walk and hash; a file too large for that is streamed. Both
    index the same thing, and a cut-off tail is cut from the file and left out of the hash."""
    import hashlib

    from hotspare.store import segment_store

    if not read_whole:
        monkeypatch.setattr(segment_store, "COMMIT_READ_WHOLE_MAX", 0)
    run = store.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    path = store.segment_path("cam1", run.run_id, 0)
    write_segment(path, 0, 10)
    clean = path.read_bytes()
    path.write_bytes(clean + b"\x00\x00\x01\x00moof")  # a fragment cut by a crash
    seg = store.commit_segment(run.run_id, 0, 0, 36_000, 10, 0)
    kept = path.read_bytes()  # the readable prefix: init and every complete fragment
    assert clean.startswith(kept) and len(kept) > seg.init_bytes
    assert seg.bytes == len(kept) and seg.sha256 == hashlib.sha256(kept).hexdigest()
    assert (seg.frame_count, seg.duration_90k, seg.start_media_90k) == (10, 36_000, 0)


def test_commit_refusals(store: SegmentStore) -> None:
    run = store.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    with pytest.raises(StoreError, match="unknown run"):
        store.commit_segment("nope", 0, 0, 3600, 1, 1)
    with pytest.raises(StoreError, match="does not exist"):
        store.commit_segment(run.run_id, 5, 0, 3600, 1, 1)
    path = store.segment_path("cam1", run.run_id, 6)
    path.write_bytes(b"not video")
    with pytest.raises(StoreError, match="ftyp"):
        store.commit_segment(run.run_id, 6, 0, 3600, 1, 1)
    write_segment(store.segment_path("cam1", run.run_id, 7), 0, 5)
    store.commit_segment(run.run_id, 7, 0, 18_000, 5, 0)
    with pytest.raises(StoreError, match="already indexed"):
        store.commit_segment(run.run_id, 7, 0, 18_000, 5, 0)


@pytest.mark.parametrize("bad", ["../etc", "a/b", "A", "", "x" * 64, "c:evil", "..", "a\\b"])
def test_path_like_ids_are_refused(store: SegmentStore, bad: str) -> None:
    with pytest.raises(InvalidId):
        store.begin_run(bad, "rs1", T0, WallSource.CAMERA)
    with pytest.raises(InvalidId):
        store.segment_path("cam1", bad, 0)
    with pytest.raises(InvalidId):
        store.segment_path(bad, "r1", 0)


def test_update_anchor_moves_the_runs_segments(store: SegmentStore) -> None:
    run = store.begin_run("cam1", "rs1", T0, WallSource.LOCAL)
    record_segment(store, run, 0, 0, 10)
    record_segment(store, run, 1, 36_000, 10)
    store.update_run_anchor(run.run_id, T0 + 1_234, WallSource.CAMERA)
    segs = store.list_segments("cam1", T0, T0 + 10_000_000)
    assert [s.start_wall_us for s in segs] == [T0 + 1_234, T0 + 401_234]
    assert all(s.end_wall_us - s.start_wall_us == 400_000 for s in segs)
    got = store.get_run(run.run_id)
    assert got is not None and got.wall_source is WallSource.CAMERA
    assert got.anchor_wall_us == got.started_wall_us == T0 + 1_234


def test_spare_recordings_are_marked_for_reinsert(tmp_path: Path) -> None:
    with SegmentStore.open(tmp_path / "buf", "spare1") as spare:
        run = spare.begin_run("cam1", "rs1", T0, WallSource.CAMERA)  # under rs1's identity
        seg = record_segment(spare, run, 0, 0, 5)
        assert seg.recorded_by == "spare1" and seg.recorded_as == "rs1"
        assert seg.reinsert_pending
        assert [s.segment_id for s in spare.list_reinsert_pending()] == [seg.segment_id]
        spare.set_reinsert_pending([seg.segment_id], False)
        assert spare.list_reinsert_pending() == []


def test_concurrent_commits_from_many_threads(store: SegmentStore) -> None:
    runs = [store.begin_run(f"cam{i}", "rs1", T0, WallSource.CAMERA) for i in range(6)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for seq in range(8):
                record_segment(store, runs[i], seq, seq * 18_000, 5)
                store.list_segments(f"cam{i}", T0, T0 + 10**9)  # a reader in the same thread
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = set()
    for i in range(6):
        segs = store.list_segments(f"cam{i}", T0, T0 + 10**9)
        assert [s.seq for s in segs] == list(range(8))
        ids |= {s.segment_id for s in segs}
    assert len(ids) == 48


def test_one_process_per_store(tmp_path: Path) -> None:
    with SegmentStore.open(tmp_path / "s", "rs1"):
        with pytest.raises(StoreLocked):
            SegmentStore.open(tmp_path / "s", "rs1")
    SegmentStore.open(tmp_path / "s", "rs1").close()  # released on close


def test_commits_retention_and_anchor_updates_interleave(store: SegmentStore) -> None:
    runs = [store.begin_run(f"cam{i}", "rs1", T0, WallSource.LOCAL) for i in range(3)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def recorder(i: int) -> None:
        try:
            for seq in range(10):
                record_segment(store, runs[i], seq, seq * 18_000, 5)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def housekeeping() -> None:
        try:
            while not stop.is_set():
                store.apply_retention(200_000, 0, T0 + 1_000_000)  # keeps ≥ T0 + 0.8 s
                store.update_run_anchor(runs[0].run_id, T0, WallSource.CAMERA)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    hk = threading.Thread(target=housekeeping)
    hk.start()
    workers = [threading.Thread(target=recorder, args=(i,)) for i in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    hk.join()
    assert errors == []
    store.apply_retention(200_000, 0, T0 + 1_000_000)
    for i in range(3):
        segs = store.list_segments(f"cam{i}", 0, 2**62)
        assert [s.seq for s in segs] == [4, 5, 6, 7, 8, 9]
        assert all(store.segment_file(s).stat().st_size == s.bytes for s in segs)
