"""Gapless placement: which spare pre-buffers which camera, and why the rest fall back."""

from __future__ import annotations

import random
from typing import Any

import pytest

from hotspare.site.allotment import allot
from hotspare.site.eligibility import DOWN, IDLE, SpareState, SpareStatus, can_spare_take
from hotspare.site.model import (
    DEFAULT_CAMERA_MBPS,
    DEFAULT_STANDBY_MBPS,
    DEFAULT_STANDBY_SESSIONS,
    SiteConfig,
)
from hotspare.site.pool import LicencePool
from hotspare.site.standby_plan import (
    FallbackReason,
    StandbyPlan,
    plan_standby,
    standby_session_cap,
)


def cameras(
    prefix: str, n: int, mode: str | None = "gapless", mbps: float | None = None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        camera: dict[str, Any] = {"id": f"{prefix}-c{i}", "url": f"rtsp://10.1.0.1/{prefix}{i}"}
        if mode is not None:
            camera["protection"] = mode
        if mbps is not None:
            camera["mbps"] = mbps
        out.append(camera)
    return out


def site(servers: list[dict[str, Any]], spares: list[dict[str, Any]]) -> SiteConfig:
    recording = [{"address": "10.0.0.1:8600", **server} for server in servers]
    recording[0].setdefault("role", "master")
    return SiteConfig.model_validate(
        {
            "site": {"id": "t"},
            "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
            "recording_servers": recording,
            "failover_servers": [{"address": "10.0.0.9:8600", **spare} for spare in spares],
        }
    )


def plan(
    config: SiteConfig, pool: LicencePool, states: dict[str, SpareStatus] | None = None
) -> StandbyPlan:
    return plan_standby(config, allot(pool, (s.name for s in config.failover_servers)), states)


def placed(result: StandbyPlan) -> dict[str, str]:
    return {a.camera: a.spare for a in result.assignments}


def reasons(result: StandbyPlan) -> dict[str, FallbackReason]:
    return {f.camera: f.reason for f in result.fallbacks}


def test_defaults_are_stated_capacity() -> None:
    config = site([{"name": "rec-1", "cameras": cameras("r1", 1)}], [{"name": "s1"}])
    spare = config.failover_servers[0]
    assert spare.standby_sessions == DEFAULT_STANDBY_SESSIONS == 16
    assert spare.standby_mbps == DEFAULT_STANDBY_MBPS == 100.0
    result = plan(config, LicencePool(1, 20))
    assert result.assignments[0].mbps == DEFAULT_CAMERA_MBPS
    assert result.spare_cost("s1") == (1, DEFAULT_CAMERA_MBPS)


def test_only_gapless_cameras_are_placed() -> None:
    config = site(
        [
            {
                "name": "rec-1",
                "cameras": cameras("g", 2)
                + cameras("s", 2, "standard")
                + cameras("n", 1, "none")
                + cameras("d", 1, None),
            },
            {"name": "rec-2", "protection": "gapless", "cameras": cameras("r2", 2, None)},
        ],
        [{"name": "s1"}, {"name": "s2"}],
    )
    result = plan(config, LicencePool(2, 40))
    assert sorted(placed(result)) == ["g-c0", "g-c1", "r2-c0", "r2-c1"]
    assert result.fallbacks == ()


def test_one_spare_per_server_and_spread_over_spares() -> None:
    config = site(
        [
            {"name": "rec-1", "cameras": cameras("a", 3)},
            {"name": "rec-2", "cameras": cameras("b", 3)},
            {"name": "rec-3", "cameras": cameras("c", 1)},
        ],
        [{"name": "s1"}, {"name": "s2"}],
    )
    result = plan(config, LicencePool(2, 40))
    # rec-1 first (name order) on s1 (tie, by name); rec-2 on s2 (more room); rec-3: tie, s1.
    assert result.designated("rec-1") == "s1"
    assert result.designated("rec-2") == "s2"
    assert result.designated("rec-3") == "s1"
    for server in ("rec-1", "rec-2", "rec-3"):
        assert len({a.spare for a in result.assignments if a.server == server}) == 1
    assert result.spare_cost("s1") == (4, 16.0)
    assert [a.camera for a in result.for_spare("s2")] == ["b-c0", "b-c1", "b-c2"]
    assert result.designated("rec-9") is None


def test_capacity_by_sessions() -> None:
    config = site(
        [{"name": "rec-1", "cameras": cameras("a", 5)}],
        [{"name": "s1", "standby_sessions": 3}],
    )
    result = plan(config, LicencePool(1, 20))
    assert list(placed(result)) == ["a-c0", "a-c1", "a-c2"]
    assert reasons(result) == {
        "a-c3": FallbackReason.NO_STANDBY_CAPACITY,
        "a-c4": FallbackReason.NO_STANDBY_CAPACITY,
    }
    message = result.fallbacks[0].message
    assert "rec-1/a-c3" in message and "s1" in message and "standby_sessions = 3" in message


def test_capacity_by_mbps_skips_only_what_does_not_fit() -> None:
    rec = cameras("a", 1, mbps=6) + cameras("b", 1, mbps=8) + cameras("c", 1, mbps=3)
    config = site([{"name": "rec-1", "cameras": rec}], [{"name": "s1", "standby_mbps": 10}])
    result = plan(config, LicencePool(1, 20))
    # 6 fits, 8 would make 14 > 10, the 3 after it still fits: configuration order, not a stop.
    assert list(placed(result)) == ["a-c0", "c-c0"]
    assert reasons(result) == {"b-c0": FallbackReason.NO_STANDBY_CAPACITY}
    assert result.spare_cost("s1") == (2, 9.0)
    message = result.fallbacks[0].message
    assert "4.0 of 10.0 Mbit/s" in message and "needs 8.0" in message


def test_capacity_by_allotment() -> None:
    config = site([{"name": "rec-1", "cameras": cameras("a", 4)}], [{"name": "s1"}])
    result = plan(config, LicencePool(1, 4))
    assert len(result.assignments) == 4
    # Two servers of 3 on one spare with an allotment of 4: each may be taken over (3 <= 4), but
    # standby sessions for both would be 6 licences' worth.
    config = site(
        [
            {"name": "rec-1", "cameras": cameras("a", 3)},
            {"name": "rec-2", "cameras": cameras("b", 3)},
        ],
        [{"name": "s1"}],
    )
    allotment = allot(LicencePool(1, 4), ["s1"])
    assert standby_session_cap(config.failover_servers[0], allotment) == 4
    result = plan_standby(config, allotment)
    assert list(placed(result)) == ["a-c0", "a-c1", "a-c2", "b-c0"]
    assert reasons(result) == {
        "b-c1": FallbackReason.NO_STANDBY_CAPACITY,
        "b-c2": FallbackReason.NO_STANDBY_CAPACITY,
    }
    assert "allotment of 4" in result.fallbacks[0].message


def test_partial_placement_uses_the_spare_that_holds_most() -> None:
    config = site(
        [{"name": "rec-1", "cameras": cameras("a", 5)}],
        [{"name": "big", "standby_sessions": 4}, {"name": "small", "standby_sessions": 2}],
    )
    result = plan(config, LicencePool(2, 40))
    assert result.designated("rec-1") == "big"
    assert len(result.assignments) == 4
    assert [f.camera for f in result.fallbacks] == ["a-c4"]


def test_a_spare_that_holds_all_is_preferred_over_more_free_sessions() -> None:
    rec = cameras("a", 2, mbps=30)
    config = site(
        [{"name": "rec-1", "cameras": rec}],
        [
            {"name": "many", "standby_sessions": 16, "standby_mbps": 40},
            {"name": "wide", "standby_sessions": 2, "standby_mbps": 100},
        ],
    )
    assert plan(config, LicencePool(2, 40)).designated("rec-1") == "wide"


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"s1": DOWN, "s2": IDLE}, "s2"),
        ({"s1": SpareStatus(SpareState.COVERING, "rec-9"), "s2": IDLE}, "s2"),
        ({"s2": IDLE}, "s2"),  # a spare nobody has heard from counts as down
        # The spare covering this very server keeps it, over a freer one.
        ({"s1": IDLE, "s2": SpareStatus(SpareState.COVERING, "rec-1")}, "s2"),
    ],
)
def test_down_and_covering_spares_excluded(
    states: dict[str, SpareStatus], expected: str
) -> None:
    config = site(
        [{"name": "rec-1", "cameras": cameras("a", 2)}, {"name": "rec-9", "cameras": []}],
        [{"name": "s1", "standby_sessions": 8}, {"name": "s2", "standby_sessions": 4}],
    )
    assert plan(config, LicencePool(2, 40), states).designated("rec-1") == expected


def test_no_spare_available() -> None:
    config = site([{"name": "rec-1", "cameras": cameras("a", 2)}], [{"name": "s1"}])
    result = plan(config, LicencePool(1, 20), {"s1": SpareStatus(SpareState.COVERING, "rec-2")})
    assert result.assignments == ()
    assert set(reasons(result).values()) == {FallbackReason.NO_SPARE_AVAILABLE}
    assert "s1 (covering rec-2)" in result.fallbacks[0].message


@pytest.mark.parametrize(
    ("server", "spares", "pool", "words"),
    [
        ({"platform": "netbsd"}, [{"name": "s1"}], LicencePool(1, 20), "runs NetBSD"),
        ({"frame_grabber_inputs": 2}, [{"name": "s1"}], LicencePool(1, 20), "frame-grabber"),
        ({}, [{"name": "s1"}], LicencePool(0, 20), "no failover-server licence"),
        ({}, [], LicencePool(1, 20), "no failover servers"),
        ({}, [{"name": "s1"}], LicencePool(1, 1), "may take at most 1"),
        ({}, [{"name": "s1", "max_cameras": 1}], LicencePool(1, 20), "may take at most 1"),
    ],
)
def test_ineligible_servers_get_no_standby(
    server: dict[str, Any], spares: list[dict[str, Any]], pool: LicencePool, words: str
) -> None:
    config = site([{"name": "rec-1", "cameras": cameras("a", 2), **server}], spares)
    result = plan(config, pool)
    assert result.assignments == ()
    assert [f.reason for f in result.fallbacks] == [FallbackReason.SERVER_NOT_PROTECTED] * 2
    assert words in result.fallbacks[0].message
    assert result.fallbacks[0].message.startswith("rec-1/a-c0 is gapless but falls back")


def test_placement_agrees_with_the_takeover_decision() -> None:
    """Every assignment is on a spare that would be allowed to take the server over."""
    config = site(
        [
            {"name": f"rec-{i}", "cameras": cameras(f"r{i}", 1 + i % 4, mbps=1 + i)}
            for i in range(8)
        ],
        [{"name": f"s{i}", "standby_sessions": 5, "max_cameras": 2 + i} for i in range(3)],
    )
    allotment = allot(LicencePool(3, 30), ["s0", "s1", "s2"])
    result = plan_standby(config, allotment)
    for assignment in result.assignments:
        spare = config.failover_server(assignment.spare)
        server = config.recording_server(assignment.server)
        assert spare is not None and server is not None
        assert can_spare_take(spare, server, allotment, IDLE).allowed
    for spare in config.failover_servers:
        sessions, mbps = result.spare_cost(spare.name)
        assert sessions <= min(spare.standby_sessions, allotment.of(spare.name))
        assert mbps <= spare.standby_mbps
    gapless = sum(len(s.gapless_cameras()) for s in config.recording_servers)
    assert len(result.assignments) + len(result.fallbacks) == gapless


def test_deterministic_whatever_the_file_order() -> None:
    servers = [
        {"name": f"rec-{i}", "cameras": cameras(f"r{i}", 2 + i % 3, mbps=2 + i % 5)}
        for i in range(10)
    ]
    spares = [{"name": f"s{i}", "standby_sessions": 6 + i} for i in range(3)]
    expected = plan(site(servers, spares), LicencePool(3, 60))
    rng = random.Random(6)
    for _ in range(5):
        shuffled_servers = [dict(s) for s in servers]
        rng.shuffle(shuffled_servers)
        for s in shuffled_servers:
            s.pop("role", None)
        shuffled_servers[0]["role"] = "master"
        shuffled_spares = list(spares)
        rng.shuffle(shuffled_spares)
        again = plan(site(shuffled_servers, shuffled_spares), LicencePool(3, 60))
        assert again == expected


def test_a_covered_server_gets_a_backup_standby_after_every_other_server() -> None:
    """While s1 covers rec-1, rec-1's gapless cameras also pre-buffer on an idle spare, so that a
    second failure (s1 dying too) costs them nothing; backups come after every uncovered
    server's standby, and one that does not fit is no fallback."""
    config = site(
        [{"name": "rec-1", "cameras": cameras("a", 2)},
         {"name": "rec-2", "cameras": cameras("b", 2)}],
        [{"name": "s1"}, {"name": "s2", "standby_sessions": 3}],
    )
    states = {"s1": SpareStatus(SpareState.COVERING, "rec-1"), "s2": IDLE}
    result = plan(config, LicencePool(2, 40), states)
    assert result.designated("rec-1") == "s1" and result.designated("rec-2") == "s2"
    assert result.backup("rec-1") == "s2" and result.backup("rec-2") is None
    backups = [a for a in result.assignments if a.backup]
    assert [(a.spare, a.camera) for a in backups] == [("s2", "a-c0")]  # rec-2's two came first
    assert result.assignment("a-c0") is not None and result.assignment("a-c0").spare == "s1"
    assert result.fallbacks == ()
    assert result.spare_cost("s2") == (3, 3 * DEFAULT_CAMERA_MBPS)
    # Nobody covering: no backup; the only spare covering: no other spare to hold one.
    assert not any(a.backup for a in plan(config, LicencePool(2, 40)).assignments)
    alone = plan(config, LicencePool(2, 40), {"s1": SpareStatus(SpareState.COVERING, "rec-1")})
    assert alone.backup("rec-1") is None
