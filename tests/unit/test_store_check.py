"""`hotspare store check`: each kind of damage is named, only safe repairs are made, and a plain
check writes nothing. Stores are filled by a real SegmentStore with real fMP4 files (synth)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from hotspare.cli.main import main
from hotspare.store import check as store_check
from hotspare.store.check import CheckError, CheckReport, check_store, find_stores
from hotspare.store.models import SegmentInfo, WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import record_segment

T0 = 1_700_000_000_000_000
SERVER = "rs1"
FRAMES = 10  # per segment, two fragments of 5 (synth's gop)
SEG_90K = FRAMES * 3_600  # 25 fps


def _fill(root: Path, *, end: bool = True) -> list[SegmentInfo]:
    """cam1: run A (3 segments from T0), run B (2 segments from T0 + 5 s); cam2: 1 segment."""
    segs: list[SegmentInfo] = []
    with SegmentStore.open(root, SERVER) as s:
        for camera, anchor, count in (("cam1", T0, 3), ("cam1", T0 + 5_000_000, 2),
                                      ("cam2", T0, 1)):
            run = s.begin_run(camera, SERVER, anchor, WallSource.CAMERA)
            mine = [record_segment(s, run, seq, seq * SEG_90K, FRAMES) for seq in range(count)]
            if end:
                s.end_run(run.run_id, mine[-1].end_wall_us, "test")
            segs += mine
    return segs


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path) -> tuple[Path, list[SegmentInfo]]:
    root = data_dir / "store"
    return root, _fill(root)


def _kinds(report: CheckReport) -> list[str]:
    return sorted(f.kind for f in report.problems)


def _sql(root: Path, *statements: str, args: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(root / "index.sqlite3")
    try:
        conn.execute("pragma ignore_check_constraints = on")
        for st in statements:
            conn.execute(st, args if "?" in st else ())
        conn.commit()
    finally:
        conn.close()


def _listing(top: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under `top` with its size and mtime: what 'writes nothing'
    means."""
    out = {".": (0, top.stat().st_mtime_ns)}
    for p in sorted(top.rglob("*")):
        st = p.stat()
        out[p.relative_to(top).as_posix()] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


# ---------------------------------------------------------------------- clean


def test_clean_store_passes_and_nothing_is_written(data_dir: Path,
                                                   store: tuple[Path, list[SegmentInfo]],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root, segs = store
    before = _listing(data_dir)
    report = check_store(root)
    assert report.clean, [f.line() for f in report.findings]
    assert (report.segments, report.runs, report.files) == (len(segs), 3, len(segs))
    assert report.bytes_checked == sum(s.bytes for s in segs)
    assert report.live is False and not report.snapshot
    assert main(["store", "check", str(data_dir)]) == 0  # the data dir: the store is found in it
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "clean" in out[0] and "0 errors" in out[0]
    assert _listing(data_dir) == before


def test_data_dir_with_several_stores_checks_each(data_dir: Path,
                                                  store: tuple[Path, list[SegmentInfo]]) -> None:
    buffer = data_dir / "buffer" / "rs2"
    with SegmentStore.open(buffer, "spare-1") as s:
        run = s.begin_run("cam9", "rs2", T0, WallSource.CAMERA)
        seg = record_segment(s, run, 0, 0, FRAMES)
        assert seg.reinsert_pending  # a spare's buffer: owed to rs2
        s.end_run(run.run_id, seg.end_wall_us, "handback")
    assert find_stores(data_dir) == [buffer, store[0]]
    report = check_store(buffer)
    assert report.clean, [f.line() for f in report.findings]
    assert report.created_by == "spare-1"


# ---------------------------------------------------------------------- damage


def test_truncated_file(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    path = root / segs[1].relpath
    path.write_bytes(path.read_bytes()[:-100])
    report = check_store(root)
    assert _kinds(report) == ["file_size"]
    assert segs[1].relpath in report.problems[0].line()
    assert "cam1" in report.problems[0].line()


def test_flipped_byte(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    path = root / segs[2].relpath
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01  # inside the last mdat: the boxes still parse, only the hash can tell
    path.write_bytes(bytes(data))
    assert _kinds(check_store(root)) == ["file_hash"]
    assert check_store(root, hash_files=False).clean  # what --no-hash gives up


def test_deleted_file(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    (root / segs[0].relpath).unlink()
    report = check_store(root)
    assert _kinds(report) == ["missing"]
    assert f"segment {segs[0].segment_id}" in report.problems[0].line()


def test_extra_file_without_a_row(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    stray = root / "segments" / "cam1" / "rnotarun" / "000000.mp4"
    stray.parent.mkdir(parents=True)
    shutil.copyfile(root / segs[0].relpath, stray)
    report = check_store(root)
    assert _kinds(report) == ["orphan_file"]
    assert "no matching run" in report.problems[0].message


def test_file_of_our_own_run_without_a_row_is_left_for_salvage(
        store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    with sqlite3.connect(root / "index.sqlite3") as conn:
        conn.execute("delete from segment where segment_id = ?", (segs[4].segment_id,))
    conn.close()
    report = check_store(root, repair=True)
    (finding,) = report.problems
    assert finding.kind == "orphan_file" and "indexes it" in finding.action
    assert (root / segs[4].relpath).exists()  # not quarantined: the next open salvages it
    with SegmentStore.open(root, SERVER) as s:
        assert s.last_reconcile is not None and s.last_reconcile.salvaged == 1
    assert check_store(root).clean


def test_overlapping_rows_of_one_recorder(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    run_b = segs[3].run_id
    anchor = T0 + 1_000_000  # run A ends at T0 + 1.2 s
    _sql(root, "update run set anchor_wall_us = ?, started_wall_us = ?, "
               "ended_wall_us = ended_wall_us - 4000000 where run_id = ?",
         args=(anchor, anchor, run_b))
    _sql(root, "update segment set start_wall_us = start_wall_us - 4000000, "
               "end_wall_us = end_wall_us - 4000000 where run_id = ?", args=(run_b,))
    report = check_store(root)
    assert _kinds(report) == ["overlap"]
    assert "200.0 ms" in report.problems[0].message and SERVER in report.problems[0].message


def test_overlap_by_another_server_is_allowed(store: tuple[Path, list[SegmentInfo]]) -> None:
    """An imported recording may overlap ours: the import trims only leading and trailing frames
    already held and keeps duplicates in the middle."""
    root, segs = store
    run_b = segs[3].run_id
    _sql(root, "update run set recorded_by = 'spare-1', anchor_wall_us = ?, started_wall_us = ?, "
               "ended_wall_us = ended_wall_us - 4000000, imported_from = 'spare-1' "
               "where run_id = ?", args=(T0 + 1_000_000, T0 + 1_000_000, run_b))
    _sql(root, "update segment set recorded_by = 'spare-1', imported_from = 'spare-1', "
               "start_wall_us = start_wall_us - 4000000, end_wall_us = end_wall_us - 4000000 "
               "where run_id = ?", args=(run_b,))
    assert check_store(root).clean


def test_skip_counts_beyond_the_files_frames(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    _sql(root, "update segment set head_skip_frames = 6, tail_skip_frames = 4 "
               "where segment_id = ?", args=(segs[0].segment_id,))
    report = check_store(root)
    assert "skips" in _kinds(report)
    assert any("file holds 10" in f.message or ">= frame_count 10" in f.message
               for f in report.problems)


def test_skip_durations_must_be_those_frames(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    _sql(root, "update segment set head_skip_frames = 2, head_skip_90k = 3600 "
               "where segment_id = ?", args=(segs[1].segment_id,))
    report = check_store(root)
    assert _kinds(report) == ["skips"]
    assert "(7200, 0)" in report.problems[0].message


def test_wall_time_off_its_anchor(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    _sql(root, "update segment set start_wall_us = start_wall_us + 5000, "
               "end_wall_us = end_wall_us + 5000 where segment_id = ?",
         args=(segs[1].segment_id,))
    report = check_store(root)
    assert _kinds(report) == ["wall_time"]
    assert "+5.0 ms" in report.problems[0].message


def test_schema_checks_are_verified_row_by_row(store: tuple[Path, list[SegmentInfo]]) -> None:
    """SQLite's integrity_check does not re-verify CHECK constraints; a row written with them off
    (or by another tool) is still caught."""
    root, segs = store
    _sql(root, "update segment set init_bytes = bytes where segment_id = ?",
         args=(segs[3].segment_id,))
    report = check_store(root)
    assert "constraint" in _kinds(report)
    assert any(f.where == f"segment {segs[3].segment_id}" and "init_bytes" in f.message
               for f in report.problems)


def test_row_numbers_disagreeing_with_the_file(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    _sql(root, "update segment set frame_count = 9 where segment_id = ?",
         args=(segs[0].segment_id,))
    assert _kinds(check_store(root)) == ["row_mismatch"]


def test_reinsert_flag_on_a_servers_own_recording(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    _sql(root, "update segment set reinsert_pending = 1 where segment_id = ?",
         args=(segs[0].segment_id,))
    report = check_store(root)
    assert _kinds(report) == ["reinsert_flag"]
    assert "retention never deletes it" in report.problems[0].action


def test_segment_without_its_run_fails_the_foreign_key_check(
        store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    _sql(root, "update segment set run_id = 'rgone' where segment_id = ?",
         args=(segs[5].segment_id,))
    assert "foreign_key" in _kinds(check_store(root))


def test_newer_schema_is_refused(store: tuple[Path, list[SegmentInfo]],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = store
    _sql(root, "update meta set schema_version = 99")
    with pytest.raises(CheckError, match="newer than this hotspare"):
        check_store(root)
    assert main(["store", "check", str(root)]) == 2
    assert "newer" in capsys.readouterr().err


def test_an_index_that_is_not_a_database(store: tuple[Path, list[SegmentInfo]],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = store
    (root / "index.sqlite3").write_bytes(b"not a database at all" * 100)
    assert main(["store", "check", str(root)]) == 1
    first, summary = capsys.readouterr().out.strip().splitlines()
    assert first.startswith("ERROR    schema") and "restore it from a backup" in first
    assert "NOT clean" in summary


def test_crash_leftovers_are_warnings_the_next_open_clears(data_dir: Path) -> None:
    root = data_dir / "store"
    _fill(root, end=False)  # runs left open, as after a power cut
    (root / "incoming" / "0123abcd.tmp").write_bytes(b"half an upload")
    report = check_store(root)
    assert set(_kinds(report)) == {"run_open", "temp_file"}
    assert all(f.severity == "warning" for f in report.problems)
    SegmentStore.open(root, SERVER).close()
    assert check_store(root).clean


def test_a_crash_log_is_read_from_a_copy(tmp_path: Path, data_dir: Path) -> None:
    """A crash can leave commits only in index.sqlite3-wal. Reading them read-only next to the store
    would create files there, so the check reads a copy; the commit it finds is checked too."""
    root = data_dir / "store"
    segs = _fill(root)
    writer = sqlite3.connect(root / "index.sqlite3")
    writer.execute("pragma journal_mode = wal")
    writer.execute("pragma wal_autocheckpoint = 0")
    writer.execute("insert into garbage values (?, 'cam1', 1)", (segs[0].relpath,))
    writer.commit()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("index.sqlite3", "index.sqlite3-wal"):
        shutil.copyfile(root / name, crashed / name)  # the files a power cut would leave
    writer.close()
    shutil.copytree(root / "segments", crashed / "segments")
    before = _listing(crashed)
    report = check_store(crashed)
    assert report.snapshot
    assert _kinds(report) == ["garbage_conflict"]
    assert _listing(crashed) == before


# ---------------------------------------------------------------------- repair


def test_repair_fixes_only_the_safe_ones(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    (root / segs[0].relpath).unlink()  # lost: only marked
    flipped = root / segs[2].relpath
    data = bytearray(flipped.read_bytes())
    data[-20] ^= 0xFF
    flipped.write_bytes(bytes(data))  # damaged: not repairable here
    stray = root / "segments" / "cam2" / "rother" / "000003.mp4"
    stray.parent.mkdir(parents=True)
    shutil.copyfile(root / segs[1].relpath, stray)  # no run: quarantined
    _sql(root, "insert into garbage values ('segments/cam1/rgone/000000.mp4', 'cam1', 1)")
    _sql(root, "update run set ended_wall_us = ended_wall_us - 100000 where run_id = ?",
         args=(segs[3].run_id,))
    before = _listing(root)
    assert not check_store(root).clean
    assert _listing(root) == before  # damage found, nothing touched without --repair
    first = check_store(root, repair=True)
    repaired = sorted(f.kind for f in first.findings if f.repaired)
    assert repaired == ["garbage_leftover", "missing", "orphan_file", "run_end"]
    assert _kinds(first) == ["file_hash"]
    assert not stray.exists()
    assert (root / "quarantine" / "cam2" / "rother" / "000003.mp4").exists()
    assert any("REPAIRED" in line and "quarantine/cam2/rother/000003.mp4" in line
               for line in first.lines())
    second = check_store(root)
    # the lost file stays reported (marked), the damaged one too; the rest is gone
    assert _kinds(second) == ["file_hash", "missing"]
    assert "marked 'missing'" in next(f for f in second.problems if f.kind == "missing").message
    assert second.quarantined_files == 1
    with SegmentStore.open(root, SERVER) as s:  # the node agrees: nothing left to reconcile
        assert s.last_reconcile is not None and s.last_reconcile.clean


def test_repair_restores_a_store_that_can_be_clean(store: tuple[Path, list[SegmentInfo]]) -> None:
    root, segs = store
    stray = root / "segments" / "cam1" / "rnotarun" / "000000.mp4"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"\x00" * 10)
    _sql(root, "insert into garbage values (?, 'cam1', 1)", args=(segs[1].relpath,))
    _sql(root, "update segment set file_problem = 'missing' where segment_id = ?",
         args=(segs[4].segment_id,))
    first = check_store(root)
    assert _kinds(first) == ["garbage_conflict", "orphan_file", "stale_mark"]
    assert not check_store(root, repair=True).problems
    assert check_store(root).clean
    assert (root / segs[1].relpath).exists()  # the conflicting deletion entry kept the video


def test_repair_refuses_while_a_node_holds_the_store(data_dir: Path,
                                                     store: tuple[Path, list[SegmentInfo]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = store
    with SegmentStore.open(root, SERVER) as s:
        run = s.begin_run("cam1", SERVER, T0 + 60_000_000, WallSource.CAMERA)  # recording now
        s.segment_path("cam1", run.run_id, 0).write_bytes(b"in flight")
        with pytest.raises(CheckError, match="stop that node"):
            check_store(root, repair=True)
        assert main(["store", "check", "--repair", str(data_dir)]) == 2
        assert "store.lock" in capsys.readouterr().err
        report = check_store(root)  # a plain check may run alongside
    if sys.platform.startswith("linux"):  # elsewhere the check cannot tell (report.live None)
        assert report.live
        assert report.clean, [f.line() for f in report.findings]
        # the open run and its file being written are notes, not problems
        assert {(f.kind, f.severity) for f in report.findings} == {("orphan_file", "info")}
    assert store_check.lock_held(root) is False


# ---------------------------------------------------------------------- CLI


def test_repair_of_a_data_dir_reports_every_store_even_if_one_is_held(
        data_dir: Path, store: tuple[Path, list[SegmentInfo]],
        capsys: pytest.CaptureFixture[str]) -> None:
    root, segs = store
    buffer = data_dir / "buffer" / "rs2"
    with SegmentStore.open(buffer, "spare-1"):
        pass
    (root / segs[0].relpath).unlink()
    with SegmentStore.open(buffer, "spare-1"):  # a node holds the buffer store only
        assert main(["store", "check", "--repair", str(data_dir)]) == 2
    out = capsys.readouterr()
    assert "buffer/rs2" in out.err and "stop that node" in out.err
    assert any(line.startswith("REPAIRED missing") for line in out.out.splitlines())



def test_cli_missing_dir_is_one_clear_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "check", str(tmp_path / "nope")]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and "data_dir" in lines[0]


def test_cli_dir_without_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "check", str(tmp_path)]) == 2
    assert "no store under" in capsys.readouterr().err


def test_cli_problems_exit_1_with_one_line_each_and_json(
        store: tuple[Path, list[SegmentInfo]], capsys: pytest.CaptureFixture[str]) -> None:
    root, segs = store
    (root / segs[0].relpath).unlink()
    (root / segs[5].relpath).write_bytes(b"short")
    assert main(["store", "check", str(root)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("ERROR") and "NOT clean" in lines[-1]
    assert any("missing" in line and segs[0].relpath in line for line in lines)
    assert main(["store", "check", "--json", str(root)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["clean"] is False
    kinds = sorted(f["kind"] for f in doc["stores"][0]["findings"])
    assert kinds == ["file_size", "missing"]
