"""A spare whose data folder could not hold the cover it promises says so when it starts, long
before a takeover would fill it: an event `buffer_low` naming the spare, the server and the
minutes of cover left (hotspare.failover.buffer_room). The disk here is the machine's own, so the
test asks for more cover than any disk holds (`buffer_warn_seconds`) instead of filling one."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests.support.site import FailoverSite

pytestmark = pytest.mark.slow

CENTURY_S = 100 * 365 * 86400.0


def test_a_spare_short_of_buffer_room_says_so_before_any_takeover(tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 1}, spares=["spare-1"]) as site:
        path = site.node("spare-1").config_path
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        document["site"]["buffer_warn_seconds"] = CENTURY_S
        path.write_bytes(tomli_w.dumps(document).encode())
        site.start_all()
        low = site.wait_event("buffer_low", node="spare-1", timeout=20)
        print(low.line())
        assert "spare-1's buffer store has room for" in low.message, low.message
        assert "rec-1" in low.message and "buffer_warn_seconds" in low.message, low.message
        assert low.data["for_server"] == "rec-1" and low.data["seconds"] < CENTURY_S, low.data
        assert not [e for e in site.events() if e.kind == "claimed"], site.event_lines()
