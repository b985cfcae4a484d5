"""The protection monitor makes its report again only when the keys it reads, the configuration
or the wall clock's 5-second slot change: not every second on every node of a large site."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hotspare.failover import protection
from hotspare.failover.protection import ProtectionMonitor
from hotspare.sitestate import layout
from tests.support.fake_site_state import FakeEvents, FakeSite
from tests.unit.test_failover_spare_agent import Applied


def test_the_report_is_made_again_only_when_its_inputs_change(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    real = protection.live_report

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(protection, "live_report", counted)
    site, applied = FakeSite(), Applied()
    wall = [datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)]
    monitor = ProtectionMonitor(site.etcd, "rec-1", lambda: applied.current,  # type: ignore[arg-type]
                                FakeEvents(), start_grace=0.0,  # type: ignore[arg-type]
                                wall=lambda: wall[0])
    site.etcd.put_json(layout.alive("rec-1"), {"url": "u", "boot": "b", "confirmed": True})
    monitor.tick()
    monitor.tick()
    site.etcd.put_json(layout.watermarks("rec-1"), {"a": 1})  # etcd's revision moves, no input
    monitor.tick()
    assert len(made) == 1
    site.etcd.put_json(layout.spare("spare-1"), {"state": "idle", "url": "u"})
    monitor.tick()
    assert len(made) == 2  # a spare came up
    wall[0] += timedelta(seconds=5)
    monitor.tick()
    assert len(made) == 3  # time alone: a licence may have expired
