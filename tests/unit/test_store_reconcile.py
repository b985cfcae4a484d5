"""Reconcile at open, after crashes simulated by leaving files and rows as a kill would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hotspare.store import mp4
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import decode_count, record_segment, write_segment

T0 = 1_700_000_000_000_000


def _crashed_store(root: Path) -> tuple[str, list[int]]:
    """A store with one open run: two committed segments, then the process 'dies'."""
    s = SegmentStore.open(root, "rs1")
    run = s.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    ids = [record_segment(s, run, seq, seq * 36_000, 10).segment_id for seq in range(2)]
    s.close()  # closing the handles is what the OS does on SIGKILL; the run stays open
    return run.run_id, ids


def _rows(root: Path) -> list[tuple]:  # type: ignore[type-arg]
    conn = sqlite3.connect(root / "index.sqlite3")
    try:
        return conn.execute("select seq, file_problem from segment order by seq").fetchall()
    finally:
        conn.close()


def test_open_run_is_closed_as_crash_at_its_last_segment(tmp_path: Path) -> None:
    run_id, _ = _crashed_store(tmp_path)
    with SegmentStore.open(tmp_path, "rs1") as s:
        assert s.last_reconcile is not None and s.last_reconcile.runs_closed == 1
        run = s.get_run(run_id)
        assert run is not None and run.end_reason == "crash"
        assert run.ended_wall_us == T0 + 800_000
    with SegmentStore.open(tmp_path, "rs1") as s:  # idempotent
        assert s.last_reconcile is not None and s.last_reconcile.clean


def test_file_without_row_is_salvaged(tmp_path: Path) -> None:
    run_id, _ = _crashed_store(tmp_path)
    # killed after writing seq 2 but before commit_segment
    write_segment(tmp_path / "segments" / "cam1" / run_id / "000002.mp4", 72_000, 10)
    with SegmentStore.open(tmp_path, "rs1") as s:
        rep = s.last_reconcile
        assert rep is not None and rep.salvaged == 1 and rep.truncated_bytes == 0
        segs = s.list_segments("cam1", T0, T0 + 10**7)
        assert [x.seq for x in segs] == [0, 1, 2]
        assert segs[2].start_wall_us == T0 + 800_000 and segs[2].frame_count == 10
        assert s.get_run(run_id).ended_wall_us == T0 + 1_200_000  # type: ignore[union-attr]


def test_file_cut_mid_fragment_keeps_its_readable_prefix(tmp_path: Path) -> None:
    run_id, _ = _crashed_store(tmp_path)
    path = tmp_path / "segments" / "cam1" / run_id / "000002.mp4"
    write_segment(path, 72_000, 12, gop=5)
    info = mp4.parse_path(path)
    cut = info.fragments[1].end + 30  # SIGKILL while the third fragment was being written
    path.write_bytes(path.read_bytes()[:cut])
    with SegmentStore.open(tmp_path, "rs1") as s:
        rep = s.last_reconcile
        assert rep is not None and rep.salvaged == 1 and rep.truncated_bytes == 30
        seg = s.list_segments("cam1", T0 + 800_000, T0 + 10**7)[-1]
        assert (seg.seq, seg.frame_count, seg.duration_90k) == (2, 10, 36_000)
        assert seg.bytes == path.stat().st_size == info.fragments[1].end
        assert decode_count(path) == 10


def test_file_without_a_complete_fragment_is_quarantined(tmp_path: Path) -> None:
    run_id, _ = _crashed_store(tmp_path)
    path = tmp_path / "segments" / "cam1" / run_id / "000002.mp4"
    write_segment(path, 72_000, 10)
    info = mp4.parse_path(path)
    path.write_bytes(path.read_bytes()[: info.fragments[0].end - 5])
    junk = tmp_path / "segments" / "cam1" / run_id / "000003.mp4"
    junk.write_bytes(b"\x00" * 10)
    with SegmentStore.open(tmp_path, "rs1") as s:
        rep = s.last_reconcile
        assert rep is not None and rep.quarantined == 2 and rep.salvaged == 0
        assert not path.exists() and not junk.exists()
        q = tmp_path / "quarantine" / "cam1" / run_id
        assert sorted(p.name for p in q.iterdir()) == ["000002.mp4", "000003.mp4"]
        assert [x.seq for x in s.list_segments("cam1", T0, T0 + 10**7)] == [0, 1]


def test_missing_file_is_reported_and_row_kept(tmp_path: Path) -> None:
    run_id, _ = _crashed_store(tmp_path)
    path = tmp_path / "segments" / "cam1" / run_id / "000001.mp4"
    saved = path.read_bytes()
    path.unlink()
    with SegmentStore.open(tmp_path, "rs1") as s:
        rep = s.last_reconcile
        assert rep is not None and rep.missing_files == 1
        assert any("cam1" in m and "missing" in m for m in rep.messages)
        assert [x.seq for x in s.list_segments("cam1", T0, T0 + 10**7)] == [0]
        tl = s.timeline("cam1", T0, T0 + 800_000)
        assert [(g.start_wall_us, g.end_wall_us) for g in tl.gaps] == [(T0 + 400_000, T0 + 800_000)]
    assert _rows(tmp_path) == [(0, None), (1, "missing")]
    path.write_bytes(saved)  # the disk came back
    with SegmentStore.open(tmp_path, "rs1") as s:
        assert s.last_reconcile is not None and s.last_reconcile.recovered == 1
    assert _rows(tmp_path) == [(0, None), (1, None)]


def test_temp_files_and_garbage_are_cleared(tmp_path: Path) -> None:
    run_id, ids = _crashed_store(tmp_path)
    (tmp_path / "incoming" / "abc.tmp").write_bytes(b"half an upload")
    (tmp_path / "segments" / "cam1" / run_id / "000009.mp4.tmp").write_bytes(b"x")
    # retention crashed after deleting the row of seq 0, before unlinking its file
    relpath = f"segments/cam1/{run_id}/000000.mp4"
    conn = sqlite3.connect(tmp_path / "index.sqlite3")
    with conn:
        conn.execute("insert into garbage values (?, 'cam1', 0)", (relpath,))
        conn.execute("delete from segment where segment_id = ?", (ids[0],))
    conn.close()
    with SegmentStore.open(tmp_path, "rs1") as s:
        rep = s.last_reconcile
        assert rep is not None
        assert (rep.temp_removed, rep.garbage_removed, rep.salvaged) == (2, 1, 0)
        assert not (tmp_path / relpath).exists()
        assert list((tmp_path / "incoming").iterdir()) == []
        assert [x.seq for x in s.list_segments("cam1", T0, T0 + 10**7)] == [1]
