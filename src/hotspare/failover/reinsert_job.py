"""The spare's re-insert job: drive a `Reinserter` in slices, between checks of the site.

Each tick first looks at the original's alive key (gone: it failed again, and under our claim we
cover it again), then runs re-insert steps for at most REINSERT_SLICE_SECONDS, so the loop stays
responsive (a leftover re-insert yields to a takeover between slices). A process killed and
restarted within its lease never loses its alive key, so under a claim a connection the original
refuses is tried again at once, and refused twice in a row (the detector's proof of a dead
process) it failed again too: covered from the standby sessions held through the re-insert, and
handed back only to a new process (`Coverage.dead_boot`). The answers:

- buffer empty: delete the progress key, release the claim (fenced: only ours), `done`;
- a fenced write or upload refused (409 `stale_fencing_token`): the claim is gone, stand down;
- the original cannot check the token now (503 `fencing_unavailable`) or an upload failed:
  pause and retry — etcd trouble on the original's side is not a lost claim;
- the original's disk is full (507 `insufficient_storage`): pause longer and retry; the buffer
  keeps the video meanwhile;
- the original has not recorded past the next segment yet (`NotYet`): next tick;
- the original refuses the sender itself (403 `node_identity_required`: this node has no own
  credential, `[api] node_token_file`; `not_claim_holder`; `no_buffer_record`: a leftover whose
  `buffers/<server>/<spare>` record is gone; 409 `fencing_required`): pause and
  retry, logged with the original's reason — the buffer keeps the video until that is fixed.

Uploads carry this node's own credential (`api_token` is `ApiSettings.outgoing_token()`), by which
the original knows the sender holds the claim (`hotspare.api.fencing`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

from hotspare.client.node_client import NodeApiError, NodeClient
from hotspare.coordination.errors import FencingError
from hotspare.failover.rate_limit import RateLimiter
from hotspare.failover.reinsert import FenceUnavailable, NotYet, Reinserter
from hotspare.failover.spare_states import BufferEmpty, FailedAgain, Refused, Signal
from hotspare.failover.spare_work import Coverage, SpareContext
from hotspare.sitestate.layout import FENCING_HEADER, fence
from hotspare.sitestate.snapshot import SiteState
from hotspare.tls import PeerTls

log = logging.getLogger("hotspare.failover.spare")

REINSERT_SLICE_SECONDS = 0.5
REPORT_EVERY_SECONDS = 2.0
PAUSE_SECONDS = 1.0
FULL_PAUSE_SECONDS = 30.0
"""Pause after the original answered 507 `insufficient_storage`: its disk frees only as its
retention runs (every `interval_seconds`) or an operator acts; the buffer keeps the video."""
"""After a failed upload, or the original's 503 (its Retry-After is 1 s)."""


REFUSALS_DEAD = 2
"""Connections refused in a row that prove the original's process gone (as `spare_detect`)."""


def _refused(exc: BaseException) -> bool:
    """A refused connection somewhere in the chain (httpx wraps the socket's error twice)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class ReinsertJob:
    def __init__(self, ctx: SpareContext, api_token: str, peers: PeerTls, limiter: RateLimiter,
                 pause: Callable[[float], None]) -> None:
        self.ctx = ctx
        self.api_token = api_token
        self.peers = peers
        self.limiter = limiter
        self.pause = pause
        self.connect: Callable[[str, str, int | None], NodeClient] = self._client
        """(address, server, token) -> a client of the original; replaced in unit tests."""

    def _client(self, address: str, server: str, token: int | None) -> NodeClient:
        client = NodeClient.for_peer(self.peers, address, self.api_token, 30.0)
        if token is not None:
            client._http.headers.update({FENCING_HEADER: fence(server, token)})
        return client

    def begin(self, cov: Coverage) -> bool:
        """Start re-inserting `cov`'s buffer; False when its server left the site."""
        ctx = self.ctx
        target = ctx.applied_now().config.recording_server(cov.server)
        if target is None:
            log.warning("buffer for %s, which is no longer in the site; kept", cov.server)
            return False
        client = self.connect(target.address, cov.server, cov.token)
        cov.reinserter = Reinserter(ctx.site, cov.store, cov.server, ctx.name, ctx.url, client,
                                    cov.fence, self.limiter)
        cov.reinserter.start()
        ctx.view.show(cov.store, None, set())
        p = cov.reinserter.progress
        ctx.events.emit("reinserting", cov.server, f"re-inserting {p.done}/{p.total} segment(s) "
                        f"from {ctx.name} into {cov.server}", done=p.done, total=p.total)
        cov.last_report = time.monotonic()
        return True

    def tick(self, cov: Coverage, state: SiteState) -> tuple[Signal | None, bool]:
        """(what happened, more to do at once)."""
        r = cov.reinserter
        assert r is not None
        if cov.server not in state.alive:
            r.target.close()
            cov.reinserter = None
            return FailedAgain(), False
        deadline = time.monotonic() + REINSERT_SLICE_SECONDS
        try:
            while time.monotonic() < deadline:
                if r.step() is None:
                    return self._finish(cov), False
                cov.refused = 0
        except FencingError as exc:
            r.target.close()
            cov.reinserter = None
            return Refused(f"re-insert refused: {exc}"), False
        except NotYet:
            return None, False  # the original is still recording the time of the next segment
        except FenceUnavailable as exc:
            log.warning("re-insert into %s paused: %s", cov.server, exc)
            self.pause(PAUSE_SECONDS)
            return None, False
        except NodeApiError as exc:
            if exc.error == "insufficient_storage":
                log.warning("re-insert into %s paused for %.0f s: its disk is full (%s); the "
                            "video stays in this spare's buffer until it has room", cov.server,
                            FULL_PAUSE_SECONDS, exc.detail)
                self.pause(FULL_PAUSE_SECONDS)
            else:
                log.warning("re-insert into %s paused: %s", cov.server, exc)
                self.pause(PAUSE_SECONDS)
            return None, False
        except (httpx.HTTPError, OSError) as exc:
            if cov.token is not None and _refused(exc):
                cov.refused += 1
                if cov.refused < REFUSALS_DEAD:
                    log.info("re-insert into %s: connection refused (%s); trying again at once",
                             cov.server, exc)
                    return None, True
                alive = state.alive.get(cov.server)
                cov.dead_boot = alive.boot if alive is not None else None
                cov.refused = 0
                r.target.close()
                cov.reinserter = None
                log.warning("%s refused %d connections in a row during the re-insert: its "
                            "process is gone (its alive key may outlive it until its lease "
                            "ends); covering it again", cov.server, REFUSALS_DEAD)
                return FailedAgain(), False
            log.warning("re-insert into %s paused: %s", cov.server, exc)
            self.pause(PAUSE_SECONDS)
            return None, False
        now = time.monotonic()
        if now - cov.last_report >= REPORT_EVERY_SECONDS:
            cov.last_report = now
            p = r.progress
            self.ctx.events.emit("reinserting", cov.server, f"re-inserting {p.done}/{p.total}",
                                 done=p.done, total=p.total, bytes=p.bytes)
        return None, True

    def _finish(self, cov: Coverage) -> Signal:
        r = cov.reinserter
        assert r is not None
        p = r.progress
        try:
            r.finish()
        except FencingError as exc:
            r.target.close()
            cov.reinserter = None
            return Refused(f"re-insert refused: {exc}")
        r.target.close()
        cov.reinserter = None
        released = False
        if cov.token is not None:
            released = self.ctx.site.release(cov.server, cov.token)
        self.ctx.events.emit(
            "done", cov.server,
            f"re-insert from {self.ctx.name} complete: {p.done}/{p.total} segment(s), "
            f"{p.bytes} bytes ({p.duplicates} already held); "
            + ("claim released" if released else "no claim held"),
            done=p.done, total=p.total, bytes=p.bytes, duplicates=p.duplicates)
        return BufferEmpty()
