"""pytest helpers that run real etcd members on free loopback ports.

The fixtures `etcd1` (one member) and `etcd3` (three) are defined once in tests/conftest.py::

    from tests.support.etcd import EtcdCluster, coordinator_for

    def test_something(etcd1: EtcdCluster) -> None:
        coord = coordinator_for(etcd1, site="demo")
        ...

The members run with client and peer TLS and client-certificate auth, from one site PKI made
once per test session (`session_pki`); `cluster.client_tls` is what a client presents, and
`cluster.cli_args()` the same as `hotspare` options. Every fixture stops its processes in a
finalizer, also when the test fails. Without an etcd binary
the test is skipped with the install hint, or fails under CI (tests.support.prerequisites).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import uuid
from pathlib import Path

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.etcd_process import (
    EtcdBinaryNotFound,
    EtcdCluster,
    find_etcd_binary,
)
from hotspare.pki.store import SitePki
from tests.support.prerequisites import missing_prerequisite

__all__ = [
    "EtcdCluster",
    "coordinator_for",
    "require_etcd_binary",
    "session_pki",
    "start_etcd_cluster",
]


@functools.cache
def session_pki() -> SitePki:
    """One site CA for the whole test run: member, node and client certificates are issued
    from it on first use and reused (same names, same loopback host) by later tests."""
    folder = Path(tempfile.mkdtemp(prefix="hotspare-test-pki-"))
    atexit.register(shutil.rmtree, folder, True)
    return SitePki.init(folder / "pki", "hotspare test site CA", days=7)


def require_etcd_binary() -> Path:
    """The etcd executable; without one the calling test skips (fails under CI) with the hint."""
    try:
        return find_etcd_binary()
    except EtcdBinaryNotFound as exc:
        problem = str(exc)
    missing_prerequisite(problem)  # outside `except`: the report shows the reason, no chain


def start_etcd_cluster(
    base_dir: Path,
    size: int = 1,
    *,
    heartbeat_interval_ms: int = 100,
    election_timeout_ms: int = 1000,
    tls: bool = True,
) -> EtcdCluster:
    """Start `size` members under `base_dir` and wait until all are healthy; caller stops it.
    `tls=False` runs plain HTTP (for a test or benchmark comparing the two)."""
    binary = require_etcd_binary()
    cluster = EtcdCluster(
        base_dir,
        size,
        binary=binary,
        heartbeat_interval_ms=heartbeat_interval_ms,
        election_timeout_ms=election_timeout_ms,
        pki=session_pki() if tls else None,
    )
    cluster.start()
    return cluster


def coordinator_for(
    cluster: EtcdCluster,
    site: str | None = None,
    *,
    timeout: float = 1.0,
    deadline: float = 5.0,
    watch_idle_timeout: float = 15.0,
    lease_keeper: str = "thread",
) -> Coordinator:
    """A Coordinator on every member, under `/hotspare/<site>/` (a fresh site name by default)."""
    site = site or f"test-{uuid.uuid4().hex[:8]}"
    return Coordinator(
        cluster.endpoints,
        f"/hotspare/{site}/",
        timeout=timeout,
        deadline=deadline,
        watch_idle_timeout=watch_idle_timeout,
        tls=cluster.client_tls,
        insecure_plaintext=cluster.insecure_plaintext,
        lease_keeper=lease_keeper,
    )
