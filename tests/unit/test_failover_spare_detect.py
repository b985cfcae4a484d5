"""The detection job's designated-spare grace, with an injected clock and the one fake site."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotspare.config.models import SiteMembership
from hotspare.coordination.hedging import HedgePolicy
from hotspare.failover.detection import ServerTrack
from hotspare.failover.probe import ProbeKind, ProbeResult
from hotspare.failover.spare_detect import Detector, _ProbeRound
from hotspare.failover.spare_view import SpareView
from hotspare.failover.spare_work import SpareContext
from hotspare.site.eligibility import DOWN, IDLE, SpareStatus
from hotspare.site.model import RecordingServerConfig
from hotspare.store.segment_store import SegmentStore
from tests.support.fake_site_state import FakeEvents, FakeSite
from tests.unit.test_failover_spare_agent import DEAD, UP, Applied, FakeProber


class Plan:
    """rec-1's gapless cameras are pre-buffered by spare-2."""

    def designated(self, server: str) -> str | None:
        return "spare-2" if server == "rec-1" else None

    def for_spare(self, spare: str) -> list[object]:
        return []  # spare-1 pre-buffers nothing


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
    assert run(detector, IDLE) == []  # failed, but spare-2 holds the pre-buffer: its turn
    assert run(detector, IDLE) == []
    now[0] += 0.9
    assert run(detector, IDLE) == []
    now[0] += 0.2
    assert run(detector, IDLE) == ["rec-1"]  # spare-2 did not claim within the grace


def test_a_designated_spare_that_is_down_gets_no_grace(detector: Detector) -> None:
    assert run(detector, DOWN) == ["rec-1"]  # refused twice in the round: no grace to wait


class Scripted:
    """Per server, the probe answers in order (the last one repeats); rec-1 answers only after
    `slow` seconds. `returned`: servers whose probe has returned, in order."""

    def __init__(self, answers: dict[str, list[ProbeResult]], slow: float = 0.0) -> None:
        self.answers = answers
        self.slow = slow
        self.returned: list[str] = []

    def probe(self, address: str) -> ProbeResult:
        server = address.split(".")[0]
        if server == "rec-1":
            time.sleep(self.slow)
        queue = self.answers[server]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        self.returned.append(server)
        return answer


def test_a_refusal_is_probed_again_at_once_and_an_answer_then_claims_nothing(
        detector: Detector) -> None:
    """A kept-alive connection reset by a server that is alive (the next connect answers)."""
    prober = Scripted({"rec-1": [DEAD, UP], "rec-2": [UP]})
    detector.prober = prober  # type: ignore[assignment]
    assert run(detector, DOWN) == []
    assert prober.returned.count("rec-1") == 2  # the second probe in the same round
    assert detector.tracks["rec-1"].refused_in_a_row == 0


def test_a_slow_server_does_not_delay_the_claim_of_a_dead_one(detector: Detector) -> None:
    prober = Scripted({"rec-1": [UP], "rec-2": [DEAD]}, slow=0.4)
    detector.prober = prober  # type: ignore[assignment]
    claimed_while: list[list[str]] = []

    def claim(server: RecordingServerConfig, reason: str, track: ServerTrack) -> bool:
        claimed_while.append(list(prober.returned))
        return True

    detector.run(detector.ctx.site.read(), {}, Plan(), lambda: IDLE,  # type: ignore[arg-type]
                 claim)
    assert claimed_while == [["rec-2", "rec-2"]]  # judged before rec-1's probe came back
    assert prober.returned[-1] == "rec-1"  # and the round still waited for rec-1's verdict


def test_a_server_hurried_mid_round_is_probed_again_and_claimed_before_the_round_ends(
        detector: Detector) -> None:
    """What the probe watch causes: rec-2 answered in this round, then closed the spare's
    connection (its process died). It is probed again at once and claimed while rec-1's slow
    probe is still out, instead of at the next round."""
    prober = Scripted({"rec-1": [UP], "rec-2": [UP, DEAD]}, slow=0.6)
    detector.prober = prober  # type: ignore[assignment]
    claimed_while: list[tuple[str, list[str]]] = []

    def claim(server: RecordingServerConfig, reason: str, track: ServerTrack) -> bool:
        claimed_while.append((server.name, list(prober.returned)))
        return True

    def hurry_once_answered() -> None:
        deadline = time.monotonic() + 5
        while "rec-2" not in prober.returned and time.monotonic() < deadline:
            time.sleep(0.005)
        detector.hurry("rec-2.test:8600")

    hurrier = threading.Thread(target=hurry_once_answered)
    hurrier.start()
    detector.run(detector.ctx.site.read(), {}, Plan(), lambda: IDLE,  # type: ignore[arg-type]
                 claim)
    hurrier.join()
    assert claimed_while == [("rec-2", ["rec-2", "rec-2", "rec-2"])]  # rec-1 still out
    assert prober.returned[-1] == "rec-1"


def test_a_server_hurried_while_its_probe_is_out_is_asked_again_if_that_probe_answered(
        detector: Detector) -> None:
    """The close can come just after the server answered a probe already on its way back: that
    answer must not end the episode; the server is probed again and claimed in this round."""
    release = threading.Event()

    class Held(Scripted):
        def probe(self, address: str) -> ProbeResult:
            if address.startswith("rec-2") and not self.returned.count("rec-2"):
                release.wait(5)  # the first probe is out when the close is noticed
            return super().probe(address)

    prober = Held({"rec-1": [UP], "rec-2": [UP, DEAD]})
    detector.prober = prober  # type: ignore[assignment]

    def hurry_while_out() -> None:
        time.sleep(0.2)
        detector.hurry("rec-2.test:8600")
        time.sleep(0.2)  # the round has taken it by now (it polls every 50 ms)
        release.set()

    hurrier = threading.Thread(target=hurry_while_out)
    hurrier.start()
    claimed = run(detector, DOWN)
    hurrier.join()
    assert claimed == ["rec-2"]
    assert prober.returned.count("rec-2") == 3  # answered, then refused twice
    assert detector.take_hurried() == set()


def test_a_server_hurried_mid_round_that_is_not_in_it_is_kept_for_the_next_round(
        detector: Detector) -> None:
    """A spare can watch a connection to a server it no longer probes (the share changed when
    another spare went idle again). Its close is kept for the next round, which probes every
    hurried unclaimed server; dropped, it was lost while the new probers had no connection to
    watch yet (a 200-server crash claimed after 8.6 s)."""
    prober = Scripted({"rec-1": [UP], "rec-2": [DEAD]}, slow=0.3)
    detector.prober = prober  # type: ignore[assignment]
    rec_1 = detector.ctx.applied_now().config.recording_server("rec-1")
    assert rec_1 is not None
    round_ = _ProbeRound(detector, [rec_1])
    threading.Timer(0.1, detector.hurry, ["rec-2.test:8600"]).start()
    results = [(server.name, probe.kind) for server, probe, _answer in round_.results()]
    assert results == [("rec-1", ProbeKind.RECORDING)]  # rec-2 was not this round's
    assert prober.returned == ["rec-1"]
    assert detector.take_hurried() == {"rec-2.test:8600"}
    detector.hurry("rec-2.test:8600")
    claimed = run(detector, DOWN)  # the next round: rec-2 probed first, refused twice, claimed
    assert claimed == ["rec-2"]
    assert prober.returned == ["rec-1", "rec-2", "rec-2", "rec-1"]  # before slow rec-1 returned


class Decided(Scripted):
    """rec-1's probe returns only once the spare decided whether to ask early (it is late by
    then whatever the machine's load), and answers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 answers: dict[str, list[ProbeResult]]) -> None:
        super().__init__(answers)
        self.rounds: list[_ProbeRound] = []
        init = _ProbeRound.__init__
        rounds = self.rounds

        def capture(round_: _ProbeRound, *args: Any) -> None:
            rounds.append(round_)
            init(round_, *args)

        monkeypatch.setattr(_ProbeRound, "__init__", capture)

    def probe(self, address: str) -> ProbeResult:
        if address.startswith("rec-1"):
            round_ = self.rounds[-1]
            deadline = time.monotonic() + 10
            while "rec-1" not in round_._asked and "rec-1" not in round_._withheld:
                assert time.monotonic() < deadline, "the spare never decided on rec-1"
                time.sleep(0.005)
        return super().probe(address)


def _asked(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    site = detector.ctx.site
    ask = site.ask

    def counting(server: str, spare: str) -> None:
        asked.append(server)
        ask(server, spare)

    monkeypatch.setattr(site, "ask", counting)
    return asked


def test_late_probes_ask_early_only_within_a_budget(
        detector: Detector, monkeypatch: pytest.MonkeyPatch) -> None:
    """The feedback loop a loaded site showed (bench/README.md, site_scale): late probes ask,
    asks load etcd and the servers, more probes are late. Here rec-1 answers every probe late
    and rec-2 at once: early questions stop when the budget is spent, and only the prompt
    answers buy new ones."""
    detector.early_asks = HedgePolicy(3.0, 0.1)
    prober = Decided(monkeypatch, {"rec-1": [UP], "rec-2": [UP]})
    detector.prober = prober  # type: ignore[assignment]
    asked = _asked(detector, monkeypatch)
    for _ in range(8):
        assert run(detector, IDLE) == []
    # 3 tokens, + at most 0.8 earned by rec-2's 8 answers (if prompt; if the machine made one
    # late too, it spent a token of the same budget): 3 questions in all, never 8
    assert len(asked) == 3
    assert detector.early_asks.withheld >= 5


def test_a_timed_out_probe_asks_even_when_the_budget_is_spent(
        detector: Detector, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget holds back only the early questions: a vanished host is still asked once its
    probe times out, so it is claimed without waiting for its lease."""
    detector.early_asks = HedgePolicy(1.0, 0.1)
    assert detector.early_asks.take()
    detector.prober = Scripted(  # type: ignore[assignment]
        {"rec-1": [ProbeResult(ProbeKind.TIMEOUT, "timed out")], "rec-2": [UP]})
    asked = _asked(detector, monkeypatch)
    run(detector, IDLE)
    assert asked == ["rec-1"]
