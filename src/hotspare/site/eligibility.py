"""Who is protected, and which spare may take whom: the one place these rules live.

The spares' takeover decision (`can_spare_take`) and every report (`evaluate_server`, and
`hotspare.site.report`) call these functions, so what the operator is shown is exactly what a spare
will do when a server fails. Pure functions: the caller supplies configuration, licence pool and the
spares' current states.

A spare whose state is not known is treated as down: a report must never call a server protected on
the strength of a spare nobody has heard from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hotspare.site.allotment import Allotment, allot
from hotspare.site.model import FailoverServerConfig, Platform, RecordingServerConfig
from hotspare.site.pool import LicencePool
from hotspare.site.spare_room import RoomLevel, SpareRoom


class Reason(StrEnum):
    """Why a server is unprotected or a spare may not take it; values are stable API codes."""

    NETBSD = "netbsd"
    FRAME_GRABBER = "frame_grabber"
    TOO_MANY_CAMERAS = "too_many_cameras"
    NO_SPARES = "no_spares"
    NO_LICENSED_SPARE = "no_licensed_spare"
    NO_FREE_SPARE = "no_free_spare"
    SPARE_UNLICENSED = "spare_unlicensed"
    SPARE_NOT_FREE = "spare_not_free"
    SPARE_BUFFER_LOW = "spare_buffer_low"
    SPARE_NO_ROOM = "spare_no_room"

    @property
    def text(self) -> str:
        return _REASON_TEXT[self]


_REASON_TEXT: dict[Reason, str] = {
    Reason.NETBSD: "NetBSD servers cannot be failed over",
    Reason.FRAME_GRABBER: "servers with frame-grabber inputs cannot be failed over",
    Reason.TOO_MANY_CAMERAS: (
        "it has more cameras than a spare's allotment of failover camera licences"
    ),
    Reason.NO_SPARES: "the site has no failover servers",
    Reason.NO_LICENSED_SPARE: "no failover server holds a failover-server licence",
    Reason.NO_FREE_SPARE: "every spare that could take it over is down or covering another server",
    Reason.SPARE_UNLICENSED: "this spare holds no failover-server licence",
    Reason.SPARE_NOT_FREE: "this spare is down or already covering another server",
    Reason.SPARE_BUFFER_LOW: (
        "a spare that would cover it has room for less than its buffer_warn_seconds of its video"
    ),
    Reason.SPARE_NO_ROOM: "a spare that would cover it has no room left to record its video",
}


@dataclass(frozen=True)
class Finding:
    """A reason with this case's specifics (counts, names) filled in for the operator."""

    reason: Reason
    message: str


class SpareState(StrEnum):
    IDLE = "idle"
    COVERING = "covering"
    DOWN = "down"


@dataclass(frozen=True)
class SpareStatus:
    state: SpareState
    covering: str | None = None
    """The recording server this spare is standing in for, when `state` is COVERING."""
    room: SpareRoom | None = None
    """Its buffer store's room as it last published it; None: not known (an older node)."""

    def room_level(self, server: RecordingServerConfig) -> RoomLevel:
        """Unknown room counts as enough: only what a spare said about its disk moves anything."""
        return RoomLevel.OK if self.room is None else self.room.level_for(server)


IDLE = SpareStatus(SpareState.IDLE)
DOWN = SpareStatus(SpareState.DOWN)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    findings: tuple[Finding, ...] = ()

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(finding.reason for finding in self.findings)


@dataclass(frozen=True)
class ServerProtection:
    """One server's line of the protection report: protected now or not, and why.

    Not to be confused with a camera's protection *mode* (`ProtectionMode`: gapless, standard,
    none), which is a setting; this is a verdict computed from the site's state.
    """

    server: str
    protected: bool
    findings: tuple[Finding, ...]
    candidate_spares: tuple[str, ...]
    """Spares that could take the server over now, best first."""
    covered_by: str | None = None
    """The spare standing in for this server right now, if any."""
    warnings: tuple[Finding, ...] = ()
    """Protection problems short of "unprotected": a spare that would cover it is low on room
    or has none (`spare_room_findings`). Any makes the server `degraded`."""

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(finding.reason for finding in self.findings)

    @property
    def degraded(self) -> bool:
        return bool(self.warnings)


def spare_limit(spare: FailoverServerConfig, allotment: Allotment) -> int:
    """Most cameras this spare may take: its allotment, lowered by its capacity hint if set."""
    limit = allotment.of(spare.name)
    if spare.max_cameras is not None:
        limit = min(limit, spare.max_cameras)
    return limit


def _server_findings(server: RecordingServerConfig) -> list[Finding]:
    """Properties of the server itself that no spare, licence or state can change."""
    findings: list[Finding] = []
    if server.platform is Platform.NETBSD:
        findings.append(Finding(Reason.NETBSD, f"{server.name} runs NetBSD; {Reason.NETBSD.text}"))
    if server.frame_grabber_inputs > 0:
        findings.append(
            Finding(
                Reason.FRAME_GRABBER,
                f"{server.name} has {server.frame_grabber_inputs} frame-grabber input(s); "
                f"{Reason.FRAME_GRABBER.text}",
            )
        )
    return findings


def _has_cameras(server: RecordingServerConfig) -> str:
    """The camera count a spare's limit is held against, naming those left out (mode `none`):
    they are not failed over, so they use no failover camera licence."""
    counted = len(server.failover_cameras())
    left_out = len(server.cameras) - counted
    if not left_out:
        return f"{server.name} has {counted} cameras"
    return (
        f"{server.name} has {counted} cameras to fail over "
        f"(and {left_out} with protection none, not counted)"
    )


def _state(states: Mapping[str, SpareStatus], name: str) -> SpareStatus:
    return states.get(name, DOWN)


def _is_free_for(status: SpareStatus, server: str) -> bool:
    return status.state is SpareState.IDLE or (
        status.state is SpareState.COVERING and status.covering == server
    )


def can_spare_take(
    spare: FailoverServerConfig,
    server: RecordingServerConfig,
    allotment: Allotment,
    status: SpareStatus,
) -> Decision:
    """The takeover decision of one spare about one failed server.

    A spare already covering this very server may carry on; covering any other, it is not free.
    """
    findings = _server_findings(server)
    if not allotment.is_licensed(spare.name):
        findings.append(
            Finding(Reason.SPARE_UNLICENSED, f"{spare.name}: {Reason.SPARE_UNLICENSED.text}")
        )
    else:
        limit = spare_limit(spare, allotment)
        cameras = len(server.failover_cameras())
        if cameras > limit:
            findings.append(
                Finding(
                    Reason.TOO_MANY_CAMERAS,
                    f"{_has_cameras(server)}; {spare.name} may take at most {limit}",
                )
            )
    if not _is_free_for(status, server.name):
        detail = f"covering {status.covering}" if status.state is SpareState.COVERING else "down"
        findings.append(Finding(Reason.SPARE_NOT_FREE, f"{spare.name} is {detail}"))
    return Decision(allowed=not findings, findings=tuple(findings))


def evaluate_server(
    server: RecordingServerConfig,
    spares: Sequence[FailoverServerConfig],
    spare_states: Mapping[str, SpareStatus],
    pool: LicencePool,
) -> ServerProtection:
    """Is `server` protected now, and if not, every reason why.

    Candidates are ordered best fit first (smallest limit that still fits, then name), so large
    spares stay free for the large servers that only they can take.
    """
    allotment = allot(pool, (spare.name for spare in spares))
    findings = _server_findings(server)
    cameras = len(server.failover_cameras())
    licensed = [spare for spare in spares if allotment.is_licensed(spare.name)]
    fitting = [spare for spare in licensed if cameras <= spare_limit(spare, allotment)]
    if not spares:
        findings.append(Finding(Reason.NO_SPARES, Reason.NO_SPARES.text))
    elif not licensed:
        findings.append(
            Finding(
                Reason.NO_LICENSED_SPARE,
                f"{Reason.NO_LICENSED_SPARE.text} (the site has {pool.failover_server_licences})",
            )
        )
    elif not fitting:
        largest = max(spare_limit(spare, allotment) for spare in licensed)
        findings.append(
            Finding(
                Reason.TOO_MANY_CAMERAS,
                f"{_has_cameras(server)}; the most any licensed spare may take is {largest}",
            )
        )
    covered_by = next(
        (
            spare.name
            for spare in spares
            if _state(spare_states, spare.name).state is SpareState.COVERING
            and _state(spare_states, spare.name).covering == server.name
        ),
        None,
    )
    free = [
        spare for spare in fitting if _is_free_for(_state(spare_states, spare.name), server.name)
    ]
    if fitting and not free:
        busy = ", ".join(
            f"{spare.name} ({describe_state(_state(spare_states, spare.name))})"
            for spare in fitting
        )
        findings.append(Finding(Reason.NO_FREE_SPARE, f"{Reason.NO_FREE_SPARE.text}: {busy}"))
    # The candidates come from the takeover decision itself, so report and behaviour cannot drift.
    able = [
        spare
        for spare in spares
        if can_spare_take(spare, server, allotment, _state(spare_states, spare.name)).allowed
    ]
    ordered = sorted(
        able,
        key=lambda spare: (spare.name != covered_by, spare_limit(spare, allotment), spare.name),
    )
    candidates = tuple(spare.name for spare in ordered)
    if not candidates and not findings:
        # Unreachable while the two rule sets agree; if they ever drift, never say "protected".
        findings.append(Finding(Reason.NO_FREE_SPARE, Reason.NO_FREE_SPARE.text))
    would_cover = ([covered_by] if covered_by else []) + [c for c in candidates if c != covered_by]
    return ServerProtection(
        server=server.name,
        protected=bool(candidates) and not findings,
        findings=tuple(findings),
        candidate_spares=candidates,
        covered_by=covered_by,
        warnings=spare_room_findings(server, would_cover, spare_states),
    )


def spare_room_findings(
    server: RecordingServerConfig,
    spares: Sequence[str],
    spare_states: Mapping[str, SpareStatus],
) -> tuple[Finding, ...]:
    """One finding per spare that would cover `server` (covering it, or able to take it now)
    whose buffer store is low on room or has none for it: the server is covered for less time
    than its spares promise, or by a spare that cannot record."""
    findings = []
    for name in spares:
        status = _state(spare_states, name)
        level = status.room_level(server)
        if status.room is None or level is RoomLevel.OK:
            continue
        text = status.room.describe_for(name, server)
        if level is RoomLevel.NO_ROOM:
            findings.append(Finding(Reason.SPARE_NO_ROOM, (
                f"{text}; it leaves {server.name} to another spare while one may take it, and "
                f"records nothing until there is room if none can")))
        else:
            findings.append(Finding(Reason.SPARE_BUFFER_LOW, text))
    return tuple(findings)


def leave_to(
    spare: FailoverServerConfig,
    server: RecordingServerConfig,
    spares: Sequence[FailoverServerConfig],
    allotment: Allotment,
    spare_states: Mapping[str, SpareStatus],
) -> tuple[str, ...]:
    """The claim rule for a spare without room: the other spares with room that may take the
    failed `server` now (`can_spare_take`), to which `spare` leaves it. Empty when `spare` has
    room, or when no other spare could take the server: then it claims all the same, since
    recording once there is room beats nobody recording at all."""
    if _state(spare_states, spare.name).room_level(server) is not RoomLevel.NO_ROOM:
        return ()
    return tuple(
        other.name
        for other in sorted(spares, key=lambda s: s.name)
        if other.name != spare.name
        and _state(spare_states, other.name).room_level(server) is not RoomLevel.NO_ROOM
        and can_spare_take(other, server, allotment, _state(spare_states, other.name)).allowed
    )


def describe_state(status: SpareStatus) -> str:
    """A spare's state in the operator's words: idle, down, covering <server>."""
    if status.state is SpareState.COVERING:
        return f"covering {status.covering}"
    return status.state.value
