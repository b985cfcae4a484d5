"""A spare warns once when its buffer store could not hold the cover it promises, before it is
needed, and once when it has room again (hotspare.failover.buffer_room)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hotspare.failover.buffer_room import FULL, LOW, OK, BufferRoomMonitor, RoomGauge, largest_cover
from hotspare.site.model import SiteConfig
from hotspare.site.spare_room import RoomLevel, SpareRoom, quantize


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, server: str | None, message: str, **data: Any) -> None:
        self.seen.append((kind, message, data))


def _site(*servers: tuple[str, list[float | None]]) -> Any:
    config = SiteConfig.model_validate({
        "site": {"id": "t"},
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [
            {"name": name, "address": f"{name}.test:8600", "role": "master" if i == 0 else
             "recording",
             "cameras": [{"id": f"{name}-{n}", "url": f"rtsp://10.0.0.{i + 1}/{n}",
                          **({} if m is None else {"mbps": m})} for n, m in enumerate(mbps)]}
            for i, (name, mbps) in enumerate(servers)],
        "failover_servers": [{"name": "spare-1", "address": "spare-1.test:8600"}],
    })
    return SimpleNamespace(config=config)


def test_largest_cover_is_the_server_with_the_most_video() -> None:
    site = _site(("rec-1", [2.0, 2.0]), ("rec-2", [None, 8.0]))  # unset mbps counts as 4
    assert largest_cover(site) == ("rec-2", 12e6 / 8)


def test_low_then_ok_each_announced_once(tmp_path: Path) -> None:
    free = {"bytes": 10 * 10**9}
    events = Events()
    site = _site(("rec-1", [8.0]))  # 1 MB/s
    monitor = BufferRoomMonitor("spare-1", tmp_path, 1 * 10**9, 3600.0, lambda: site, events,
                                disk_free=lambda: free["bytes"])
    room = monitor.check()  # 9 GB above the reserve: 9000 s of cover
    assert room is not None and room.seconds == 9000 and events.seen == []
    free["bytes"] = 3 * 10**9  # 2000 s left
    monitor.check()
    monitor.check()
    assert [kind for kind, _, _ in events.seen] == [LOW]
    _kind, message, data = events.seen[0]
    assert "spare-1" in message and "rec-1" in message and "33 min" in message, message
    assert "buffer_warn_seconds" in message and str(tmp_path) in message, message
    assert data["for_server"] == "rec-1" and data["seconds"] == 2000.0, data
    free["bytes"] = 500_000_000  # below the reserve: no room at all, said once more
    assert monitor.check() is not None and monitor.last is not None
    monitor.check()
    assert monitor.last.free_bytes == 0
    assert [kind for kind, _, _ in events.seen] == [LOW, FULL]
    _kind, message, data = events.seen[1]
    assert "no room to cover rec-1" in message and "leaves a failed server" in message, message
    assert str(tmp_path) in message and data["free_bytes"] == 0, data
    free["bytes"] = 20 * 10**9
    monitor.check()
    assert [kind for kind, _, _ in events.seen] == [LOW, FULL, OK]


def test_room_levels_against_each_servers_rate() -> None:
    """Low: less than the spare's warn seconds of the server's video; no room: less than two of
    its segments (never less than 1 MiB)."""
    config = _site(("rec-1", [8.0]), ("rec-2", [0.8])).config  # 1 MB/s and 100 kB/s
    big, small = config.recording_server("rec-1"), config.recording_server("rec-2")
    assert big is not None and small is not None
    room = SpareRoom(1_500_000_000, 3600.0)  # 1500 s of rec-1, 15000 s of rec-2
    assert room.level_for(big) is RoomLevel.LOW and room.level_for(small) is RoomLevel.OK
    assert "25 min of covering rec-1" in room.describe_for("spare-1", big)
    # rec-1's segments last 4 s (the default): two of them are 8 MB at 1 MB/s
    assert SpareRoom(7_900_000, 0.0).level_for(big) is RoomLevel.NO_ROOM
    assert SpareRoom(8_100_000, 0.0).level_for(big) is RoomLevel.OK
    assert SpareRoom(1_000_000, 0.0).level_for(small) is RoomLevel.NO_ROOM  # below 1 MiB
    assert "no room to cover rec-1" in SpareRoom(0, 0.0).describe_for("spare-1", big)


def test_the_gauge_quantizes_and_measures_at_most_once_a_second(tmp_path: Path) -> None:
    free = {"bytes": 12_345_678_901}
    clock = {"now": 0.0}
    gauge = RoomGauge(tmp_path, 1_000_000_000, 600.0, disk_free=lambda: free["bytes"],
                      clock=lambda: clock["now"])
    assert gauge.room() == SpareRoom(11_000_000_000, 600.0)
    free["bytes"] = 0
    clock["now"] = 0.5
    assert gauge.room() == SpareRoom(11_000_000_000, 600.0)  # not measured again yet
    assert gauge.room(fresh=True) == SpareRoom(0, 600.0)  # a claim measures now
    assert [quantize(n) for n in (0, 7, 99, 123, 1_048_575)] == [0, 7, 99, 120, 1_000_000]


def test_off_without_a_site_or_a_threshold(tmp_path: Path) -> None:
    events = Events()
    site = _site(("rec-1", [8.0]))
    assert BufferRoomMonitor("s", tmp_path, 0, 0.0, lambda: site, events,
                             disk_free=lambda: 0).check() is None
    assert BufferRoomMonitor("s", tmp_path, 0, 3600.0, lambda: None, events,
                             disk_free=lambda: 0).check() is None
    assert events.seen == []
