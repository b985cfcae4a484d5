"""Fixtures shared by the unit and end-to-end tests, registered once for the whole suite.

Test modules ask for a fixture by naming it as an argument; none imports fixture functions. The
helpers behind them live in tests/support/ (etcd, camsim, prerequisites, ...); fixtures that only
the unit tests use are in tests/unit/conftest.py.

A test that lacks a prerequisite (etcd, GStreamer, chromium) is skipped on a developer's machine
and fails under CI (tests.support.prerequisites); the banner below lists every such skip at the
end of the run, so that a run which tested nothing end to end does not look like a pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.camsim import CameraSim
from tests.support.etcd import EtcdCluster, start_etcd_cluster
from tests.support.prerequisites import prerequisite_skips


@pytest.fixture
def etcd1(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A single-member etcd on loopback, stopped after the test."""
    cluster = start_etcd_cluster(tmp_path / "etcd", 1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A three-member etcd cluster on loopback (for leader changes), stopped after the test."""
    cluster = start_etcd_cluster(tmp_path / "etcd", 3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def camera_sim(tmp_path: Path) -> Iterator[CameraSim]:
    """Two cameras (cam-1, cam-2), 640x360 25 fps, 1 s GOP, 1 Mbit/s; stopped after the test."""
    sim = CameraSim(tmp_path / "camsim", cameras=2)
    try:
        yield sim.start()
    finally:
        sim.stop()


_PREREQUISITE_SKIPS = pytest.StashKey[int]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print a banner naming what was not tested because a prerequisite is missing."""
    reasons = prerequisite_skips(terminalreporter.stats.get("skipped", []))
    if not reasons:
        return
    total = sum(reasons.values())
    config.stash[_PREREQUISITE_SKIPS] = total
    terminalreporter.section("MISSING PREREQUISITES", sep="!", red=True, bold=True)
    terminalreporter.write_line(
        f"{total} test(s) were SKIPPED, not passed: this machine lacks what they need. "
        "Install it with scripts/setup --test; under CI=true these tests fail instead.",
        red=True,
        bold=True,
    )
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"  {count:>3} x {reason}", red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Repeat the count as the very last line, below pytest's own summary, where it is seen."""
    total = config.stash.get(_PREREQUISITE_SKIPS, 0)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if total and reporter is not None:
        reporter.write_line(
            f"!!! {total} test(s) SKIPPED for a missing prerequisite: see MISSING PREREQUISITES "
            "above !!!",
            red=True,
            bold=True,
        )
