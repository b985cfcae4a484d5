"""A recording server killed during the re-insert and restarted within its lease keeps its alive
key the whole time: the spare re-inserting into it must find it dead by its refused connections
and cover it again at once, and hand back only to the new process (`reinsert_job`, `handback`)."""

from __future__ import annotations

from typing import Any, cast

import httpcore
import httpx

from hotspare.failover import handback
from hotspare.failover.reinsert import Reinserter
from hotspare.failover.reinsert_job import ReinsertJob
from hotspare.failover.spare_states import FailedAgain
from hotspare.failover.spare_work import Coverage, SpareContext
from hotspare.sitestate.snapshot import SiteState
from hotspare.sitestate.values import Alive
from hotspare.store.segment_store import SegmentStore
from hotspare.tls import PeerTls

TOKEN = 40


def _refused() -> httpx.ConnectError:
    """What httpx raises for a port nobody listens on: the socket's error wrapped twice."""
    try:
        try:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except OSError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        return exc


class _Target:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Reinserter:
    """Steps that fail as scripted: an exception to raise, or None for a segment sent."""

    def __init__(self, script: list[BaseException | None]) -> None:
        self.script = script
        self.target = _Target()

    def step(self) -> object:
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return object()


def _job(pauses: list[float]) -> ReinsertJob:
    return ReinsertJob(cast(SpareContext, None), "token", cast(PeerTls, None),
                       cast(Any, None), pauses.append)


def _coverage(script: list[BaseException | None]) -> tuple[Coverage, _Reinserter]:
    cov = Coverage("rec-1", TOKEN, cast(SegmentStore, None))
    fake = _Reinserter(script)
    cov.reinserter = cast(Reinserter, fake)
    return cov, fake


def _state(boot: str, revision: int = TOKEN + 5) -> SiteState:
    return SiteState(alive={"rec-1": Alive("https://rec-1", boot, True, revision)})


def test_two_refusals_in_a_row_cover_the_server_again_though_its_alive_key_is_there() -> None:
    pauses: list[float] = []
    job = _job(pauses)
    cov, fake = _coverage([_refused(), _refused()])
    state = _state("111-1")
    assert handback.returned(cov, state)
    signal, more = job.tick(cov, state)
    assert signal is None and more and not pauses  # tried again at once, not after a pause
    signal, more = job.tick(cov, state)
    assert isinstance(signal, FailedAgain) and not more
    assert fake.target.closed and cov.reinserter is None
    assert cov.dead_boot == "111-1"
    assert not handback.returned(cov, state)  # the dead process's key still says confirmed
    assert handback.returned(cov, _state("222-2", TOKEN + 9))  # the restarted process


def test_a_refusal_between_answers_is_not_a_death() -> None:
    job = _job([])
    cov, _ = _coverage([_refused(), None, _refused()])
    state = _state("111-1")
    assert job.tick(cov, state) == (None, True)
    signal, _ = job.tick(cov, state)  # a segment sent, then refused once more: one in a row
    assert signal is None and cov.reinserter is not None and cov.dead_boot is None


def test_other_connection_errors_pause_without_covering() -> None:
    pauses: list[float] = []
    job = _job(pauses)
    cov, _ = _coverage([httpx.ConnectTimeout("timed out"), httpx.ConnectTimeout("timed out")])
    state = _state("111-1")
    for _ in range(2):
        signal, more = job.tick(cov, state)
        assert signal is None and not more
    assert len(pauses) == 2 and cov.reinserter is not None


def test_a_leftover_without_a_claim_is_not_covered_on_refusals() -> None:
    job = _job([])
    cov, _ = _coverage([_refused(), _refused()])
    cov.token = None
    for _ in range(2):
        signal, _more = job.tick(cov, _state("111-1"))
        assert signal is None
    assert cov.reinserter is not None
