"""`/metrics` speaks Prometheus' text format, shows live camera states, and needs the token; the
series are fed by the code paths that do the work (event log, re-insert, lease keeper)."""

# ruff: noqa: F811  (the `stores` fixture imported from test_failover_reinsert is an argument)
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_failover_reinsert import (  # noqa: F401  (fixture)
    FakeOriginal,
    SlowOriginal,
    _reinserter,
    claimed_site,
    stores,
)

from hotspare.api.app import create_app
from hotspare.client.node_client import NodeApiError
from hotspare.coordination.etcd_adapter import LeaseKeeper
from hotspare.coordination.models import Lease
from hotspare.failover.reinsert import buffered_segments
from hotspare.metrics import EVENTS, REGISTRY
from hotspare.sitestate.events import EventLog
from hotspare.store.segment_store import SegmentStore
from hotspare.wire import ImportMetaIn
from tests.support.fake_site_state import FakeEtcd

NOW_US = 1_700_000_000_000_000


def test_metrics_show_camera_states_and_ages(tmp_path: Path) -> None:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    health = {
        "cam-1": {"state": "recording", "last_frame_wall_us": NOW_US - 40_000},
        "cam-2": {"state": "failing", "last_frame_wall_us": NOW_US - 12_000_000},
        "cam-3": {"state": "connecting", "last_frame_wall_us": None},
    }
    app = create_app(store, lambda: health, "tok", "rec-1", lambda: set(health),
                     clock=lambda: NOW_US)
    EVENTS.labels("claimed").inc()
    try:
        with TestClient(app) as client:
            assert client.get("/metrics").status_code == 401
            answer = client.get("/metrics", headers={"Authorization": "Bearer tok"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        assert 'hotspare_cameras{state="recording"} 1.0' in text
        assert 'hotspare_cameras{state="failing"} 1.0' in text
        assert 'hotspare_cameras{state="connecting"} 1.0' in text
        assert 'hotspare_camera_last_frame_age_seconds{camera="cam-2"} 12.0' in text
        assert 'camera="cam-3"' not in text.split("hotspare_camera_last_frame_age_seconds")[-1]
        assert 'hotspare_events_total{kind="claimed"}' in text
        assert "# TYPE hotspare_segment_commit_seconds histogram" in text
    finally:
        store.close()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _etcd(down: bool = False) -> FakeEtcd:
    """The one fake etcd; `down` makes every put fail as during an etcd outage."""
    etcd = FakeEtcd()
    etcd.down = down
    return etcd


def test_every_event_is_counted_and_takeover_steps_per_server() -> None:
    before = {kind: _sample("hotspare_events_total", kind=kind) for kind in ("claimed", "done")}
    claimed = _sample("hotspare_takeovers_total", kind="claimed", server="rec-7")
    stood_down = _sample("hotspare_takeovers_total", kind="stood_down", server="rec-7")
    log = EventLog(_etcd(), "spare-1")  # type: ignore[arg-type]
    log.emit("claimed", "rec-7", "spare-1 claimed rec-7")
    log.emit("recording", "rec-7", "records 2 cameras")  # a state on the way, not a takeover step
    # An event etcd did not store still happened: it is counted all the same.
    EventLog(_etcd(down=True), "spare-1").emit(  # type: ignore[arg-type]
        "stood_down", "rec-7", "stale write refused")
    assert _sample("hotspare_events_total", kind="claimed") == before["claimed"] + 1
    assert _sample("hotspare_takeovers_total", kind="claimed", server="rec-7") == claimed + 1
    assert _sample("hotspare_takeovers_total", kind="stood_down", server="rec-7") == stood_down + 1
    assert REGISTRY.get_sample_value(
        "hotspare_takeovers_total", {"kind": "recording", "server": "rec-7"}) is None
    # Every kind is exported from the start, so a first `done` is an increase from 0.
    assert REGISTRY.get_sample_value("hotspare_events_total", {"kind": "done"}) == before["done"]


def test_reinsert_counts_acknowledged_bytes_and_segments_by_answer(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    sizes = [s.bytes for s in buffered_segments(spare, "rs1")]
    before_bytes = _sample("hotspare_reinsert_bytes_total", server="rs1")
    before = {s: _sample("hotspare_reinsert_segments_total", server="rs1", status=s)
              for s in ("inserted", "duplicate")}
    # The original already holds the first two (a resumed re-insert after a crash).
    for segment in buffered_segments(spare, "rs1")[:2]:
        run = spare.get_run(segment.run_id)
        assert run is not None
        origin.import_segment(ImportMetaIn.of(segment, run).to_store(segment.camera_id),
                              spare.segment_file(segment))
    etcd = claimed_site(7)
    reinserter = _reinserter(spare, FakeOriginal(origin, reach=2**62), etcd)
    reinserter.start()
    while reinserter.step() is not None:
        pass
    assert _sample("hotspare_reinsert_bytes_total", server="rs1") == before_bytes + sum(sizes)
    assert _sample("hotspare_reinsert_segments_total", server="rs1",
                   status="duplicate") == before["duplicate"] + 2
    assert _sample("hotspare_reinsert_segments_total", server="rs1",
                   status="inserted") == before["inserted"] + 2


def test_reinsert_counts_nothing_the_original_did_not_acknowledge(
        stores: tuple[SegmentStore, SegmentStore]) -> None:
    spare, origin = stores
    before = _sample("hotspare_reinsert_bytes_total", server="rs1")
    etcd = claimed_site(7)
    failing = SlowOriginal(origin, reach=2**62,
                           fail={seq: NodeApiError(500, "boom", "disk") for seq in range(4)})
    reinserter = _reinserter(spare, failing, etcd)
    reinserter.start()
    with pytest.raises(NodeApiError):
        reinserter.step()
    assert _sample("hotspare_reinsert_bytes_total", server="rs1") == before


class _LeaseEtcd:
    """Acknowledges keepalives until `expire` is set, then says the lease is gone."""

    timeout = 1.0

    def __init__(self) -> None:
        self.endpoints = ["member-1"]
        self.expire = threading.Event()
        self.revoked: list[Lease] = []

    def endpoints_by_preference(self) -> list[str]:
        return self.endpoints

    def keepalive_once(self, lease: Lease, timeout: float, endpoint: str | None = None
                       ) -> float | None:
        return None if self.expire.is_set() else lease.ttl

    def revoke_lease(self, lease: Lease) -> None:
        self.revoked.append(lease)


def test_lease_gauge_follows_the_keeper_from_held_to_lost() -> None:
    etcd = _LeaseEtcd()
    keeper = LeaseKeeper(etcd, Lease(0x51, 2.0), interval=0.02,  # type: ignore[arg-type]
                         role="metrics-test")
    assert _sample("hotspare_lease_held", role="metrics-test") == 0
    keeper.start()
    try:
        assert _sample("hotspare_lease_held", role="metrics-test") == 1
        etcd.expire.set()
        assert keeper.lost.wait(5)
        assert _sample("hotspare_lease_held", role="metrics-test") == 0
    finally:
        keeper.stop()


def test_lease_gauge_drops_when_the_lease_is_given_up() -> None:
    etcd = _LeaseEtcd()
    keeper = LeaseKeeper(etcd, Lease(0x52, 2.0), interval=0.02,  # type: ignore[arg-type]
                         role="metrics-stop")
    keeper.start()
    assert _sample("hotspare_lease_held", role="metrics-stop") == 1
    keeper.stop()
    assert _sample("hotspare_lease_held", role="metrics-stop") == 0
    assert [lease.id for lease in etcd.revoked] == [0x52]


def test_metrics_page_lists_the_new_series(tmp_path: Path) -> None:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    try:
        app = create_app(store, dict, "tok", "rec-1", set, clock=lambda: NOW_US)
        with TestClient(app) as client:
            text = client.get("/metrics", headers={"Authorization": "Bearer tok"}).text
    finally:
        store.close()
    for family in ("hotspare_takeovers", "hotspare_reinsert_bytes", "hotspare_reinsert_segments"):
        assert f"# TYPE {family}_total counter" in text
    assert "# TYPE hotspare_lease_held gauge" in text
    assert 'hotspare_events_total{kind="protection"}' in text
