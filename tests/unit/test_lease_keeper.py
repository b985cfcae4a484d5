"""The lease keeper against stand-in etcd members that answer, hang (frozen), refuse (killed)
or say the lease is gone: it moves to a member that answers, it doubts before it gives up, and
it asks etcd before it calls a lease lost. The real three-member cluster is
tests/e2e/test_etcd_member_faults.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from hotspare.coordination.errors import EtcdUnavailableError
from hotspare.coordination.etcd_adapter import LeaseKeeper
from hotspare.coordination.models import Lease

TTL = 0.8


class Members:
    """Three members; each `ok`, `hang` (accepts, never answers: the request times out),
    `refuse` (at once), `gone` (answers that the lease no longer exists) or `slow` (answers
    after `slow_s`, as an overloaded cluster does)."""

    def __init__(self, timeout: float = 0.3) -> None:
        self.endpoints = ["m1", "m2", "m3"]
        self.timeout = timeout
        self.slow_s = timeout / 2
        self.mode = dict.fromkeys(self.endpoints, "ok")
        self.calls: list[tuple[str, str]] = []
        self.in_flight: dict[str, int] = dict.fromkeys(self.endpoints, 0)
        self.most_in_flight = 0
        self.revoked: list[Lease] = []
        self.lock = threading.Lock()

    def set_all(self, mode: str) -> None:
        for endpoint in self.endpoints:
            self.mode[endpoint] = mode

    def endpoints_by_preference(self) -> list[str]:
        return list(self.endpoints)

    def _answer(self, kind: str, endpoint: str | None, timeout: float, ttl: float
                ) -> float | None:
        assert endpoint is not None
        with self.lock:
            self.calls.append((kind, endpoint))
            mode = self.mode[endpoint]
            self.in_flight[endpoint] += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight[endpoint])
        try:
            if mode == "hang":
                time.sleep(timeout)
                raise EtcdUnavailableError([endpoint], timeout, "read timed out", kind)
            if mode == "refuse":
                raise EtcdUnavailableError([endpoint], 0.0, "connection refused", kind)
            if mode == "slow":
                time.sleep(self.slow_s)
            return None if mode == "gone" else ttl
        finally:
            with self.lock:
                self.in_flight[endpoint] -= 1

    def keepalive_once(self, lease: Lease, *, timeout: float, endpoint: str | None = None
                       ) -> float | None:
        return self._answer("keepalive", endpoint, timeout, lease.ttl)

    def lease_time_to_live(self, lease: Lease, *, timeout: float, endpoint: str | None = None
                           ) -> float | None:
        return self._answer("timetolive", endpoint, timeout, lease.ttl / 2)

    def revoke_lease(self, lease: Lease) -> None:
        self.revoked.append(lease)

    def kinds(self) -> list[str]:
        with self.lock:
            return [kind for kind, _ in self.calls]


def keeper_on(members: Members, lease_id: int, on_lost: Callable[[str], None] | None = None
              ) -> LeaseKeeper:
    keeper = LeaseKeeper(members, Lease(lease_id, TTL), interval=TTL / 4,  # type: ignore[arg-type]
                         hedge_delay=0.05, on_lost=on_lost, role="unit")
    keeper.start()
    return keeper


def until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("fault", ["hang", "refuse"])
def test_a_frozen_or_killed_preferred_member_costs_nothing(fault: str) -> None:
    members = Members()
    members.mode["m1"] = fault
    keeper = keeper_on(members, 0x10 + len(fault))
    try:
        time.sleep(4 * TTL)
        assert not keeper.lost.is_set() and keeper.doubts == 0
        assert keeper.valid_for() > 0
        answered = [e for kind, e in members.calls if kind == "keepalive" and e != "m1"]
        assert answered, members.calls
        assert members.most_in_flight == 1  # a hung member is not asked again while it hangs
    finally:
        keeper.stop()


def test_an_overloaded_cluster_gets_no_hedges() -> None:
    """Every member answers, but late (slower than the hedge delay, well within the request
    timeout): load, not a freeze. Hedging then would send each keepalive two or three times to
    a cluster that is slow because of its load; it stops once the members' answers show they
    are all that slow, and the lease is kept."""
    members = Members()
    members.set_all("slow")
    keeper = keeper_on(members, 0x18)
    try:
        time.sleep(8 * TTL)
        assert not keeper.lost.is_set() and keeper.valid_for() > 0
        rounds = sum(1 for kind, e in members.calls if kind == "keepalive" and e == "m1")
        asked_others = [e for kind, e in members.calls if e != "m1"]
        assert rounds >= 10, members.calls
        # before an answer showed m1's pace, one hedge per member at most; none after
        assert len(asked_others) <= 2, members.calls
        assert keeper.hedges.sent == len(asked_others)
    finally:
        keeper.stop()


def test_a_lease_in_doubt_is_verified_with_etcd_not_assumed_lost(
        caplog: pytest.LogCaptureFixture) -> None:
    members = Members()
    lost: list[str] = []
    keeper = keeper_on(members, 0x20, on_lost=lost.append)
    try:
        with caplog.at_level(logging.INFO, logger="hotspare.coordination.etcd_adapter"):
            members.set_all("hang")  # an election: nobody answers for longer than the TTL
            until(keeper.in_doubt, 2 * TTL)
            assert not keeper.assumed_lost()  # no verdict yet: hold on
            assert keeper.valid_for() <= 0
            members.set_all("ok")
            until(lambda: not keeper.in_doubt(), 3.0)
        assert keeper.doubts == 1 and not lost and not keeper.lost.is_set()
        assert "timetolive" in members.kinds()  # verified, not assumed
        text = caplog.text
        assert "may have expired" in text and "still held" in text
        assert " lost:" not in text
        assert "short of CPU" not in text  # etcd was silent, not this process
    finally:
        keeper.stop()


def test_a_keeper_that_never_ran_says_its_process_is_short_of_cpu(
        caplog: pytest.LogCaptureFixture) -> None:
    """No keepalive failed and none is waiting for an answer, yet the lease ran out: the keeper
    did not get to run (a process whose threads want more than a core of Python, or a machine
    that is overloaded; bench.lease_keeper). The warning says so, so that the operator looks at
    the node and not at etcd."""
    members = Members()
    keeper = LeaseKeeper(members, Lease(0x30, TTL), interval=TTL / 4,  # type: ignore[arg-type]
                         hedge_delay=0.05, role="unit")  # not started: its thread never runs
    time.sleep(TTL * 1.2)
    with caplog.at_level(logging.WARNING, logger="hotspare.coordination.etcd_adapter"):
        assert not keeper.assumed_lost()
    assert "may have expired" in caplog.text
    assert "did not get to send one in time" in caplog.text
    assert "short of CPU" in caplog.text
    assert members.calls == []


def test_a_lease_etcd_no_longer_knows_is_lost() -> None:
    members = Members()
    lost: list[str] = []
    keeper = keeper_on(members, 0x30, on_lost=lost.append)
    try:
        members.set_all("hang")
        until(keeper.in_doubt, 2 * TTL)
        members.set_all("gone")  # back, and the lease expired meanwhile
        until(lambda: bool(lost), 3.0)  # on_lost runs just after `lost` is set
        assert keeper.assumed_lost()
        assert "etcd says the lease has expired" in lost[0]
    finally:
        keeper.stop()


def test_assumed_lost_waits_for_the_verdict_of_a_fresh_doubt() -> None:
    """A node thawed after a long freeze: its estimate ran out long ago, etcd answers at once.
    The first question after the thaw gets etcd's answer, not the keeper's stale view, even
    while the keeper thread still sleeps until its next keepalive."""
    members = Members()
    offset = [0.0]
    keeper = LeaseKeeper(members, Lease(0x40, TTL), interval=30.0,  # type: ignore[arg-type]
                         hedge_delay=0.05, role="unit",
                         clock=lambda: time.monotonic() + offset[0])
    keeper.start()
    try:
        assert not keeper.assumed_lost()
        members.set_all("gone")
        offset[0] = 5.0  # the process slept through its lease; the keeper thread still waits
        started = time.monotonic()
        assert keeper.assumed_lost()
        assert time.monotonic() - started < members.timeout + 0.5
        assert set(members.kinds()) == {"timetolive"}  # two members asked, both said gone
        assert len(members.kinds()) == 2
    finally:
        keeper.stop()


def test_a_keepalive_without_ttl_while_held_is_lost_at_once() -> None:
    members = Members()
    keeper = keeper_on(members, 0x50)
    try:
        members.set_all("gone")
        assert keeper.lost.wait(2.0)
        assert keeper.lost_reason == "etcd says the lease has expired"
    finally:
        keeper.stop(revoke=False)
    assert members.revoked == []


def test_one_member_saying_gone_is_checked_with_another() -> None:
    members = Members()
    keeper = keeper_on(members, 0x60)
    try:
        members.mode["m1"] = "gone"  # a member just thawed, wrong about the lease
        time.sleep(3 * TTL)
        assert not keeper.lost.is_set()
        assert ("timetolive", "m2") in members.calls
        members.set_all("gone")  # every member agrees: it is gone
        assert keeper.lost.wait(3.0)
    finally:
        keeper.stop(revoke=False)
