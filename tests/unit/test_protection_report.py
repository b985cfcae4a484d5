"""The protection report's gapless part: camera modes, designated spare, fallbacks, standby cost,
planned (offline) and as the spares report it (live, from `standby/<spare>`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hotspare.site.eligibility import IDLE, SpareState, SpareStatus
from hotspare.site.licences import Licence, LicenceDocument
from hotspare.site.model import SiteConfig
from hotspare.site.pool import LicenceMerge
from hotspare.site.report import (
    ProtectionReport,
    StandbySession,
    parse_standby,
    protection_report,
    render_text,
)
from hotspare.sitestate import layout
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.protection import live_report, report_json
from tests.support.site_api import FakeCoord

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def config(spare: dict[str, Any] | None = None) -> SiteConfig:
    """rec-1: 2 gapless (one at 8 Mbit/s), 1 standard, 1 none; rec-2: standard only."""
    return SiteConfig.model_validate(
        {
            "site": {"id": "t"},
            "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
            "recording_servers": [
                {
                    "name": "rec-1",
                    "address": "rec-1.test:8600",
                    "role": "master",
                    "cameras": [
                        {"id": "gate", "url": "rtsp://10.0.0.1/a", "protection": "gapless"},
                        {"id": "dock", "url": "rtsp://10.0.0.1/b", "protection": "gapless",
                         "mbps": 8},
                        {"id": "hall", "url": "rtsp://10.0.0.1/c"},
                        {"id": "bin", "url": "rtsp://10.0.0.1/d", "protection": "none"},
                    ],
                },
                {
                    "name": "rec-2",
                    "address": "rec-2.test:8600",
                    "cameras": [{"id": "yard", "url": "rtsp://10.0.0.2/a"}],
                },
            ],
            "failover_servers": [
                {"name": "spare-1", "address": "spare-1.test:8600", **(spare or {})}
            ],
        }
    )


LICENCE = Licence(
    LicenceDocument(
        licence_id="lic-1", site_id="t", issued_at=NOW, not_before=NOW,
        not_after=NOW + timedelta(days=365), failover_server_licences=1,
        failover_camera_licences=20, issuer_key_id="test",
    ),
    source="test",  # already "checked": this test is about the report, not signatures
)


def report(
    site: SiteConfig,
    states: dict[str, SpareStatus] | None = None,
    standby: dict[str, dict[str, StandbySession]] | None = None,
) -> ProtectionReport:
    return protection_report(
        site, {"spare-1": IDLE} if states is None else states, [LICENCE], NOW, standby
    )


def server_json(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["servers"] if s["name"] == name)


def test_planned_report_json() -> None:
    data = report(config()).to_dict()
    rec1 = server_json(data, "rec-1")
    assert rec1["protected"] is True  # 3 cameras failed over, `none` not counted
    assert rec1["camera_modes"] == {"gapless": 2, "standard": 1, "none": 1}
    assert rec1["standby_spare"] == "spare-1"
    assert [c["camera"] for c in rec1["gapless_cameras"]] == ["gate", "dock"]
    assert rec1["gapless_cameras"][1] == {
        "camera": "dock", "mbps": 8.0, "spare": "spare-1", "state": None, "buffered_s": None,
        "kbps": None, "fallback": None,
    }
    rec2 = server_json(data, "rec-2")
    assert rec2["camera_modes"] == {"gapless": 0, "standard": 1, "none": 0}
    assert rec2["standby_spare"] is None and rec2["gapless_cameras"] == []
    assert data["spares"][0]["standby"] == {
        "sessions": 2, "mbps": 12.0, "max_sessions": 16, "max_mbps": 100.0,
    }
    # Fields that were there before are still there.
    assert {"candidate_spares", "covered_by", "reasons"} <= set(rec1)
    assert {"licensed", "allotment", "limit", "state", "covering"} <= set(data["spares"][0])


def test_planned_fallback_in_json_and_text() -> None:
    result = report(config({"standby_mbps": 5}))
    rec1 = server_json(result.to_dict(), "rec-1")
    dock = rec1["gapless_cameras"][1]
    assert dock["spare"] is None
    assert dock["fallback"]["code"] == "no_standby_capacity"
    assert "1.0 of 5.0 Mbit/s" in dock["fallback"]["message"]
    text = render_text(result)
    assert "    cameras: 2 gapless, 1 standard, 1 none (not failed over); " \
           "gapless standby on spare-1" in text
    assert "      gate: pre-buffered by spare-1" in text
    assert "      [no_standby_capacity] rec-1/dock is gapless but falls back" in text
    assert "    standby: 1 of 16 session(s), 4.0 of 5.0 Mbit/s planned" in text
    # An all-standard server gets no camera line: it is the default and needs no attention.
    rec2_line = text.index("  rec-2: protected")
    assert "cameras:" not in text[rec2_line:]


def test_no_gapless_camera_keeps_the_old_text() -> None:
    site = config()
    plain = site.model_copy(
        update={"recording_servers": [site.recording_servers[0].model_copy(
            update={"cameras": site.recording_servers[0].cameras[2:3]})]}
    )
    text = render_text(report(plain))
    assert "standby" not in text and "cameras:" not in text


def test_unprotected_server_shows_why_its_gapless_cameras_fall_back() -> None:
    result = report(config(), {})  # spare-1 unknown: down
    rec1 = server_json(result.to_dict(), "rec-1")
    assert rec1["protected"] is False and rec1["standby_spare"] is None
    codes = {c["fallback"]["code"] for c in rec1["gapless_cameras"]}
    assert codes == {"no_spare_available"}
    assert "gapless standby on no spare" in render_text(result)


def test_live_standby_shows_measurements_and_runtime_fallbacks() -> None:
    standby = {
        "spare-1": {
            "gate": StandbySession("rec-1", "buffering", buffered_s=9.5, kbps=3980.0),
        }
    }
    result = report(config(), standby=standby)
    cams = {c["camera"]: c for c in server_json(result.to_dict(), "rec-1")["gapless_cameras"]}
    assert cams["gate"]["spare"] == "spare-1"
    assert (cams["gate"]["state"], cams["gate"]["buffered_s"], cams["gate"]["kbps"]) == (
        "buffering", 9.5, 3980.0)
    assert cams["dock"]["spare"] is None
    assert cams["dock"]["fallback"]["code"] == "standby_not_running"
    text = render_text(result)
    assert "gate: pre-buffered by spare-1 (buffering, 9.5 s buffered, 3980 kbps)" in text
    assert "[standby_not_running] rec-1/dock" in text
    # The designation and planned cost do not move because a session is not running (yet).
    assert server_json(result.to_dict(), "rec-1")["standby_spare"] == "spare-1"

    standby["spare-1"]["dock"] = StandbySession("rec-1", "refused", error="401 Unauthorized")
    cams = {c["camera"]: c for c in
            server_json(report(config(), standby=standby).to_dict(), "rec-1")["gapless_cameras"]}
    assert cams["dock"]["fallback"]["code"] == "camera_refused_session"
    assert "refused spare-1's extra session (401 Unauthorized)" in cams["dock"]["fallback"][
        "message"]


def test_live_standby_not_checked_while_the_server_is_covered() -> None:
    covering = {"spare-1": SpareStatus(SpareState.COVERING, "rec-1")}
    result = report(config(), covering, standby={})
    cams = server_json(result.to_dict(), "rec-1")["gapless_cameras"]
    assert [c["spare"] for c in cams] == ["spare-1", "spare-1"]
    assert all(c["fallback"] is None for c in cams)


def test_parse_standby_is_lenient() -> None:
    assert parse_standby(None) == {}
    assert parse_standby({"cameras": []}) == {}
    parsed = parse_standby({"cameras": {
        "a": {"server": "rec-1", "state": "connecting", "buffered_s": 0, "kbps": True},
        "b": "garbage",
    }})
    assert parsed == {"a": StandbySession("rec-1", "connecting", 0.0, None, None)}


def test_live_report_reads_standby_from_etcd() -> None:
    coord = FakeCoord({
        layout.spare("spare-1"): {"state": "idle"},
        layout.standby("spare-1"): {"cameras": {
            "gate": {"server": "rec-1", "state": "buffering", "buffered_s": 4.0, "kbps": 4100},
            "dock": {"server": "rec-1", "state": "refused", "error": "too many sessions"},
        }},
    })
    applied = AppliedSite(config(), 3, LicenceMerge((LICENCE,), (), ()))
    data = report_json(live_report(coord, applied, NOW), applied)  # type: ignore[arg-type]
    cams = {c["camera"]: c for c in server_json(data, "rec-1")["gapless_cameras"]}
    assert (cams["gate"]["spare"], cams["gate"]["kbps"]) == ("spare-1", 4100.0)
    assert cams["dock"]["fallback"]["code"] == "camera_refused_session"
    assert "too many sessions" in cams["dock"]["fallback"]["message"]
    assert data["spares"][0]["standby"]["sessions"] == 2  # planned cost, whatever runs
    assert data["config_revision"] == 3
    # A spare that publishes no standby key while up: its planned sessions are not running.
    del coord.values[layout.standby("spare-1")]
    data = report_json(live_report(coord, applied, NOW), applied)  # type: ignore[arg-type]
    codes = {c["fallback"]["code"] for c in server_json(data, "rec-1")["gapless_cameras"]}
    assert codes == {"standby_not_running"}
    # Without licences nothing is protected, so nothing is placed either.
    bare = AppliedSite(config(), 3, LicenceMerge((), (), ()))
    data = report_json(live_report(coord, bare, NOW), bare)  # type: ignore[arg-type]
    codes = {c["fallback"]["code"] for c in server_json(data, "rec-1")["gapless_cameras"]}
    assert codes == {"server_not_protected"}
