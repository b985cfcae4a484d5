"""The spare's handback job: notice that the original is back, and help it get there.

Handback happens when the original writes `alive/<server>` with `confirmed` *after* our claim
(`mod_revision > token`): a crashed server's key outlives its process until the lease runs out,
still saying `confirmed`. Then the recorder stops (committing its open segments) and re-insert
begins. A returning server that cannot get a camera's only session while we hold it says so in
`returning/<server>`; we let those cameras go, or the handback would never come.

The server's gapless cameras stay protected through the re-insert: before the recorder stops,
this spare opens standby sessions to them (`kept_standby`) and waits, at most
STANDBY_WAIT_SECONDS, until each pre-buffer holds STANDBY_READY_SECONDS, so that it reaches back
past the activation margin before the last frame this spare records. Should the server die
again mid re-insert, we cover it again from that pre-buffer (`takeover.start_recorder`), from
what either of us made durable last, and lose nothing.
"""

from __future__ import annotations

import logging
import time

from hotspare.config.models import CameraConfig
from hotspare.failover.spare_states import Confirmed
from hotspare.failover.spare_work import Coverage, SpareContext
from hotspare.failover.standby_pool import StandbyPool
from hotspare.failover.takeover import committed_until
from hotspare.recorder.worker import ACTIVATION_MARGIN_US
from hotspare.site.model import RecordingServerConfig
from hotspare.sitestate.snapshot import SiteState

log = logging.getLogger("hotspare.failover.spare")

STANDBY_READY_SECONDS = ACTIVATION_MARGIN_US / 1e6 + 0.25
"""Pre-buffer each standby session holds before the recorder stops: a cover again writes from
the end of what this spare committed minus the activation margin, and must find a keyframe there."""
STANDBY_WAIT_SECONDS = 10.0
"""Longest the handback waits for them (a session, a keyframe — cameras' GOPs run up to a few
seconds — and the margin): a camera that refuses one more session must not hold the handback up
for long; it is then handed back without one (a second failure during the re-insert costs it the
takeover window). Waiting costs no video: this spare records meanwhile."""


def release_blocked(ctx: SpareContext, cov: Coverage, state: SiteState) -> None:
    """Their video from now until the server connects is lost — a few seconds, against a
    handback that would otherwise never come."""
    asked = state.returning.get(cov.server)
    if asked is None or cov.token is None or asked.mod_revision <= cov.token:
        return
    new = (set(asked.blocked) & {c.id for c in cov.cameras}) - cov.released
    if new:
        cov.released |= new
        ctx.events.emit("released", cov.server,
                        f"{ctx.name} stops recording {', '.join(sorted(new))} so that "
                        f"{cov.server} can get their only session; the rest follows at the "
                        "handback", cameras=sorted(new))


def returned(cov: Coverage, state: SiteState) -> bool:
    """The original confirmed after our claim, from a process not found dead since."""
    alive = state.alive.get(cov.server)
    return (cov.token is not None and alive is not None and alive.confirmed_after(cov.token)
            and alive.boot != cov.dead_boot)


def kept_standby(ctx: SpareContext, cov: Coverage
                 ) -> list[tuple[RecordingServerConfig, CameraConfig]]:
    """The server's gapless cameras we record (not those released to it): at the handback
    they get standby sessions here, held through the re-insert."""
    applied = ctx.applied.current
    server = applied.config.recording_server(cov.server) if applied else None
    if server is None:
        return []
    return [(server, c) for c in server.gapless_cameras() if c.id not in cov.released]


def due(ctx: SpareContext, cov: Coverage, state: SiteState,
        standby: StandbyPool) -> Confirmed | None:
    """Confirmed when the original confirmed after our claim and the standby sessions of its
    gapless cameras (`kept_standby`, opened by the caller) are ready, or waited long enough;
    stops the recorder then."""
    if not returned(cov, state):
        cov.returned_at = None
        return None
    now = time.monotonic()
    if cov.returned_at is None:
        cov.returned_at = now
    ready = standby.buffering(cov.server, STANDBY_READY_SECONDS)
    if not ready and now - cov.returned_at < STANDBY_WAIT_SECONDS:
        return None
    kept = "" if ready else (f"; its gapless cameras' standby sessions here are not buffering "
                             f"after {STANDBY_WAIT_SECONDS:.0f} s, so a failure during the "
                             "re-insert would cost them the takeover window")
    ctx.events.emit("handback", cov.server,
                    f"{cov.server} confirmed a committed segment per camera; "
                    f"{ctx.name} stops recording" + kept, standby_ready=ready,
                    waited_s=round(now - cov.returned_at, 3))
    if cov.recorder is not None:
        workers = cov.recorder.workers()
        cov.recorder.stop()
        cov.recorder = None
        committed_until(cov, {cid: w.health() for cid, w in workers.items()})
    cov.returned_at = None
    return Confirmed()
