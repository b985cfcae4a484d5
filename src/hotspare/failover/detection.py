"""Deciding that a recording server has failed, from its lease and the spare's own probe.

Pure and clock-injected so every rule is unit-tested without etcd or sockets. The rules
(design decision 5, docs/design.md, docs/failover.md "Detection"):

- an answer saying every camera records vetoes a takeover, lease or not (the server lost etcd);
- connection refused twice in a row: the process is dead on a live host; take over at once,
  without waiting for the lease (goal: crash → claim within a second);
- timeout, and the server did not answer a question asked through etcd either (it did not delete
  `asking/<server>/<spare>` before the probe timed out): the host is silent to the spare and to
  etcd, as a host that lost power or its link; take over at once, without waiting for the lease
  (goal: link down → claim within a second, like a crash);
- timeout, but the server answered through etcd: it is cut off from this spare only, and still
  records; never taken over while its lease is held;
- timeout or unreachable otherwise: the host may be hung or cut off; take over only once its lease
  is gone;
- answering but not recording: take over once the lease is gone (the server drops it itself) and
  the state has lasted `grace` seconds, so a server that is still connecting at boot is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotspare.failover.probe import ProbeKind, ProbeResult

REFUSED_IN_A_ROW = 2


@dataclass(frozen=True)
class EtcdAnswer:
    """What became of the question a spare asked through etcd after its probe went unanswered."""

    answered: bool
    waited: float
    """Seconds the server had to answer (from etcd's acknowledgement of the question)."""


@dataclass(frozen=True)
class Verdict:
    failed: bool
    suspect: bool
    reason: str
    silent: bool = False
    """Failed on silence (probe and etcd), not on a lease or a refusal."""


@dataclass
class ServerTrack:
    """What one spare remembers about one server between probes."""

    suspect_since: float | None = None
    refused_in_a_row: int = 0
    announced: bool = False
    """A `suspected` event was emitted for the current episode."""
    refusal_reported: str | None = None
    """The eligibility refusal already reported for this episode (one event per reason)."""

    def clear(self) -> None:
        self.suspect_since = None
        self.refused_in_a_row = 0
        self.announced = False
        self.refusal_reported = None


def judge(track: ServerTrack, lease_present: bool, probe: ProbeResult, now: float,
          grace: float, asked: EtcdAnswer | None = None) -> Verdict:
    """Update `track` with one observation and say whether the server has failed. `asked`: the
    question asked through etcd in this round, if one was (only after a silent probe)."""
    if probe.kind is ProbeKind.RECORDING:
        track.clear()
        return Verdict(False, False, "recording (probe)")
    if probe.kind is ProbeKind.REFUSED:
        track.refused_in_a_row += 1
    else:
        track.refused_in_a_row = 0
    if probe.kind is ProbeKind.TIMEOUT and asked is not None:
        if track.suspect_since is None:
            track.suspect_since = now
        if not asked.answered:
            return Verdict(True, True, f"host silent: probe {probe.detail}, and no answer "
                           f"through etcd within {asked.waited:.2f} s", silent=True)
        if lease_present:
            return Verdict(False, True, f"probe {probe.detail}, but it answers through etcd "
                           "and holds its lease: cut off from this spare only, not taken over")
    if lease_present and probe.kind is not ProbeKind.REFUSED:
        # The server still holds its lease and answers or is merely slow: not yet.
        if probe.kind is ProbeKind.NOT_RECORDING:
            track.suspect_since = track.suspect_since if track.suspect_since is not None else now
            return Verdict(False, True, f"not recording, lease still held ({probe.detail})")
        track.suspect_since = track.suspect_since if track.suspect_since is not None else now
        return Verdict(False, True, f"probe {probe.kind.value}, lease still held ({probe.detail})")
    if track.suspect_since is None:
        track.suspect_since = now
    if probe.kind is ProbeKind.REFUSED:
        if track.refused_in_a_row >= REFUSED_IN_A_ROW:
            return Verdict(True, True, f"process gone: connection refused ({probe.detail})")
        return Verdict(False, True, "connection refused once")
    if probe.kind is ProbeKind.NOT_RECORDING:
        if now - track.suspect_since >= grace:
            waited = now - track.suspect_since
            return Verdict(True, True, f"alive but not recording for {waited:.1f} s, "
                           f"lease dropped ({probe.detail})")
        return Verdict(False, True, f"not recording, lease dropped ({probe.detail})")
    return Verdict(True, True, f"lease expired and probe {probe.kind.value} ({probe.detail})")
