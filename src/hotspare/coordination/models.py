"""Typed results of coordination calls, free of any etcd client type.

The failover code works with these so that the etcd client library stays an implementation detail
of `etcd_adapter` and can be swapped without touching callers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd stores it. `key` is relative to the coordinator's site prefix.

    `create_revision` of a claim key is its fencing token; `mod_revision` changes on every write.
    """

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    @property
    def text(self) -> str:
        return self.value.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.value.decode("utf-8"))


@dataclass(frozen=True)
class GetResult:
    """Keys read in one consistent snapshot at store `revision` (resume a watch at revision + 1)."""

    kvs: list[KeyValue]
    revision: int


@dataclass(frozen=True)
class CreateResult:
    """Outcome of a claim: `created` says who won; `kv` is the key as it now stands, either way."""

    created: bool
    revision: int
    kv: KeyValue | None

    @property
    def token(self) -> int | None:
        """The fencing token (create revision) of whoever holds the key now."""
        return self.kv.create_revision if self.kv is not None else None


@dataclass(frozen=True)
class Lease:
    """A granted lease; `ttl` is what etcd granted (it rounds small TTLs up to about 2 s)."""

    id: int
    ttl: float


class ChangeType(Enum):
    """What one etcd change did to a key (etcd calls these watch "events"; hotspare keeps that
    word for the site's event log)."""

    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True)
class KeyChange:
    """One change to one key, as a watch or a history replay reports it."""

    type: ChangeType
    kv: KeyValue

    @property
    def is_create(self) -> bool:
        return self.type is ChangeType.PUT and self.kv.version == 1


@dataclass(frozen=True)
class WatchBatch:
    """What a watch callback receives.

    Treat it as a wake-up, not as the state: the reconcile loop re-reads what it needs. When
    `resynced` is true, changes were lost to compaction and `snapshot` holds the whole watched
    prefix as of `revision`.
    """

    revision: int
    changes: list[KeyChange] = field(default_factory=list)
    resynced: bool = False
    snapshot: list[KeyValue] | None = None
