"""Our own segments' rows that wait for the index writer at the same time share one transaction,
and a row the index refuses fails only its own commit."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from hotspare.store import layout, mp4, parts
from hotspare.store.models import SegmentInfo, WallSource
from hotspare.store.parts import StoreError
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import write_segment
from tests.support.site import wait_for
from tests.unit.test_store_import import T0, origin

__all__ = ["origin"]


def _commit_together(store: SegmentStore, cameras: int) -> list[SegmentInfo | BaseException]:
    """One segment file per camera, each committed by its own thread (as each camera's committer
    does) while the writer is held; released once every row waits."""
    runs = [store.begin_run(f"cam{i}", store.server_name, T0, WallSource.CAMERA)
            for i in range(cameras)]
    for run in runs:
        write_segment(store.segment_path(run.camera_id, run.run_id, 0), 0, 10)
    outcomes: list[SegmentInfo | BaseException | None] = [None] * cameras

    def one(i: int) -> None:
        try:
            outcomes[i] = store.commit_segment(runs[i].run_id, 0, 0, 10 * 3600, 10, 0)
        except BaseException as exc:
            outcomes[i] = exc

    queue = store.parts.own
    threads = [threading.Thread(target=one, args=(i,)) for i in range(cameras)]
    with store.parts.index.locked():
        for thread in threads:
            thread.start()
        wait_for("every commit queued for the writer", lambda: len(queue._waiting) == cameras, 10)
    for thread in threads:
        thread.join(10)
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def test_waiting_own_rows_commit_in_one_transaction(origin: SegmentStore) -> None:
    before = origin.parts.own.batches
    outcomes = _commit_together(origin, 8)
    assert all(isinstance(o, SegmentInfo) for o in outcomes), outcomes
    assert origin.parts.own.batches == before + 1, "eight rows, one transaction"
    listed = {s.camera_id for i in range(8)
              for s in origin.list_segments(f"cam{i}", T0 - 10**6, T0 + 10**7)}
    assert listed == {f"cam{i}" for i in range(8)}


def test_a_refused_row_fails_only_its_own_commit(origin: SegmentStore) -> None:
    run = origin.begin_run("cam", origin.server_name, T0, WallSource.CAMERA)
    path = origin.segment_path("cam", run.run_id, 0)
    write_segment(path, 0, 10)
    first = origin.commit_segment(run.run_id, 0, 0, 10 * 3600, 10, 0)
    info = mp4.parse_path(path)
    other = origin.begin_run("cam2", origin.server_name, T0, WallSource.CAMERA)
    other_path = origin.segment_path("cam2", other.run_id, 0)
    write_segment(other_path, 0, 10)
    other_info = mp4.parse_path(other_path)
    results: dict[str, SegmentInfo | BaseException] = {}

    def insert(name: str, run_id: str, info: mp4.Mp4Info, relpath: str, size: int) -> None:
        got = origin.get_run(run_id)
        assert got is not None
        try:
            results[name] = origin.parts.insert_own_segment(got, 0, info, size=size,
                                                            sha256="0" * 64, relpath=relpath)
        except BaseException as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=insert, args=("again", run.run_id, info, first.relpath,
                                              path.stat().st_size)),
        threading.Thread(target=insert, args=("new", other.run_id, other_info,
                                              layout.segment_relpath("cam2", other.run_id, 0),
                                              other_path.stat().st_size)),
    ]
    with origin.parts.index.locked():
        for thread in threads:
            thread.start()
        wait_for("both rows queued", lambda: len(origin.parts.own._waiting) == 2, 10)
    for thread in threads:
        thread.join(10)
    assert isinstance(results["again"], StoreError), results
    assert "already indexed" in str(results["again"])
    assert isinstance(results["new"], SegmentInfo), results
    assert [s.camera_id for s in origin.list_segments("cam2", T0 - 10**6, T0 + 10**7)] == ["cam2"]
    assert len(origin.list_segments("cam", T0 - 10**6, T0 + 10**7)) == 1


def test_a_lone_row_is_a_plain_commit(origin: SegmentStore) -> None:
    before = origin.parts.own.batches
    (outcome,) = _commit_together(origin, 1)
    assert isinstance(outcome, SegmentInfo)
    assert origin.parts.own.batches == before + 1


def test_many_committers_at_once_each_get_their_own_outcome(origin: SegmentStore) -> None:
    """Unsynchronised, as 16 cameras' committers are: every row lands once, each caller hears
    about its own, and the lead passes on until nobody waits."""
    runs = [origin.begin_run(f"cam{i}", origin.server_name, T0, WallSource.CAMERA)
            for i in range(16)]
    seqs = 5
    for run in runs:
        for seq in range(seqs):
            write_segment(origin.segment_path(run.camera_id, run.run_id, seq), seq * 36_000, 10)
    got: dict[tuple[int, int], SegmentInfo | BaseException] = {}

    def camera(i: int) -> None:
        for seq in range(seqs):
            try:
                got[(i, seq)] = origin.commit_segment(runs[i].run_id, seq, seq * 36_000,
                                                      10 * 3600, 10, 0)
            except BaseException as exc:
                got[(i, seq)] = exc

    before = origin.parts.own.batches
    threads = [threading.Thread(target=camera, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a committer never returned"
    assert len(got) == 16 * seqs
    for (i, seq), outcome in got.items():
        assert isinstance(outcome, SegmentInfo), outcome
        assert (outcome.camera_id, outcome.seq) == (f"cam{i}", seq)
    assert origin.parts.own.batches - before <= 16 * seqs
    assert not origin.parts.own._leading and not origin.parts.own._waiting


def test_a_caller_holding_the_writer_commits_at_once(origin: SegmentStore) -> None:
    """Reconcile inserts rows while it holds the writer lock: queued behind a leader that waits
    for that very lock, it would wait for ever."""
    runs = [origin.begin_run(f"cam{i}", origin.server_name, T0, WallSource.CAMERA)
            for i in range(2)]
    for run in runs:
        write_segment(origin.segment_path(run.camera_id, run.run_id, 0), 0, 10)
    other: list[SegmentInfo | BaseException] = []

    def waiting_leader() -> None:
        try:
            other.append(origin.commit_segment(runs[1].run_id, 0, 0, 10 * 3600, 10, 0))
        except BaseException as exc:
            other.append(exc)

    leader = threading.Thread(target=waiting_leader)
    with origin.parts.index.locked():
        leader.start()
        wait_for("a leader waiting for the writer", lambda: bool(origin.parts.own._waiting), 10)
        mine = origin.commit_segment(runs[0].run_id, 0, 0, 10 * 3600, 10, 0)
        assert mine.camera_id == "cam0"
    leader.join(10)
    assert len(other) == 1 and isinstance(other[0], SegmentInfo), other


@pytest.mark.parametrize("returning", [True, False], ids=["insert-returning", "old-sqlite"])
def test_a_row_takes_its_wall_times_from_the_anchor_the_index_holds(
        origin: SegmentStore, monkeypatch: pytest.MonkeyPatch, returning: bool) -> None:
    """One statement inserts the row from the run's anchor in the index (corrected after the
    run began: the caller's copy is stale) and hands it back; SQLite before 3.35 reads it back."""
    monkeypatch.setattr(parts, "RETURNING", returning)
    run = origin.begin_run("cam-a", origin.server_name, T0, WallSource.CAMERA)
    origin.update_run_anchor(run.run_id, T0 + 500_000, WallSource.CAMERA)
    write_segment(origin.segment_path("cam-a", run.run_id, 0), 90_000, 10)
    seg = origin.commit_segment(run.run_id, 0, 90_000, 10 * 3600, 10, 0)
    assert (seg.start_wall_us, seg.end_wall_us) == (T0 + 1_500_000, T0 + 1_500_000 + 400_000)
    (listed,) = origin.list_segments("cam-a", T0, T0 + 10**7)
    assert listed == seg


def test_a_row_of_a_run_the_index_does_not_hold_is_refused(origin: SegmentStore) -> None:
    run = origin.begin_run("cam-b", origin.server_name, T0, WallSource.CAMERA)
    path = origin.segment_path("cam-b", run.run_id, 0)
    write_segment(path, 0, 10)
    info = mp4.parse_bytes(path.read_bytes())
    gone = dataclasses.replace(run, run_id="r-not-indexed")
    with origin.parts.index.write() as db, pytest.raises(StoreError, match="not in the index"):
        parts.insert_segment(db, gone, 0, info, size=1, sha256="0" * 64, relpath="x")
