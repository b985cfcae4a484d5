"""The spare's detection job: probe every unclaimed server, judge it, and pick what to claim.

Runs in the spare's idle tick (and between a leftover re-insert's segments). Per server, the
rules of `detection.judge` on the spare's own probe and the server's alive key; then the
designated spare's grace (the spare holding a gapless camera's pre-buffer claims first), then
eligibility (`site/eligibility.can_spare_take`, the rules the operator is shown). A `suspected`
event once per episode, a `refused` event once per reason and episode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from hotspare.failover.detection import ServerTrack, judge
from hotspare.failover.probe import HealthProber
from hotspare.failover.spare_work import SpareContext
from hotspare.failover.standby_pool import DESIGNATED_GRACE_SECONDS
from hotspare.site.eligibility import DOWN, SpareState, SpareStatus, can_spare_take
from hotspare.site.model import RecordingServerConfig
from hotspare.site.standby_plan import StandbyPlan
from hotspare.sitestate.snapshot import SiteState

ClaimFn = Callable[[RecordingServerConfig, str, ServerTrack], bool]
"""Try to claim a failed server (reason, its track); True when won."""


class Detector:
    def __init__(self, ctx: SpareContext, prober: HealthProber,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.prober = prober
        self.clock = clock
        self.tracks: dict[str, ServerTrack] = {}
        self._failed_at: dict[str, float] = {}  # server -> when first judged failed (grace)
        self._probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")

    def close(self) -> None:
        self._probes.shutdown(wait=False)

    def run(self, state: SiteState, states: dict[str, SpareStatus], plan: StandbyPlan,
            my_status: Callable[[], SpareStatus], claim: ClaimFn) -> bool:
        """One round over every recording server; True when a claim was won. After a win it
        goes on through the list: servers that failed together are then refused with "spare not
        free", so the operator learns of them at once."""
        ctx = self.ctx
        applied = ctx.applied_now()
        me = applied.config.failover_server(ctx.name)
        assert me is not None
        allotment = applied.allotment()
        servers = sorted(applied.config.recording_servers, key=lambda s: s.name)
        unclaimed = [s for s in servers if s.name not in state.claims]
        for server in servers:
            if server.name in state.claims:
                self.tracks.setdefault(server.name, ServerTrack()).clear()  # someone acts for it
        # In parallel: one hung host must not delay the detection of every other server.
        probes = dict(zip([s.name for s in unclaimed],
                          self._probes.map(lambda s: self.prober.probe(s.address), unclaimed),
                          strict=True))
        claimed = False
        for server in unclaimed:
            track = self.tracks.setdefault(server.name, ServerTrack())
            now = self.clock()
            verdict = judge(track, server.name in state.alive, probes[server.name], now,
                            ctx.settings.startup_grace_seconds)
            if verdict.suspect and not track.announced:
                track.announced = True
                ctx.events.emit("suspected", server.name, verdict.reason)
            if not verdict.failed:
                self._failed_at.pop(server.name, None)
                continue
            failed_at = self._failed_at.setdefault(server.name, now)
            designated = plan.designated(server.name)
            if (designated not in (None, ctx.name)
                    and states.get(designated, DOWN).state is SpareState.IDLE
                    and now - failed_at < DESIGNATED_GRACE_SECONDS):
                continue  # its gapless cameras' pre-buffer is there: let it claim first
            decision = can_spare_take(me, server, allotment, my_status())
            if not decision.allowed:
                text = "; ".join(f.message for f in decision.findings)
                if track.refusal_reported != text:
                    track.refusal_reported = text
                    ctx.events.emit("refused", server.name, f"{ctx.name} may not take over: "
                                    f"{text}", reasons=[r.value for r in decision.reasons])
                continue
            if claim(server, verdict.reason, track):
                self._failed_at.pop(server.name, None)
                claimed = True
        return claimed
