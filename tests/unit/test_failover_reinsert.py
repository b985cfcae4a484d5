"""Re-insert steps against real stores, with stand-ins for etcd and the original's API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hotspare.client.node_client import NodeApiError
from hotspare.coordination.errors import FencingError
from hotspare.failover.reinsert import Fence, NotYet, RateLimiter, Reinserter, buffered_segments
from hotspare.sitestate import layout
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import record_segment
from hotspare.wire import ImportMetaIn, ImportOut
from tests.support.fake_site_state import FakeSite

T0 = 1_700_000_000_000_000


def claimed_site(token: int) -> FakeSite:
    """The one fake site state, with a claim on rs1 whose fencing token is `token`."""
    site = FakeSite()
    site.etcd.put_at(layout.claim("rs1"), {"spare": "spare1"}, token)
    return site


class FakeOriginal:
    """The original's API: imports into a real store; `reach` is how far it has recorded."""

    def __init__(self, store: SegmentStore, reach: int) -> None:
        self.store = store
        self.reach = reach
        self.uploads: list[tuple[str, int]] = []

    def import_segment(self, camera: str, meta: ImportMetaIn, path: Path) -> ImportOut:
        self.uploads.append((meta.run_id, meta.seq))
        result = self.store.import_segment(meta.to_store(camera), path)
        return ImportOut(status=result.status, segment=None, covered_by=[], message="")

    def list_segments(self, camera: str, start: int, end: int) -> Any:
        own = SimpleNamespace(recorded_by="rs1", end_wall_us=self.reach)
        return SimpleNamespace(segments=[own] if self.reach else [])


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SegmentStore, SegmentStore]]:
    spare = SegmentStore.open(tmp_path / "buffer", "spare1")
    origin = SegmentStore.open(tmp_path / "origin", "rs1")
    run = spare.begin_run("cam1", "rs1", T0, WallSource.CAMERA)
    for seq in range(4):
        record_segment(spare, run, seq, seq * 36_000, 10)
    yield spare, origin
    spare.close()
    origin.close()


def _reinserter(spare: SegmentStore, target: FakeOriginal, etcd: FakeSite,
                token: int = 7, limiter: RateLimiter | None = None, **kw: int) -> Reinserter:
    return Reinserter(etcd, spare, "rs1", "spare1", "http://spare", target,  # type: ignore[arg-type]
                      Fence("rs1", token), limiter or RateLimiter(10**9), **kw)


class SlowOriginal(FakeOriginal):
    """Holds each import a moment and counts how many are in flight at once; `fail` maps a seq
    to the error its import raises."""

    def __init__(self, store: SegmentStore, reach: int,
                 fail: dict[int, Exception] | None = None) -> None:
        super().__init__(store, reach)
        self.fail = fail or {}
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def import_segment(self, camera: str, meta: ImportMetaIn, path: Path) -> ImportOut:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.05)
            if meta.seq in self.fail:
                self.uploads.append((meta.run_id, meta.seq))
                raise self.fail[meta.seq]
            return super().import_segment(camera, meta, path)
        finally:
            with self.lock:
                self.now -= 1


def _seqs(spare: SegmentStore) -> list[int]:
    return [s.seq for s in buffered_segments(spare, "rs1")]


def test_oldest_first_resumable_and_buffer_emptied(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    etcd = claimed_site(7)
    target = FakeOriginal(origin, reach=2**62)
    first = _reinserter(spare, target, etcd, step_segments=1)
    first.start()
    assert first.step() is not None and first.step() is not None
    # The spare "crashes" here; a new run resumes from the buffer and the stored counts.
    second = _reinserter(spare, target, etcd, window=1)  # one at a time: arrival order = sent
    assert (second.progress.done, second.progress.total) == (2, 4)
    while second.step() is not None:
        pass
    assert [seq for _run, seq in target.uploads] == [0, 1, 2, 3]
    assert buffered_segments(spare, "rs1") == []
    assert len(origin.list_segments("cam1", 0, 2**62)) == 4
    second.finish()
    assert layout.reinsert("rs1", "spare1") not in etcd.etcd.kvs


def test_waits_until_the_original_recorded_past_the_segment(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    target = FakeOriginal(origin, reach=0)
    r = _reinserter(spare, target, claimed_site(7))
    with pytest.raises(NotYet):
        r.step()
    assert target.uploads == []
    target.reach = 2**62
    assert r.step() is not None


def test_stale_token_stops_before_any_upload(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    target = FakeOriginal(origin, reach=2**62)
    r = _reinserter(spare, target, claimed_site(9), token=7)
    with pytest.raises(FencingError):
        r.step()
    assert target.uploads == [] and len(buffered_segments(spare, "rs1")) == 4


def test_window_keeps_several_in_flight_and_returns_the_newest(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    target = SlowOriginal(origin, reach=2**62)
    r = _reinserter(spare, target, claimed_site(7), window=2)
    r.start()
    newest = r.step()
    assert newest is not None and newest.seq == 3
    assert target.most == 2  # never more than the window, and really concurrent
    assert sorted(seq for _run, seq in target.uploads) == [0, 1, 2, 3]
    assert _seqs(spare) == [] and r.step() is None
    assert (r.progress.done, r.progress.total) == (4, 4)
    assert len(origin.list_segments("cam1", 0, 2**62)) == 4


def test_a_failure_stops_the_window_and_keeps_what_was_not_acknowledged(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    broken = NodeApiError(500, "internal", "disk full")
    target = SlowOriginal(origin, reach=2**62, fail={1: broken})
    r = _reinserter(spare, target, claimed_site(7), window=4)
    r.start()
    with pytest.raises(NodeApiError) as raised:
        r.step()
    assert raised.value is broken
    # 0, 2 and 3 were acknowledged (each deletes only its own copy); 1 was not and stays.
    assert _seqs(spare) == [1]
    assert r.progress.done == 3 and len(origin.list_segments("cam1", 0, 2**62)) == 3
    # Resume: only what is left goes again.
    target.fail.clear()
    target.uploads.clear()
    assert r.step() is not None and _seqs(spare) == []
    assert [seq for _run, seq in target.uploads] == [1]
    assert r.progress.done == 4


def test_stale_token_answer_stands_down_and_deletes_nothing_unacknowledged(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    stale = NodeApiError(409, "stale_fencing_token", "the claim now has token 9")
    target = SlowOriginal(origin, reach=2**62, fail={0: stale, 1: stale, 2: stale, 3: stale})
    r = _reinserter(spare, target, claimed_site(7), window=4)
    with pytest.raises(FencingError):
        r.step()
    assert _seqs(spare) == [0, 1, 2, 3] and r.progress.done == 0


def test_sends_only_what_the_original_recorded_past(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    segments = buffered_segments(spare, "rs1")
    target = FakeOriginal(origin, reach=segments[1].end_wall_us)
    r = _reinserter(spare, target, claimed_site(7))
    newest = r.step()
    assert newest is not None and newest.seq == 1 and _seqs(spare) == [2, 3]
    with pytest.raises(NotYet):
        r.step()
    assert sorted(seq for _run, seq in target.uploads) == [0, 1]


def test_rate_limit_applies_to_every_segment_of_the_window(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    sizes = [s.bytes for s in buffered_segments(spare, "rs1")]
    slept: list[float] = []
    # A clock that never moves: every byte beyond the first second's allowance is paid in sleep.
    limiter = RateLimiter(max(sizes), clock=lambda: 0.0, sleep=slept.append)
    target = FakeOriginal(origin, reach=2**62)
    r = _reinserter(spare, target, claimed_site(7), limiter=limiter)
    assert r.step() is not None and _seqs(spare) == []
    assert sum(slept) == pytest.approx((sum(sizes) - max(sizes)) / max(sizes))
    assert len(slept) == 3


def test_a_step_stops_submitting_after_its_time_budget(
        stores: tuple[SegmentStore, SegmentStore], monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow rate limit must not make one step last seconds: the spare's loop needs control."""
    from hotspare.failover import reinsert

    spare, origin = stores
    monkeypatch.setattr(reinsert, "STEP_SECONDS", 0.0)
    target = FakeOriginal(origin, reach=2**62)
    r = _reinserter(spare, target, claimed_site(7))
    newest = r.step()
    assert newest is not None and newest.seq == 0 and _seqs(spare) == [1, 2, 3]
