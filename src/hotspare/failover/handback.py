"""The spare's handback job: notice that the original is back, and help it get there.

Handback happens when the original writes `alive/<server>` with `confirmed` *after* our claim
(`mod_revision > token`): a crashed server's key outlives its process until the lease runs out,
still saying `confirmed`. Then the recorder stops (committing its open segments) and re-insert
begins. A returning server that cannot get a camera's only session while we hold it says so in
`returning/<server>`; we let those cameras go, or the handback would never come.
"""

from __future__ import annotations

import logging

from hotspare.failover.spare_states import Confirmed
from hotspare.failover.spare_work import Coverage, SpareContext
from hotspare.sitestate.snapshot import SiteState

log = logging.getLogger("hotspare.failover.spare")


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


def due(ctx: SpareContext, cov: Coverage, state: SiteState) -> Confirmed | None:
    """Confirmed when the original confirmed after our claim; stops the recorder then."""
    alive = state.alive.get(cov.server)
    if cov.token is None or alive is None or not alive.confirmed_after(cov.token):
        return None
    ctx.events.emit("handback", cov.server,
                    f"{cov.server} confirmed a committed segment per camera; "
                    f"{ctx.name} stops recording")
    if cov.recorder is not None:
        cov.recorder.stop()
        cov.recorder = None
    return Confirmed()
