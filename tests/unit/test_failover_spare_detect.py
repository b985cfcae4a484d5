"""The detection job's designated-spare grace, with an injected clock and the one fake site."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspare.config.models import SiteMembership
from hotspare.failover.detection import ServerTrack
from hotspare.failover.spare_detect import Detector
from hotspare.failover.spare_view import SpareView
from hotspare.failover.spare_work import SpareContext
from hotspare.site.eligibility import DOWN, IDLE, SpareStatus
from hotspare.site.model import RecordingServerConfig
from hotspare.store.segment_store import SegmentStore
from tests.support.fake_site_state import FakeEvents, FakeSite
from tests.unit.test_failover_spare_agent import DEAD, Applied, FakeProber


class Plan:
    """rec-1's gapless cameras are pre-buffered by spare-2."""

    def designated(self, server: str) -> str | None:
        return "spare-2" if server == "rec-1" else None


@pytest.fixture
def detector(tmp_path: Path) -> Iterator[Detector]:
    idle = SegmentStore.open(tmp_path / "idle", "spare-1")
    ctx = SpareContext("spare-1", "http://spare-1.test:8600", FakeSite(), FakeEvents(),
                       SpareView(idle, lambda _store: None),
                       SiteMembership(id="t", etcd_endpoints=["https://127.0.0.1:2379"]),
                       Applied())
    prober = FakeProber()
    prober.answers["rec-1.test:8600"] = DEAD
    detector = Detector(ctx, prober, clock=lambda: now[0])  # type: ignore[arg-type]
    yield detector
    detector.close()
    idle.close()


now = [100.0]


def run(detector: Detector, spare_2: SpareStatus) -> list[str]:
    claimed: list[str] = []

    def claim(server: RecordingServerConfig, reason: str, track: ServerTrack) -> bool:
        claimed.append(server.name)
        return True

    detector.run(detector.ctx.site.read(), {"spare-2": spare_2}, Plan(),  # type: ignore[arg-type]
                 lambda: IDLE, claim)
    return claimed


def test_others_leave_a_failed_server_to_its_idle_designated_spare_for_a_second(
        detector: Detector) -> None:
    assert run(detector, IDLE) == []  # refused once
    assert run(detector, IDLE) == []  # failed, but spare-2 holds the pre-buffer: its turn
    now[0] += 0.9
    assert run(detector, IDLE) == []
    now[0] += 0.2
    assert run(detector, IDLE) == ["rec-1"]  # spare-2 did not claim within the grace


def test_a_designated_spare_that_is_down_gets_no_grace(detector: Detector) -> None:
    assert run(detector, DOWN) == []  # refused once
    assert run(detector, DOWN) == ["rec-1"]
