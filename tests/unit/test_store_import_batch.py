"""Imports that wait for the index writer at the same time are committed together (group
commit), each judged as if alone after the ones before it, each refused alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hotspare.store import importer, layout
from hotspare.store.importer import ImportMeta, ImportResult
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import record_segment
from tests.unit.test_store_import import T0, _state, origin, spare

__all__ = ["origin", "spare"]


def _segments(spare: SegmentStore, count: int) -> list[tuple[ImportMeta, Path]]:
    """`count` consecutive segments of one camera run, as the spare's buffer holds them."""
    run = spare.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    out = []
    for seq in range(count):
        seg = record_segment(spare, run, seq, seq * 36_000, 10)
        got = spare.get_run(run.run_id)
        assert got is not None
        out.append((ImportMeta.from_segment(seg, got), spare.segment_file(seg)))
    return out


def _import_together(origin: SegmentStore, jobs: list[tuple[ImportMeta, Path]],
                     guards: list[Callable[[], None] | None] | None = None
                     ) -> list[ImportResult | BaseException]:
    """Start every import while the writer is held, release it once all of them wait."""
    outcomes: list[ImportResult | BaseException | None] = [None] * len(jobs)

    def one(i: int) -> None:
        meta, data = jobs[i]
        try:
            outcomes[i] = origin.import_segment(meta, data,
                                                guard=guards[i] if guards else None)
        except BaseException as exc:
            outcomes[i] = exc

    queue = origin.parts.imports
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    with origin.parts.index.locked():
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(queue._waiting) < len(jobs):
            assert time.monotonic() < deadline, "imports did not queue for the writer"
            time.sleep(0.01)
    for thread in threads:
        thread.join(10)
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def test_waiting_imports_commit_in_one_transaction(origin: SegmentStore,
                                                   spare: SegmentStore) -> None:
    jobs = _segments(spare, 6)
    before = origin.parts.imports.batches
    outcomes = _import_together(origin, jobs)
    assert [o.status for o in outcomes if isinstance(o, ImportResult)] == ["inserted"] * 6
    assert origin.parts.imports.batches == before + 1, "six imports, one transaction"
    rows, files, incoming = _state(origin)
    assert rows == 6 and len(files) == 6 and incoming == []
    for meta, data in jobs:
        final = layout.to_path(origin.root, layout.segment_relpath("cam1", meta.run_id,
                                                                   meta.seq))
        assert final.read_bytes() == data.read_bytes()


def test_the_same_segment_twice_in_one_batch_is_stored_once(origin: SegmentStore,
                                                            spare: SegmentStore) -> None:
    (job,) = _segments(spare, 1)
    outcomes = _import_together(origin, [job, job])
    statuses = sorted(o.status for o in outcomes if isinstance(o, ImportResult))
    assert statuses == ["duplicate", "inserted"], "the second sees the first's row"
    assert _state(origin)[0] == 1


def test_one_refused_import_leaves_the_others_of_its_batch(origin: SegmentStore,
                                                           spare: SegmentStore) -> None:
    jobs = _segments(spare, 3)

    def refuse() -> None:
        raise PermissionError("the uploader lost its claim")

    outcomes = _import_together(origin, jobs, [None, refuse, None])
    assert isinstance(outcomes[1], PermissionError)
    assert [o.status for o in (outcomes[0], outcomes[2]) if isinstance(o, ImportResult)] == [
        "inserted", "inserted"]
    rows, files, incoming = _state(origin)
    assert rows == 2 and len(files) == 2 and incoming == []
    refused = layout.to_path(origin.root, layout.segment_relpath("cam1", jobs[1][0].run_id, 1))
    assert not refused.exists()


def test_a_batch_whose_commit_fails_leaves_nothing(origin: SegmentStore, spare: SegmentStore,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = _segments(spare, 3)
    run_dir = layout.to_path(origin.root, layout.segment_relpath("cam1", jobs[0][0].run_id,
                                                                 0)).parent
    real = layout.fsync_dir
    failed: list[Path] = []

    def failing_fsync_dir(path: Path) -> None:
        if path == run_dir and not failed:  # the batch's fsync of the folder, before its commit
            failed.append(path)
            raise OSError("I/O error")
        real(path)

    monkeypatch.setattr(importer.layout, "fsync_dir", failing_fsync_dir)
    outcomes = _import_together(origin, jobs)
    assert failed and all(isinstance(o, OSError) for o in outcomes)
    rows, files, incoming = _state(origin)
    assert rows == 0 and files == [] and incoming == []


@dataclass(frozen=True)
class _Asker:
    """Stands for the API's `Admission`: equal for one sender under one claim."""

    node: str
    calls: list[str] = field(default_factory=list, compare=False, hash=False)
    refuse: bool = False

    def recheck(self) -> None:
        self.calls.append(self.node)
        if self.refuse:
            raise PermissionError(f"{self.node} lost its claim")


def test_one_senders_guard_is_asked_once_per_batch(origin: SegmentStore,
                                                   spare: SegmentStore) -> None:
    """The fencing recheck is an etcd read under the writer lock: asked once for a batch of one
    sender's imports, not once each."""
    jobs = _segments(spare, 4)
    calls: list[str] = []
    askers = [_Asker("spare-1", calls) for _ in jobs]  # equal, but distinct objects per request
    outcomes = _import_together(origin, jobs, [a.recheck for a in askers])
    assert all(isinstance(o, ImportResult) and o.status == "inserted" for o in outcomes)
    assert calls == ["spare-1"]


def test_a_refusing_guard_is_asked_for_each_import(origin: SegmentStore,
                                                   spare: SegmentStore) -> None:
    jobs = _segments(spare, 3)
    calls: list[str] = []
    askers = [_Asker("spare-2", calls, refuse=True) for _ in jobs]
    outcomes = _import_together(origin, jobs, [a.recheck for a in askers])
    assert all(isinstance(o, PermissionError) for o in outcomes)
    assert calls == ["spare-2"] * 3 and _state(origin)[0] == 0
