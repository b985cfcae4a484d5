"""Domain operations on the site state: what a server or a spare may do to it, and how.

`SiteAccess` is the contract the failover agents are written against; `EtcdSite` keeps it with
etcd, and the unit tests keep it with one in-memory fake (tests/support/fake_site_state.py), so
the agents' state machines are tested against the same rules the product runs on. The rules:

- a claim is a create-if-absent under the spare's lease; its create revision is the token;
- everything done under a claim is fenced by that token (etcd compares the claim's create
  revision in the same transaction), so a spare that lost its claim is refused, not obeyed;
- releasing is fenced too, so a spare can always try it: it never deletes another's claim.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from hotspare.coordination.errors import FencingError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import ChangeType, Lease, WatchBatch
from hotspare.site.report import StandbySession
from hotspare.sitestate import layout
from hotspare.sitestate.snapshot import SPARE_PREFIXES, SiteState
from hotspare.sitestate.values import (
    Alive,
    BufferRecord,
    Claim,
    Covering,
    Owner,
    ProtectionRecord,
    ReinsertProgress,
    Returning,
    SpareRecord,
    Watermarks,
    now_us,
    standby_dumps,
    standby_parse,
)

__all__ = ["EtcdSite", "FencingError", "HeldLease", "SiteAccess"]


class HeldLease(Protocol):
    """A lease kept alive in the background (`coordination.etcd_adapter.LeaseKeeper`)."""

    @property
    def lease(self) -> Lease: ...

    @property
    def id(self) -> int: ...

    @property
    def lost_reason(self) -> str | None: ...

    def assumed_lost(self) -> bool: ...

    def stop(self, *, revoke: bool = True) -> None: ...


class SiteAccess(Protocol):
    """Every read and write the failover agents make. Fenced operations raise FencingError when
    the claim no longer has `token`; any operation may raise CoordinationError (etcd away)."""

    def read(self) -> SiteState:
        """What a spare's tick needs (`snapshot.SPARE_PREFIXES`: no owners, no protection)."""
        ...

    def hold_lease(self, ttl: float, role: str) -> HeldLease: ...

    # a recording server
    def publish_alive(self, server: str, value: Alive, lease: HeldLease) -> int: ...

    def drop_alive(self, server: str) -> None: ...

    def claim_of(self, server: str) -> Claim | None: ...

    def put_owner(self, server: str, value: Owner) -> None: ...

    def publish_watermarks(self, server: str, value: Watermarks) -> None: ...

    def ask_release(self, server: str, value: Returning, lease: HeldLease) -> None: ...

    def withdraw_release(self, server: str) -> None: ...

    def answer_questions(self, server: str) -> None: ...

    def watch_server(self, server: str, on_question: Callable[[], None],
                     on_claim: Callable[[int], None]) -> None: ...

    # a spare
    def publish_spare(self, spare: str, value: SpareRecord, lease: HeldLease) -> None: ...

    def publish_standby(self, spare: str, status: dict[str, object], lease: HeldLease) -> None: ...

    def claim(self, server: str, value: Claim, lease: HeldLease) -> tuple[bool, Claim | None]: ...

    def put_owner_fenced(self, server: str, value: Owner, token: int) -> None: ...

    def publish_watermarks_fenced(self, server: str, value: Watermarks, token: int) -> None: ...

    def heartbeat(self, server: str, value: Covering, lease: HeldLease | None) -> None: ...

    def release(self, server: str, token: int) -> bool: ...

    def watermarks(self, server: str) -> Watermarks | None: ...

    def progress(self, server: str, spare: str) -> ReinsertProgress | None: ...

    def put_progress(self, server: str, value: ReinsertProgress, token: int | None) -> None: ...

    def delete_progress(self, server: str, spare: str, token: int | None) -> None: ...

    def record_buffer(self, server: str, spare: str, token: int) -> None: ...

    def buffer_record(self, server: str, spare: str) -> BufferRecord | None: ...

    def forget_buffer(self, server: str, spare: str, token: int | None) -> None: ...

    def ask(self, server: str, spare: str) -> None: ...

    def unanswered(self, server: str, spare: str) -> bool: ...

    def withdraw_question(self, server: str, spare: str) -> None: ...


class EtcdSite:
    """`SiteAccess` on etcd, under the coordinator's site prefix."""

    def __init__(self, coord: Coordinator) -> None:
        self.coord = coord

    def read(self) -> SiteState:
        return SiteState.read(self.coord, SPARE_PREFIXES)

    def hold_lease(self, ttl: float, role: str) -> HeldLease:
        return self.coord.hold_lease(ttl, role=role)

    # ------------------------------------------------------------------ a recording server

    def publish_alive(self, server: str, value: Alive, lease: HeldLease) -> int:
        """The revision written: a claim with a later token was made after it."""
        return self.coord.put(layout.alive(server), value.dumps(), lease=lease.lease)

    def drop_alive(self, server: str) -> None:
        self.coord.delete(layout.alive(server))

    def claim_of(self, server: str) -> Claim | None:
        kv = self.coord.get(layout.claim(server))
        return None if kv is None else Claim.parse(kv)

    def put_owner(self, server: str, value: Owner) -> None:
        self.coord.put(layout.owner(server), value.dumps())

    def publish_watermarks(self, server: str, value: Watermarks) -> None:
        self.coord.put(layout.watermarks(server), value.dumps())

    def ask_release(self, server: str, value: Returning, lease: HeldLease) -> None:
        self.coord.put(layout.returning(server), value.dumps(), lease=lease.lease)

    def withdraw_release(self, server: str) -> None:
        self.coord.delete(layout.returning(server))

    def answer_questions(self, server: str) -> None:
        """Delete every spare's question: "yes, I still talk to etcd" (decision 5)."""
        self.coord.delete(layout.asking_prefix(server), prefix=True)

    def watch_server(self, server: str, on_question: Callable[[], None],
                     on_claim: Callable[[int], None]) -> None:
        """Two watches for a recording server: a question asked of it (`on_question`), and a
        claim made on it (`on_claim(token)`), which it must learn of even when its lease never
        lapsed (taken over while it was only unreachable for a moment)."""
        claim_key = layout.claim(server)

        def questions(batch: WatchBatch) -> None:
            if batch.resynced or any(c.type is ChangeType.PUT for c in batch.changes):
                on_question()

        def claims(batch: WatchBatch) -> None:
            kvs = (batch.snapshot or []) if batch.resynced else [
                c.kv for c in batch.changes if c.type is ChangeType.PUT]
            for kv in kvs:
                if kv.key == claim_key:  # the prefix also matches e.g. rec-10 for rec-1
                    on_claim(kv.create_revision)

        self.coord.watch_prefix(layout.asking_prefix(server), questions)
        self.coord.watch_prefix(claim_key, claims)

    # ------------------------------------------------------------------ a spare

    def publish_spare(self, spare: str, value: SpareRecord, lease: HeldLease) -> None:
        self.coord.put(layout.spare(spare), value.dumps(), lease=lease.lease)

    def publish_standby(self, spare: str, status: dict[str, object], lease: HeldLease) -> None:
        self.coord.put(layout.standby(spare), standby_dumps(status), lease=lease.lease)

    def claim(self, server: str, value: Claim, lease: HeldLease) -> tuple[bool, Claim | None]:
        """Create-if-absent under our lease: (won, the claim as it now stands, ours or not)."""
        result = self.coord.create_if_absent(layout.claim(server), value.dumps(),
                                             lease=lease.lease)
        return result.created, None if result.kv is None else Claim.parse(result.kv)

    def put_owner_fenced(self, server: str, value: Owner, token: int) -> None:
        self.coord.put_fenced(layout.owner(server), value.dumps(),
                              claim_key=layout.claim(server), token=token)

    def publish_watermarks_fenced(self, server: str, value: Watermarks, token: int) -> None:
        """A covering spare's commit watermarks, under its claim: the next claimant writes from
        them if this spare dies too."""
        self.coord.put_fenced(layout.watermarks(server), value.dumps(),
                              claim_key=layout.claim(server), token=token)

    def heartbeat(self, server: str, value: Covering, lease: HeldLease | None) -> None:
        """Proves the token still holds; `lease` None for the one-off proof at a stand-down."""
        self.coord.put_fenced(layout.covering(server), value.dumps(),
                              claim_key=layout.claim(server), token=value.token,
                              lease=None if lease is None else lease.lease)

    def release(self, server: str, token: int) -> bool:
        return self.coord.release_claim(layout.claim(server), token)

    def watermarks(self, server: str) -> Watermarks | None:
        """Raises ValueError when the stored value is unreadable."""
        kv = self.coord.get(layout.watermarks(server))
        return None if kv is None else Watermarks.parse(kv)

    def progress(self, server: str, spare: str) -> ReinsertProgress | None:
        kv = self.coord.get(layout.reinsert(server, spare))
        return None if kv is None else ReinsertProgress.parse(kv, spare)

    def put_progress(self, server: str, value: ReinsertProgress, token: int | None) -> None:
        key = layout.reinsert(server, value.spare)
        if token is None:
            self.coord.put(key, value.dumps())
        else:
            self.coord.put_fenced(key, value.dumps(), claim_key=layout.claim(server), token=token)

    def delete_progress(self, server: str, spare: str, token: int | None) -> None:
        key = layout.reinsert(server, spare)
        if token is None:
            self.coord.delete(key)
        else:
            self.coord.delete_fenced(key, claim_key=layout.claim(server), token=token)

    def record_buffer(self, server: str, spare: str, token: int) -> None:
        """Fenced: only the holder of the claim with `token` can say it recorded the server."""
        self.coord.put_fenced(layout.buffer(server, spare), BufferRecord(spare, token).dumps(),
                              claim_key=layout.claim(server), token=token)

    def buffer_record(self, server: str, spare: str) -> BufferRecord | None:
        kv = self.coord.get(layout.buffer(server, spare))
        return None if kv is None else BufferRecord.parse(kv)

    def standby_sessions(self, spare: str) -> dict[str, StandbySession]:
        """Camera → the hot-standby session `standby/<spare>` publishes ({} when absent)."""
        kv = self.coord.get(layout.standby(spare))
        return {} if kv is None else standby_parse(kv)

    def forget_buffer(self, server: str, spare: str, token: int | None) -> None:
        key = layout.buffer(server, spare)
        if token is None:
            self.coord.delete(key)
        else:
            self.coord.delete_fenced(key, claim_key=layout.claim(server), token=token)

    def ask(self, server: str, spare: str) -> None:
        """Ask a server we cannot reach whether it still talks to etcd (it deletes the key)."""
        self.coord.put(layout.asking(server, spare), json.dumps({"at_us": now_us()}))

    def unanswered(self, server: str, spare: str) -> bool:
        return self.coord.get(layout.asking(server, spare)) is not None

    def withdraw_question(self, server: str, spare: str) -> None:
        self.coord.delete(layout.asking(server, spare))

    # ------------------------------------------------------------------ any node

    def swap_protection(self, server: str, value: ProtectionRecord, expected: int) -> bool:
        """Compare-and-set on the mod revision read (0: absent); False when another node wrote
        first (it announces the change)."""
        return self.coord.put_if_revision(layout.protection(server), value.dumps(),
                                          expected) is not None

    def drop_protection(self, server: str, mod_revision: int) -> None:
        self.coord.delete_if_revision(layout.protection(server), mod_revision)
