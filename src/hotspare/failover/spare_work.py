"""What the spare's jobs share: who the spare is (`SpareContext`) and the work in hand (`Coverage`).

The state (`spare_states`) says what the spare is doing; a `Coverage` holds the things that doing
it needs — the buffer store, the recorder while covering, the re-inserter while re-inserting —
and the bookkeeping of the jobs (heartbeat times, announced events, released cameras).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hotspare.config.models import CameraConfig, SiteMembership
from hotspare.failover import early_sessions
from hotspare.failover.reinsert import Fence, Reinserter
from hotspare.failover.spare_view import SpareView
from hotspare.recorder.engine import Recorder
from hotspare.recorder.worker import CameraWorker
from hotspare.sitestate.access import SiteAccess
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.events import EventSink
from hotspare.store.segment_store import SegmentStore


class AppliedSource(Protocol):
    """The node's live copy of the site configuration (`hotspare.sitestate.view.SiteView`)."""

    @property
    def current(self) -> AppliedSite | None: ...

    def maybe_reload(self) -> None: ...


@dataclass
class SpareContext:
    name: str
    url: str
    site: SiteAccess
    events: EventSink
    view: SpareView
    settings: SiteMembership
    applied: AppliedSource
    make_recorder: Callable[..., Recorder] = Recorder
    """The takeover recorder's constructor (`Recorder`); unit tests record nothing."""
    open_sessions: Callable[..., dict[str, CameraWorker]] = early_sessions.open_sessions
    """Opens a takeover's camera sessions at the claim (`early_sessions`); unit tests open none."""

    def applied_now(self) -> AppliedSite:
        applied = self.applied.current
        assert applied is not None, "the agent acts only with a site configuration"
        return applied


@dataclass
class Coverage:
    """The one server this spare acts for, and the claim it acts under (None: a leftover)."""

    server: str
    token: int | None
    store: SegmentStore
    recorder: Recorder | None = None
    claimed_at: float = 0.0
    recording_announced: bool = False
    last_heartbeat: float = 0.0
    reinserter: Reinserter | None = None
    last_report: float = 0.0
    cameras: tuple[CameraConfig, ...] = ()
    gapless_wanted: tuple[str, ...] = ()
    released: set[str] = field(default_factory=set)
    """Cameras let go because the returning server could not get a session for them."""
    early: dict[str, CameraWorker] = field(default_factory=dict)
    """Sessions opened at the claim, not yet adopted by the recorder (`early_sessions`)."""
    opened_at_claim: frozenset[str] = frozenset()
    """Cameras the recorder adopted from `early` (written from their first keyframe)."""
    marks: dict[str, int] = field(default_factory=dict)
    """The commit watermarks this spare last published for the server (wall µs per camera)."""
    marks_at: float = 0.0
    returned_at: float | None = None
    """When the original was first seen confirmed after our claim (the handback waits for the
    gapless cameras' standby sessions from then, `handback.due`)."""
    refused: int = 0
    """Connections the original refused in a row during the re-insert (`reinsert_job`)."""
    dead_boot: str | None = None
    """The boot of the original's process found dead by refused connections mid re-insert: its
    alive key outlives it, still saying `confirmed`, and must not hand back (`handback`)."""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def fence(self) -> Fence | None:
        return None if self.token is None else Fence(self.server, self.token)
