"""The coordination adapter against real etcd processes on loopback.

Each test starts its own members (fixtures from tests.support.etcd) and stops them in finalizers.
Timings printed with `-s` are the numbers quoted in docs/coordination.md.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from hotspare.coordination import etcd_adapter
from hotspare.coordination.errors import (
    CompactedError,
    EtcdUnavailableError,
    FencingError,
    LeaseNotFoundError,
)
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import ChangeType, CreateResult, WatchBatch
from tests.support.etcd import EtcdCluster, coordinator_for

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP/SIGCONT are POSIX-only")


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.02) -> float:
    """Poll until predicate() is true; return the seconds it took (fail on timeout)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


class Collector:
    """Watch callback that records batches; a reconcile loop would just be woken instead."""

    def __init__(self) -> None:
        self.batches: list[WatchBatch] = []
        self.lock = threading.Lock()

    def __call__(self, batch: WatchBatch) -> None:
        with self.lock:
            self.batches.append(batch)

    def put_values(self) -> list[str]:
        with self.lock:
            return [e.kv.text for b in self.batches for e in b.changes if e.type is ChangeType.PUT]

    def resyncs(self) -> list[WatchBatch]:
        with self.lock:
            return [b for b in self.batches if b.resynced]


def test_claim_race_has_exactly_one_winner(etcd1: EtcdCluster) -> None:
    spares = 16
    site = "race"
    coords = [coordinator_for(etcd1, site) for _ in range(spares)]
    leases = [c.grant_lease(5) for c in coords]
    barrier = threading.Barrier(spares)
    results: list[CreateResult | None] = [None] * spares
    latencies: list[float] = [0.0] * spares

    def contend(i: int) -> None:
        barrier.wait()
        start = time.perf_counter()
        results[i] = coords[i].create_if_absent("claims/rs1", f"spare-{i}", lease=leases[i])
        latencies[i] = time.perf_counter() - start

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(spares)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    done = [r for r in results if r is not None]
    assert len(done) == spares
    winners = [i for i, r in enumerate(results) if r is not None and r.created]
    assert len(winners) == 1
    token = results[winners[0]].token  # type: ignore[union-attr]
    # every loser is told who holds the claim and under which token
    assert {r.token for r in done} == {token}
    assert {r.kv.text for r in done if r.kv} == {f"spare-{winners[0]}"}
    # history (before compaction) shows exactly one creation ever
    history = coords[0].history("claims/rs1", from_revision=1)
    assert [e.kv.create_revision for e in history if e.is_create] == [token]
    median_ms = sorted(latencies)[spares // 2] * 1000
    print(f"\nclaim latency under {spares}-way contention: "
          f"median {median_ms:.1f} ms, max {max(latencies) * 1000:.1f} ms")


def test_fenced_writes_refuse_a_stale_token(etcd1: EtcdCluster) -> None:
    a = coordinator_for(etcd1, "fence")
    b = coordinator_for(etcd1, "fence")
    first = a.create_if_absent("claims/rs1", "spare-a")
    assert first.created and first.token is not None
    token_a = first.token
    rev = a.put_fenced("owners/rs1", "spare-a", claim_key="claims/rs1", token=token_a)
    assert a.get("owners/rs1").text == "spare-a"  # type: ignore[union-attr]
    # the claim is released (or expired) and b claims it: a's token is now stale
    assert a.release_claim("claims/rs1", token_a)
    second = b.create_if_absent("claims/rs1", "spare-b")
    assert second.created and second.token is not None and second.token > token_a
    with pytest.raises(FencingError) as info:
        a.put_fenced("owners/rs1", "spare-a again", claim_key="claims/rs1", token=token_a)
    assert info.value.actual == second.token
    with pytest.raises(FencingError):
        a.delete_fenced("reinsert/rs1/", claim_key="claims/rs1", token=token_a, prefix=True)
    assert not a.release_claim("claims/rs1", token_a)  # cannot release b's claim
    assert b.get("claims/rs1").text == "spare-b"  # type: ignore[union-attr]
    # compare-and-set on a key's own mod revision
    owner = b.get("owners/rs1")
    assert owner is not None and owner.mod_revision == rev
    assert b.put_if_revision("owners/rs1", "spare-b", rev) is not None
    assert a.put_if_revision("owners/rs1", "spare-a", rev) is None  # stale revision refused
    assert not a.delete_if_revision("owners/rs1", rev)
    assert b.get("owners/rs1").text == "spare-b"  # type: ignore[union-attr]


def test_lease_expiry_after_keepalive_stops_deletes_the_key(etcd1: EtcdCluster) -> None:
    coord = coordinator_for(etcd1, "lease")
    keeper = coord.hold_lease(2)
    assert keeper.lease.ttl >= 2
    coord.put("nodes/rs1/alive", "1", lease=keeper.lease)
    time.sleep(keeper.lease.ttl + 0.5)  # kept alive past one TTL
    assert coord.get("nodes/rs1/alive") is not None
    assert not keeper.assumed_lost()
    left = coord.lease_time_to_live(keeper.lease)
    assert left is not None and 0 <= left <= keeper.lease.ttl
    stopped = time.monotonic()
    keeper.stop(revoke=False)  # the holder freezes: no more keepalives
    took = wait_for(lambda: coord.get("nodes/rs1/alive") is None, keeper.lease.ttl + 3)
    print(f"\nkey deleted {time.monotonic() - stopped:.2f} s after the last keepalive stopped "
          f"(ttl {keeper.lease.ttl:.0f} s)")
    assert took <= keeper.lease.ttl + 2.0
    assert coord.keepalive_once(keeper.lease) is None  # gateway: no TTL for an expired lease
    assert coord.lease_time_to_live(keeper.lease) is None  # TTL -1: etcd no longer knows it
    with pytest.raises(LeaseNotFoundError):
        coord.put("nodes/rs1/alive", "1", lease=keeper.lease)
    coord.revoke_lease(keeper.lease)  # already gone: not an error


@posix_only
def test_lease_in_doubt_on_monotonic_clock_then_lost_when_etcd_says_so(etcd1: EtcdCluster) -> None:
    """The only member frozen past the TTL: the estimate runs out within the TTL (in doubt, not
    yet lost: etcd has not said so); after the thaw etcd expires the lease, and only its answer
    makes the lease lost."""
    coord = coordinator_for(etcd1, "frozen", timeout=0.5)
    lost_at: list[float] = []
    keeper = coord.hold_lease(2, on_lost=lambda reason: lost_at.append(time.monotonic()))
    try:
        time.sleep(0.5)
        member = etcd1.members[0]
        freeze_at = time.monotonic()
        member.freeze()
        try:
            wait_for(keeper.in_doubt, keeper.lease.ttl + 1.0, step=0.01)
            detected = time.monotonic() - freeze_at
            print(f"\nlease in doubt {detected:.2f} s after etcd froze "
                  f"(ttl {keeper.lease.ttl:.0f} s)")
            # never later than the TTL: the lease cannot outlive our estimate in etcd
            assert detected <= keeper.lease.ttl + 0.5  # + scheduling slack on a busy machine
            assert keeper.valid_for() <= 0
            assert not keeper.assumed_lost()  # etcd cannot answer: no verdict yet
            assert not lost_at
            # a call on a frozen etcd fails within its deadline, with an operator's message
            impatient = Coordinator(etcd1.endpoints, "/hotspare/frozen/", timeout=0.5,
                                    deadline=1.5, tls=etcd1.client_tls)
            started = time.monotonic()
            with pytest.raises(EtcdUnavailableError) as info:
                impatient.get("config")
            assert time.monotonic() - started < 2.5
            assert etcd1.endpoints[0] in str(info.value)
        finally:
            thawed_at = time.monotonic()
            member.thaw()
        # frozen 3-4 s with a 2 s TTL: etcd expires the lease after the thaw and says so
        assert keeper.lost.wait(5.0)
        wait_for(lambda: bool(lost_at), 1.0, step=0.01)  # the callback runs after the event
        print(f"lease lost {lost_at[0] - thawed_at:.2f} s after the thaw: {keeper.lost_reason}")
        assert keeper.assumed_lost()
        assert "etcd says the lease has expired" in (keeper.lost_reason or "")
        fresh = coord.hold_lease(2)
        coord.put("nodes/spare1/alive", "1", lease=fresh.lease)
        assert not fresh.assumed_lost()
        fresh.stop()
    finally:
        keeper.stop(revoke=True)
        coord.close()


def test_watch_resumes_after_etcd_restart(etcd1: EtcdCluster) -> None:
    coord = coordinator_for(etcd1, "watch", timeout=0.5)
    seen = Collector()
    watch = coord.watch_prefix("nodes/", seen)
    try:
        coord.put("nodes/a", "1")
        wait_for(lambda: seen.put_values() == ["1"], 5)
        member = etcd1.members[0]
        member.kill()
        time.sleep(0.5)
        member.start(wait=True)
        restarted = time.monotonic()
        coord.put("nodes/a", "2")
        coord.put("nodes/b", "3")
        took = wait_for(lambda: seen.put_values() == ["1", "2", "3"], 10)
        print(f"\nwatch delivered the first write after an etcd restart within {took:.2f} s "
              f"({time.monotonic() - restarted:.2f} s after the member was healthy)")
        assert watch.reconnects >= 1
        assert not seen.resyncs()
    finally:
        watch.stop()
    assert not watch.alive()


def test_watch_moved_off_a_member_while_streaming_lives_on(etcd1: EtcdCluster) -> None:
    """`leave()` runs on another thread (any request failing on the member) while the watch
    thread reads its stream: the stream must just end and reopen. Closing the response under the
    reader killed the thread with an AttributeError (18 watch threads in a 200-server run)."""
    coord = coordinator_for(etcd1, "watch", timeout=0.5)
    seen = Collector()
    errors: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value or Exception())
    watch = coord.watch_prefix("nodes/", seen)
    try:
        expected: list[str] = []
        for i in range(20):
            wait_for(lambda: watch._endpoint is not None, 5)
            watch.leave(etcd1.members[0].endpoint)
            coord.put("nodes/a", str(i))
            expected.append(str(i))
            wait_for(lambda: seen.put_values() == expected, 5)
        assert watch.alive() and not errors, errors
        assert watch.reconnects >= 1
    finally:
        threading.excepthook = previous_hook
        watch.stop()
    assert not watch.alive()


def test_a_watch_thread_survives_an_unexpected_error_in_its_stream(
        etcd1: EtcdCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever breaks a stream (here urllib3's AttributeError of a response closed under its
    reader, seen in a 200-server run), the watch reopens from its revision: a dead watch thread
    is a node that silently stops seeing claims and questions."""
    real = etcd_adapter._stream_lines
    calls = {"n": 0}

    def breaks_first(response: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise AttributeError("'NoneType' object has no attribute 'read'")
        return real(response)

    monkeypatch.setattr(etcd_adapter, "_stream_lines", breaks_first)
    coord = coordinator_for(etcd1, "watch", timeout=0.5)
    seen = Collector()
    watch = coord.watch_prefix("nodes/", seen)
    try:
        coord.put("nodes/a", "1")
        wait_for(lambda: seen.put_values() == ["1"], 5)
        assert watch.alive() and watch.reconnects >= 1 and calls["n"] >= 2
    finally:
        watch.stop()
    assert not watch.alive()


def test_watch_from_compacted_revision_rereads_the_prefix(etcd1: EtcdCluster) -> None:
    coord = coordinator_for(etcd1, "compact")
    first = coord.put("claims/rs1", "spare-a")
    coord.put("claims/rs1", "spare-b")
    last = coord.put("claims/rs2", "spare-c")
    coord.compact(last)
    with pytest.raises(CompactedError):
        coord.history("claims/rs1", from_revision=first)
    seen = Collector()
    watch = coord.watch_prefix("claims/", seen, from_revision=first)
    try:
        wait_for(lambda: len(seen.resyncs()) == 1, 5)
        snap = seen.resyncs()[0]
        assert snap.snapshot is not None
        assert {kv.key: kv.text for kv in snap.snapshot} == {
            "claims/rs1": "spare-b", "claims/rs2": "spare-c"}
        assert snap.revision >= last
        coord.put("claims/rs3", "spare-d")
        wait_for(lambda: seen.put_values() == ["spare-d"], 5)
    finally:
        watch.stop()


def test_watch_compacted_while_stream_broken_rereads(etcd1: EtcdCluster) -> None:
    """Events missed while the stream was down and then compacted away come back as a snapshot."""
    coord = coordinator_for(etcd1, "compact2", timeout=0.5)
    seen = Collector()
    gate = threading.Event()

    def slow_reconciler(batch: WatchBatch) -> None:
        seen(batch)
        gate.wait(10)  # holds the watch thread while the stream breaks and history is compacted

    watch = coord.watch_prefix("owners/", slow_reconciler)
    try:
        coord.put("owners/rs1", "a")
        wait_for(lambda: seen.put_values() == ["a"], 5)
        member = etcd1.members[0]
        member.kill()
        member.start(wait=True)
        coord.put("owners/rs1", "b")
        rev = coord.put("owners/rs2", "c")
        coord.compact(rev)
        gate.set()
        wait_for(lambda: bool(seen.resyncs()), 10)
        snapshot = seen.resyncs()[-1].snapshot or []
        assert {kv.key: kv.text for kv in snapshot} == {"owners/rs1": "b", "owners/rs2": "c"}
        assert seen.put_values() == ["a"]  # b and c were never delivered as events
        coord.put("owners/rs3", "d")
        wait_for(lambda: seen.put_values() == ["a", "d"], 5)
        assert watch.resyncs == 1
    finally:
        gate.set()
        watch.stop()


def test_three_members_survive_leader_kill(etcd3: EtcdCluster) -> None:
    leader = etcd3.leader()
    # put the leader first so the coordinator's preferred endpoint is the one that dies
    ordered = [leader.endpoint] + [m.endpoint for m in etcd3.members if m is not leader]
    coord = Coordinator(ordered, "/hotspare/ha/", timeout=1.0, deadline=15.0,
                        tls=etcd3.client_tls)
    keeper = coord.hold_lease(5)
    claim = coord.create_if_absent("claims/rs1", "spare-a", lease=keeper.lease)
    assert claim.created and claim.token is not None
    seen = Collector()
    watch = coord.watch_prefix("claims/", seen)
    try:
        killed_at = time.monotonic()
        leader.kill()
        coord.put_fenced("owners/rs1", "spare-a", claim_key="claims/rs1", token=claim.token)
        recovered = time.monotonic() - killed_at
        new_leader = etcd3.leader()
        assert new_leader is not leader
        print(f"\nfirst fenced write after killing the etcd leader: {recovered:.2f} s")
        assert recovered < 10.0
        assert not keeper.assumed_lost()  # the keeper moved to another endpoint in time
        coord.put("claims/rs2", "spare-b")
        wait_for(lambda: "spare-b" in seen.put_values(), 10)
        assert coord.get("claims/rs1").create_revision == claim.token  # type: ignore[union-attr]
    finally:
        watch.stop()
        keeper.stop()


@posix_only
def test_three_members_survive_frozen_leader(etcd3: EtcdCluster) -> None:
    """A hung leader (sockets open, no answers) is worse than a dead one: calls must time out."""
    leader = etcd3.leader()
    ordered = [leader.endpoint] + [m.endpoint for m in etcd3.members if m is not leader]
    coord = Coordinator(ordered, "/hotspare/ha2/", timeout=1.0, deadline=15.0,
                        watch_idle_timeout=3.0, tls=etcd3.client_tls)
    keeper = coord.hold_lease(5)
    seen = Collector()
    watch = coord.watch_prefix("claims/", seen)
    try:
        coord.put("claims/rs0", "before")
        wait_for(lambda: seen.put_values() == ["before"], 5)
        frozen_at = time.monotonic()
        leader.freeze()
        try:
            claim = coord.create_if_absent("claims/rs1", "spare-a", lease=keeper.lease)
            recovered = time.monotonic() - frozen_at
            assert claim.created
            wait_for(lambda: "spare-a" in seen.put_values(), 10)
            watched = time.monotonic() - frozen_at
            print(f"\nleader frozen: claim succeeded after {recovered:.2f} s, "
                  f"watch delivered it after {watched:.2f} s")
            assert recovered < 10.0
            assert not keeper.assumed_lost()
        finally:
            leader.thaw()
    finally:
        watch.stop()
        keeper.stop()
