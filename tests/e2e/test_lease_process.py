"""The lease kept by a helper process (`coordination/lease_process.py`) against a real etcd.

What it must keep from the keeper thread it replaces: the lease lives while the node does and
no longer; the node never relies on a lease etcd no longer holds; a stop with revoke deletes
its keys at once. What it adds: a node that goes silent (stopped, hung) has its lease revoked
by the helper a TTL after its last heartbeat, one that still runs (starved of CPU or of its
interpreter lock) keeps it for three, and a helper that dies or hangs never leaves the node
believing in a lease.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hotspare.coordination.lease_page import SLOTS, STARVED_FRACTION
from hotspare.coordination.lease_process import ProcessLeaseKeeper
from tests.support.etcd import EtcdCluster, coordinator_for
from tests.support.site import wait_for

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP/SIGCONT are POSIX-only")


def test_the_helper_keeps_the_lease_and_a_revoking_stop_deletes_its_keys(
        etcd1: EtcdCluster) -> None:
    coord = coordinator_for(etcd1, lease_keeper="process")
    try:
        keeper = coord.hold_lease(2, role="server")
        assert isinstance(keeper, ProcessLeaseKeeper)
        assert keeper.process.pid != os.getpid()
        coord.put("nodes/rs1/alive", "1", lease=keeper.lease)
        time.sleep(3 * keeper.lease.ttl)  # kept past three TTLs by the helper alone
        assert coord.get("nodes/rs1/alive") is not None
        assert not keeper.assumed_lost() and keeper.valid_for() > 0
        assert 0 < keeper.valid_for() <= keeper.lease.ttl
        left = coord.lease_time_to_live(keeper.lease)
        assert left is not None and left > 0
        keeper.stop(revoke=True)
        assert coord.get("nodes/rs1/alive") is None  # revoked now, not at expiry
        for _ in range(SLOTS + 4):  # a stopped lease's slot is free again for the next
            again = coord.hold_lease(2, role="server")
            assert isinstance(again, ProcessLeaseKeeper) and again.process is keeper.process
            assert not again.assumed_lost()
            again.stop(revoke=True)
        wait_for("every slot free again", lambda: len(keeper.process._free) == SLOTS, 2.0)
    finally:
        coord.close()


def test_a_silent_node_that_still_runs_keeps_its_lease_for_three_ttls(
        etcd1: EtcdCluster, caplog: pytest.LogCaptureFixture) -> None:
    """The heartbeat stops while the node's process runs on (as when its heartbeat thread gets
    no turn of the interpreter lock): the helper sees the node's CPU time grow and keeps the
    lease past one TTL of silence, saying so, and revokes it at three — marked lost first."""
    coord = coordinator_for(etcd1, lease_keeper="process")
    try:
        keeper = coord.hold_lease(2, role="spare")
        assert isinstance(keeper, ProcessLeaseKeeper)
        coord.put("spares/s1", "1", lease=keeper.lease)
        time.sleep(1.0)
        helper = keeper.process
        beat = helper.beat
        with caplog.at_level(logging.WARNING):
            helper.beat = lambda: None  # type: ignore[method-assign]
            silent_from = time.monotonic()
            spin_until = silent_from + STARVED_FRACTION * keeper.lease.ttl + 2.0
            while coord.get("spares/s1") is not None:  # the node runs: it spins and reads
                assert time.monotonic() < spin_until, "never revoked"
                sum(range(20_000))
            revoked_after = time.monotonic() - silent_from
            print(f"\nrevoked {revoked_after:.2f} s after the node's last heartbeat, the node "
                  f"running (ttl {keeper.lease.ttl:.0f} s)")
            assert revoked_after >= STARVED_FRACTION * keeper.lease.ttl - 0.3
            assert keeper.assumed_lost()
            assert "although it ran" in (keeper.lost_reason or "")
            wait_for("the helper's word that the node runs",
                     lambda: any("is running" in r.getMessage() for r in caplog.records), 2.0)
            wait_for("the revoke in the node's log",
                     lambda: any("revoked" in r.getMessage() and "lease keeper process"
                                 in r.getMessage() for r in caplog.records), 2.0)
        helper.beat = beat  # type: ignore[method-assign]
        fresh = coord.hold_lease(2, role="spare")
        assert not fresh.assumed_lost()
        fresh.stop(revoke=True)
    finally:
        coord.close()


def _node_script(etcd: EtcdCluster, prefix: str, key: str, folder: Path) -> Path:
    """A minimal node: holds a lease through the helper, writes `key` under it, prints its
    helper's pid, then reports the lease's loss and reason as soon as it sees it."""
    tls = etcd.client_tls
    script = folder / "node.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from pathlib import Path
        from hotspare.coordination.etcd_adapter import Coordinator
        from hotspare.etcd_security import EtcdTls
        coord = Coordinator({etcd.endpoints!r}, {prefix!r}, timeout=1.0,
                            tls=EtcdTls(Path({str(tls.ca_file)!r}), Path({str(tls.cert_file)!r}),
                                        Path({str(tls.key_file)!r})),
                            lease_keeper="process")
        keeper = coord.hold_lease(2, role="server")
        coord.put({key!r}, "1", lease=keeper.lease)
        print(keeper.process.pid, flush=True)
        while not keeper.assumed_lost():
            time.sleep(0.05)
        print("LOST", keeper.lost_reason, flush=True)
        time.sleep(60)
    """))
    return script


@posix_only
def test_a_stopped_node_has_its_lease_revoked_a_ttl_after_its_last_beat(
        etcd1: EtcdCluster, tmp_path: Path) -> None:
    coord = coordinator_for(etcd1)
    script = _node_script(etcd1, coord.prefix, "nodes/rs8/alive", tmp_path)
    node = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        int(node.stdout.readline())
        time.sleep(1.0)
        node.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        wait_for("the stopped node's key gone", lambda: coord.get("nodes/rs8/alive") is None,
                 5.0, interval=0.02)
        revoked_after = time.monotonic() - stopped_at
        node.send_signal(signal.SIGCONT)
        said = node.stdout.readline()
        print(f"\nrevoked {revoked_after:.2f} s after the node stopped (ttl 2 s); the node "
              f"then said: {said.strip()}")
        # a TTL after its last beat, which came at most 1/16 TTL before it stopped
        assert 2.0 - 0.2 <= revoked_after <= 2.0 + 0.7
        assert said.startswith("LOST") and "did not run meanwhile" in said
    finally:
        node.kill()
        node.wait(5.0)
        coord.close()


def test_a_helper_that_dies_makes_its_lease_lost_and_the_next_lease_starts_another(
        etcd1: EtcdCluster) -> None:
    coord = coordinator_for(etcd1, lease_keeper="process")
    lost: list[str] = []
    try:
        keeper = coord.hold_lease(2, role="server", on_lost=lost.append)
        assert isinstance(keeper, ProcessLeaseKeeper)
        first = keeper.process
        first._proc.kill()
        assert keeper.lost.wait(5.0)
        assert keeper.assumed_lost()
        assert f"pid {first.pid}" in (keeper.lost_reason or "") and "exited" in lost[0]
        fresh = coord.hold_lease(2, role="server")
        assert isinstance(fresh, ProcessLeaseKeeper) and fresh.process is not first
        coord.put("nodes/rs1/alive", "1", lease=fresh.lease)
        time.sleep(1.5 * fresh.lease.ttl)
        assert coord.get("nodes/rs1/alive") is not None and not fresh.assumed_lost()
        fresh.stop(revoke=True)
    finally:
        coord.close()


@posix_only
def test_a_stopped_helper_leaves_the_node_to_ask_etcd(etcd1: EtcdCluster) -> None:
    """A helper that hangs publishes nothing more: the node's estimate runs out, and once the
    helper has given no verdict within a request timeout the node asks etcd itself."""
    coord = coordinator_for(etcd1, timeout=0.5, lease_keeper="process")
    try:
        keeper = coord.hold_lease(2, role="server")
        assert isinstance(keeper, ProcessLeaseKeeper)
        os.kill(keeper.process.pid, signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            wait_for("the lease in doubt", keeper.in_doubt, keeper.lease.ttl + 0.5, interval=0.02)
            assert not keeper.lost.is_set()
            wait_for("the lease lost", keeper.assumed_lost, keeper.lease.ttl + 5.0)
            print(f"\nlease lost {time.monotonic() - stopped_at:.2f} s after its helper stopped:"
                  f" {keeper.lost_reason}")
            assert "did not say so" in (keeper.lost_reason or "")
            assert coord.lease_time_to_live(keeper.lease) is None
        finally:
            os.kill(keeper.process.pid, signal.SIGCONT)
    finally:
        coord.close()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to see the helper gone")
def test_a_killed_node_leaves_no_helper_and_its_lease_expires_on_its_ttl(
        etcd1: EtcdCluster, tmp_path: Path) -> None:
    """A node killed outright: its helper sees its stdin close and exits at once without
    revoking (as with a keeper thread, etcd lets the lease run out)."""
    coord = coordinator_for(etcd1)
    script = _node_script(etcd1, coord.prefix, "nodes/rs9/alive", tmp_path)
    node = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        helper_pid = int(node.stdout.readline())
        time.sleep(1.0)
        node.kill()
        killed_at = time.monotonic()
        node.wait(5.0)

        def helper_gone() -> bool:
            status = Path(f"/proc/{helper_pid}/status")
            try:
                return "State:\tZ" in status.read_text()
            except OSError:
                return True

        wait_for("the helper gone", helper_gone, 3.0, interval=0.02)
        helper_gone_after = time.monotonic() - killed_at
        wait_for("the killed node's key gone", lambda: coord.get("nodes/rs9/alive") is None,
                 5.0, interval=0.02)
        expired_after = time.monotonic() - killed_at
        print(f"\nhelper gone {helper_gone_after:.2f} s after the node's kill; its key deleted "
              f"{expired_after:.2f} s after (ttl 2 s, a keepalive every 0.67 s)")
        assert helper_gone_after < 2.0
        # not revoked at the kill: the last keepalive was at most a third of the TTL before it
        assert 1.0 <= expired_after <= 2.0 + 1.5
    finally:
        node.kill()
        coord.close()
