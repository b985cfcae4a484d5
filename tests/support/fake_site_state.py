"""One in-memory stand-in for the site state in etcd, for every unit test that needs one.

`FakeEtcd` keeps the part of `Coordinator` the site-state layer uses, with etcd's rules: one
revision counter, create revisions as fencing tokens, fenced writes compared in the same step,
keys bound to leases and deleted with them, `down` for an unreachable etcd. `FakeSite` is the
product's own `EtcdSite` on top of it, so the agents under test go through the same layer, and the
same claim and fencing rules, as in production.

    site = FakeSite()
    site.etcd.put_json(layout.alive("rec-1"), {"url": "...", "confirmed": True})
    keeper = site.hold_lease(3, "spare"); keeper.lose()   # the lease is assumed lost
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

from hotspare.coordination.errors import EtcdUnavailableError, FencingError
from hotspare.coordination.models import CreateResult, GetResult, KeyValue, Lease, WatchBatch
from hotspare.sitestate.access import EtcdSite


class FakeLeaseKeeper:
    """A `LeaseKeeper` whose loss the test decides (`lose`), or etcd's expiry (`expire`)."""

    def __init__(self, etcd: FakeEtcd, lease: Lease) -> None:
        self.etcd = etcd
        self.lease = lease
        self.lost_reason: str | None = None
        self.stopped = False
        self.revoked = False

    @property
    def id(self) -> int:
        return self.lease.id

    def assumed_lost(self) -> bool:
        return self.lost_reason is not None

    def lose(self, reason: str = "keepalive unanswered (test)") -> None:
        """Our clock says the lease is gone; etcd may still hold it (call `expire` for that)."""
        self.lost_reason = reason

    def expire(self) -> None:
        self.lose("expired (test)")
        self.etcd.revoke_lease(self.lease)

    def stop(self, *, revoke: bool = True) -> None:
        self.stopped = True
        if revoke:
            self.revoked = True
            self.etcd.revoke_lease(self.lease)


class JsonValues(MutableMapping[str, Any]):
    """`FakeEtcd.values`: the stored keys as JSON values, written through (each write a new
    revision), so a test can set up or change the site like a dict."""

    def __init__(self, etcd: FakeEtcd) -> None:
        self._etcd = etcd

    def __getitem__(self, key: str) -> Any:
        if key not in self._etcd.kvs:
            raise KeyError(key)
        return self._etcd.value(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._etcd.put_json(key, value)

    def __delitem__(self, key: str) -> None:
        if not self._etcd.delete(key):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._etcd.kvs))

    def __len__(self) -> int:
        return len(self._etcd.kvs)


class FakeEtcd:
    """Keys relative to the site prefix; values bytes; thread-safe enough for the agents."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.revision_now = 1
        self.kvs: dict[str, KeyValue] = {}
        self.leases: dict[int, set[str]] = {}
        self.keepers: list[FakeLeaseKeeper] = []
        self.down = False
        self.reads = 0
        self.values_read = 0  # by `get`: how often a value was sent, not only its revision
        self.watches: list[tuple[str, Callable[[WatchBatch], None]]] = []
        self._lock = threading.RLock()
        for key, value in (values or {}).items():
            self.put_json(key, value)

    # ------------------------------------------------------------------ test helpers

    @property
    def values(self) -> JsonValues:
        return JsonValues(self)

    def put_json(self, key: str, value: Any, lease: Lease | int | None = None) -> int:
        return self.put(key, json.dumps(value), lease=lease)

    def put_at(self, key: str, value: Any, revision: int) -> None:
        """Write `value` (JSON) at `revision` exactly (a claim with a chosen token); `revision`
        must be ahead of every revision so far."""
        assert revision > self.revision_now, (revision, self.revision_now)
        self.revision_now = revision - 1
        self.put_json(key, value)

    def value(self, key: str) -> Any:
        """The stored JSON of `key`, None when absent."""
        kv = self.kvs.get(key)
        return None if kv is None else kv.json()

    def _check(self, operation: str) -> None:
        if self.down:
            raise EtcdUnavailableError(["fake:2379"], 0.0, "frozen (test)", operation)

    # ------------------------------------------------------------------ reads

    def get(self, key: str, *, revision: int | None = None,
            keys_only: bool = False) -> KeyValue | None:
        self._check(f"read {key}")
        self.reads += 1
        kv = self.kvs.get(key)
        if kv is None or not keys_only:
            if kv is not None:
                self.values_read += 1
            return kv
        return dataclasses.replace(kv, value=b"")

    def get_prefix(self, prefix: str = "", *, revision: int | None = None) -> GetResult:
        return self.get_prefixes([prefix])

    def get_prefixes(self, prefixes: Sequence[str]) -> GetResult:
        self._check("read prefixes")
        self.reads += 1
        with self._lock:
            kvs = [kv for p in prefixes for k, kv in sorted(self.kvs.items()) if k.startswith(p)]
            return GetResult(kvs, self.revision_now)

    # ------------------------------------------------------------------ writes

    def _lease_id(self, lease: Lease | int | None) -> int:
        return lease.id if isinstance(lease, Lease) else int(lease or 0)

    def put(self, key: str, value: str | bytes, *, lease: Lease | int | None = None) -> int:
        self._check(f"write {key}")
        with self._lock:
            self.revision_now += 1
            old = self.kvs.get(key)
            lease_id = self._lease_id(lease)
            data = value.encode() if isinstance(value, str) else value
            self.kvs[key] = KeyValue(key, data, old.create_revision if old else self.revision_now,
                                     self.revision_now, (old.version if old else 0) + 1, lease_id)
            if lease_id:
                self.leases.setdefault(lease_id, set()).add(key)
            return self.revision_now

    def delete(self, key: str, *, prefix: bool = False) -> int:
        self._check(f"delete {key}")
        with self._lock:
            gone = [k for k in self.kvs if (k.startswith(key) if prefix else k == key)]
            for k in gone:
                del self.kvs[k]
            if gone:
                self.revision_now += 1
            return len(gone)

    def create_if_absent(self, key: str, value: str | bytes, *,
                         lease: Lease | int | None = None) -> CreateResult:
        self._check(f"claim {key}")
        with self._lock:
            if key in self.kvs:
                return CreateResult(False, self.revision_now, self.kvs[key])
            revision = self.put(key, value, lease=lease)
            return CreateResult(True, revision, self.kvs[key])

    def _fence(self, claim_key: str, token: int) -> None:
        claim = self.kvs.get(claim_key)
        actual = None if claim is None else claim.create_revision
        if actual != token:
            raise FencingError(claim_key, token, actual)

    def put_fenced(self, key: str, value: str | bytes, *, claim_key: str, token: int,
                   lease: Lease | int | None = None) -> int:
        self._check(f"fenced write {key}")
        with self._lock:
            self._fence(claim_key, token)
            return self.put(key, value, lease=lease)

    def delete_fenced(self, key: str, *, claim_key: str, token: int,
                      prefix: bool = False) -> int:
        self._check(f"fenced delete {key}")
        with self._lock:
            self._fence(claim_key, token)
            return self.delete(key, prefix=prefix)

    def release_claim(self, claim_key: str, token: int) -> bool:
        self._check(f"release {claim_key}")
        with self._lock:
            claim = self.kvs.get(claim_key)
            if claim is None or claim.create_revision != token:
                return False
            return self.delete(claim_key) == 1

    def put_if_revision(self, key: str, value: str | bytes, expected_revision: int, *,
                        target: str = "mod", lease: Lease | int | None = None) -> int | None:
        self._check(f"write {key}")
        with self._lock:
            kv = self.kvs.get(key)
            current = 0 if kv is None else (kv.mod_revision if target == "mod"
                                            else kv.create_revision)
            if current != expected_revision:
                return None
            return self.put(key, value, lease=lease)

    def delete_if_revision(self, key: str, expected_revision: int, *,
                           target: str = "mod") -> bool:
        self._check(f"delete {key}")
        with self._lock:
            kv = self.kvs.get(key)
            if kv is None or kv.mod_revision != expected_revision:
                return False
            return self.delete(key) == 1

    def watch_prefix(self, prefix: str, callback: Callable[[WatchBatch], None]) -> None:
        """Only recorded: a test delivers a change by calling the callback itself."""
        self._check(f"watch {prefix}")
        self.watches.append((prefix, callback))

    # ------------------------------------------------------------------ leases

    def grant_lease(self, ttl: float) -> Lease:
        self._check("lease grant")
        with self._lock:
            self.revision_now += 1
            return Lease(1000 + self.revision_now, ttl)

    def hold_lease(self, ttl: float, *, role: str = "node", **_: object) -> FakeLeaseKeeper:
        keeper = FakeLeaseKeeper(self, self.grant_lease(ttl))
        self.keepers.append(keeper)
        return keeper

    def revoke_lease(self, lease: Lease | int) -> None:
        with self._lock:
            for key in self.leases.pop(self._lease_id(lease), set()):
                kv = self.kvs.get(key)
                if kv is not None and kv.lease == self._lease_id(lease):
                    self.delete(key)

    def expire_all(self, keepers: Iterable[FakeLeaseKeeper] | None = None) -> None:
        for keeper in list(keepers if keepers is not None else self.keepers):
            keeper.expire()


class FakeSite(EtcdSite):
    """The product's `EtcdSite` on a `FakeEtcd` (`.etcd`)."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.etcd = FakeEtcd(values)
        super().__init__(self.etcd)  # type: ignore[arg-type]


class FakeEvents:
    """An `EventLog` that keeps what was emitted: (kind, server, message, data)."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, str | None, str, dict[str, Any]]] = []

    def emit(self, kind: str, server: str | None, message: str, **data: Any) -> None:
        self.emitted.append((kind, server, message, data))

    def kinds(self) -> list[str]:
        return [e[0] for e in self.emitted]

    def last(self, kind: str) -> tuple[str, str | None, str, dict[str, Any]]:
        return [e for e in self.emitted if e[0] == kind][-1]
