"""The spare agent driven tick by tick through every transition, against the one fake site state.

No etcd, no cameras, no peer: `FakeSite` (tests/support/fake_site_state.py) keeps claims, tokens,
fencing and leases as etcd does; the prober, the original's API and the recorder are stand-ins.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hotspare.client.node_client import NodeApiError
from hotspare.config.models import CameraConfig, SiteMembership
from hotspare.failover import takeover
from hotspare.failover.buffer_room import RoomGauge
from hotspare.failover.probe import ProbeKind, ProbeResult
from hotspare.failover.spare_agent import SpareAgent
from hotspare.failover.spare_states import Covering, Idle, Reinserting
from hotspare.failover.spare_view import SpareView
from hotspare.recorder.health import CameraState
from hotspare.site.licences import Licence, LicenceDocument
from hotspare.site.model import SiteConfig
from hotspare.site.pool import LicenceMerge
from hotspare.sitestate import layout
from hotspare.sitestate.applied import AppliedSite
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import record_segment
from hotspare.wire import ImportOut
from tests.support.fake_site_state import FakeEvents, FakeSite

T0 = 1_700_000_000_000_000
NOW = datetime.now(UTC)
LICENCE = Licence(
    LicenceDocument(licence_id="lic-1", site_id="t", issued_at=NOW - timedelta(days=1),
                    not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365),
                    failover_server_licences=1, failover_camera_licences=20,
                    issuer_key_id="test"),
    source="test",
)
CONFIG = SiteConfig.model_validate({
    "site": {"id": "t"},
    "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
    "recording_servers": [
        {"name": "rec-1", "address": "rec-1.test:8600", "role": "master",
         "cameras": [{"id": "a", "url": "rtsp://10.0.0.1/a"}]},
        {"name": "rec-2", "address": "rec-2.test:8600",
         "cameras": [{"id": "b", "url": "rtsp://10.0.0.2/b"}]},
    ],
    "failover_servers": [{"name": "spare-1", "address": "spare-1.test:8600"}],
})
UP = ProbeResult(ProbeKind.RECORDING)
DEAD = ProbeResult(ProbeKind.REFUSED, "connection refused")


@dataclass
class Applied:
    current: AppliedSite | None = field(
        default_factory=lambda: AppliedSite(CONFIG, 1, LicenceMerge((LICENCE,), (), ())))

    def maybe_reload(self) -> None:
        pass


class FakeRecorder:
    def __init__(self, identity: str, cameras: list[CameraConfig], *_: Any, **__: Any) -> None:
        self.identity = identity
        self.cameras = list(cameras)
        self.running = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def health(self) -> dict[str, Any]:
        return {c.id: SimpleNamespace(state=CameraState.RECORDING, committed_until_wall_us=None)
                for c in self.cameras}

    def update_cameras(self, cameras: list[CameraConfig]) -> None:
        self.cameras = list(cameras)

    def workers(self) -> dict[str, Any]:
        return {}


class FakeProber:
    def __init__(self) -> None:
        self.answers = {"rec-1.test:8600": UP, "rec-2.test:8600": UP}

    def probe(self, address: str) -> ProbeResult:
        return self.answers[address]


class FakeOriginal:
    """The original's API: acknowledges imports, or fails them with `error`."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, int]] = []
        self.error: Exception | None = None
        self.closed = 0

    def import_segment(self, camera: str, meta: Any, path: Path) -> ImportOut:
        if self.error is not None:
            raise self.error
        self.uploads.append((camera, meta.seq))
        return ImportOut(status="inserted", segment=None, covered_by=[], message="")

    def list_segments(self, camera: str, start: int, end: int) -> Any:
        own = SimpleNamespace(recorded_by="rec-1", end_wall_us=2**62)
        return SimpleNamespace(segments=[own])

    def close(self) -> None:
        self.closed += 1


@dataclass
class Rig:
    agent: SpareAgent
    site: FakeSite
    events: FakeEvents
    prober: FakeProber
    original: FakeOriginal
    applied: Applied

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.agent.tick()

    def fail(self, server: str) -> None:
        """The server's process is gone: probes refused, its alive key gone."""
        self.prober.answers[f"{server}.test:8600"] = DEAD
        self.site.etcd.delete(layout.alive(server))

    def back(self, server: str, confirmed: bool = True) -> None:
        self.prober.answers[f"{server}.test:8600"] = UP
        self.site.etcd.put_json(layout.alive(server), {"url": "u", "boot": "b",
                                                       "confirmed": confirmed})

    def buffer(self, server: str, segments: int = 3) -> SegmentStore:
        store = self.agent._store(server)
        run = store.begin_run("a", server, T0, WallSource.CAMERA)
        for seq in range(segments):
            record_segment(store, run, seq, seq * 36_000, 10)
        return store

    def token(self, server: str) -> int:
        return self.site.etcd.kvs[layout.claim(server)].create_revision

    def record(self) -> Any:
        return self.site.etcd.value(layout.spare("spare-1"))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    site = FakeSite()
    events = FakeEvents()
    applied = Applied()
    idle = SegmentStore.open(tmp_path / "idle", "spare-1")
    membership = SiteMembership(id="t", etcd_endpoints=["https://127.0.0.1:2379"])
    agent = SpareAgent(site, "spare-1", "http://spare-1.test:8600", "tok", tmp_path,
                       membership, applied, events, SpareView(idle, lambda _store: None))
    prober, original = FakeProber(), FakeOriginal()
    agent.ctx.make_recorder = FakeRecorder
    agent.ctx.open_sessions = lambda *_a, **_k: {}  # no camera to connect to
    agent.detector.prober = prober  # type: ignore[assignment]
    agent.reinsert.connect = lambda address, server, token: original  # type: ignore[assignment,return-value]
    for server in ("rec-1", "rec-2"):
        site.etcd.put_json(layout.alive(server), {"url": "u", "boot": "b", "confirmed": True})
    try:
        yield Rig(agent, site, events, prober, original, applied)
    finally:
        agent.stop()
        idle.close()


def covering(rig: Rig, server: str = "rec-1") -> int:
    rig.buffer(server)
    rig.fail(server)
    rig.tick()  # refused twice in one round: the process is gone
    assert isinstance(rig.agent.state, Covering)
    return rig.token(server)


def test_idle_claims_a_dead_server_and_covers_it(rig: Rig) -> None:
    rig.tick()
    assert rig.agent.state == Idle() and rig.record()["state"] == "idle"
    rig.fail("rec-1")
    rig.tick()  # refused, probed again at once on a fresh connection, refused again: gone
    token = rig.token("rec-1")
    assert rig.agent.state == Covering("rec-1", token)
    assert rig.site.etcd.value(layout.owner("rec-1"))["node"] == "spare-1"
    assert rig.record() == {"state": "covering", "covering": "rec-1",
                            "url": "http://spare-1.test:8600"}
    assert rig.events.kinds() == ["suspected", "claimed"]
    assert rig.events.last("claimed")[3]["token"] == token
    rig.tick()
    assert rig.events.kinds()[-1] == "recording"  # every camera records
    cov = rig.agent.coverage
    assert cov is not None and isinstance(cov.recorder, FakeRecorder) and cov.recorder.running


def test_a_stale_alive_key_is_no_handback(rig: Rig) -> None:
    """A crashed server's key outlives it (written before the claim): not a confirmation."""
    rig.prober.answers["rec-1.test:8600"] = DEAD  # alive key still there, still `confirmed`
    rig.tick(2)
    token = rig.token("rec-1")
    assert rig.agent.state == Covering("rec-1", token)
    rig.tick(3)
    assert rig.agent.state == Covering("rec-1", token)


def test_covering_hands_back_reinserts_and_releases_the_claim(rig: Rig) -> None:
    token = covering(rig)
    rig.back("rec-1", confirmed=False)
    rig.tick()
    assert rig.agent.state == Covering("rec-1", token)  # recording, not yet confirmed
    rig.back("rec-1")
    rig.tick()
    assert rig.agent.state == Reinserting("rec-1", token)
    assert rig.events.kinds()[-2:] == ["handback", "reinserting"]
    assert rig.record()["state"] == "reinserting"
    rig.tick()
    assert rig.agent.state == Idle()
    assert len(rig.original.uploads) == 3
    assert layout.claim("rec-1") not in rig.site.etcd.kvs
    assert layout.reinsert("rec-1", "spare-1") not in rig.site.etcd.kvs
    done = rig.events.last("done")
    assert done[2].endswith("claim released") and done[3]["done"] == 3
    assert rig.record()["state"] == "idle"


def test_failed_again_during_reinsert_covers_again_under_the_same_token(rig: Rig) -> None:
    token = covering(rig)
    rig.original.error = NodeApiError(500, "boom", "disk")  # the re-insert cannot finish
    rig.back("rec-1")
    rig.tick(2)
    assert rig.agent.state == Reinserting("rec-1", token)
    rig.fail("rec-1")
    rig.tick()
    assert rig.agent.state == Covering("rec-1", token)
    assert "failed again during re-insert" in rig.events.last("suspected")[2]
    cov = rig.agent.coverage
    assert cov is not None and isinstance(cov.recorder, FakeRecorder) and cov.recorder.running


def test_a_refused_heartbeat_stands_down_and_keeps_the_buffer(rig: Rig) -> None:
    covering(rig)
    rig.site.etcd.delete(layout.claim("rec-1"))  # the claim expired meanwhile
    rig.agent.coverage.last_heartbeat = 0.0  # type: ignore[union-attr]
    rig.tick()
    assert rig.agent.state == Idle()
    stood = rig.events.last("stood_down")
    assert stood[3]["stale_write_refused"] is True
    assert rig.agent._store("rec-1").list_recorded_as("rec-1", 10)  # buffer kept


def test_lease_lost_keeps_covering_until_a_fenced_write_is_refused(rig: Rig) -> None:
    token = covering(rig)
    first = rig.site.etcd.keepers[0]
    first.lose()  # our clock says lost; etcd still holds it (and our claim)
    rig.tick()
    assert rig.agent.state == Covering("rec-1", token)  # proven at once, still ours
    assert len(rig.site.etcd.keepers) == 2 and first.stopped and not first.revoked
    first.expire()  # etcd expires the old lease: the claim goes with it
    rig.site.etcd.keepers[1].lose()
    rig.tick()
    assert rig.agent.state == Idle()
    assert rig.events.last("stood_down")[3]["stale_write_refused"] is True


def test_stale_token_answer_stands_down_and_always_tries_to_release(rig: Rig) -> None:
    token = covering(rig)
    rig.original.error = NodeApiError(409, "stale_fencing_token", "token is stale")
    rig.back("rec-1")
    rig.tick(2)
    assert rig.agent.state == Idle()
    stood = rig.events.last("stood_down")
    assert stood[3] == {"token": token, "stale_write_refused": True}
    # Still ours in etcd (the original was wrong or behind): released, so others may cover.
    assert layout.claim("rec-1") not in rig.site.etcd.kvs
    assert stood[2].endswith("claim released")


def test_fencing_unavailable_pauses_and_keeps_the_claim(rig: Rig) -> None:
    """The bug: the original's etcd hiccup must not read as a refusal."""
    token = covering(rig)
    rig.agent._pause = lambda seconds: None  # type: ignore[method-assign]
    rig.agent.reinsert.pause = lambda seconds: None
    rig.original.error = NodeApiError(503, "fencing_unavailable", "etcd did not answer")
    rig.back("rec-1")
    rig.tick(3)
    assert rig.agent.state == Reinserting("rec-1", token)
    assert "stood_down" not in rig.events.kinds()
    rig.original.error = None
    rig.tick()
    assert rig.agent.state == Idle()
    assert layout.claim("rec-1") not in rig.site.etcd.kvs
    assert rig.events.last("done")[2].endswith("claim released")


def test_leftover_buffer_is_reinserted_without_a_claim(rig: Rig) -> None:
    rig.buffer("rec-1")
    rig.original.error = NodeApiError(500, "boom", "disk")
    rig.tick()
    assert rig.agent.state == Reinserting("rec-1", None)
    assert rig.record() == {"state": "idle", "covering": None, "leftover": "rec-1",
                            "url": "http://spare-1.test:8600"}
    rig.original.error = None
    rig.tick()
    assert rig.agent.state == Idle()
    assert rig.events.last("done")[2].endswith("no claim held")


def test_leftover_reinsert_stops_when_its_server_fails_again(rig: Rig) -> None:
    rig.buffer("rec-1")
    rig.original.error = NodeApiError(500, "boom", "disk")
    rig.tick()
    assert rig.agent.state == Reinserting("rec-1", None)
    rig.site.etcd.delete(layout.alive("rec-1"))
    rig.tick()
    assert rig.agent.state == Idle()  # nobody's claim: detection decides whether to take it


def test_leftover_reinsert_yields_to_a_takeover(rig: Rig) -> None:
    rig.buffer("rec-1")
    rig.original.error = NodeApiError(500, "boom", "disk")
    rig.tick()
    assert rig.agent.state == Reinserting("rec-1", None)
    rig.fail("rec-2")
    rig.tick(2)
    assert rig.agent.state == Covering("rec-2", rig.token("rec-2"))
    assert rig.original.closed >= 1  # the leftover's connection let go; it resumes later
    rig.back("rec-2")
    rig.original.error = None
    rig.tick(3)  # hand back rec-2, re-insert it (its buffer is empty), then the leftover
    assert rig.agent.state in (Idle(), Reinserting("rec-1", None))


def test_a_returning_server_gets_its_blocked_cameras_back(rig: Rig) -> None:
    covering(rig)
    rig.site.etcd.put_json(layout.returning("rec-1"), {"blocked": ["a"], "at_us": 1})
    rig.tick()
    cov = rig.agent.coverage
    assert cov is not None and cov.released == {"a"}
    assert isinstance(cov.recorder, FakeRecorder) and cov.recorder.cameras == []
    assert rig.events.last("released")[3] == {"cameras": ["a"]}


def test_ineligible_spare_refuses_once_per_reason(rig: Rig) -> None:
    rig.applied.current = AppliedSite(CONFIG, 1, LicenceMerge((), (), ()))  # no licence
    rig.fail("rec-1")
    rig.tick(4)
    assert rig.agent.state == Idle()
    assert rig.events.kinds().count("refused") == 1
    assert layout.claim("rec-1") not in rig.site.etcd.kvs


def test_a_full_original_pauses_the_reinsert_longer_and_keeps_the_buffer(rig: Rig) -> None:
    """507 insufficient_storage: the original's disk is full; the spare waits (longer than for a
    network hiccup), keeps its claim and its buffer, and finishes once the original has room."""
    token = covering(rig)
    pauses: list[float] = []
    rig.agent._pause = lambda seconds: None  # type: ignore[method-assign]
    rig.agent.reinsert.pause = pauses.append
    rig.original.error = NodeApiError(507, "insufficient_storage", "rec-1's store is full")
    rig.back("rec-1")
    rig.tick(3)
    assert rig.agent.state == Reinserting("rec-1", token)
    assert "stood_down" not in rig.events.kinds()
    assert pauses and min(pauses) >= 30.0
    rig.original.error = None
    rig.tick()
    assert rig.agent.state == Idle()
    assert rig.events.last("done")[2].endswith("claim released")


def test_a_spare_that_cannot_open_its_buffer_does_not_claim(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk refuses even SQLite's open: claiming then held the claim with no one recording
    (chaos soak, takeover_on_full_disk). The spare refuses, says why once, and claims once the
    disk has room again."""
    import sqlite3

    from hotspare.failover import spare_agent

    real_open = SegmentStore.open

    def full_disk(root: Path, *args: Any, **kwargs: Any) -> SegmentStore:
        if "buffer" in root.parts:
            raise sqlite3.OperationalError("database or disk is full")
        return real_open(root, *args, **kwargs)

    monkeypatch.setattr(spare_agent.SegmentStore, "open", full_disk)
    rig.fail("rec-1")
    rig.tick(3)
    assert rig.agent.state == Idle()
    assert layout.claim("rec-1") not in rig.site.etcd.kvs
    assert rig.events.kinds().count("refused") == 1
    message = rig.events.last("refused")[2]
    assert "buffer store for rec-1 cannot be opened (database or disk is full)" in message
    monkeypatch.setattr(spare_agent.SegmentStore, "open", real_open)
    rig.tick()
    assert rig.agent.state == Covering("rec-1", rig.token("rec-1"))


TWO_SPARES = SiteConfig.model_validate({
    **CONFIG.model_dump(mode="json", exclude_none=True),
    "failover_servers": [{"name": "spare-1", "address": "spare-1.test:8600"},
                         {"name": "spare-2", "address": "spare-2.test:8600"}],
})
TWO_LICENCES = Licence(LICENCE.document.model_copy(update={"failover_server_licences": 2}),
                       source="test")


def without_room(rig: Rig, tmp_path: Path) -> dict[str, int]:
    """spare-1 measures its room (nothing free: a full disk) and is one of two spares."""
    free = {"bytes": 0}
    rig.agent.room = RoomGauge(tmp_path, 0, 3600.0, disk_free=lambda: free["bytes"])
    rig.applied.current = AppliedSite(TWO_SPARES, 2, LicenceMerge((TWO_LICENCES,), (), ()))
    return free


def test_a_spare_without_room_leaves_a_failed_server_to_a_spare_with_room(
        rig: Rig, tmp_path: Path) -> None:
    """Its buffer store is open (as a designated spare's is, for its pre-buffers) but its disk
    is full: it claimed, could not write, and its gapless cameras lost seconds (chaos soak,
    takeover_on_full_disk). Now it leaves the server to spare-2, once, naming the numbers."""
    free = without_room(rig, tmp_path)
    rig.site.etcd.put_json(layout.spare("spare-2"), {
        "state": "idle", "url": "http://spare-2.test:8600", "covering": None,
        "room": {"free_bytes": 50_000_000_000, "warn_seconds": 3600.0}})
    rig.buffer("rec-1")  # the store is open already
    rig.tick()
    assert rig.record()["room"] == {"free_bytes": 0, "warn_seconds": 3600.0}
    rig.fail("rec-1")
    rig.tick(3)
    assert rig.agent.state == Idle() and layout.claim("rec-1") not in rig.site.etcd.kvs
    assert rig.events.kinds().count("refused") == 1, rig.events.kinds()
    _kind, server, message, data = rig.events.last("refused")
    assert server == "rec-1" and data["reasons"] == ["spare_no_room"], data
    assert data["free_bytes"] == 0 and data["leave_to"] == ["spare-2"], data
    assert message.startswith("spare-1 leaves rec-1 to spare-2: spare-1's buffer store has no "
                              "room to cover rec-1: 0 B free above its retention reserve"), message
    assert f"free space on spare-1's data disk ({tmp_path})" in message, message
    free["bytes"] = 10 * 10**9  # room again: it takes the server (spare-2 has not)
    rig.tick(2)
    assert rig.agent.state == Covering("rec-1", rig.token("rec-1"))


def test_the_only_spare_without_room_still_claims_and_says_so(rig: Rig, tmp_path: Path) -> None:
    without_room(rig, tmp_path)  # spare-2 is down: no record
    rig.fail("rec-1")
    rig.tick()
    assert rig.agent.state == Covering("rec-1", rig.token("rec-1"))
    _kind, server, message, data = rig.events.last("buffer_full")
    assert server == "rec-1" and data["free_bytes"] == 0, data
    assert message.startswith("spare-1 claims rec-1 although spare-1's buffer store has no room "
                              "to cover rec-1"), message
    assert "no other spare may take it now" in message, message


def test_covering_publishes_its_own_commit_watermarks_under_its_claim(rig: Rig) -> None:
    """If this spare dies too, the next claimant writes its pre-buffer from what this one made
    durable; the watermarks are written fenced, at most once a second, only when they moved,
    and kept across the handback for a cover again."""
    covering(rig)
    cov = rig.agent.coverage
    assert cov is not None and isinstance(cov.recorder, FakeRecorder)
    until = {"a": T0 + 5_000_000}
    cov.recorder.health = lambda: {  # type: ignore[method-assign]
        c: SimpleNamespace(state=CameraState.RECORDING, committed_until_wall_us=v)
        for c, v in until.items()}
    rig.tick()
    assert rig.site.etcd.value(layout.watermarks("rec-1"))["cameras"] == {"a": T0 + 5_000_000}
    until["a"] = T0 + 6_000_000
    rig.tick()  # within the second: not yet
    assert rig.site.etcd.value(layout.watermarks("rec-1"))["cameras"] == {"a": T0 + 5_000_000}
    cov.marks_at -= 1.0
    rig.tick()
    assert rig.site.etcd.value(layout.watermarks("rec-1"))["cameras"] == {"a": T0 + 6_000_000}
    rig.site.etcd.delete(layout.claim("rec-1"))  # another claim: our writes are refused
    rig.site.etcd.put_json(layout.claim("rec-1"), {"spare": "spare-2"})
    until["a"] = T0 + 7_000_000
    cov.marks_at -= 1.0
    takeover.follow(rig.agent.ctx, cov)
    assert rig.site.etcd.value(layout.watermarks("rec-1"))["cameras"] == {"a": T0 + 6_000_000}
