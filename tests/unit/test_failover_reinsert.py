"""Re-insert steps against real stores, with stand-ins for etcd and the original's API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hotspare.api.routes_import import store_meta
from hotspare.api.schemas import ImportMetaIn, ImportOut
from hotspare.coordination.errors import FencingError
from hotspare.failover import keys
from hotspare.failover.reinsert import Fence, NotYet, RateLimiter, Reinserter, buffered_segments
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import record_segment

T0 = 1_700_000_000_000_000


class FakeEtcd:
    def __init__(self, claims: dict[str, int]) -> None:
        self.claims = claims
        self.kv: dict[str, str] = {}

    def get(self, key: str) -> Any:
        value = self.kv.get(key)
        return None if value is None else SimpleNamespace(json=lambda: json.loads(value))

    def put(self, key: str, value: str) -> int:
        self.kv[key] = value
        return 1

    def put_fenced(self, key: str, value: str, *, claim_key: str, token: int) -> int:
        if self.claims.get(claim_key) != token:
            raise FencingError(claim_key, token, self.claims.get(claim_key))
        return self.put(key, value)

    def delete_fenced(self, key: str, *, claim_key: str, token: int) -> int:
        if self.claims.get(claim_key) != token:
            raise FencingError(claim_key, token, self.claims.get(claim_key))
        self.kv.pop(key, None)
        return 1


class FakeOriginal:
    """The original's API: imports into a real store; `reach` is how far it has recorded."""

    def __init__(self, store: SegmentStore, reach: int) -> None:
        self.store = store
        self.reach = reach
        self.uploads: list[tuple[str, int]] = []

    def import_segment(self, camera: str, meta: ImportMetaIn, path: Path) -> ImportOut:
        self.uploads.append((meta.run_id, meta.seq))
        result = self.store.import_segment(store_meta(camera, meta), path)
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


def _reinserter(spare: SegmentStore, target: FakeOriginal, etcd: FakeEtcd,
                token: int = 7) -> Reinserter:
    return Reinserter(etcd, spare, "rs1", "spare1", "http://spare", target,  # type: ignore[arg-type]
                      Fence(keys.claim("rs1"), token), RateLimiter(10**9))


def test_oldest_first_resumable_and_buffer_emptied(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    etcd = FakeEtcd({keys.claim("rs1"): 7})
    target = FakeOriginal(origin, reach=2**62)
    first = _reinserter(spare, target, etcd)
    first.start()
    assert first.step() is not None and first.step() is not None
    # The spare "crashes" here; a new run resumes from the buffer and the stored counts.
    second = _reinserter(spare, target, etcd)
    assert (second.progress.done, second.progress.total) == (2, 4)
    while second.step() is not None:
        pass
    assert [seq for _run, seq in target.uploads] == [0, 1, 2, 3]
    assert buffered_segments(spare, "rs1") == []
    assert len(origin.list_segments("cam1", 0, 2**62)) == 4
    second.finish()
    assert keys.reinsert("rs1", "spare1") not in etcd.kv


def test_waits_until_the_original_recorded_past_the_segment(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    target = FakeOriginal(origin, reach=0)
    r = _reinserter(spare, target, FakeEtcd({keys.claim("rs1"): 7}))
    with pytest.raises(NotYet):
        r.step()
    assert target.uploads == []
    target.reach = 2**62
    assert r.step() is not None


def test_stale_token_stops_before_any_upload(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    target = FakeOriginal(origin, reach=2**62)
    r = _reinserter(spare, target, FakeEtcd({keys.claim("rs1"): 9}), token=7)
    with pytest.raises(FencingError):
        r.step()
    assert target.uploads == [] and len(buffered_segments(spare, "rs1")) == 4
