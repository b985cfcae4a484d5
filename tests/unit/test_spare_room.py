"""A spare's buffer room in the site's rules (site/spare_room.py): who claims when a spare has no
room, where placement puts the pre-buffers, what the protection report says, what the record
carries. The spare's own measurement and events are in test_buffer_room.py; the agent's claim in
test_failover_spare_agent.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hotspare.coordination.models import KeyValue
from hotspare.site.allotment import allot
from hotspare.site.eligibility import (
    DOWN,
    IDLE,
    Reason,
    SpareState,
    SpareStatus,
    evaluate_server,
    leave_to,
)
from hotspare.site.licences import Licence, LicenceDocument
from hotspare.site.model import SiteConfig
from hotspare.site.pool import LicencePool
from hotspare.site.report import protection_report, render_text
from hotspare.site.spare_room import SpareRoom
from hotspare.site.standby_plan import plan_standby
from hotspare.sitestate.values import SpareRecord

NOW = datetime(2026, 11, 1, tzinfo=UTC)
POOL = LicencePool(2, 40)
ENOUGH = SpareRoom(50_000_000_000, 3600.0)  # 50 GB: hours of anything below
LOW = SpareRoom(1_000_000_000, 3600.0)  # 1 GB: 1000 s of rec-1 (1 MB/s)
NONE = SpareRoom(0, 3600.0)


def config() -> SiteConfig:
    """rec-1: two gapless cameras at 4 Mbit/s (1 MB/s); rec-2: one standard at 0.8 Mbit/s."""
    return SiteConfig.model_validate({
        "site": {"id": "t"},
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [
            {"name": "rec-1", "address": "rec-1.test:8600", "role": "master",
             "protection": "gapless",
             "cameras": [{"id": "a", "url": "rtsp://10.0.0.1/a"},
                         {"id": "b", "url": "rtsp://10.0.0.1/b"}]},
            {"name": "rec-2", "address": "rec-2.test:8600",
             "cameras": [{"id": "c", "url": "rtsp://10.0.0.2/c", "mbps": 0.8}]},
        ],
        "failover_servers": [{"name": "spare-1", "address": "spare-1.test:8600"},
                             {"name": "spare-2", "address": "spare-2.test:8600"}],
    })


def idle(room: SpareRoom | None) -> SpareStatus:
    return SpareStatus(SpareState.IDLE, room=room)


def test_a_spare_without_room_leaves_the_server_to_one_with_room() -> None:
    site = config()
    rec1, (one, two) = site.recording_servers[0], site.failover_servers
    allotment = allot(POOL, ["spare-1", "spare-2"])

    def leaves(states: dict[str, SpareStatus]) -> tuple[str, ...]:
        return leave_to(one, rec1, site.failover_servers, allotment, states)

    assert leaves({"spare-1": idle(NONE), "spare-2": idle(ENOUGH)}) == ("spare-2",)
    assert leaves({"spare-1": idle(NONE), "spare-2": idle(LOW)}) == ("spare-2",)  # low writes
    assert leaves({"spare-1": idle(NONE), "spare-2": idle(None)}) == ("spare-2",)  # unknown: ok
    # Nobody else could: it claims all the same (recording once there is room beats nobody).
    assert leaves({"spare-1": idle(NONE), "spare-2": idle(NONE)}) == ()
    assert leaves({"spare-1": idle(NONE), "spare-2": DOWN}) == ()
    assert leaves({"spare-1": idle(NONE),
                   "spare-2": SpareStatus(SpareState.COVERING, "rec-2", ENOUGH)}) == ()
    # With room (or none known) it claims as before.
    assert leaves({"spare-1": idle(LOW), "spare-2": idle(ENOUGH)}) == ()
    assert leaves({"spare-1": IDLE, "spare-2": idle(ENOUGH)}) == ()
    # The other way round it is spare-2 that leaves.
    assert leave_to(two, rec1, site.failover_servers, allotment,
                    {"spare-1": idle(ENOUGH), "spare-2": idle(NONE)}) == ("spare-1",)


def test_placement_keeps_pre_buffers_off_a_spare_low_on_room() -> None:
    site = config()
    allotment = allot(POOL, ["spare-1", "spare-2"])

    def designated(states: dict[str, SpareStatus]) -> str | None:
        return plan_standby(site, allotment, states).designated("rec-1")

    assert designated({"spare-1": idle(ENOUGH), "spare-2": idle(ENOUGH)}) == "spare-1"  # name
    assert designated({"spare-1": idle(LOW), "spare-2": idle(ENOUGH)}) == "spare-2"
    assert designated({"spare-1": idle(NONE), "spare-2": idle(LOW)}) == "spare-2"
    # Every spare as short of room: placed as before, rather than nowhere.
    assert designated({"spare-1": idle(NONE), "spare-2": idle(NONE)}) == "spare-1"
    assert designated({"spare-1": idle(LOW), "spare-2": idle(LOW)}) == "spare-1"
    # The spare covering the server keeps its cameras, whatever its room.
    assert designated({"spare-1": SpareStatus(SpareState.COVERING, "rec-1", NONE),
                       "spare-2": idle(ENOUGH)}) == "spare-1"


def test_a_spare_low_on_room_degrades_the_servers_it_would_cover() -> None:
    site = config()
    rec1, rec2 = site.recording_servers
    states = {"spare-1": idle(LOW), "spare-2": idle(ENOUGH)}
    one = evaluate_server(rec1, site.failover_servers, states, POOL)
    assert one.protected and one.degraded
    assert [w.reason for w in one.warnings] == [Reason.SPARE_BUFFER_LOW]
    message = one.warnings[0].message
    assert "spare-1's buffer store has room for 17 min of covering rec-1" in message, message
    assert "1.00 GB free" in message and "buffer_warn_seconds (60 min)" in message, message
    # 1 GB is 10000 s of rec-2's 0.1 MB/s: enough for it.
    assert not evaluate_server(rec2, site.failover_servers, states, POOL).degraded
    # No room at all, even where another spare would take the server instead.
    full = evaluate_server(rec2, site.failover_servers,
                           {"spare-1": idle(ENOUGH), "spare-2": idle(NONE)}, POOL)
    assert full.protected and [w.reason for w in full.warnings] == [Reason.SPARE_NO_ROOM]
    assert "spare-2's buffer store has no room to cover rec-2" in full.warnings[0].message
    assert "leaves rec-2 to another spare" in full.warnings[0].message
    # The covering spare's room counts: its cover runs out.
    covered = evaluate_server(rec1, site.failover_servers,
                              {"spare-1": SpareStatus(SpareState.COVERING, "rec-1", LOW),
                               "spare-2": DOWN}, POOL)
    assert covered.covered_by == "spare-1" and covered.degraded
    # A spare that is down, or whose room is not known, degrades nothing.
    for states in ({"spare-1": DOWN, "spare-2": idle(ENOUGH)}, {"spare-1": IDLE}):
        assert not evaluate_server(rec1, site.failover_servers, states, POOL).degraded


def licence() -> Licence:
    return Licence(LicenceDocument(
        licence_id="lic-1", site_id="t", issued_at=NOW, not_before=NOW,
        not_after=NOW + timedelta(days=365), failover_server_licences=2,
        failover_camera_licences=40, issuer_key_id="test"), source="test")


def test_the_report_shows_each_spares_room_and_the_degraded_servers() -> None:
    states = {"spare-1": idle(LOW), "spare-2": idle(NONE)}
    report = protection_report(config(), states, [licence()], NOW)
    data = report.to_dict()
    spares = {s["name"]: s for s in data["spares"]}
    assert spares["spare-1"]["room"] == {
        "free_bytes": 1_000_000_000, "warn_seconds": 3600.0, "server": "rec-1",
        "seconds": 1000.0, "level": "low", "low": True,
        "message": "spare-1's buffer store has room for 17 min of covering rec-1 (8.0 Mbit/s): "
                   "1.00 GB free above its retention reserve, less than its "
                   "buffer_warn_seconds (60 min)"}
    assert spares["spare-2"]["room"]["level"] == "no_room"
    rec1 = next(s for s in data["servers"] if s["name"] == "rec-1")
    assert rec1["protected"] is True and rec1["degraded"] is True
    assert [w["code"] for w in rec1["warnings"]] == ["spare_buffer_low", "spare_no_room"]
    text = render_text(report)
    assert "    buffer room: LOW: spare-1's buffer store has room for 17 min" in text, text
    assert "    buffer room: NO ROOM: spare-2's buffer store has no room to cover rec-1" in text
    assert "  rec-1: protected (spares: spare-1, spare-2), DEGRADED, because" in text, text
    enough = protection_report(config(), {"spare-1": idle(ENOUGH), "spare-2": IDLE},
                               [licence()], NOW)
    text = render_text(enough)
    assert "DEGRADED" not in text and "    buffer room: spare-1's buffer store has room for " \
        "13.9 h of covering rec-1" in text, text
    assert next(s for s in enough.to_dict()["spares"] if s["name"] == "spare-2")["room"] is None


def kv(value: str) -> KeyValue:
    return KeyValue(key="spares/spare-1", value=value.encode(), create_revision=1,
                    mod_revision=1, version=1, lease=0)


def test_the_record_carries_the_room_and_a_broken_one_reads_as_unknown() -> None:
    record = SpareRecord("idle", "http://spare-1.test:8600", room=SpareRoom(1_200_000, 600.0))
    parsed = SpareRecord.parse(kv(record.dumps()))
    assert parsed == record and parsed.status() == idle(SpareRoom(1_200_000, 600.0))
    assert SpareRecord.parse(kv('{"state": "idle"}')).room is None  # an older spare
    broken: list[Any] = [{"free_bytes": "lots", "warn_seconds": 1}, {"free_bytes": -1,
                         "warn_seconds": 1}, {"free_bytes": 5}, "full", {"free_bytes": True,
                         "warn_seconds": 1}]
    for room in broken:
        assert SpareRecord.parse(kv(json.dumps({"state": "idle", "room": room}))).room is None
