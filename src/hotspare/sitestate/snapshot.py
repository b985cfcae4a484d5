"""`SiteState`: the site's failover keys, typed, as they stood at one etcd revision.

Read in one request (`Coordinator.get_prefixes`, one transaction of range reads) so that every
decision taken from it — a spare's takeover, the master's server states, the protection report —
sees one moment, never a claim from one revision and a spare record from another. The event log,
the configuration and the commit watermarks are left out: they are large and have readers of their
own (a spare reads one server's watermarks at its takeover). Watermarks change every second on every
server and were ~90% of a snapshot's bytes (bench/site_scale: 16.8 of 19 KiB at 10 servers with 50
cameras each), while every node reads a snapshot every second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import KeyValue
from hotspare.site.eligibility import DOWN, SpareState, SpareStatus
from hotspare.site.report import StandbySession
from hotspare.sitestate import layout
from hotspare.sitestate.values import (
    Alive,
    Claim,
    Owner,
    ProtectionRecord,
    ReinsertProgress,
    Returning,
    SpareRecord,
    standby_parse,
)

STATE_PREFIXES = (layout.ALIVE_PREFIX, layout.CLAIMS_PREFIX, layout.OWNERS_PREFIX,
                  layout.SPARES_PREFIX, layout.REINSERT_PREFIX, layout.RETURNING_PREFIX,
                  layout.STANDBY_PREFIX, layout.PROTECTION_PREFIX)
"""What a snapshot reads: every prefix but `config/`, `events/`, `watermarks/` (see above) and
`covering/` (a heartbeat nobody reads back)."""
SPARE_PREFIXES = tuple(p for p in STATE_PREFIXES
                       if p not in (layout.OWNERS_PREFIX, layout.PROTECTION_PREFIX))
"""What a spare's tick reads (4 times a second): it never looks at the owner records or the
announced protection states, one of each per server, i.e. two thirds of a snapshot's keys on a
large site (bench/site_scale: reading and parsing the snapshot was most of an idle spare's CPU).
Those stay empty in its snapshot."""


@dataclass(frozen=True)
class SiteState:
    """Immutable; names are without their prefix (`alive["rec-1"]`)."""

    revision: int = 0
    alive: Mapping[str, Alive] = field(default_factory=dict)
    claims: Mapping[str, Claim] = field(default_factory=dict)
    owners: Mapping[str, Owner] = field(default_factory=dict)
    spares: Mapping[str, SpareRecord] = field(default_factory=dict)
    reinsert: Mapping[str, Mapping[str, ReinsertProgress]] = field(default_factory=dict)
    """server -> spare -> progress"""
    returning: Mapping[str, Returning] = field(default_factory=dict)
    standby: Mapping[str, Mapping[str, StandbySession]] = field(default_factory=dict)
    protection: Mapping[str, KeyValue] = field(default_factory=dict)
    """Raw, because the protection monitor swaps them by mod revision."""
    fingerprint: int = 0
    """Equal for two snapshots holding the same keys at the same mod revisions: what was built
    from one holds for the other, although etcd's `revision` moves with every write anywhere
    (watermarks, events), i.e. many times a second on a large site."""

    @classmethod
    def read(cls, coord: Coordinator, prefixes: Sequence[str] = STATE_PREFIXES) -> SiteState:
        found = coord.get_prefixes(prefixes)
        return cls.from_kvs(found.kvs, found.revision)

    @classmethod
    def from_kvs(cls, kvs: Iterable[KeyValue], revision: int) -> SiteState:
        alive: dict[str, Alive] = {}
        claims: dict[str, Claim] = {}
        owners: dict[str, Owner] = {}
        spares: dict[str, SpareRecord] = {}
        reinsert: dict[str, dict[str, ReinsertProgress]] = {}
        returning: dict[str, Returning] = {}
        standby: dict[str, Mapping[str, StandbySession]] = {}
        protection: dict[str, KeyValue] = {}
        seen: list[tuple[str, int]] = []
        for kv in kvs:
            seen.append((kv.key, kv.mod_revision))
            prefix, _, name = kv.key.partition("/")
            prefix += "/"
            if prefix == layout.ALIVE_PREFIX:
                alive[name] = Alive.parse(kv)
            elif prefix == layout.CLAIMS_PREFIX:
                claims[name] = Claim.parse(kv)
            elif prefix == layout.OWNERS_PREFIX:
                owners[name] = Owner.parse(kv)
            elif prefix == layout.SPARES_PREFIX:
                spares[name] = SpareRecord.parse(kv)
            elif prefix == layout.REINSERT_PREFIX:
                server, _, spare = name.partition("/")
                reinsert.setdefault(server, {})[spare] = ReinsertProgress.parse(kv, spare)
            elif prefix == layout.RETURNING_PREFIX:
                returning[name] = Returning.parse(kv)
            elif prefix == layout.STANDBY_PREFIX:
                standby[name] = standby_parse(kv)
            elif prefix == layout.PROTECTION_PREFIX:
                protection[name] = kv
        return cls(revision, alive, claims, owners, spares, reinsert, returning, standby,
                   protection, hash(tuple(sorted(seen))))

    def protection_record(self, server: str) -> ProtectionRecord | None:
        return ProtectionRecord.parse(self.protection.get(server))

    def spare_status(self, spare: str) -> SpareStatus:
        """The one rule for a spare's availability, used by takeover, placement, the protection
        report and the site API: no record (its lease is gone) is down; a claim it holds makes it
        covering that server even before its own record says so (it is published after the claim
        is won); otherwise its own record decides."""
        record = self.spares.get(spare)
        if record is None:
            return DOWN
        status = record.status()
        if status.state is SpareState.DOWN:
            return status
        for server, claim in sorted(self.claims.items()):
            if claim.spare == spare:
                return SpareStatus(SpareState.COVERING, server, status.room)
        return status

    def spare_statuses(self, names: Iterable[str]) -> dict[str, SpareStatus]:
        return {name: self.spare_status(name) for name in names}

