"""Allotment: the issue's examples and the edge cases of dividing the pool among spares."""

from __future__ import annotations

import pytest

from hotspare.site.allotment import allot
from hotspare.site.pool import LicencePool


@pytest.mark.parametrize(
    ("servers", "cameras", "spares", "shares", "unlicensed", "unused", "unallotted"),
    [
        # The examples.
        (1, 20, ["s1"], {"s1": 20}, (), 0, 0),
        (3, 90, ["s1", "s2", "s3"], {"s1": 30, "s2": 30, "s3": 30}, (), 0, 0),
        # Remainder: one each to the first spares in name order; nothing lost.
        (3, 91, ["s3", "s1", "s2"], {"s1": 31, "s2": 30, "s3": 30}, (), 0, 0),
        (3, 92, ["s1", "s2", "s3"], {"s1": 31, "s2": 31, "s3": 30}, (), 0, 0),
        (2, 1, ["b", "a"], {"a": 1, "b": 0}, (), 0, 0),
        # More spares than failover-server licences: name order decides, the rest are unlicensed.
        (2, 40, ["c", "a", "b"], {"a": 20, "b": 20}, ("c",), 0, 0),
        # Fewer spares than server licences: the camera pool goes to the spares that exist.
        (3, 90, ["a", "b"], {"a": 45, "b": 45}, (), 1, 0),
        # No spares, or no server licence: camera licences are reported unallotted, not lost.
        (2, 40, [], {}, (), 2, 40),
        (0, 40, ["a"], {}, ("a",), 0, 40),
        # No licences at all.
        (0, 0, ["a"], {}, ("a",), 0, 0),
    ],
)
def test_allotment(
    servers: int,
    cameras: int,
    spares: list[str],
    shares: dict[str, int],
    unlicensed: tuple[str, ...],
    unused: int,
    unallotted: int,
) -> None:
    result = allot(LicencePool(servers, cameras), spares)
    assert dict(result.camera_licences) == shares
    assert result.unlicensed == unlicensed
    assert result.unused_server_licences == unused
    assert result.unallotted_camera_licences == unallotted
    assert sum(shares.values()) + result.unallotted_camera_licences == cameras


def test_unlicensed_spare_has_no_allotment() -> None:
    result = allot(LicencePool(1, 20), ["a", "b"])
    assert result.is_licensed("a") and not result.is_licensed("b")
    assert result.of("b") == 0 and result.of("nobody") == 0
