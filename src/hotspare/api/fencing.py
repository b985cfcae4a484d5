"""Who may import video into a site's recording server: the node that holds the claim on it.

A re-insert under a claim sends `X-Hotspare-Fencing: claims/<server>:<token>` with every upload,
authenticated with the spare's own credential (`hotspare.api.auth`, `Principal.node`). The
recording server accepts it only while that claim still exists with that create revision and is
held by that very node (`hotspare.sitestate.fencing`): a spare frozen past its lease, or any other
node quoting the token (it is a revision number, no secret), gets 409 `stale_fencing_token` or
403 `not_claim_holder`. When the claim cannot be read (etcd unreachable) the answer is 503
`fencing_unavailable` with Retry-After: the spare pauses and retries, and keeps its claim — a
refusal there would make it stand down for an etcd hiccup.

An upload without the header is a leftover buffer's re-insert (its spare restarted and its claim
is long gone, design decision 6, docs/design.md): accepted only while nobody holds a claim on this
server — while a claim exists, only its holder, with its token, may import — and only from a
failover server of the site, named by its own credential, that recorded this server under an
earlier claim: its `buffers/<server>/<spare>` record, written by a fenced write when it claimed
and deleted when its buffer is re-inserted, must exist (403 `no_buffer_record` otherwise). The
route then checks that the segment's `recorded_by` is that spare. The shared node token and user
tokens never may import (403 `node_identity_required`).

A gap repair's upload (`X-Hotspare-Repair: gap`, `hotspare.failover.gap_repair`) carries frames
of a hole in the server's own recording from a spare's hot-standby pre-buffer: accepted only while
nobody holds a claim on this server (a takeover's re-insert covers its own holes), and only from a
failover server of the site, by its own credential, whose `standby/<spare>` record (lease-bound)
says it pre-buffers a camera of this server now (403 `not_standby_holder` otherwise).

The check is made by the route before the body is read (so a refused upload costs no transfer),
whatever way the credential came (any header case, `?token=`: authentication has already resolved
it), and made again by the store inside the index transaction that inserts the segment
(`recheck`), so that a claim lost while the body streamed is not written under.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from hotspare.api.auth import Principal
from hotspare.coordination.errors import CoordinationError
from hotspare.site.report import StandbySession
from hotspare.sitestate import layout
from hotspare.sitestate.fencing import ClaimReader, check_fence
from hotspare.sitestate.values import BufferRecord

log = logging.getLogger("hotspare.api.fencing")

RETRY_AFTER_SECONDS = 1


class ImportRefused(Exception):
    """The uploader may not import into this server now; `error` is the problem code."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.status == 503 else None


class GateReader(ClaimReader, Protocol):
    """What the gate reads from etcd (`hotspare.sitestate.access.EtcdSite` in the product)."""

    def buffer_record(self, server: str, spare: str) -> BufferRecord | None: ...

    def standby_sessions(self, spare: str) -> dict[str, StandbySession]: ...


@dataclass(frozen=True)
class Admission:
    """An upload let in by `ImportGate.admit`: who sends it, under which claim (None: leftover)."""

    gate: ImportGate
    node: str
    fencing: str | None
    repair: bool = False
    """A gap repair from a spare's pre-buffer (no claim)."""

    def recheck(self) -> None:
        """The same decision again, for the store to call inside its index transaction."""
        self.gate.decide(self.node, self.fencing, self.repair)


class ImportGate:
    """Decides, per upload, whether the authenticated node may import into `server`."""

    def __init__(self, claims: GateReader, server: str,
                 spares: Callable[[], Collection[str]]) -> None:
        self.claims = claims
        self.server = server
        self.spares = spares
        """The site's failover servers now (the only nodes a leftover upload may come from)."""

    def admit(self, principal: Principal | None, fencing: str | None,
              repair: bool = False) -> Admission:
        """Raises ImportRefused (logged) unless the upload may go on."""
        if principal is None or principal.node is None:
            who = "an unauthenticated client" if principal is None else repr(principal.name)
            raise self._refused(
                403, "node_identity_required",
                f"{who} may not import video into {self.server}: only the node holding the "
                "claim on it may, authenticated with its own credential ([api] node_token_file, "
                "its SHA-256 listed as that node's token_sha256 in the site configuration); the "
                "shared node token and user tokens cannot import")
        self.decide(principal.node, fencing, repair)
        return Admission(self, principal.node, fencing, repair)

    def decide(self, node: str, fencing: str | None, repair: bool = False) -> None:
        if repair:
            self._decide_repair(node)
            return
        if fencing is not None:
            check = check_fence(self.claims, self.server, fencing, node)
            if check.ok:
                return
            if check.retryable:
                raise self._refused(503, "fencing_unavailable", check.detail)
            if check.foreign:
                raise self._refused(403, "not_claim_holder", check.detail)
            raise self._refused(409, "stale_fencing_token", check.detail)
        try:
            claim = self.claims.claim_of(self.server)
        except CoordinationError as exc:
            raise self._refused(
                503, "fencing_unavailable",
                f"{self.server} cannot check who holds its claim now: etcd did not answer "
                f"({exc}); the upload may be retried") from None
        if claim is not None:
            raise self._refused(
                409, "fencing_required",
                f"{claim.spare!r} holds the claim on {self.server} (token {claim.token}); an "
                f"upload from {node!r} without {layout.FENCING_HEADER} is refused while a claim "
                "exists: only the holder may import, with its token")
        if node not in self.spares():
            raise self._refused(
                403, "not_claim_holder",
                f"{node!r} holds no claim on {self.server} and is not a failover server of the "
                "site, so it has no video of this server to re-insert")
        try:
            record = self.claims.buffer_record(self.server, node)
        except CoordinationError as exc:
            raise self._refused(
                503, "fencing_unavailable",
                f"{self.server} cannot check whether {node!r} recorded it under a claim: etcd "
                f"did not answer ({exc}); the upload may be retried") from None
        if record is None or record.spare != node:
            raise self._refused(
                403, "no_buffer_record",
                f"{node!r} holds no claim on {self.server} and no record says it recorded "
                f"{self.server} under an earlier claim ({layout.buffer(self.server, node)} is "
                "absent): a leftover buffer is taken only from the spare that recorded it. If "
                "that spare really holds such video, keep its buffer folder and copy the video "
                "out with `hotspare export`")

    def _decide_repair(self, node: str) -> None:
        try:
            claim = self.claims.claim_of(self.server)
            sessions = self.claims.standby_sessions(node) if node in self.spares() else {}
        except CoordinationError as exc:
            raise self._refused(
                503, "fencing_unavailable",
                f"{self.server} cannot check whether {node!r} may repair a gap in its recording: "
                f"etcd did not answer ({exc}); the upload may be retried") from None
        if claim is not None:
            raise self._refused(
                409, "fencing_required",
                f"{claim.spare!r} holds the claim on {self.server} (token {claim.token}): a gap "
                f"repair from {node!r} is refused while a claim exists; the claim's re-insert "
                "brings that video home")
        if not any(session.server == self.server for session in sessions.values()):
            raise self._refused(
                403, "not_standby_holder",
                f"{node!r} may not repair gaps in {self.server}'s recording: only a failover "
                f"server that pre-buffers one of its gapless cameras may (its "
                f"standby/{node} record names none of {self.server}'s cameras)")

    def _refused(self, status: int, error: str, detail: str) -> ImportRefused:
        log.warning("import into %s refused (%s): %s", self.server, error, detail)
        return ImportRefused(status, error, detail)
