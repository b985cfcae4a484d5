"""The spare's states and every transition between them, on one screen.

    Idle ──ClaimWon──▶ Covering(server, token) ──Confirmed──▶ Reinserting(server, token)
    Idle ──LeftoverReady──▶ Reinserting(server, None)          (a buffer left by a stand-down
                                                                 or an earlier run: no claim)
    Covering ──Refused──▶ Idle                                  (stand down, buffer kept)
    Reinserting(token) ──FailedAgain──▶ Covering(server, token) (we still hold the claim)
    Reinserting(None) ──FailedAgain──▶ Idle                     (nobody's claim: detection decides)
    Reinserting(None) ──ClaimWon──▶ Covering(other, token)      (a leftover yields to a takeover)
    Reinserting ──BufferEmpty──▶ Idle                           (progress deleted, claim released)
    Reinserting ──Refused──▶ Idle                               (stand down, buffer kept)

Pure: `next_state` only says where a signal leads; the agent (spare_agent.py) runs the jobs that
produce the signals (detection, takeover, handback, re-insert) and the effects of each move.
Anything not in the table is a bug and raises, so a job cannot quietly push the spare somewhere
the design does not allow. Losing the lease is deliberately not a signal: while etcd is away
nobody else can claim, so a covering spare keeps recording until a fenced write is refused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Idle:
    name = "idle"


@dataclass(frozen=True)
class Covering:
    """Recording `server`'s cameras under the claim with `token`."""

    server: str
    token: int
    name = "covering"


@dataclass(frozen=True)
class Reinserting:
    """Pushing the buffer into `server`; `token` None for a leftover buffer (no claim held)."""

    server: str
    token: int | None
    name = "reinserting"


SpareMode = Idle | Covering | Reinserting


@dataclass(frozen=True)
class ClaimWon:
    server: str
    token: int


@dataclass(frozen=True)
class LeftoverReady:
    server: str


@dataclass(frozen=True)
class Confirmed:
    """The original wrote `alive/<server>` confirmed after our claim: hand back."""


@dataclass(frozen=True)
class Refused:
    """The claim is no longer ours (`proven`: etcd or the original refused a fenced write), or
    may not be acted on any more; the stand-down proves it with one more fenced write if not."""

    reason: str
    proven: bool = True


@dataclass(frozen=True)
class FailedAgain:
    """The original's alive key is gone while we re-insert into it."""


@dataclass(frozen=True)
class BufferEmpty:
    """Every buffered segment is acknowledged by the original."""


Signal = ClaimWon | LeftoverReady | Confirmed | Refused | FailedAgain | BufferEmpty


class InvalidTransition(RuntimeError):
    pass


def next_state(state: SpareMode, signal: Signal) -> SpareMode:
    match state, signal:
        case Idle(), ClaimWon(server, token):
            return Covering(server, token)
        case Idle(), LeftoverReady(server):
            return Reinserting(server, None)
        case Covering(server, token), Confirmed():
            return Reinserting(server, token)
        case Covering(), Refused():
            return Idle()
        case Reinserting(server, int() as token), FailedAgain():
            return Covering(server, token)
        case Reinserting(_, None), FailedAgain():
            return Idle()
        case Reinserting(_, None), ClaimWon(server, token):
            return Covering(server, token)
        case Reinserting(), BufferEmpty() | Refused():
            return Idle()
    raise InvalidTransition(f"spare: no transition from {state} on {signal}")
