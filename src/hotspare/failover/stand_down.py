"""Standing down: stop acting for a server at once, and give its claim back.

A spare stands down when its claim is no longer its own (a fenced write refused, the original
refused a fenced upload), or may not be acted on (the server left the configuration). The buffer
stays and is re-inserted later without a claim. The claim is always offered back, fenced by the
token: if it is still ours (the original was behind, or wrong) every spare may cover that server
again at once; if it is not, etcd deletes nothing. A claim left behind would keep every spare off
the server until this spare restarted.
"""

from __future__ import annotations

import logging

from hotspare.coordination.errors import CoordinationError, FencingError
from hotspare.failover.early_sessions import close_sessions
from hotspare.failover.spare_states import Refused
from hotspare.failover.spare_work import Coverage, SpareContext
from hotspare.sitestate.values import Covering

log = logging.getLogger("hotspare.failover.spare")


def stand_down(ctx: SpareContext, cov: Coverage | None, server: str, token: int | None,
               why: Refused) -> None:
    refused = why.proven
    if token is not None and not refused:
        try:  # prove it: a write under the old token must now be refused
            ctx.site.heartbeat(server, Covering(ctx.name, token), None)
        except FencingError:
            refused = True
        except CoordinationError:
            pass
    released = False
    if token is not None:
        try:
            released = ctx.site.release(server, token)
        except CoordinationError as exc:
            log.warning("%s: claim on %s (token %s) not released (%s); it goes when our lease "
                        "expires", ctx.name, server, token, exc)
    if cov is not None:
        close_sessions(cov.early)  # opened at the claim, never adopted: they wrote nothing
        cov.early = {}
        if cov.recorder is not None:
            cov.recorder.stop()
        if cov.reinserter is not None:
            cov.reinserter.target.close()
    ctx.view.show(None, None, set())
    ctx.events.emit("stood_down", server,
                    f"{ctx.name} stands down for {server}: {why.reason}"
                    + ("; claim released" if released else ""),
                    token=token, stale_write_refused=refused)
