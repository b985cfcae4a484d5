"""The recording server's agent tick by tick, against the one fake site state."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.models import ChangeType, KeyChange, WatchBatch
from hotspare.failover.server_agent import ServerAgent, ServerMode, mode_of
from hotspare.recorder.health import CameraHealth, CameraState
from hotspare.sitestate import layout
from tests.support.fake_site_state import FakeEvents, FakeSite

REC = CameraState.RECORDING


def cam(cid: str, state: CameraState = REC, commits: int = 0, until: int | None = None,
        kind: str | None = None) -> CameraHealth:
    return CameraHealth(camera_id=cid, state=state, segments_committed=commits,
                        committed_until_wall_us=until, error_kind=kind)


class Rig:
    def __init__(self) -> None:
        self.site = FakeSite()
        self.events = FakeEvents()
        self.cameras = {"a": cam("a"), "b": cam("b")}
        self.agent = ServerAgent(self.site, "rec-1", "http://rec-1.test:8600", 3.0,
                                 lambda: self.cameras, self.events)

    def set(self, **cameras: CameraHealth) -> None:
        self.cameras.update(cameras)

    def commit(self, n: int = 1) -> None:
        for cid, h in self.cameras.items():
            self.cameras[cid] = replace(h, segments_committed=h.segments_committed + n)

    def alive(self) -> dict[str, object] | None:
        value = self.site.etcd.value(layout.alive("rec-1"))
        return None if value is None else dict(value)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_mode_rule() -> None:
    assert mode_of({"a": cam("a", CameraState.CONNECTING)}, {}, 1) is ServerMode.NOT_RECORDING
    assert mode_of({"a": cam("a")}, {}, 1) is ServerMode.RECORDING
    assert mode_of({"a": cam("a", commits=1)}, {}, 1) is ServerMode.CONFIRMED
    assert mode_of({"a": cam("a", commits=2)}, {"a": 1}, 2) is ServerMode.RECORDING
    assert mode_of({"a": cam("a", commits=3)}, {"a": 1}, 2) is ServerMode.CONFIRMED


def test_not_recording_to_recording_to_confirmed(rig: Rig) -> None:
    rig.set(a=cam("a", CameraState.CONNECTING))
    rig.agent.tick()
    assert rig.agent.mode is ServerMode.NOT_RECORDING and rig.alive() is None
    rig.set(a=cam("a"))
    rig.agent.tick()
    assert rig.agent.mode is ServerMode.RECORDING
    assert rig.alive() == {"url": "http://rec-1.test:8600", "boot": rig.agent.boot,
                           "confirmed": False}
    assert rig.site.etcd.value(layout.owner("rec-1")) == {"node": "rec-1",
                                                         "url": "http://rec-1.test:8600"}
    rig.commit()
    rig.agent.tick()
    assert rig.agent.mode is ServerMode.CONFIRMED
    assert rig.alive() is not None and rig.alive()["confirmed"] is True  # type: ignore[index]
    assert rig.events.kinds() == []  # nobody covered us: no `returned`


def test_confirmed_while_claimed_announces_returned_once(rig: Rig) -> None:
    rig.site.etcd.put_json(layout.claim("rec-1"), {"spare": "spare-1"})
    rig.commit()
    rig.agent.tick()
    rig.agent.tick()
    assert rig.events.kinds() == ["returned"]
    assert "spare-1 may hand back" in rig.events.last("returned")[2]


def test_a_camera_stopping_drops_the_alive_key(rig: Rig) -> None:
    rig.agent.tick()
    assert rig.alive() is not None
    rig.set(b=cam("b", CameraState.FAILING))
    rig.agent.tick()
    assert rig.agent.mode is ServerMode.NOT_RECORDING and rig.alive() is None
    assert rig.events.kinds() == ["not_recording"]


def test_lease_lost_needs_two_new_commits_per_camera(rig: Rig) -> None:
    rig.commit()
    rig.agent.tick()
    assert rig.agent.mode is ServerMode.CONFIRMED
    rig.site.etcd.keepers[0].lose()
    rig.agent.tick()
    assert rig.agent.mode is ServerMode.RECORDING  # the segment open at the freeze proves nothing
    assert rig.alive() is not None and rig.alive()["confirmed"] is False  # type: ignore[index]
    rig.commit()
    rig.agent.tick()
    assert rig.agent.mode is ServerMode.RECORDING
    rig.commit()
    rig.agent.tick()
    assert rig.agent.mode is ServerMode.CONFIRMED


def test_blocked_cameras_are_asked_back_from_the_covering_spare(rig: Rig) -> None:
    rig.site.etcd.put_json(layout.claim("rec-1"), {"spare": "spare-1"})
    rig.set(b=cam("b", CameraState.FAILING, kind="server_error"))
    rig.agent.tick()
    assert rig.site.etcd.value(layout.returning("rec-1"))["blocked"] == ["b"]
    assert rig.events.kinds() == ["blocked"]
    rig.agent.tick()
    assert rig.events.kinds() == ["blocked"]  # asked once
    rig.set(b=cam("b"))
    rig.agent.tick()
    assert rig.site.etcd.value(layout.returning("rec-1")) is None  # withdrawn


def test_watermarks_published_when_they_move_at_most_once_a_second(rig: Rig) -> None:
    rig.set(a=cam("a", until=100), b=cam("b", until=200))
    rig.agent.tick()
    assert rig.site.etcd.value(layout.watermarks("rec-1"))["cameras"] == {"a": 100, "b": 200}
    rig.set(a=cam("a", until=300))
    rig.agent.tick()  # within the second: not yet
    assert rig.site.etcd.value(layout.watermarks("rec-1"))["cameras"]["a"] == 100


def deliver(prefix: str, rig: Rig, keys: list[str]) -> None:
    """What etcd's watch on `prefix` would hand the agent: a put of each key."""
    callback = next(cb for p, cb in rig.site.etcd.watches if p == prefix)
    kvs = [rig.site.etcd.get(key) for key in keys]
    callback(WatchBatch(revision=rig.site.etcd.revision_now,
                        changes=[KeyChange(ChangeType.PUT, kv) for kv in kvs if kv is not None]))


def test_questions_are_answered_once_etcd_lets_the_server_watch(rig: Rig) -> None:
    rig.site.etcd.down = True
    with pytest.raises(CoordinationError):
        rig.agent.tick()  # nothing works without etcd; the watch is retried
    rig.site.etcd.down = False
    rig.agent.tick()
    assert sorted(p for p, _ in rig.site.etcd.watches) == ["asking/rec-1/", "claims/rec-1"]
    rig.agent.tick()
    assert len(rig.site.etcd.watches) == 2  # once per process


def test_taken_over_while_its_lease_held_confirms_afresh(rig: Rig) -> None:
    """Silent for a moment, claimed on silence, back: the old `confirmed` key predates the claim
    and would never let the spare hand back, so the server confirms again after the claim."""
    rig.commit()
    rig.agent.tick()
    assert rig.alive()["confirmed"] is True  # type: ignore[index]
    rig.site.etcd.put_json(layout.claim("rec-10"), {"spare": "spare-1"})
    rig.site.etcd.put_json(layout.claim("rec-1"), {"spare": "spare-1"})
    token = rig.site.claim_of("rec-1").token  # type: ignore[union-attr]
    deliver("claims/rec-1", rig, ["claims/rec-10"])  # another server's claim: not ours
    rig.agent.tick()
    assert rig.events.kinds() == []
    deliver("claims/rec-1", rig, ["claims/rec-10", "claims/rec-1"])
    rig.agent.tick()
    assert rig.events.kinds() == ["displaced"]
    assert "spare-1 took rec-1 over while it kept recording" in rig.events.last("displaced")[2]
    assert rig.alive()["confirmed"] is False  # type: ignore[index]
    rig.commit()
    rig.agent.tick()
    assert rig.alive()["confirmed"] is False  # type: ignore[index]
    rig.commit()
    rig.agent.tick()
    alive = rig.site.etcd.get(layout.alive("rec-1"))
    assert alive is not None and alive.mod_revision > token
    assert rig.alive()["confirmed"] is True  # type: ignore[index]
    assert rig.events.kinds() == ["displaced", "returned"]


def test_a_claim_older_than_its_alive_key_changes_nothing(rig: Rig) -> None:
    rig.site.etcd.put_json(layout.claim("rec-1"), {"spare": "spare-1"})
    token = rig.site.claim_of("rec-1").token  # type: ignore[union-attr]
    rig.commit()
    rig.agent.tick()  # published after the claim (a server back from a crash)
    assert token > 0
    deliver("claims/rec-1", rig, ["claims/rec-1"])
    rig.agent.tick()
    assert "displaced" not in rig.events.kinds()
    assert rig.alive()["confirmed"] is True  # type: ignore[index]


def test_questions_through_etcd_are_answered_by_deleting_them(rig: Rig) -> None:
    rig.agent.tick()  # starts the watches
    rig.site.ask("rec-1", "spare-1")
    rig.site.ask("rec-10", "spare-1")
    assert rig.site.unanswered("rec-1", "spare-1")
    deliver("asking/rec-1/", rig, ["asking/rec-1/spare-1"])
    assert not rig.site.unanswered("rec-1", "spare-1")
    assert rig.site.unanswered("rec-10", "spare-1")  # another server's question
