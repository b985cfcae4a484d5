"""Storage faults on a truly full disk (a small tmpfs filled to its last byte), issue 12 item 2.

A seam for free space cannot show what matters here: SQLite refusing to write. So each test mounts
its own 8 MB tmpfs (root needed), fills it with a ballast file, and unmounts it afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspare import metrics
from hotspare.cli.main import main
from hotspare.config.load import load_node_config
from hotspare.node.runtime import RetentionLoop, open_store
from hotspare.store import retention
from hotspare.store.check import check_store
from hotspare.store.models import RunInfo, WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import record_segment, write_segment
from tests.support import small_disk
from tests.support.prerequisites import missing_prerequisite

T0 = 1_700_000_000_000_000
SEG_US = 400_000  # each synthetic segment: 10 frames at 25 fps


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if shutil.which("mount") is None:
        missing_prerequisite("mount(8) is needed to make a small tmpfs for full-disk tests")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing_prerequisite(f"cannot mount a tmpfs for full-disk tests (run as root): "
                             f"{done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> None:
    """Fill `disk` to the last byte (a ballast file, `small_disk.free` removes it)."""
    small_disk.fill(disk)
    assert shutil.disk_usage(disk).free == 0


def recorded_store(disk: Path, segments: int = 20, *, fill_first: bool = False,
                   name: str = "rs1", t0: int = T0) -> tuple[Path, RunInfo]:
    """A store with `segments` committed segments of one run left open (as a crash leaves it);
    with `fill_first` the disk fills up while the store is open, as it does under a recorder."""
    s = SegmentStore.open(disk / "store", name)
    run = s.begin_run("cam1", name, t0, WallSource.CAMERA)
    for seq in range(segments):
        record_segment(s, run, seq, seq * 36_000, 10)
    if fill_first:
        # A store that ran a while has most of its index checkpointed; a 3 MB log of 2 KB test
        # segments would need more room to checkpoint than all the video frees.
        s.index.writer.execute("pragma wal_checkpoint(truncate)").fetchall()
        fill(disk)
    s.close()
    return disk / "store", run


def rows(root: Path) -> list[tuple[int, str | None]]:
    conn = sqlite3.connect(root / "index.sqlite3")
    try:
        return [(r[0], r[1]) for r in
                conn.execute("select seq, file_problem from segment order by seq")]
    finally:
        conn.close()


def test_store_opens_on_a_full_disk_frees_space_first_and_records(disk: Path) -> None:
    root, _run = recorded_store(disk, 100)
    fill(disk)  # after a clean stop: the index's log and wal-index are gone too
    want_free = 300_000
    # Before the fix reconcile raised "database or disk is full" here and the node exited.
    with SegmentStore.open(root, "rs1", min_free_bytes=want_free,
                           max_age_us=86_400_000_000) as s:
        rep = s.open_retention
        assert rep is not None and rep.deleted_for_space >= 3 and not rep.unfinished_marks
        assert rep.free_bytes_after >= want_free
        assert s.last_reconcile is not None and s.last_reconcile.write_failures == 0
        assert s.last_reconcile.runs_closed == 1
        kept = rows(root)
        # oldest first, rows and files gone together, no row left pointing at nothing
        assert [seq for seq, _ in kept] == list(range(rep.deleted_for_space, 100))
        assert all(problem is None for _, problem in kept)
        assert not list((root / "segments").rglob("*" + retention.MARK_SUFFIX))
        assert not (root / "quarantine").exists()
        # and it records again
        run2 = s.begin_run("cam1", "rs1", T0 + 10_000_000, WallSource.CAMERA)
        seg = record_segment(s, run2, 0, 0, 10)
        assert s.get_segment(seg.segment_id) is not None


def test_store_opens_on_a_full_disk_without_a_space_reserve(disk: Path) -> None:
    """Even with nothing to free at open (min_free_bytes 0), the store opens: writes reconcile
    could not make are reported and retried, so the retention loop gets to run."""
    root, _run = recorded_store(disk, 40, fill_first=True)
    with SegmentStore.open(root, "rs1") as s:
        assert s.last_reconcile is not None and s.last_reconcile.write_failures >= 1
        rep = s.apply_retention(None, 30_000, T0)
        assert rep.deleted_for_space > 0 and shutil.disk_usage(disk).free >= 30_000
    with SegmentStore.open(root, "rs1") as s:  # the next start finishes what was deferred
        assert s.last_reconcile is not None and s.last_reconcile.runs_closed == 1
        assert s.last_reconcile.write_failures == 0


def test_retention_frees_space_on_a_truly_full_disk(disk: Path) -> None:
    root, _run = recorded_store(disk, 40)
    with SegmentStore.open(root, "rs1") as s:
        fill(disk)
        first = s.list_segments("cam1", 0, T0 + 10**9)[0]
        # Row-first deletion needed SQLite to write on a disk with no free block: it raised
        # "database or disk is full" and freed nothing.
        rep = s.apply_retention(None, 30_000, T0 + 40 * SEG_US)
        assert rep.deleted_for_space > 0 and not rep.space_short and not rep.unfinished_marks
        assert shutil.disk_usage(disk).free >= 30_000
        assert s.get_segment(first.segment_id) is None and not s.segment_file(first).exists()
        left = s.list_segments("cam1", 0, T0 + 10**9)
        assert all(s.segment_file(x).stat().st_size == x.bytes for x in left)
        assert not list((root / "segments").rglob("*" + retention.MARK_SUFFIX))
    with SegmentStore.open(root, "rs1") as s:
        assert s.last_reconcile is not None
        assert s.last_reconcile.missing_files == 0 and s.last_reconcile.unknown_files == 0


def test_a_crash_between_emptying_files_and_deleting_rows_is_finished_at_start(
        disk: Path) -> None:
    """What a crash (or a still-full index) leaves: marks whose rows still exist. The next start
    deletes those rows; nothing is reported missing, nothing is salvaged back."""
    root, run = recorded_store(disk, segments=5)
    for seq in (0, 1):
        path = root / "segments" / "cam1" / run.run_id / f"{seq:06d}.mp4"
        mark = retention.mark_path(path)
        os.replace(path, mark)
        os.truncate(mark, 0)
    with SegmentStore.open(root, "rs1") as s:
        r = s.last_reconcile
        assert r is not None
        assert (r.space_marks_finished, r.missing_files, r.unknown_files) == (2, 0, 0)
        assert [seq for seq, _ in rows(root)] == [2, 3, 4]
        assert not list((root / "segments").rglob("*" + retention.MARK_SUFFIX))


def test_reconcile_keeps_a_complete_segment_in_place_when_its_row_cannot_be_written(
        disk: Path) -> None:
    s = SegmentStore.open(disk / "store", "rs1")
    run = s.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    for seq in range(3):
        record_segment(s, run, seq, seq * 36_000, 10)
    # a complete file the recorder wrote but whose commit a crash prevented
    orphan = s.segment_path("cam1", run.run_id, 3)
    write_segment(orphan, 3 * 36_000, 10)
    fill(disk)
    s.close()
    root = disk / "store"
    with SegmentStore.open(root, "rs1") as s:
        assert s.last_reconcile is not None
        assert s.last_reconcile.quarantined == 0 and s.last_reconcile.index_deferred == 1
    assert orphan.exists() and not (root / "quarantine").exists()
    small_disk.free(disk)
    with SegmentStore.open(root, "rs1") as s:
        assert s.last_reconcile is not None and s.last_reconcile.salvaged == 1
        assert [x.seq for x in s.list_segments("cam1", 0, T0 + 10**9)] == [0, 1, 2, 3]


def test_early_deletion_for_space_is_a_warning_naming_camera_and_time(
        disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, _run = recorded_store(disk, segments=10)
    with SegmentStore.open(root, "rs1") as s:
        fill(disk)
        with caplog.at_level(logging.WARNING, logger="hotspare.store.retention"):
            rep = s.apply_retention(30 * 86_400_000_000, 10_000, T0 + 10 * SEG_US)
        assert rep.deleted_for_space > 0
        early = rep.early["cam1"]
        assert early.segments == rep.deleted_for_space and early.from_wall_us == T0
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("before max_age_days" in m and "camera cam1" in m
                   and "2023-11-14T22:13:20Z" in m for m in warnings), warnings


def test_quarantined_segments_can_be_indexed_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A good segment an older reconcile quarantined (its row could not be written) gets back
    on the timeline; another server's file goes back to quarantine; nothing is deleted."""
    root = tmp_path / "data" / "store"
    with SegmentStore.open(root, "rs1") as s:
        run = s.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
        for seq in range(2):
            record_segment(s, run, seq, seq * 36_000, 10)
        s.end_run(run.run_id, T0 + 800_000, "stopped")
    good = root / "quarantine" / "cam1" / run.run_id / "000002.mp4"
    good.parent.mkdir(parents=True)
    write_segment(good, 2 * 36_000, 10)
    stray = root / "quarantine" / "cam9" / "r0unknown" / "000000.mp4"
    stray.parent.mkdir(parents=True)
    write_segment(stray, 0, 10)
    assert main(["store", "reindex-quarantine", str(tmp_path / "data")]) == 1  # stray stays
    out = capsys.readouterr().out
    assert "2 quarantined file(s) tried again: 1 indexed, 1 back in quarantine" in out, out
    with SegmentStore.open(root, "rs1") as s:
        assert [x.seq for x in s.list_segments("cam1", 0, T0 + 10**9)] == [0, 1, 2]
    assert not good.exists() and stray.exists()


def test_ensure_room_frees_by_retention_and_refuses_only_what_cannot_fit(disk: Path) -> None:
    """What the import route asks before it reads an upload's body (507 when False)."""
    root, _run = recorded_store(disk, 40)
    with SegmentStore.open(root, "rs1", min_free_bytes=20_000) as s:
        fill(disk)
        assert s.ensure_room(5_000)  # retention made room (files first, on a full disk)
        assert shutil.disk_usage(disk).free >= 25_000
        pending = [x.segment_id for x in s.list_segments("cam1", 0, T0 + 10**9)]
        s.set_reinsert_pending(pending, True)  # what is left is owed elsewhere: not deletable
        assert not s.ensure_room(10 * 1024 * 1024)
        assert [x.segment_id for x in s.list_segments("cam1", 0, T0 + 10**9)] == pending


def test_a_node_started_on_a_full_disk_opens_its_store_and_reports_early_deletions(
        disk: Path, tmp_path: Path) -> None:
    """The node's start path (`open_store`, then its retention loop) on a full disk: the store
    opens with its retention reserve free; video deleted before max_age_days is counted per
    camera and passed on as a site event."""
    recent = time.time_ns() // 1000 - 3_600_000_000  # an hour ago: well inside 30 days
    root, _run = recorded_store(disk, 100, name="rec-1", t0=recent)
    fill(disk)
    node_toml = tmp_path / "node.toml"
    node_toml.write_text(f"""
name = "rec-1"
data_dir = "{disk}"
[api]
token = "secret-token-0123456789"
[retention]
max_age_days = 30
min_free_bytes = 300000
[[cameras]]
id = "cam1"
url = "rtsp://127.0.0.1:8554/cam1"
""", encoding="utf-8")
    config = load_node_config(node_toml)
    sample = ("hotspare_retention_early_deleted_segments_total", {"camera": "cam1"})
    counted = metrics.REGISTRY.get_sample_value(*sample) or 0.0
    store = open_store(root, config)  # before the fix: "database or disk is full", exit
    try:
        rep = store.open_retention
        assert rep is not None and rep.free_bytes_after >= 300_000
        events: list[tuple[str, str]] = []
        RetentionLoop(store, config, lambda camera, message: events.append((camera, message)))
        assert metrics.REGISTRY.get_sample_value(*sample) == counted + rep.deleted_for_space
        assert [camera for camera, _ in events] == ["cam1"]
        assert "before max_age_days" in events[0][1] and "camera cam1" in events[0][1]
    finally:
        store.close()


def test_store_check_reports_an_unfinished_space_deletion_not_a_loss(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with SegmentStore.open(root, "rs1") as s:
        run = s.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
        first = record_segment(s, run, 0, 0, 10)
        record_segment(s, run, 1, 36_000, 10)
        s.end_run(run.run_id, T0 + 800_000, "stopped")
    path = root / first.relpath
    os.replace(path, retention.mark_path(path))
    os.truncate(retention.mark_path(path), 0)
    report = check_store(root, hash_files=False)
    kinds = {(f.severity, f.kind) for f in report.findings}
    assert ("warning", "space_mark") in kinds and not any(k == "missing" for _, k in kinds)
