"""Gapless placement: which spare keeps a hot-standby session to each gapless camera.

Every node computes the plan from the same inputs (applied configuration, licence allotment, the
spares' states) and gets the same answer, so nothing is stored or negotiated: a spare reads its
own part (`for_spare`), and the report shows everyone's (docs/failover.md, "Gapless placement").

Rules, and why:
- A server gets standby only on a spare that could take it over (`can_spare_take`, the one place
  the eligibility rules live), so a standby never waits for a takeover that would be refused.
- All gapless cameras of one server go to one spare: the spare that takes a server over records
  all its cameras, so a standby split over two spares would leave half of them without one.
- A spare's standby sessions are capped by `standby_sessions` and by its failover camera
  allotment (a pre-buffered camera is a protected camera), its Mbit/s by `standby_mbps`.
- Servers are placed in name order, each on the candidate with the most remaining capacity (ties
  by name), so load spreads and adding a camera moves as little as possible. The spare already
  covering a server keeps it: it records those cameras, another spare's standby is of no use.
- Before capacity, a spare with room in its buffer store for the server (`site/spare_room.py`):
  one low on room, then one with none, only when no other may take the server. A pre-buffer on
  a spare that cannot write is lost at the takeover, or moves the claim to a spare without it;
  the states carry each spare's published room, so the plan moves when a spare gets low.
- What does not fit falls back to standard takeover, camera by camera in configuration order, each
  with a stable reason code and a sentence naming the numbers.
- While a server is covered (its spare records it, or re-inserts into it under its claim), its
  gapless cameras also get a *backup* standby on another idle spare, placed after every other
  server's standby with what capacity is left: should the covering spare die too, the spare that
  claims next has a pre-buffer (docs/failover.md, "Double failures"). What does not fit is no
  fallback: the covering spare records those cameras.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hotspare.config.models import CameraConfig
from hotspare.site.allotment import Allotment
from hotspare.site.eligibility import (
    DOWN,
    IDLE,
    Reason,
    SpareState,
    SpareStatus,
    can_spare_take,
    describe_state,
)
from hotspare.site.model import (
    FailoverServerConfig,
    RecordingServerConfig,
    SiteConfig,
    camera_mbps,
)

_StatusOf = Callable[[str], SpareStatus]


class FallbackReason(StrEnum):
    """Why a gapless camera is protected as standard instead; values are stable API codes."""

    SERVER_NOT_PROTECTED = "server_not_protected"
    """No spare could take the server over at all (platform, licences, too many cameras)."""
    NO_SPARE_AVAILABLE = "no_spare_available"
    """Spares could take it, but every one is down or covering another server."""
    NO_STANDBY_CAPACITY = "no_standby_capacity"
    """The designated spare's sessions, allotment or Mbit/s are used up."""
    CAMERA_REFUSED_SESSION = "camera_refused_session"
    """Live only: the camera refused the spare's extra RTSP session."""
    STANDBY_NOT_RUNNING = "standby_not_running"
    """Live only: the designated spare is up but does not report a session for the camera."""


@dataclass(frozen=True)
class StandbyAssignment:
    spare: str
    server: str
    camera: str
    mbps: float
    backup: bool = False
    """A second standby for a covered server's camera, on a spare other than the covering one."""


@dataclass(frozen=True)
class StandbyFallback:
    server: str
    camera: str
    reason: FallbackReason
    message: str


@dataclass(frozen=True)
class StandbyPlan:
    assignments: tuple[StandbyAssignment, ...]
    fallbacks: tuple[StandbyFallback, ...]

    def for_spare(self, spare: str) -> tuple[StandbyAssignment, ...]:
        return tuple(a for a in self.assignments if a.spare == spare)

    def designated(self, server: str) -> str | None:
        """The spare pre-buffering the server's gapless cameras (one spare per server; a covered
        server's backup standby is not its designated spare)."""
        return next((a.spare for a in self.assignments if a.server == server and not a.backup),
                    None)

    def backup(self, server: str) -> str | None:
        """The spare holding a covered server's backup standby, if any."""
        return next((a.spare for a in self.assignments if a.server == server and a.backup), None)

    def spare_cost(self, spare: str) -> tuple[int, float]:
        """(sessions, Mbit/s) the spare holds open before any failure."""
        mine = self.for_spare(spare)
        return len(mine), sum(a.mbps for a in mine)

    def assignment(self, camera: str) -> StandbyAssignment | None:
        return next((a for a in self.assignments if a.camera == camera and not a.backup), None)

    def fallback(self, camera: str) -> StandbyFallback | None:
        return next((f for f in self.fallbacks if f.camera == camera), None)


@dataclass
class _Room:
    """A spare's standby capacity while the plan is being made: what is left of each limit."""

    spare: FailoverServerConfig
    sessions_cap: int
    mbps_cap: float
    sessions: int = 0
    mbps: float = 0.0

    @property
    def free_sessions(self) -> int:
        return self.sessions_cap - self.sessions

    @property
    def free_mbps(self) -> float:
        return self.mbps_cap - self.mbps

    def fits(self, mbps: float) -> bool:
        return self.free_sessions >= 1 and mbps <= self.free_mbps + 1e-9

    def take(self, mbps: float) -> None:
        self.sessions += 1
        self.mbps += mbps


def standby_session_cap(spare: FailoverServerConfig, allotment: Allotment) -> int:
    """Most standby sessions a spare holds: its stated capacity, lowered by its allotment."""
    return min(spare.standby_sessions, allotment.of(spare.name))


def plan_standby(
    config: SiteConfig,
    allotment: Allotment,
    spare_states: Mapping[str, SpareStatus] | None = None,
) -> StandbyPlan:
    """The placement for the whole site. Without `spare_states` every spare counts as up and idle
    (offline validation); with them, a spare missing from the mapping counts as down."""

    def status(name: str) -> SpareStatus:
        return IDLE if spare_states is None else spare_states.get(name, DOWN)

    spares = sorted(config.failover_servers, key=lambda spare: spare.name)
    rooms = {
        spare.name: _Room(spare, standby_session_cap(spare, allotment), spare.standby_mbps)
        for spare in spares
    }
    assignments: list[StandbyAssignment] = []
    fallbacks: list[StandbyFallback] = []
    covered: list[tuple[RecordingServerConfig, list[_Room]]] = []
    for server in sorted(config.recording_servers, key=lambda server: server.name):
        cameras = server.gapless_cameras()
        if not cameras:
            continue
        able = [
            spare
            for spare in spares
            if can_spare_take(spare, server, allotment, status(spare.name)).allowed
        ]
        if not able:
            reason, why = _no_candidate(server, spares, allotment, status)
            fallbacks.extend(
                StandbyFallback(
                    server.name, c.id, reason, fallback_sentence(server.name, c.id, why)
                )
                for c in cameras
            )
            continue
        room = _best_room(server, cameras, [rooms[spare.name] for spare in able], status)
        placed, left = _fill(room, server, cameras)
        assignments.extend(placed)
        fallbacks.extend(left)
        if _covers(status(room.spare.name), server):
            covered.append((server, [rooms[s.name] for s in able if s is not room.spare]))
    for server, others in covered:
        if others:
            room = _best_room(server, server.gapless_cameras(), others, status)
            placed, _left = _fill(room, server, server.gapless_cameras(), backup=True)
            assignments.extend(placed)
    return StandbyPlan(tuple(assignments), tuple(fallbacks))


def _covers(status: SpareStatus, server: RecordingServerConfig) -> bool:
    return status.state is SpareState.COVERING and status.covering == server.name


def _no_candidate(
    server: RecordingServerConfig,
    spares: Sequence[FailoverServerConfig],
    allotment: Allotment,
    status: _StatusOf,
) -> tuple[FallbackReason, str]:
    """Tell "nobody could ever take it" from "the spares that could are busy or down"."""
    could = [spare for spare in spares if can_spare_take(spare, server, allotment, IDLE).allowed]
    if could:
        busy = ", ".join(f"{spare.name} ({describe_state(status(spare.name))})" for spare in could)
        return FallbackReason.NO_SPARE_AVAILABLE, (
            f"every spare that could take {server.name} over is down or covering another "
            f"server: {busy}"
        )
    if not spares:
        return FallbackReason.SERVER_NOT_PROTECTED, Reason.NO_SPARES.text
    messages = _unique(
        finding.message
        for spare in spares
        for finding in can_spare_take(spare, server, allotment, IDLE).findings
    )
    return FallbackReason.SERVER_NOT_PROTECTED, (
        f"{server.name} cannot be failed over: {'; '.join(messages)}"
    )


def _best_room(
    server: RecordingServerConfig,
    cameras: Sequence[CameraConfig],
    rooms: Sequence[_Room],
    status: _StatusOf,
) -> _Room:
    """The spare covering the server first; then the one with most buffer room for it (enough,
    low, none); then the one that holds most of its cameras, then the most free sessions, then
    the most free Mbit/s, then name."""

    def key(room: _Room) -> tuple[bool, int, int, int, float, str]:
        covering = status(room.spare.name)
        is_covering = _covers(covering, server)
        probe = _Room(room.spare, room.sessions_cap, room.mbps_cap, room.sessions, room.mbps)
        fitting = sum(1 for camera in cameras if _try(probe, camera))
        return (not is_covering, covering.room_level(server), -fitting, -room.free_sessions,
                -room.free_mbps, room.spare.name)

    return min(rooms, key=key)


def _try(room: _Room, camera: CameraConfig) -> bool:
    mbps = camera_mbps(camera)
    if not room.fits(mbps):
        return False
    room.take(mbps)
    return True


def _fill(
    room: _Room, server: RecordingServerConfig, cameras: Sequence[CameraConfig],
    backup: bool = False,
) -> tuple[list[StandbyAssignment], list[StandbyFallback]]:
    """Place cameras in configuration order; one that does not fit is skipped, not the rest."""
    placed: list[StandbyAssignment] = []
    left: list[StandbyFallback] = []
    for camera in cameras:
        mbps = camera_mbps(camera)
        if _try(room, camera):
            placed.append(StandbyAssignment(room.spare.name, server.name, camera.id, mbps,
                                            backup))
        else:
            why = _full(room, mbps)
            left.append(
                StandbyFallback(
                    server.name,
                    camera.id,
                    FallbackReason.NO_STANDBY_CAPACITY,
                    fallback_sentence(server.name, camera.id, why),
                )
            )
    return placed, left


def _full(room: _Room, mbps: float) -> str:
    """Which of the spare's limits the camera would break, with the numbers."""
    spare = room.spare
    if room.free_sessions < 1:
        limit = (
            f"standby_sessions = {spare.standby_sessions}"
            if room.sessions_cap == spare.standby_sessions
            else f"its allotment of {room.sessions_cap} failover camera licence(s)"
        )
        return (
            f"{spare.name}, the designated spare, already holds {room.sessions} standby "
            f"session(s), the most it may ({limit})"
        )
    return (
        f"{spare.name}, the designated spare, has {room.free_mbps:.1f} of "
        f"{room.mbps_cap:.1f} Mbit/s standby capacity left and the camera needs {mbps:.1f}"
    )


def fallback_sentence(server: str, camera: str, why: str) -> str:
    """One wording for every fallback, planned or seen live, so the operator reads them alike."""
    return (
        f"{server}/{camera} is gapless but falls back to standard takeover "
        f"(the claim and one GOP are lost on failure): {why}"
    )


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
