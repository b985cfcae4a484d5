"""One etcd member of three frozen or killed costs no node its lease (issue 12).

A real three-member TLS etcd and real nodes (a recording server, two spares) with 2 s leases,
the shortest a site can have. In turn: the leader frozen (SIGSTOP) for 4 s, a follower frozen
for 4 s, the leader killed (SIGKILL) and started again. etcd keeps leases through the election
that follows (its new leader gives every lease its TTL afresh), so a node whose keepalives reach
a healthy member loses nothing: every node keeps the lease it had before (same id on its keys),
no `alive/` or `spares/` key is ever missing from a read, nobody claims anything, and no node
logs a lost lease. Before the keeper asked the next member while one hung, and asked etcd before
calling a lease lost, a frozen leader cost nodes their leases (the chaos soak saw it in 2 of 6
etcd-member faults).

One loss is etcd's own, and no client can prevent it: etcd before the fix of etcd-io/etcd#15247
(PR #16822; Debian 12 ships 3.4.23) lets a leader thawed after a pause longer than the TTL
revoke the leases that expired on its own clock, through the new leader. The keys really go
(their deletes are in etcd's history) and the nodes, told so by two members, re-register at
once. The test then ends as an expected failure naming that bug, but only when every lost lease
was one etcd said was gone and etcd's history shows the deletes; a lease a node gave up on its
own, or keys missing without a delete, fail it.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import pytest

from hotspare.coordination.errors import EtcdUnavailableError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.etcd_process import EtcdCluster, EtcdProcess
from hotspare.coordination.models import ChangeType
from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.site import FailoverSite, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX-only")]

FAULT_S = 4.0
LEASE_LOST = re.compile(r"lease \S+ lost|liveness lease lost")


class KeyWatcher:
    """Reads the lease-bound keys every 0.1 s from the test's own client and notes each read
    that found one missing (a read etcd could not answer is not a finding)."""

    def __init__(self, coord: Coordinator, keys: list[str]) -> None:
        self.coord = coord
        self.keys = keys
        self.missing: list[tuple[int, str]] = []  # (revision read at, what was missing)
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                state = self.coord.get_prefixes([layout.ALIVE_PREFIX, layout.SPARES_PREFIX])
            except EtcdUnavailableError:
                continue
            self.reads += 1
            present = {kv.key for kv in state.kvs}
            for key in self.keys:
                if key not in present:
                    self.missing.append((state.revision, f"{key} missing"))

    def __enter__(self) -> KeyWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)


def lease_ids(site: FailoverSite, keys: list[str]) -> dict[str, int]:
    assert site.coord is not None
    found = {}
    for key in keys:
        kv = site.coord.get(key)
        assert kv is not None, f"{key} missing"
        found[key] = kv.lease
    return found


def etcd_revoked(site: FailoverSite, keys: list[str], start_rev: int
                 ) -> list[tuple[int, str]]:
    """The lease-bound keys etcd deleted since `start_rev` (no node deletes these during the
    test: a server drops its alive key only when a camera stops, with a `not_recording` event)."""
    assert site.coord is not None
    deleted = []
    for prefix in (layout.ALIVE_PREFIX, layout.SPARES_PREFIX):
        for change in site.coord.history(prefix, from_revision=start_rev, prefix=True):
            if change.type is ChangeType.DELETE and change.kv.key in keys:
                deleted.append((change.kv.mod_revision, change.kv.key))
    return deleted


def settle(etcd: EtcdCluster) -> None:
    wait_for("every etcd member healthy", lambda: all(m.is_healthy() for m in etcd.members), 30)
    time.sleep(2.0)


def freeze(member: EtcdProcess) -> None:
    member.freeze()
    try:
        time.sleep(FAULT_S)
    finally:
        member.thaw()


def lost_lines(site: FailoverSite) -> dict[str, list[str]]:
    found = {}
    for name in site.nodes:
        text = site.node(name).log_path.read_text(errors="replace")
        found[name] = [line for line in text.splitlines() if LEASE_LOST.search(line)]
    return found


def test_one_etcd_member_frozen_or_killed_costs_no_lease(tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 1}, spares=["spare-1", "spare-2"],
                      etcd_size=3) as site:
        assert site.etcd is not None and site.coord is not None
        etcd = site.etcd
        site.start_all()
        wait_for("rec-1 confirmed", lambda: site.alive("rec-1", confirmed=True), 30)
        keys = [layout.alive("rec-1"), layout.spare("spare-1"), layout.spare("spare-2")]
        settle(etcd)
        before = lease_ids(site, keys)
        start_rev = site.coord.revision()
        start_us = now_us()
        watcher_coord = Coordinator(etcd.endpoints, layout.site_prefix(site.site_id),
                                    timeout=0.5, deadline=1.0, tls=etcd.client_tls)
        steps: list[str] = []
        try:
            with KeyWatcher(watcher_coord, keys) as watcher:
                leader = etcd.leader()
                steps.append(f"froze leader {leader.name}")
                freeze(leader)
                settle(etcd)
                # The first fault alone may meet etcd's own bug (module docstring): what it
                # cost is judged apart, the two later faults strictly.
                mid_rev = site.coord.revision()
                mid = lease_ids(site, keys)
                mid_lost = lost_lines(site)
                leader = etcd.leader()
                follower = next(m for m in etcd.members if m is not leader)
                steps.append(f"froze follower {follower.name}")
                freeze(follower)
                settle(etcd)
                leader = etcd.leader()
                steps.append(f"killed leader {leader.name}")
                leader.kill()
                time.sleep(FAULT_S)
                leader.start()
                settle(etcd)
        finally:
            watcher_coord.close()
        after = lease_ids(site, keys)
        events = [e for e in site.events() if e.wall_us >= start_us]
        end_lost = lost_lines(site)
        revoked = etcd_revoked(site, keys, start_rev)
        doubts = {name: site.node(name).log_path.read_text(errors="replace")
                  .count("may have expired") for name in site.nodes}
        print("\n".join(steps))
        print(f"{watcher.reads} reads of {len(keys)} keys; missing: {watcher.missing[:5]}")
        print("leases in doubt (then confirmed by etcd), per node:", doubts)
        print("deleted by etcd:", revoked)
        print("\n".join(e.line() for e in events))
        assert watcher.reads > 50, "the test could hardly read etcd: it proves nothing"
        # Nobody claimed anything, and the server records and is confirmed throughout.
        assert site.claim("rec-1") is None
        assert not [e.line() for e in events if e.kind in {"claimed", "displaced",
                                                          "not_recording"}]
        assert site.alive("rec-1", confirmed=True)
        # A frozen follower, then the leader killed and restarted: nothing lost at all.
        assert end_lost == mid_lost, (mid_lost, end_lost)
        assert after == mid, (mid, after)  # the same leases: none lost and re-granted
        assert not [m for rev, m in watcher.missing if rev > mid_rev], watcher.missing[-10:]
        assert not [d for rev, d in revoked if rev > mid_rev], revoked
        # The frozen leader: nothing lost either, unless etcd itself revoked the leases.
        first = [line for found in mid_lost.values() for line in found]
        if first or before != mid or watcher.missing or revoked:
            etcds_doing = bool(revoked) and bool(first) and all(
                "etcd says the lease has expired" in line for line in first)
            assert etcds_doing, (first, before, mid, watcher.missing[:10], revoked)
            pytest.xfail("etcd itself revoked leases when its frozen leader was thawed "
                         f"(etcd-io/etcd#15247, fixed after 3.4.23): {revoked}; every node "
                         "learnt it from etcd and registered again; the later faults cost "
                         "nothing")
