"""Eligibility: every reason a server is unprotected, and the spare's takeover decision."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from hotspare.config.models import CameraConfig, ProtectionMode
from hotspare.site.allotment import allot
from hotspare.site.eligibility import (
    DOWN,
    IDLE,
    Reason,
    SpareState,
    SpareStatus,
    can_spare_take,
    describe_state,
    evaluate_server,
)
from hotspare.site.model import FailoverServerConfig, Platform, RecordingServerConfig
from hotspare.site.pool import LicencePool


def server(
    name: str = "rec-1", cameras: int = 10, platform: Platform = Platform.LINUX, grabbers: int = 0
) -> RecordingServerConfig:
    return RecordingServerConfig(
        name=name,
        address="10.0.0.1:8600",
        platform=platform,
        frame_grabber_inputs=grabbers,
        cameras=[
            CameraConfig(id=f"{name}-c{i}", url=f"rtsp://10.1.0.1/{i}") for i in range(cameras)
        ],
    )


def spare(name: str, max_cameras: int | None = None) -> FailoverServerConfig:
    return FailoverServerConfig(name=name, address="10.0.0.9:8600", max_cameras=max_cameras)


def covering(name: str) -> SpareStatus:
    return SpareStatus(SpareState.COVERING, name)


ONE = [spare("s1")]
TWO = [spare("s1"), spare("s2")]


@pytest.mark.parametrize(
    ("rec", "spares", "states", "pool", "reasons", "candidates"),
    [
        (server(cameras=20), ONE, {"s1": IDLE}, LicencePool(1, 20), [], ("s1",)),
        (
            server(platform=Platform.NETBSD),
            ONE,
            {"s1": IDLE},
            LicencePool(1, 20),
            [Reason.NETBSD],
            (),
        ),
        (server(grabbers=4), ONE, {"s1": IDLE}, LicencePool(1, 20), [Reason.FRAME_GRABBER], ()),
        (
            server(platform=Platform.NETBSD, grabbers=1),
            ONE,
            {"s1": IDLE},
            LicencePool(1, 20),
            [Reason.NETBSD, Reason.FRAME_GRABBER],
            (),
        ),
        (server(cameras=25), ONE, {"s1": IDLE}, LicencePool(1, 20), [Reason.TOO_MANY_CAMERAS], ()),
        # 3 spares / 90 licences -> 30 each: 31 cameras is too many even though the pool is 90.
        (
            server(cameras=31),
            [spare("a"), spare("b"), spare("c")],
            {"a": IDLE, "b": IDLE, "c": IDLE},
            LicencePool(3, 90),
            [Reason.TOO_MANY_CAMERAS],
            (),
        ),
        (server(), [], {}, LicencePool(1, 20), [Reason.NO_SPARES], ()),
        (server(), ONE, {"s1": IDLE}, LicencePool(0, 20), [Reason.NO_LICENSED_SPARE], ()),
        (server(), ONE, {"s1": DOWN}, LicencePool(1, 20), [Reason.NO_FREE_SPARE], ()),
        (server(), ONE, {}, LicencePool(1, 20), [Reason.NO_FREE_SPARE], ()),  # unknown state = down
        (server(), ONE, {"s1": covering("rec-2")}, LicencePool(1, 20), [Reason.NO_FREE_SPARE], ()),
        (server(), TWO, {"s1": covering("rec-2"), "s2": IDLE}, LicencePool(2, 40), [], ("s2",)),
        # The spare already covering this server is its candidate, first.
        (
            server(),
            TWO,
            {"s1": IDLE, "s2": covering("rec-1")},
            LicencePool(2, 40),
            [],
            ("s2", "s1"),
        ),
        # Unlicensed spare covers nothing: s2 is beyond the one server licence.
        (server(), TWO, {"s1": DOWN, "s2": IDLE}, LicencePool(1, 20), [Reason.NO_FREE_SPARE], ()),
        # Capacity hint lowers the limit; best fit (smallest sufficient limit) first.
        (
            server(cameras=10),
            [spare("big"), spare("small", max_cameras=12)],
            {"big": IDLE, "small": IDLE},
            LicencePool(2, 40),
            [],
            ("small", "big"),
        ),
        (
            server(cameras=15),
            [spare("a", max_cameras=12)],
            {"a": IDLE},
            LicencePool(1, 20),
            [Reason.TOO_MANY_CAMERAS],
            (),
        ),
    ],
)
def test_evaluate_server(
    rec: RecordingServerConfig,
    spares: list[FailoverServerConfig],
    states: Mapping[str, SpareStatus],
    pool: LicencePool,
    reasons: list[Reason],
    candidates: tuple[str, ...],
) -> None:
    protection = evaluate_server(rec, spares, states, pool)
    assert list(protection.reasons) == reasons
    assert protection.protected == (not reasons)
    assert protection.candidate_spares == candidates
    for finding in protection.findings:
        assert finding.message  # every "no" says why in words


def test_too_many_cameras_message_has_counts() -> None:
    protection = evaluate_server(server(cameras=25), ONE, {"s1": IDLE}, LicencePool(1, 20))
    assert (
        protection.findings[0].message
        == "rec-1 has 25 cameras; the most any licensed spare may take is 20"
    )


@pytest.mark.parametrize(
    ("rec", "spare_name", "status", "pool", "reasons"),
    [
        (server(cameras=20), "s1", IDLE, LicencePool(1, 20), []),
        (server(cameras=21), "s1", IDLE, LicencePool(1, 20), [Reason.TOO_MANY_CAMERAS]),
        (server(), "s2", IDLE, LicencePool(1, 20), [Reason.SPARE_UNLICENSED]),
        (server(), "s1", covering("rec-2"), LicencePool(2, 40), [Reason.SPARE_NOT_FREE]),
        (server(), "s1", covering("rec-1"), LicencePool(2, 40), []),
        (server(), "s1", DOWN, LicencePool(2, 40), [Reason.SPARE_NOT_FREE]),
        (server(platform=Platform.NETBSD), "s1", IDLE, LicencePool(2, 40), [Reason.NETBSD]),
        (server(grabbers=1), "s1", IDLE, LicencePool(2, 40), [Reason.FRAME_GRABBER]),
    ],
)
def test_can_spare_take(
    rec: RecordingServerConfig,
    spare_name: str,
    status: SpareStatus,
    pool: LicencePool,
    reasons: list[Reason],
) -> None:
    allotment = allot(pool, ["s1", "s2"])
    decision = can_spare_take(spare(spare_name), rec, allotment, status)
    assert list(decision.reasons) == reasons
    assert decision.allowed == (not reasons)


def test_every_reason_has_operator_text() -> None:
    for reason in Reason:
        assert reason.text.strip()


def with_modes(gapless: int = 0, standard: int = 0, none: int = 0) -> RecordingServerConfig:
    """A server whose cameras carry explicit protection modes, in that order."""
    modes = (
        [ProtectionMode.GAPLESS] * gapless
        + [ProtectionMode.STANDARD] * standard
        + [ProtectionMode.NONE] * none
    )
    return RecordingServerConfig(
        name="rec-1",
        address="10.0.0.1:8600",
        cameras=[
            CameraConfig(id=f"c{i}", url=f"rtsp://10.1.0.1/{i}", protection=mode)
            for i, mode in enumerate(modes)
        ],
    )


def test_cameras_with_protection_none_do_not_count_against_the_allotment() -> None:
    rec = with_modes(gapless=10, standard=10, none=5)  # 25 cameras, 20 of them failed over
    assert evaluate_server(rec, ONE, {"s1": IDLE}, LicencePool(1, 20)).protected
    allotment = allot(LicencePool(1, 20), ["s1"])
    assert can_spare_take(spare("s1"), rec, allotment, IDLE).allowed
    assert not can_spare_take(spare("s1", max_cameras=19), rec, allotment, IDLE).allowed


def test_too_many_cameras_message_names_the_cameras_left_out() -> None:
    rec = with_modes(standard=21, none=3)
    protection = evaluate_server(rec, ONE, {"s1": IDLE}, LicencePool(1, 20))
    assert protection.reasons == (Reason.TOO_MANY_CAMERAS,)
    assert protection.findings[0].message == (
        "rec-1 has 21 cameras to fail over (and 3 with protection none, not counted); "
        "the most any licensed spare may take is 20"
    )
    decision = can_spare_take(spare("s1"), rec, allot(LicencePool(1, 20), ["s1"]), IDLE)
    assert decision.findings[0].message.endswith("s1 may take at most 20")


def test_a_server_default_of_none_is_inherited() -> None:
    rec = server(cameras=30).model_copy(update={"protection": ProtectionMode.NONE})
    assert rec.failover_cameras() == []
    assert evaluate_server(rec, ONE, {"s1": IDLE}, LicencePool(1, 20)).protected


def test_describe_state() -> None:
    assert describe_state(covering("rec-2")) == "covering rec-2"
    assert describe_state(DOWN) == "down"
