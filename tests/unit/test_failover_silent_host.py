"""A host that goes silent (no probe answer): taken over at once only when it does not answer a
question through etcd either; a server cut off from the spare alone, or one whose link flaps, is
not (design decision 5)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspare.config.models import SiteMembership
from hotspare.failover.detection import EtcdAnswer, ServerTrack, judge
from hotspare.failover.probe import ProbeKind, ProbeResult
from hotspare.failover.spare_detect import Detector
from hotspare.failover.spare_view import SpareView
from hotspare.failover.spare_work import SpareContext
from hotspare.site.eligibility import IDLE
from hotspare.site.model import RecordingServerConfig
from hotspare.sitestate import layout
from hotspare.store.segment_store import SegmentStore
from tests.support.fake_site_state import FakeEvents, FakeSite
from tests.unit.test_failover_spare_agent import UP, Applied

TIMEOUT = ProbeResult(ProbeKind.TIMEOUT, "no answer within 0.20 s")
PROBE_TIMEOUT = 0.2


def test_silent_to_probe_and_etcd_is_failed_while_the_lease_still_holds() -> None:
    verdict = judge(ServerTrack(), True, TIMEOUT, 0.0, 5.0, EtcdAnswer(False, 0.1))
    assert verdict.failed and verdict.silent
    assert "no answer through etcd" in verdict.reason


def test_answering_through_etcd_with_a_lease_is_never_failed() -> None:
    track = ServerTrack()
    for now in range(30):
        verdict = judge(track, True, TIMEOUT, float(now), 1.0, EtcdAnswer(True, 0.01))
        assert not verdict.failed and verdict.suspect
    assert "cut off from this spare only" in verdict.reason


def test_answering_through_etcd_without_a_lease_follows_the_lease_rule() -> None:
    verdict = judge(ServerTrack(), False, TIMEOUT, 0.0, 5.0, EtcdAnswer(True, 0.01))
    assert verdict.failed and not verdict.silent


class SlowProber:
    """Answers after `delay` seconds (a silent host: TIMEOUT after the probe timeout)."""

    def __init__(self) -> None:
        self.answer = TIMEOUT
        self.delay = PROBE_TIMEOUT

    def probe(self, address: str) -> ProbeResult:
        if address.startswith("rec-1"):
            time.sleep(self.delay)
            return self.answer
        return UP


class AnsweringSite(FakeSite):
    """rec-1 still talks to etcd: it deletes every question as soon as it is asked (after
    `answer_after` seconds: a slow etcd). `ask_takes`: how long etcd takes to take a question."""

    answers = True
    ask_takes = 0.0
    answer_after = 0.0

    def ask(self, server: str, spare: str) -> None:
        time.sleep(self.ask_takes)
        super().ask(server, spare)
        if self.answers:
            threading.Timer(self.answer_after, self.answer_questions, [server]).start()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Detector, AnsweringSite, FakeEvents, SlowProber]]:
    idle = SegmentStore.open(tmp_path / "idle", "spare-1")
    site, events, prober = AnsweringSite(), FakeEvents(), SlowProber()
    site.etcd.put_json(layout.alive("rec-1"), {"url": "http://rec-1.test:8600", "boot": "b",
                                               "confirmed": True})
    settings = SiteMembership(id="t", etcd_endpoints=["http://127.0.0.1:2379"],
                              etcd_insecure_plaintext=True, lease_ttl_seconds=2,
                              probe_interval_seconds=0.1, probe_timeout_seconds=PROBE_TIMEOUT)
    ctx = SpareContext("spare-1", "http://spare-1.test:8600", site, events,
                       SpareView(idle, lambda _store: None), settings, Applied())
    detector = Detector(ctx, prober)  # type: ignore[arg-type]
    yield detector, site, events, prober
    detector.close()
    idle.close()


class NoPlan:
    def designated(self, server: str) -> str | None:
        return None

    def for_spare(self, spare: str) -> list[object]:
        return []


def run(detector: Detector) -> list[tuple[str, str]]:
    claimed: list[tuple[str, str]] = []

    def claim(server: RecordingServerConfig, reason: str, track: ServerTrack) -> bool:
        claimed.append((server.name, reason))
        return True

    detector.run(detector.ctx.site.read(), {}, NoPlan(), lambda: IDLE,  # type: ignore[arg-type]
                 claim)
    return claimed


def test_a_server_cut_off_from_the_spare_only_is_suspected_not_claimed(rig: tuple) -> None:
    detector, site, events, _ = rig
    for _ in range(3):
        assert run(detector) == []
    _kind, server, message, _data = events.last("suspected")
    assert server == "rec-1" and "cut off from this spare only" in message
    assert events.kinds().count("suspected") == 1  # once per episode
    assert not site.etcd.get_prefix(layout.ASKING_PREFIX).kvs


def test_a_silent_host_is_claimed_at_once_without_waiting_for_its_lease(rig: tuple) -> None:
    detector, site, _, _ = rig
    site.answers = False
    started = time.monotonic()
    claimed = run(detector)
    took = time.monotonic() - started
    assert [name for name, _ in claimed] == ["rec-1"], claimed
    assert "host silent" in claimed[0][1]
    # One round (the answer is due when the probe times out), long before the lease (2 s) could
    # run out; generous, for a loaded test machine.
    assert took < 1.0, took
    assert not site.etcd.get_prefix(layout.ASKING_PREFIX).kvs  # the unanswered question withdrawn


def test_a_flapping_host_is_claimed_on_silence_once_then_waits_for_its_lease(
        rig: tuple) -> None:
    detector, site, events, prober = rig
    site.answers = False
    assert [n for n, _ in run(detector)] == ["rec-1"]
    prober.answer, prober.delay = UP, 0.0  # back: the handback would follow
    assert run(detector) == []
    prober.answer, prober.delay = TIMEOUT, PROBE_TIMEOUT  # silent again
    assert run(detector) == []
    assert run(detector) == []
    flaps = [e for e in events.emitted if e[0] == "suspected" and e[3].get("flapping")]
    assert len(flaps) == 1 and "flaps" in flaps[0][2]
    site.etcd.delete(layout.alive("rec-1"))  # its lease ran out: the lease rule claims
    assert [n for n, _ in run(detector)] == ["rec-1"]


def test_a_quick_probe_answer_asks_nothing(rig: tuple) -> None:
    detector, site, events, prober = rig
    prober.answer, prober.delay = UP, 0.0
    site.answers = False
    assert run(detector) == []
    assert events.emitted == []
    assert not site.etcd.get_prefix(layout.ASKING_PREFIX).kvs


def test_a_slow_etcd_gives_the_server_longer_to_answer(rig: tuple) -> None:
    """The question took 0.2 s to be acknowledged; the answer (a write too) takes as long: the
    server gets three times that, not only half the probe timeout (0.1 s)."""
    detector, site, events, _ = rig
    site.ask_takes, site.answer_after = 0.2, 0.3
    assert run(detector) == []
    assert "cut off from this spare only" in events.last("suspected")[2]


class DesignatedPlan(NoPlan):
    """rec-1's gapless cameras are pre-buffered by spare-2, not by us."""

    def designated(self, server: str) -> str | None:
        return "spare-2" if server == "rec-1" else None


def test_a_silent_gapless_server_still_leased_is_left_to_its_designated_spare(
        rig: tuple) -> None:
    """The designated spare may be in its flap hold, waiting for the lease: we wait with it, and
    its grace starts only when the lease goes, so the pre-buffer is not lost to our claim."""
    detector, site, _, _ = rig
    site.answers = False
    claimed: list[str] = []

    def go() -> None:
        detector.run(detector.ctx.site.read(), {"spare-2": IDLE}, DesignatedPlan(),
                     lambda: IDLE,  # type: ignore[arg-type]
                     lambda server, reason, track: claimed.append(server.name) or True)

    started = time.monotonic()
    while time.monotonic() - started < 1.5:  # longer than spare-2's grace
        go()
    assert claimed == []  # silent, but leased and spare-2 is idle: its turn
    site.etcd.delete(layout.alive("rec-1"))
    go()
    assert claimed == []  # the lease is gone: spare-2's grace runs from now
    time.sleep(1.1)
    go()
    assert claimed == ["rec-1"]  # spare-2 did not claim within its grace
