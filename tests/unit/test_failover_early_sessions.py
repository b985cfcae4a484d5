"""A takeover opens its camera sessions at the claim, before its etcd records (`early_sessions`).

Driven through the spare agent's rig (tests/unit/test_failover_spare_agent.py: fake site state,
prober and recorder); the sessions are stand-ins that record when they were opened and stopped.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hotspare.config.models import CameraConfig
from hotspare.failover.early_sessions import (
    STEP_NAMES,
    first_keyframes,
    hold_settings,
    session_steps,
)
from hotspare.failover.spare_states import Covering, Refused
from hotspare.failover.stand_down import stand_down
from hotspare.failover.takeover import gapless_data
from hotspare.recorder.health import CameraHealth, CameraState
from hotspare.recorder.worker import Activation, SessionSteps
from hotspare.sitestate import layout
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from tests.support.camsim import now_us
from tests.unit.test_failover_spare_agent import T0, FakeRecorder, Rig, rig

__all__ = ["rig"]


class FakeSession:
    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        self.stopped = False

    def request_stop(self) -> None:
        self.stopped = True


class AdoptingRecorder(FakeRecorder):
    """Keeps what the takeover hands it to adopt."""

    def __init__(self, identity: str, cameras: list[CameraConfig], *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(identity, cameras, *args, **kwargs)
        self.standby = dict(kwargs.get("standby") or {})
        self.watermarks = dict(kwargs.get("watermarks") or {})


def test_sessions_open_at_the_claim_before_the_owner_record_and_are_adopted(rig: Rig) -> None:
    opened: list[dict[str, Any]] = []

    def open_sessions(server: Any, store: SegmentStore, skip: Any = ()) -> dict[str, Any]:
        sessions = {c.id: FakeSession(c) for c in server.failover_cameras() if c.id not in skip}
        opened.append({"server": server.name, "sessions": sessions,
                       "owner_written": rig.site.etcd.value(layout.owner(server.name)),
                       "claim": rig.site.etcd.value(layout.claim(server.name))})
        return sessions

    rig.agent.ctx.open_sessions = open_sessions
    rig.agent.ctx.make_recorder = AdoptingRecorder
    rig.fail("rec-1")
    rig.tick()  # refused twice in one round: claimed, owner record written, recording
    assert isinstance(rig.agent.state, Covering)
    assert len(opened) == 1 and opened[0]["server"] == "rec-1"
    assert opened[0]["claim"] is not None, "sessions opened only once the claim is won"
    assert opened[0]["owner_written"] is None, "sessions opened before the owner record"
    cov = rig.agent.coverage
    assert cov is not None and isinstance(cov.recorder, AdoptingRecorder)
    session = opened[0]["sessions"]["a"]
    assert cov.recorder.standby == {"a": session}, "the recorder adopts the open session"
    assert cov.recorder.watermarks == {}, "a standard camera writes from its first keyframe"
    assert cov.early == {} and not session.stopped


def test_a_stand_down_before_adoption_closes_the_sessions(rig: Rig, tmp_path: Path) -> None:
    rig.fail("rec-1")
    rig.tick()
    cov = rig.agent.coverage
    assert cov is not None
    session = FakeSession(CameraConfig(id="a", url="rtsp://10.0.0.1/a"))
    cov.early = {"a": session}  # as if the owner record was refused before the recorder ran
    stand_down(rig.agent.ctx, cov, "rec-1", cov.token, Refused("test", proven=False))
    assert session.stopped and cov.early == {}


def test_holding_sessions_buffer_in_memory_long_enough_for_the_owner_records() -> None:
    settings = hold_settings(CameraConfig(id="a", url="rtsp://10.0.0.1/a", mbps=6.0))
    assert settings.horizon_s >= 10.0
    assert settings.max_spill_bytes == 0 and settings.spill_dir is None
    assert settings.max_bytes >= settings.horizon_s * 6.0e6 / 8


def test_a_gapless_camera_recorded_through_a_claim_session_is_reported_as_fallback(
        rig: Rig) -> None:
    """Its session opened at the claim has no pre-buffer reaching back to the watermark: the
    `recording` event must not count it as written from one."""
    rig.fail("rec-1")
    rig.tick()
    cov = rig.agent.coverage
    assert cov is not None

    class Workers(FakeRecorder):
        def workers(self) -> dict[str, Any]:
            return {"a": SimpleNamespace(activation=Activation(None, T0, True, 12))}

    cov.recorder = Workers("rec-1", [])
    cov.gapless_wanted = ("a",)
    cov.opened_at_claim = frozenset({"a"})
    assert gapless_data(cov)["a"] == {"prebuffered": False, "covered": False, "frames": 0,
                                      "lead_s": None}
    cov.opened_at_claim = frozenset()  # adopted from the hot standby instead
    assert gapless_data(cov)["a"]["prebuffered"] is True


def test_first_keyframes_after_the_claim_are_the_runs_starts(tmp_path: Path) -> None:
    store = SegmentStore.open(tmp_path / "buffer", "spare-1")
    try:
        health = {}
        for camera, start in (("a", T0 + 200_000), ("b", T0 + 900_000), ("g", T0 - 5_000_000)):
            run = store.begin_run(camera, "rec-1", start, WallSource.CAMERA)
            health[camera] = CameraHealth(camera, CameraState.RECORDING, run_id=run.run_id)
        health["c"] = CameraHealth("c", CameraState.CONNECTING)  # no run yet
        assert first_keyframes(store, health, ["a", "b", "c"], T0) == {
            "n": 2, "min": 0.2, "median": 0.55, "max": 0.9}
        assert first_keyframes(store, health, ["c"], T0) is None
    finally:
        store.close()


def test_session_steps_are_seconds_after_the_claim_per_camera_opened_there() -> None:
    def worker(steps: SessionSteps | None) -> Any:
        return SimpleNamespace(session_steps=steps)

    workers = {
        "a": worker(SessionSteps(T0 + 10_000, T0 + 180_000, T0 + 181_000, T0 + 650_000)),
        "b": worker(SessionSteps(T0 + 20_000)),  # still opening
        "c": worker(None),  # its thread had not begun
        "d": worker(SessionSteps(T0, T0, T0, T0)),  # not opened at the claim: not reported
    }
    assert session_steps(workers, ["a", "b", "c", "e"], T0) == {
        "a": [0.01, 0.18, 0.181, 0.65], "b": [0.02, None, None, None]}
    assert STEP_NAMES == ("open_started", "opened", "first_packet", "first_keyframe")


def test_the_recording_event_says_when_each_session_opened_at_the_claim_reached_its_steps(
        rig: Rig) -> None:
    class Timed(FakeSession):
        def __init__(self, camera: CameraConfig) -> None:
            super().__init__(camera)
            self.session_steps: SessionSteps | None = None

    class Recorder(AdoptingRecorder):
        def health(self) -> dict[str, Any]:
            return {c.id: SimpleNamespace(state=CameraState.RECORDING, run_id=None,
                                          committed_until_wall_us=None) for c in self.cameras}

        def workers(self) -> dict[str, Any]:
            return dict(self.standby)

    sessions: dict[str, Timed] = {}

    def open_sessions(server: Any, store: SegmentStore, skip: Any = ()) -> dict[str, Any]:
        sessions.update({c.id: Timed(c) for c in server.failover_cameras() if c.id not in skip})
        return dict(sessions)

    rig.agent.ctx.open_sessions = open_sessions
    rig.agent.ctx.make_recorder = Recorder
    rig.fail("rec-1")
    rig.tick()  # claimed, sessions opened, owner record written, recorder started
    assert set(sessions) == {"a"}
    steps = SessionSteps(now_us(), now_us() + 120_000, now_us() + 121_000, now_us() + 700_000)
    sessions["a"].session_steps = steps
    rig.tick()
    assert rig.events.kinds()[-1] == "recording"
    data = rig.events.last("recording")[3]
    claimed = data["claimed_wall_us"]
    assert data["session_steps_s"] == {"a": [
        round((us - claimed) / 1e6, 3) for us in (steps.open_started_us, steps.opened_us,
                                                   steps.first_packet_us,
                                                   steps.first_keyframe_us)]}
