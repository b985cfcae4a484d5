"""The spare's detection job: probe its share of the unclaimed servers, judge, pick a claim.

The share (`probe_share`): with more than two idle spares each server is probed by two of them
(and by every spare once its lease is gone, by the spare that suspects it, and by its designated
spare), so a spare's round does not grow with the number of spares on a large site.

Runs in the spare's idle tick (and between a leftover re-insert's segments). Per server, the
rules of `detection.judge` on the spare's own probe, the server's alive key and, for a probe that
goes unanswered, a question asked through etcd (`asking/<server>/<spare>`, which a server that
still talks to etcd deletes at once); then the designated spare's grace (the spare holding a
gapless camera's pre-buffer claims first), then eligibility (`site/eligibility.can_spare_take`,
the rules the operator is shown). A `suspected` event once per episode, a `refused` event once
per reason and episode.

Each server is judged as soon as its own probe decides (`_ProbeRound`), not after the whole
round, and a refused connection is probed again at once on a fresh connection: a dead process is
claimed within one round (two refusals in a row, as before, but milliseconds apart instead of a
probe interval). Servers whose lease the watch saw go, or that are already suspected, are probed
first. A server that closed the spare's kept-alive probe connection (`probe_watch`: a dead
process's kernel does so at once) is `hurry`-ed: probed at once, mid-round too, so a dead process
is claimed in about the time of two connects and a claim whatever the round's length. The second
probe of a refused server runs on its own small pool, not behind the rest of the round.

The question goes out when a probe has been unanswered for `ASK_AFTER` of the probe timeout (a
probe on a LAN answers in milliseconds), and is judged when the probe times out, so a vanished
host is claimed one probe interval plus one probe timeout after it went silent (design decision
5), and a server gets most of the probe timeout to answer: after a short link drop, TCP resends
what was lost only after its retransmission timeout (≥ 200 ms on Linux). A server taken over
on silence that goes silent again within `FLAP_HOLD_SECONDS` (a flapping link) waits for its
lease instead: one takeover, not a storm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.hedging import HedgePolicy
from hotspare.failover.detection import EtcdAnswer, ServerTrack, Verdict, judge
from hotspare.failover.probe import HealthProber, ProbeKind, ProbeResult
from hotspare.failover.probe_share import share
from hotspare.failover.spare_work import SpareContext
from hotspare.failover.standby_pool import DESIGNATED_GRACE_SECONDS
from hotspare.site.allotment import Allotment
from hotspare.site.eligibility import DOWN, IDLE, SpareState, SpareStatus, can_spare_take
from hotspare.site.model import RecordingServerConfig, SiteConfig
from hotspare.site.standby_plan import StandbyPlan
from hotspare.sitestate.snapshot import SiteState

log = logging.getLogger("hotspare.failover.spare")

ClaimFn = Callable[[RecordingServerConfig, str, ServerTrack], bool]
"""Try to claim a failed server (reason, its track); True when won."""

FLAP_HOLD_SECONDS = 30.0
"""After a takeover on silence, how long the same server's silence alone does not claim again."""
ASK_AFTER = 0.3
"""A probe unanswered for this share of the probe timeout makes the spare ask through etcd."""
ANSWER_WINDOW = 0.5
"""The least share of the probe timeout a server gets to answer, from etcd's acknowledgement."""
ANSWER_ROUND_TRIPS = 3.0
"""And at least this many times what our own question took: the server's answer is a write too
(a raft commit, a disk sync on each member), so a slow etcd must not look like a silent server."""
ASK_BUDGET = 10.0
ASK_REFILL = 0.1
"""An early question (before the probe timed out) spends a token of a bucket of `ASK_BUDGET`;
a probe answered before `ASK_AFTER` earns `ASK_REFILL`. See `Detector.early_asks`."""
ASK_POLL_SECONDS = 0.05
PROBE_THREADS = 16
"""Probes in flight at once: enough that a few silent hosts (each holding a thread for the probe
timeout) do not queue the probes of the others."""
ANSWERED = (ProbeKind.RECORDING, ProbeKind.NOT_RECORDING, ProbeKind.ERROR)
"""Probe results that say the server was there when asked."""
URGENT_PROBE_THREADS = 2
"""For the probes that may decide a claim (a refused server's second probe, a hurried server):
they must not wait behind a round of a hundred others."""


class Detector:
    def __init__(self, ctx: SpareContext, prober: HealthProber,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.prober = prober
        self.clock = clock
        self.tracks: dict[str, ServerTrack] = {}
        self._failed_at: dict[str, float] = {}  # server -> when first judged failed (grace)
        self._silent_claim_at: dict[str, float] = {}  # server -> our last takeover on silence
        self._hold_reported: dict[str, float] = {}
        self._probes = ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="probe")
        self._urgent = ThreadPoolExecutor(max_workers=URGENT_PROBE_THREADS,
                                          thread_name_prefix="probe-urgent")
        self._hurried: set[str] = set()  # addresses to probe at once (`hurry`)
        self._hurried_lock = threading.Lock()
        self._share: tuple[tuple[int, int, tuple[str, ...]], Allotment, set[str]] | None = None
        self.probed = 0
        """Servers probed in the last round (for a benchmark)."""
        self.early_asks = HedgePolicy(ASK_BUDGET, ASK_REFILL)
        """An early question is a hedge on the probe, and loops like one: a loaded host answers
        probes late, each late probe asks (a put, a watch event, the server's delete), which
        loads etcd and the host more, so more probes are late. So early questions spend the
        same budget as keepalive hedges; without a token the question waits for the probe
        timeout (a vanished host is then claimed ~`ASK_AFTER` of the timeout later)."""

    def close(self) -> None:
        self._probes.shutdown(wait=False)
        self._urgent.shutdown(wait=False)

    def hurry(self, address: str) -> None:
        """Probe the server at `address` at once: in the running round if there is one, else
        first in the next (the caller wakes the agent). Any thread."""
        with self._hurried_lock:
            self._hurried.add(address)

    def take_hurried(self) -> set[str]:
        with self._hurried_lock:
            hurried, self._hurried = self._hurried, set()
        return hurried

    def run(self, state: SiteState, states: dict[str, SpareStatus], plan: StandbyPlan,
            my_status: Callable[[], SpareStatus], claim: ClaimFn) -> bool:
        """One round over this spare's share of the servers; True when a claim was won. Each is
        judged as soon as its own probe says enough (a slow one delays no other's verdict), and
        one whose connection is refused is probed again at once, so a dead process is claimed
        within this round. After a win it goes on: servers that failed together are then refused
        with "spare not free", so the operator learns of them at once."""
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
        mine = self._my_share(applied.config, applied.mod_revision, allotment, states)
        mine |= {a.server for a in plan.for_spare(ctx.name)}  # pre-buffered here: claims first
        hurried = self.take_hurried()
        unclaimed = [s for s in unclaimed if s.name in mine or s.address in hurried
                     or self._suspect(s.name, state)]
        self.probed = len(unclaimed)
        # Suspects first: a lease seen gone by the watch that woke us is probed before the rest.
        unclaimed.sort(key=lambda s: s.address not in hurried and not self._suspect(s.name, state))
        probes = _ProbeRound(self, unclaimed, hurried)
        unanswered: list[str] = []
        claimed = False
        for server, probe, answer in probes.results():
            track = self.tracks.setdefault(server.name, ServerTrack())
            now = self.clock()
            if answer is not None and not answer.answered and self._holding(server.name, now):
                answer = None  # flapping: the lease decides
            verdict = judge(track, server.name in state.alive, probe, now,
                            ctx.settings.startup_grace_seconds, answer)
            if answer is not None and not answer.answered:
                unanswered.append(server.name)
            if not verdict.silent:  # a silent host is claimed in this same round: `claimed` says
                self._announce(track, server.name, verdict)
            if not verdict.failed:
                self._failed_at.pop(server.name, None)
                if probe.kind is ProbeKind.REFUSED:  # twice in a row means gone: again now
                    probes.again(server, urgent=True)
                continue
            designated = plan.designated(server.name)
            waits_for_designated = (designated not in (None, ctx.name)
                                    and states.get(designated, DOWN).state is SpareState.IDLE)
            if waits_for_designated and verdict.silent and server.name in state.alive:
                # Silent but still leased: the designated spare may be in its flap hold (its
                # own takeover on silence was recent), waiting for the lease. Its grace starts
                # when the lease goes, so a flapping link never hands a gapless server to a
                # spare without its pre-buffer.
                self._failed_at[server.name] = now
                self._announce(track, server.name, verdict)
                continue
            failed_at = self._failed_at.setdefault(server.name, now)
            if waits_for_designated and now - failed_at < DESIGNATED_GRACE_SECONDS:
                self._announce(track, server.name, verdict)
                continue  # its gapless cameras' pre-buffer is there: let it claim first
            decision = can_spare_take(me, server, allotment, my_status())
            if not decision.allowed:
                text = "; ".join(f.message for f in decision.findings)
                if track.refusal_reported != text:
                    track.refusal_reported = text
                    ctx.events.emit("refused", server.name, f"{ctx.name} may not take over: "
                                    f"{text}", reasons=[r.value for r in decision.reasons])
                self._announce(track, server.name, verdict)
                continue
            if claim(server, verdict.reason, track):
                self._failed_at.pop(server.name, None)
                if verdict.silent:
                    self._silent_claim_at[server.name] = now
                claimed = True
            else:
                self._announce(track, server.name, verdict)
        self._withdraw(unanswered)
        return claimed

    def _my_share(self, config: SiteConfig, revision: int, allotment: Allotment,
                  states: dict[str, SpareStatus]) -> set[str]:
        """The servers this spare probes by the share (`probe_share`), kept while the
        configuration, the allotment and the set of idle spares stay the same."""
        idle = tuple(sorted(name for name, status in states.items()
                            if status.state is SpareState.IDLE
                            and config.failover_server(name) is not None))
        key = (revision, id(config), idle)
        if self._share is not None and self._share[0] == key and self._share[1] == allotment:
            return set(self._share[2])
        servers = {s.name: s for s in config.recording_servers}

        def may_take(spare: str, server: str) -> bool:
            spare_config = config.failover_server(spare)
            return spare_config is not None and can_spare_take(
                spare_config, servers[server], allotment, IDLE).allowed

        mine = share(self.ctx.name, servers, idle, may_take)
        self._share = (key, allotment, mine)
        return set(mine)

    def _suspect(self, server: str, state: SiteState) -> bool:
        track = self.tracks.get(server)
        return server not in state.alive or (track is not None and (
            track.suspect_since is not None or track.refused_in_a_row > 0))

    def _announce(self, track: ServerTrack, server: str, verdict: Verdict) -> None:
        """The `suspected` event, once per episode."""
        if verdict.suspect and not track.announced:
            track.announced = True
            self.ctx.events.emit("suspected", server, verdict.reason)

    def _withdraw(self, servers: list[str]) -> None:
        """Our unanswered questions, after the claims (not in a claim's way)."""
        for server in servers:
            try:
                self.ctx.site.withdraw_question(server, self.ctx.name)
            except CoordinationError as exc:
                log.warning("could not withdraw the question to %s (%s); it deletes it when "
                            "it sees it", server, exc)

    def _ask(self, server: str) -> tuple[float, float] | None:
        sent = time.monotonic()
        try:
            self.ctx.site.ask(server, self.ctx.name)
        except CoordinationError as exc:
            log.warning("cannot ask %s through etcd whether it is alive (%s); its lease decides",
                        server, exc)
            return None
        acknowledged = time.monotonic()
        return acknowledged, acknowledged - sent

    def _answer_due(self, asked: tuple[float, float]) -> float:
        """When the server's answer to our question is due: from etcd's acknowledgement it gets
        at least `ANSWER_WINDOW` of the probe timeout and `ANSWER_ROUND_TRIPS` times what the
        question took."""
        asked_at, took = asked
        return asked_at + max(self.ctx.settings.probe_timeout_seconds * ANSWER_WINDOW,
                              ANSWER_ROUND_TRIPS * took)

    def _answer(self, server: str, asked: tuple[float, float]) -> EtcdAnswer | None:
        """Whether the server deleted our question (read once its answer is due). None when etcd
        cannot tell us: the lease decides."""
        try:
            unanswered = self.ctx.site.unanswered(server, self.ctx.name)
            waited = time.monotonic() - asked[0]
        except CoordinationError as exc:
            log.warning("cannot read %s's answer through etcd (%s); its lease decides",
                        server, exc)
            return None
        return EtcdAnswer(not unanswered, waited)

    def _holding(self, server: str, now: float) -> bool:
        """True within the flap hold of our last takeover of `server` on silence; says so once."""
        since = self._silent_claim_at.get(server)
        if since is None or now - since >= FLAP_HOLD_SECONDS:
            return False
        if self._hold_reported.get(server) != since:
            self._hold_reported[server] = since
            self.ctx.events.emit(
                "suspected", server,
                f"{server} went silent again {now - since:.1f} s after {self.ctx.name} took it "
                f"over on silence: its link flaps. For {FLAP_HOLD_SECONDS - (now - since):.0f} s "
                "more a takeover waits for its lease; check its network link", flapping=True)
        return True


class _ProbeRound:
    """One round's probes, in parallel (one hung host must not delay the detection of the
    others), handed out as each becomes decidable: at once for an answer or a refusal; for a
    timeout, once the server's answer to the question asked through etcd is due. A probe still
    unanswered after `ASK_AFTER` of the probe timeout has its question asked meanwhile, so the
    answer is due about when the probe times out; a spare too busy to ask in time asks then."""

    def __init__(self, detector: Detector, servers: list[RecordingServerConfig],
                 hurried: Collection[str] = ()) -> None:
        self._detector = detector
        self._by_address = {server.address: server for server in servers}
        self._after_flight: set[str] = set()  # hurried while a probe of theirs was in flight
        self._for_next: set[str] = set()  # hurried, not in this round: for the next one
        self._pending: dict[Future[ProbeResult], RecordingServerConfig] = {}
        self._started: dict[str, float] = {}
        self._asked: dict[str, tuple[float, float]] = {}
        self._withheld: set[str] = set()  # no early question: the budget was empty
        self._due: dict[str, tuple[RecordingServerConfig, ProbeResult, tuple[float, float]]] = {}
        self._ask_after = detector.ctx.settings.probe_timeout_seconds * ASK_AFTER
        for server in servers:
            self.again(server, urgent=server.address in hurried)

    def again(self, server: RecordingServerConfig, urgent: bool = False) -> None:
        """Probe `server` (again) in this round; `urgent` on the small pool of its own."""
        self._started.pop(server.name, None)
        self._asked.pop(server.name, None)
        self._withheld.discard(server.name)
        pool = self._detector._urgent if urgent else self._detector._probes
        self._pending[pool.submit(self._probe, server)] = server

    def _hurry(self) -> None:
        """Servers hurried since the round began: probed again at once. One with a probe in
        flight is probed again only if that probe comes back answered (it may have been answered
        just before the close); a refusal or a timeout goes its usual way. Others hurried are not
        in this round (claimed meanwhile, or not in this spare's share): kept for the next round,
        which probes every hurried server that is unclaimed. Dropping them lost the close of a
        server whose probers had just changed: the spare that saw it no longer probed it, and
        the new probers had no connection to watch yet (a 200-server crash claimed after 8.6 s
        instead of ~0.2 s)."""
        hurried = self._detector.take_hurried()
        if not hurried:
            return
        busy = {server.name for server in self._pending.values()} | set(self._due)
        for address in hurried:
            server = self._by_address.get(address)
            if server is None:
                self._for_next.add(address)
                continue
            if server.name in busy:
                self._after_flight.add(server.name)
            else:
                self.again(server, urgent=True)

    def _probe(self, server: RecordingServerConfig) -> ProbeResult:
        self._started[server.name] = time.monotonic()
        return self._detector.prober.probe(server.address)

    def results(self) -> Iterator[tuple[RecordingServerConfig, ProbeResult, EtcdAnswer | None]]:
        """(server, probe, the answer through etcd if a question was asked) as each is ready."""
        try:
            yield from self._results()
        finally:
            for address in self._for_next:
                self._detector.hurry(address)

    def _results(self) -> Iterator[tuple[RecordingServerConfig, ProbeResult, EtcdAnswer | None]]:
        detector = self._detector
        while self._pending or self._due:
            self._hurry()
            now = time.monotonic()
            for name, (server, probe, question) in list(self._due.items()):
                if detector._answer_due(question) <= now:
                    del self._due[name]
                    yield server, probe, detector._answer(name, question)
            wait_for = ASK_POLL_SECONDS
            if self._due:
                next_due = min(detector._answer_due(a) for _s, _p, a in self._due.values())
                wait_for = min(wait_for, max(0.0, next_due - time.monotonic()))
            if not self._pending:
                time.sleep(wait_for)
                continue
            done, _ = wait(list(self._pending), timeout=wait_for, return_when=FIRST_COMPLETED)
            for future in done:
                server = self._pending.pop(future)
                probe = future.result()
                if self._prompt(server.name, probe):
                    detector.early_asks.earn()
                if server.name in self._after_flight and probe.kind in ANSWERED:
                    self._after_flight.discard(server.name)
                    self.again(server, urgent=True)  # answered before it closed: ask again
                if probe.kind is ProbeKind.TIMEOUT:
                    asked: tuple[float, float] | None = (self._asked.get(server.name)
                                                         or detector._ask(server.name))
                    if asked is not None:
                        self._due[server.name] = (server, probe, asked)
                        continue
                yield server, probe, None
            self._ask_overdue()

    def _prompt(self, name: str, probe: ProbeResult) -> bool:
        """Answered (or refused) before a question would have been due."""
        since = self._started.get(name)
        return (probe.kind is not ProbeKind.TIMEOUT and since is not None
                and time.monotonic() - since < self._ask_after)

    def _ask_overdue(self) -> None:
        now = time.monotonic()
        for server in list(self._pending.values()):
            since = self._started.get(server.name)  # None: queued behind others, not yet sent
            if (server.name not in self._asked and server.name not in self._withheld
                    and since is not None and now - since >= self._ask_after):
                if not self._detector.early_asks.take():
                    self._withheld.add(server.name)  # asked if its probe times out
                    continue
                acknowledged = self._detector._ask(server.name)
                if acknowledged is not None:
                    self._asked[server.name] = acknowledged
