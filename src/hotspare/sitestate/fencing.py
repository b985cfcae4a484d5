"""The original's check of a re-insert upload's fencing token against the claim in etcd.

Three answers, because they call for three different reactions from the spare: the token holds
(accept), the token is stale (the spare lost its claim: stand down), or the claim cannot be read
now (etcd away: the spare pauses and retries; its claim may well still hold).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hotspare.coordination.errors import CoordinationError
from hotspare.sitestate import layout
from hotspare.sitestate.values import Claim


class ClaimReader(Protocol):
    def claim_of(self, server: str) -> Claim | None: ...


@dataclass(frozen=True)
class FenceCheck:
    ok: bool
    retryable: bool = False
    detail: str = ""
    foreign: bool = False
    """The token is current but the claim is another node's: the sender is not its holder."""


def check_fence(claims: ClaimReader, server: str, value: str,
                node: str | None = None) -> FenceCheck:
    """Check one upload's `X-Hotspare-Fencing` value, and with `node` that this node holds the
    claim (a token is no secret: it is a revision number); never raises for etcd trouble."""
    claim_key, _, token_text = value.rpartition(":")
    if claim_key != layout.claim(server) or not token_text.isdigit():
        return FenceCheck(False, detail=f"{layout.FENCING_HEADER} {value!r} does not name a "
                          f"claim on {server}")
    try:
        claim = claims.claim_of(server)
    except CoordinationError as exc:
        return FenceCheck(False, retryable=True,
                          detail=f"{server} cannot check fencing token {token_text} now: etcd "
                          f"did not answer ({exc}); the upload may be retried")
    if claim is None:
        return FenceCheck(False, detail=f"the claim on {server} is gone; token {token_text} is "
                          "stale")
    if claim.token != int(token_text):
        return FenceCheck(False, detail=f"token {token_text} is stale: the claim on {server} "
                          f"now has token {claim.token}")
    if node is not None and claim.spare != node:
        return FenceCheck(False, foreign=True,
                          detail=f"the claim on {server} with token {token_text} is held by "
                          f"{claim.spare!r}, not by {node!r}, which sent the upload")
    return FenceCheck(True)
