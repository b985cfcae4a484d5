"""A spare warns once when its buffer store could not hold the cover it promises, before it is
needed, and once when it has room again (hotspare.failover.buffer_room)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hotspare.failover.buffer_room import LOW, OK, BufferRoomMonitor, largest_cover


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, server: str | None, message: str, **data: Any) -> None:
        self.seen.append((kind, message, data))


def _site(*servers: tuple[str, list[float | None]]) -> Any:
    recording = [SimpleNamespace(name=name, cameras=[SimpleNamespace(mbps=m) for m in mbps])
                 for name, mbps in servers]
    return SimpleNamespace(config=SimpleNamespace(recording_servers=recording))


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
    free["bytes"] = 500_000_000  # below the reserve: no room at all, still one event
    assert monitor.check() is not None and monitor.last is not None
    assert monitor.last.free_bytes == 0
    free["bytes"] = 20 * 10**9
    monitor.check()
    assert [kind for kind, _, _ in events.seen] == [LOW, OK]


def test_off_without_a_site_or_a_threshold(tmp_path: Path) -> None:
    events = Events()
    site = _site(("rec-1", [8.0]))
    assert BufferRoomMonitor("s", tmp_path, 0, 0.0, lambda: site, events,
                             disk_free=lambda: 0).check() is None
    assert BufferRoomMonitor("s", tmp_path, 0, 3600.0, lambda: None, events,
                             disk_free=lambda: 0).check() is None
    assert events.seen == []
