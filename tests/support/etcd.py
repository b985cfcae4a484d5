"""pytest helpers that run real etcd members on free loopback ports.

Other test modules use them like this::

    # importing the fixture functions registers fixtures `etcd1` and `etcd3` in the module
    from tests.support.etcd import coordinator_for, etcd1_fixture, etcd3_fixture  # noqa: F401

    def test_something(etcd1: EtcdCluster) -> None:
        coord = coordinator_for(etcd1, site="demo")
        ...

Every fixture stops its processes in a finalizer, also when the test fails. A test is skipped (not
failed) when no etcd binary is installed, with the install hint in the skip reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.etcd_process import (
    EtcdBinaryNotFound,
    EtcdCluster,
    find_etcd_binary,
)

__all__ = [
    "EtcdCluster",
    "coordinator_for",
    "etcd1_fixture",
    "etcd3_fixture",
    "require_etcd_binary",
    "start_etcd_cluster",
]


def require_etcd_binary() -> Path:
    """The etcd executable, or skip the calling test with the reason an operator needs."""
    try:
        return find_etcd_binary()
    except EtcdBinaryNotFound as exc:
        pytest.skip(str(exc))


def start_etcd_cluster(
    base_dir: Path,
    size: int = 1,
    *,
    heartbeat_interval_ms: int = 100,
    election_timeout_ms: int = 1000,
) -> EtcdCluster:
    """Start `size` members under `base_dir` and wait until all are healthy; caller stops it."""
    binary = require_etcd_binary()
    cluster = EtcdCluster(
        base_dir,
        size,
        binary=binary,
        heartbeat_interval_ms=heartbeat_interval_ms,
        election_timeout_ms=election_timeout_ms,
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
) -> Coordinator:
    """A Coordinator on every member, under `/hotspare/<site>/` (a fresh site name by default)."""
    site = site or f"test-{uuid.uuid4().hex[:8]}"
    return Coordinator(
        cluster.endpoints,
        f"/hotspare/{site}/",
        timeout=timeout,
        deadline=deadline,
        watch_idle_timeout=watch_idle_timeout,
    )


@pytest.fixture(name="etcd1")
def etcd1_fixture(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A single-member etcd on loopback, stopped after the test."""
    cluster = start_etcd_cluster(tmp_path / "etcd", 1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(name="etcd3")
def etcd3_fixture(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A three-member etcd cluster on loopback (for leader changes), stopped after the test."""
    cluster = start_etcd_cluster(tmp_path / "etcd", 3)
    try:
        yield cluster
    finally:
        cluster.stop()
