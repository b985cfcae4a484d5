"""The protection report: every recording server protected or not (and why), every spare's licence.

Computed, never stored: the CLI, the API and the web UI all call `protection_report` with the
current configuration, licences and spare states, so they cannot disagree with each other or with
the spares' takeover decisions (all rules are in `hotspare.site.eligibility`).

Gapless cameras (issue 6): the report shows the standby placement every spare computes
(`hotspare.site.standby_plan`), and, when the caller passes what the spares publish under
`standby/<spare>` (`standby`), whether each planned session is really running. It stays pure:
the live module reads etcd and hands the values in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotspare.config.models import ProtectionMode
from hotspare.site.allotment import Allotment, allot
from hotspare.site.eligibility import (
    DOWN,
    ServerProtection,
    SpareState,
    SpareStatus,
    evaluate_server,
    spare_limit,
)
from hotspare.site.licences import Licence
from hotspare.site.model import (
    FailoverServerConfig,
    RecordingServerConfig,
    SiteConfig,
    camera_mbps,
)
from hotspare.site.pool import LicencePool
from hotspare.site.spare_room import RoomLevel, SpareRoom, cover_rate
from hotspare.site.standby_plan import (
    FallbackReason,
    StandbyFallback,
    StandbyPlan,
    fallback_sentence,
    plan_standby,
    standby_session_cap,
)

REFUSED = "refused"
"""The standby state a spare publishes when the camera refused its extra session."""


@dataclass(frozen=True)
class StandbySession:
    """One camera's hot-standby session as its spare publishes it under `standby/<spare>`."""

    server: str
    state: str
    """buffering, connecting or refused."""
    buffered_s: float | None = None
    kbps: float | None = None
    error: str | None = None


StandbyStatus = Mapping[str, Mapping[str, StandbySession]]
"""Spare name → camera id → its session; a spare without a `standby/` key is absent."""


def parse_standby(value: object) -> dict[str, StandbySession]:
    """A `standby/<spare>` value, read leniently: a malformed camera entry is skipped (shown as
    not running) rather than failing the whole report."""
    cameras = value.get("cameras") if isinstance(value, dict) else None
    if not isinstance(cameras, dict):
        return {}
    return {
        str(camera): StandbySession(
            server=str(entry.get("server", "")),
            state=str(entry.get("state", "")),
            buffered_s=_number(entry.get("buffered_s")),
            kbps=_number(entry.get("kbps")),
            error=str(entry["error"]) if entry.get("error") else None,
        )
        for camera, entry in cameras.items()
        if isinstance(entry, dict)
    }


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class GaplessCamera:
    """A gapless camera: who pre-buffers it, or why it falls back to standard takeover."""

    camera: str
    mbps: float
    """The bitrate placement budgeted (its `mbps`, else the default)."""
    spare: str | None
    """The spare pre-buffering it; None when it falls back."""
    fallback: StandbyFallback | None = None
    state: str | None = None
    """Live only: the session's state as its spare reports it (buffering, connecting)."""
    buffered_s: float | None = None
    kbps: float | None = None


@dataclass(frozen=True)
class ServerCameras:
    """A server's cameras by protection mode, and its gapless cameras' standby."""

    server: str
    gapless: int
    standard: int
    none: int
    standby_spare: str | None
    """The designated spare: the one pre-buffering this server's gapless cameras."""
    cameras: tuple[GaplessCamera, ...]


@dataclass(frozen=True)
class SpareReport:
    name: str
    licensed: bool
    allotment: int
    limit: int
    """Most cameras it may take: allotment, lowered by its `max_cameras` hint."""
    state: SpareState
    covering: str | None
    standby_sessions: int = 0
    standby_mbps: float = 0.0
    """Planned standing cost: sessions held open and their Mbit/s, before any failure."""
    standby_max_sessions: int = 0
    """`standby_sessions` lowered by the allotment."""
    standby_max_mbps: float = 0.0
    room: SpareRoom | None = None
    """Its buffer store's room as it publishes it; None: not known (down, or an older node)."""
    room_server: RecordingServerConfig | None = None
    """The server whose cover the room is shown in: the one with the most video."""

    @property
    def room_level(self) -> RoomLevel | None:
        if self.room is None or self.room_server is None:
            return None
        return self.room.level_for(self.room_server)


@dataclass(frozen=True)
class ProtectionReport:
    site_id: str
    generated_at: datetime
    pool: LicencePool
    servers: tuple[ServerProtection, ...]
    spares: tuple[SpareReport, ...]
    unused_server_licences: int
    unallotted_camera_licences: int
    cameras: tuple[ServerCameras, ...] = ()
    """Per recording server, in the order of `servers`."""

    @property
    def unprotected(self) -> tuple[ServerProtection, ...]:
        return tuple(server for server in self.servers if not server.protected)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data for the API and `--json` output."""
        cameras = {entry.server: entry for entry in self.cameras}
        return {
            "site_id": self.site_id,
            "generated_at": self.generated_at.isoformat(),
            "pool": {
                "failover_server_licences": self.pool.failover_server_licences,
                "failover_camera_licences": self.pool.failover_camera_licences,
                "licence_ids": list(self.pool.licence_ids),
            },
            "unused_server_licences": self.unused_server_licences,
            "unallotted_camera_licences": self.unallotted_camera_licences,
            "servers": [
                {
                    "name": server.server,
                    "protected": server.protected,
                    "reasons": [
                        {"code": finding.reason.value, "message": finding.message}
                        for finding in server.findings
                    ],
                    "candidate_spares": list(server.candidate_spares),
                    "covered_by": server.covered_by,
                    "degraded": server.degraded,
                    "warnings": [
                        {"code": finding.reason.value, "message": finding.message}
                        for finding in server.warnings
                    ],
                    **_cameras_json(cameras.get(server.server)),
                }
                for server in self.servers
            ],
            "spares": [
                {
                    "name": spare.name,
                    "licensed": spare.licensed,
                    "allotment": spare.allotment,
                    "limit": spare.limit,
                    "state": spare.state.value,
                    "covering": spare.covering,
                    "standby": {
                        "sessions": spare.standby_sessions,
                        "mbps": round(spare.standby_mbps, 3),
                        "max_sessions": spare.standby_max_sessions,
                        "max_mbps": spare.standby_max_mbps,
                    },
                    "room": _room_json(spare),
                }
                for spare in self.spares
            ],
        }


def _room_json(spare: SpareReport) -> dict[str, Any] | None:
    room, server, level = spare.room, spare.room_server, spare.room_level
    if room is None or server is None or level is None:
        return None
    seconds = room.seconds_for(server)
    return {
        "free_bytes": room.free_bytes,
        "warn_seconds": room.warn_seconds,
        "server": server.name,
        "seconds": None if seconds == float("inf") else round(seconds, 1),
        "level": level.name.lower(),
        "low": level is not RoomLevel.OK,
        "message": room.describe_for(spare.name, server),
    }


def _cameras_json(entry: ServerCameras | None) -> dict[str, Any]:
    if entry is None:
        return {}
    return {
        "camera_modes": {"gapless": entry.gapless, "standard": entry.standard, "none": entry.none},
        "standby_spare": entry.standby_spare,
        "gapless_cameras": [
            {
                "camera": camera.camera,
                "mbps": camera.mbps,
                "spare": camera.spare,
                "state": camera.state,
                "buffered_s": camera.buffered_s,
                "kbps": camera.kbps,
                "fallback": None
                if camera.fallback is None
                else {"code": camera.fallback.reason.value, "message": camera.fallback.message},
            }
            for camera in entry.cameras
        ],
    }


def protection_report(
    site: SiteConfig,
    spare_states: Mapping[str, SpareStatus],
    licences: Sequence[Licence],
    now: datetime,
    standby: StandbyStatus | None = None,
) -> ProtectionReport:
    """Spares missing from `spare_states` count as down (see `hotspare.site.eligibility`).

    `standby` is what the spares publish under `standby/<spare>`; None (offline) shows the plan
    alone, a mapping (live) also turns planned sessions that are not running into fallbacks.
    """
    pool = LicencePool.at(licences, now)
    allotment = allot(pool, (spare.name for spare in site.failover_servers))
    plan = plan_standby(site, allotment, spare_states)
    servers = tuple(
        evaluate_server(server, site.failover_servers, spare_states, pool)
        for server in site.recording_servers
    )
    covered = {protection.server: protection.covered_by for protection in servers}
    cameras = tuple(
        server_cameras(server, plan, standby, covered[server.name])
        for server in site.recording_servers
    )
    largest = max(site.recording_servers, key=cover_rate, default=None)
    spares = tuple(
        _spare_report(spare, allotment, spare_states, plan, largest)
        for spare in sorted(site.failover_servers, key=lambda spare: spare.name)
    )
    return ProtectionReport(
        site_id=site.site.id,
        generated_at=now,
        pool=pool,
        servers=servers,
        spares=spares,
        unused_server_licences=allotment.unused_server_licences,
        unallotted_camera_licences=allotment.unallotted_camera_licences,
        cameras=cameras,
    )


def _spare_report(
    spare: FailoverServerConfig,
    allotment: Allotment,
    spare_states: Mapping[str, SpareStatus],
    plan: StandbyPlan,
    largest: RecordingServerConfig | None,
) -> SpareReport:
    name = spare.name
    sessions, mbps = plan.spare_cost(name)
    status = spare_states.get(name, DOWN)
    return SpareReport(
        name=name,
        licensed=allotment.is_licensed(name),
        allotment=allotment.of(name),
        limit=spare_limit(spare, allotment),
        state=status.state,
        covering=status.covering,
        standby_sessions=sessions,
        standby_mbps=mbps,
        standby_max_sessions=standby_session_cap(spare, allotment),
        standby_max_mbps=spare.standby_mbps,
        room=status.room,
        room_server=largest,
    )


def server_cameras(
    server: RecordingServerConfig,
    plan: StandbyPlan,
    standby: StandbyStatus | None,
    covered_by: str | None,
) -> ServerCameras:
    """A server's camera modes and its gapless cameras' standby, planned and (if given) live."""
    modes = [server.camera_protection_mode(camera) for camera in server.cameras]
    return ServerCameras(
        server=server.name,
        gapless=modes.count(ProtectionMode.GAPLESS),
        standard=modes.count(ProtectionMode.STANDARD),
        none=modes.count(ProtectionMode.NONE),
        standby_spare=plan.designated(server.name),
        cameras=tuple(
            _gapless_camera(server.name, camera.id, camera_mbps(camera), plan, standby, covered_by)
            for camera in server.gapless_cameras()
        ),
    )


def _gapless_camera(
    server: str,
    camera: str,
    mbps: float,
    plan: StandbyPlan,
    standby: StandbyStatus | None,
    covered_by: str | None,
) -> GaplessCamera:
    """Planned placement, checked against the spare's published sessions when they are given.

    Not checked while the server is covered: the covering spare records the camera itself, so a
    standby session is neither expected nor of use.
    """
    assignment = plan.assignment(camera)
    if assignment is None:
        return GaplessCamera(camera, mbps, None, plan.fallback(camera))
    if standby is None or covered_by is not None:
        return GaplessCamera(camera, mbps, assignment.spare)
    session = standby.get(assignment.spare, {}).get(camera)
    if session is None:
        why = (
            f"{assignment.spare}, the designated spare, is up but reports no standby session "
            "for it (starting, or its standby is not running)"
        )
        fallback = StandbyFallback(
            server, camera, FallbackReason.STANDBY_NOT_RUNNING,
            fallback_sentence(server, camera, why),
        )
        return GaplessCamera(camera, mbps, None, fallback)
    if session.state == REFUSED:
        why = f"the camera refused {assignment.spare}'s extra session" + (
            f" ({session.error})" if session.error else ""
        )
        fallback = StandbyFallback(
            server, camera, FallbackReason.CAMERA_REFUSED_SESSION,
            fallback_sentence(server, camera, why),
        )
        return GaplessCamera(camera, mbps, None, fallback, session.state)
    return GaplessCamera(
        camera, mbps, assignment.spare, None, session.state, session.buffered_s, session.kbps
    )


def render_text(report: ProtectionReport) -> str:
    """The operator's view: unprotected servers first-class, each with every reason."""
    pool = report.pool
    lines = [
        f"licences: {pool.failover_server_licences} failover-server, "
        f"{pool.failover_camera_licences} failover-camera"
        + (
            f" ({len(pool.licence_ids)} licence(s) valid)"
            if pool.licence_ids
            else " (no valid licence)"
        ),
    ]
    if report.unused_server_licences:
        lines.append(
            f"  {report.unused_server_licences} failover-server licence(s) unused "
            "(fewer spares than licences)"
        )
    if report.unallotted_camera_licences:
        lines.append(
            f"  {report.unallotted_camera_licences} failover-camera licence(s) unallotted "
            "(no licensed spare)"
        )
    lines.append("spares:")
    if not report.spares:
        lines.append("  (none)")
    for spare in report.spares:
        state = (
            f"covering {spare.covering}"
            if spare.state is SpareState.COVERING
            else spare.state.value
        )
        if spare.licensed:
            limit = f", may take up to {spare.limit}" if spare.limit != spare.allotment else ""
            licence = f"licensed, allotment {spare.allotment} cameras{limit}"
        else:
            licence = "UNLICENSED, covers nothing"
        lines.append(f"  {spare.name}: {licence}; {state}")
        if spare.licensed and any(entry.gapless for entry in report.cameras):
            lines.append(f"    {_standby_cost(spare)}")
        room = _room_line(spare)
        if room:
            lines.append(f"    {room}")
    lines.append("recording servers:")
    cameras = {entry.server: entry for entry in report.cameras}
    for server in report.servers:
        if server.protected:
            by = f", covered by {server.covered_by}" if server.covered_by else ""
            degraded = ", DEGRADED, because" if server.degraded else ""
            lines.append(
                f"  {server.server}: protected (spares: {', '.join(server.candidate_spares)})"
                f"{by}{degraded}"
            )
        else:
            lines.append(f"  {server.server}: UNPROTECTED, because")
            lines.extend(f"    - {finding.message}" for finding in server.findings)
        lines.extend(f"    - {finding.message}" for finding in server.warnings)
        entry = cameras.get(server.server)
        if entry is not None:
            lines.extend(_camera_lines(entry))
    return "\n".join(lines)


def _room_line(spare: SpareReport) -> str:
    """The spare's buffer room, in cover of the server with the most video."""
    level = spare.room_level
    if spare.room is None or spare.room_server is None or level is None:
        return ""
    mark = {RoomLevel.OK: "", RoomLevel.LOW: "LOW: ", RoomLevel.NO_ROOM: "NO ROOM: "}[level]
    return f"buffer room: {mark}{spare.room.describe_for(spare.name, spare.room_server)}"


def _standby_cost(spare: SpareReport) -> str:
    return (
        f"standby: {spare.standby_sessions} of {spare.standby_max_sessions} session(s), "
        f"{spare.standby_mbps:.1f} of {spare.standby_max_mbps:.1f} Mbit/s planned"
    )


def _camera_lines(entry: ServerCameras) -> list[str]:
    """Shown only for a server with a gapless or `none` camera: all-standard is the default, and
    a line saying so under every server would bury the lines that need attention."""
    if not entry.gapless and not entry.none:
        return []
    counts = [
        f"{count} {mode}"
        for count, mode in ((entry.gapless, "gapless"), (entry.standard, "standard"),
                            (entry.none, "none (not failed over)"))
        if count
    ]
    head = f"    cameras: {', '.join(counts)}"
    if entry.gapless:
        spare = entry.standby_spare or "no spare"
        head += f"; gapless standby on {spare}"
    return [head, *(f"      {_gapless_line(camera)}" for camera in entry.cameras)]


def _gapless_line(camera: GaplessCamera) -> str:
    if camera.fallback is not None:
        return f"[{camera.fallback.reason.value}] {camera.fallback.message}"
    measured = [
        text
        for text in (
            camera.state,
            f"{camera.buffered_s:.1f} s buffered" if camera.buffered_s is not None else None,
            f"{camera.kbps:.0f} kbps" if camera.kbps is not None else None,
        )
        if text
    ]
    live = f" ({', '.join(measured)})" if measured else ""
    return f"{camera.camera}: pre-buffered by {camera.spare}{live}"
