"""The one module of hotspare that talks to etcd.

Why one module: every node's safety rests on a handful of etcd properties (a compare-and-create
decides a claim, a lease decides liveness, a create revision fences stale writers). Keeping the
client in one place means the timeouts, retries and gateway quirks are handled once.

We use etcd3gw (etcd's JSON gRPC gateway over HTTP) only as a transport: its session, URL building
and HTTP-error mapping. Request bodies are built here, with keys encoded as UTF-8, because etcd3gw
encodes `str` keys as Latin-1 and computes prefix range ends through a UTF-8 round-trip.

Quirks of the gateway (etcd 3.4) handled here:
- a failed transaction carries no `succeeded` field (absent means false);
- a keepalive on an expired or revoked lease answers 200 without a TTL;
- a put with an expired lease fails with gRPC code 5 (HTTP 404);
- a watch whose start revision was compacted is cancelled (`canceled`, `compact_revision`) while
  the HTTP stream stays open, so we must notice the cancel ourselves;
- etcd grants at least about 2 s of TTL however little is asked.

Ambiguous writes: when a request times out, etcd may or may not have applied it. A retried
compare-and-set then sees its own earlier write and fails. Each conditional write therefore reads
the key back in the failure branch of the same transaction and, after a retry only, recognises its
own value (and lease) as success. Callers must make values unique per writer (a claim carries the
spare's name and lease) for that to be sound.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from etcd3gw import exceptions as gw_exc
from etcd3gw.client import Etcd3Client

from hotspare import metrics
from hotspare.coordination.errors import (
    CompactedError,
    CoordinationError,
    EtcdRequestError,
    EtcdUnavailableError,
    FencingError,
    LeaseNotFoundError,
)
from hotspare.coordination.hedging import HedgePolicy
from hotspare.coordination.lease_page import SLOTS
from hotspare.coordination.lease_process import READY_TIMEOUT, LeaseProcess, ProcessLeaseKeeper
from hotspare.coordination.models import (
    ChangeType,
    CreateResult,
    GetResult,
    KeyChange,
    KeyValue,
    Lease,
    WatchBatch,
)
from hotspare.coordination.retry import Retry, RetryError
from hotspare.etcd_security import (
    INSECURE_HINT,
    EtcdTls,
    endpoint_scheme,
    split_scheme,
)

if TYPE_CHECKING:
    from hotspare.config.models import SiteMembership

log = logging.getLogger(__name__)

_API_PATH = "/v3/"

# Failures that say "this endpoint, now" rather than "this request": worth another endpoint.
_RETRYABLE: tuple[type[BaseException], ...] = (
    gw_exc.ConnectionFailedError,
    gw_exc.ConnectionTimeoutError,
    gw_exc.InternalServerError,
    requests.exceptions.RequestException,
)


_TLS_HINT = (" [TLS handshake with etcd failed: the members must hold certificates from the CA "
             "in etcd_ca_file (--etcd-ca-file), and this client must present a certificate from "
             "the CA they trust (etcd_cert_file/etcd_key_file, --etcd-cert-file/--etcd-key-file; "
             "`hotspare pki show` lists expiry)]")


class _Retryable(Exception):
    """Internal: one attempt failed in a way another attempt (or endpoint) may fix."""

    def __init__(self, endpoint: str, message: str) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def _to_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _range_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix`."""
    data = bytearray(prefix)
    while data:
        if data[-1] < 0xFF:
            data[-1] += 1
            return bytes(data)
        data.pop()
    return b"\0"  # the whole keyspace


def normalize_endpoint(endpoint: str) -> str:
    """Accept `host:port` or `http(s)://host:port`; return `host:port` for messages and URLs.
    The scheme is not lost: `Coordinator` decides it from all endpoints (etcd_security)."""
    text = split_scheme(endpoint)[1].rstrip("/")
    if ":" not in text.rsplit("]", 1)[-1]:
        text += ":2379"
    return text


def _split_host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def _error_detail(exc: gw_exc.Etcd3Exception) -> tuple[int | None, str]:
    """etcd3gw puts the gateway's JSON body in `detail_text`; pull out code and message."""
    text = exc.detail_text or str(exc) or type(exc).__name__
    try:
        body = json.loads(text)
    except (TypeError, ValueError):
        return None, text.strip()[:300]
    if not isinstance(body, dict):
        return None, text.strip()[:300]
    code = body.get("code")
    message = str(body.get("message") or body.get("error") or text).strip()
    return (int(code) if isinstance(code, int | str) and str(code).isdigit() else None), message


def first_member(node: str, members: int) -> int:
    """The index of the member `node` prefers first. A stable hash (not Python's salted
    `hash`), so a node keeps its member across restarts and an operator can tell which one it
    is; every node listing the members in the same order then still spreads evenly."""
    digest = hashlib.sha256(node.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % members


class Coordinator:
    """A site's view of etcd: every key is under `prefix` (e.g. `/hotspare/<site>/`).

    `timeout` bounds each HTTP call; `deadline` bounds a whole operation including retries across
    endpoints. Thread-safe: each thread gets its own HTTP sessions.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str,
        *,
        timeout: float = 2.0,
        deadline: float = 5.0,
        watch_idle_timeout: float = 15.0,
        tls: EtcdTls | None = None,
        insecure_plaintext: bool = False,
        spread_by: str | None = None,
        lease_keeper: str = "thread",
    ) -> None:
        """`lease_keeper`: where `hold_lease` keeps leases alive: "thread" (a thread of this
        process) or "process" (a helper process, `lease_process`: a node busy with video keeps
        its lease). `tls`: the CA and client certificate presented to etcd; endpoints are
        reached over https unless they say http:// AND `insecure_plaintext` is set
        (EtcdSecurityError, a ValueError, otherwise). `spread_by`: the node's name; it picks
        the member this node prefers first (`first_member`), so a site's nodes spread over the
        members instead of all loading the first one listed. None: the first one listed."""
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"key prefix must start and end with '/': {prefix!r}")
        if timeout <= 0 or deadline <= 0:
            raise ValueError("timeout and deadline must be positive")
        self.scheme = endpoint_scheme(endpoints, tls, insecure_plaintext)
        self.tls = tls or EtcdTls()
        self.endpoints: list[str] = [normalize_endpoint(e) for e in endpoints]
        if self.scheme == "http":
            log.warning("etcd at %s is reached over plain HTTP (insecure_plaintext): %s",
                        ", ".join(self.endpoints), INSECURE_HINT)
        self.prefix = prefix
        self._prefix_bytes = prefix.encode("utf-8")
        self.timeout = timeout
        self.deadline = deadline
        self.watch_idle_timeout = watch_idle_timeout
        self._preferred = 0 if spread_by is None else first_member(spread_by, len(self.endpoints))
        self._failed_at: dict[str, float] = {}  # endpoint -> monotonic time of its last failure
        self._lock = threading.Lock()
        self._local = threading.local()
        self._children: list[LeaseKeeper | ProcessLeaseKeeper | Watch] = []
        self.hedges = HedgePolicy()  # this node's keepalive hedging, across its leases
        if lease_keeper not in ("thread", "process"):
            raise ValueError(f"lease_keeper must be 'thread' or 'process', not {lease_keeper!r}")
        self.lease_keeper = lease_keeper
        self._spread_by = spread_by
        self._lease_process: LeaseProcess | None = None
        self._helper_lock = threading.Lock()  # held while a helper starts (up to 20 s)

    @classmethod
    def for_site(cls, endpoints: Sequence[str], site: str, **kwargs: Any) -> Coordinator:
        """The usual construction: keys under `/hotspare/<site>/`."""
        if not site or "/" in site or site.strip() != site:
            raise ValueError(f"site name must be non-empty, without '/' or outer spaces: {site!r}")
        return cls(endpoints, f"/hotspare/{site}/", **kwargs)

    @classmethod
    def for_member(cls, site: SiteMembership, node: str | None = None) -> Coordinator:
        """A node's connection to its site's etcd, bounded by the node's own `[site]` etcd
        timings (checked against its lease at config load, hotspare.config.timing). `node`:
        the node's name, to spread the site's nodes over the members (`spread_by`)."""
        return cls.for_site(site.etcd_endpoints, site.id,
                            timeout=site.etcd_request_timeout_seconds,
                            deadline=site.etcd_deadline_seconds,
                            tls=site.etcd_tls, insecure_plaintext=site.etcd_insecure_plaintext,
                            spread_by=node, lease_keeper=site.lease_keeper)

    def spawn_settings(self) -> dict[str, Any]:
        """What another process needs to open the same connection (`from_spawn_settings`)."""
        return {"endpoints": [f"{self.scheme}://{e}" for e in self.endpoints],
                "prefix": self.prefix, "timeout": self.timeout, "deadline": self.deadline,
                "tls": [None if f is None else str(f) for f in
                        (self.tls.ca_file, self.tls.cert_file, self.tls.key_file)],
                "insecure_plaintext": self.scheme == "http", "spread_by": self._spread_by}

    @classmethod
    def from_spawn_settings(cls, settings: dict[str, Any]) -> Coordinator:
        ca, cert, key = (None if f is None else Path(f) for f in settings["tls"])
        return cls(settings["endpoints"], settings["prefix"], timeout=settings["timeout"],
                   deadline=settings["deadline"], tls=EtcdTls(ca, cert, key),
                   insecure_plaintext=settings["insecure_plaintext"],
                   spread_by=settings["spread_by"])

    # ------------------------------------------------------------------ transport

    def _client(self, endpoint: str) -> Etcd3Client:
        clients: dict[str, Etcd3Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            clients = {}
            self._local.clients = clients
        client = clients.get(endpoint)
        if client is None:
            host, port = _split_host_port(endpoint)
            client = Etcd3Client(host=host, port=port, protocol=self.scheme,
                                 timeout=self.timeout, api_path=_API_PATH,
                                 session=self._session())
            clients[endpoint] = client
        return client

    def _session(self) -> requests.Session:
        """The HTTP session etcd3gw would build from ca_cert/cert_*, except that it ignores the
        environment: requests lets $REQUESTS_CA_BUNDLE replace a session's own CA bundle, which
        would swap the site CA for the public ones (and an $HTTPS_PROXY could sit between a node
        and its trust root)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.tls.ca_file) if self.tls.ca_file is not None else True
        session.cert = self.tls.client_cert
        return session

    def _endpoint_order(self) -> Iterator[str]:
        """Endpoints starting at the preferred one, round and round."""
        while True:
            with self._lock:
                start = self._preferred
            yield self.endpoints[start % len(self.endpoints)]

    def endpoints_by_preference(self) -> list[str]:
        """Every endpoint once, the preferred one first."""
        with self._lock:
            start = self._preferred % len(self.endpoints)
        return self.endpoints[start:] + self.endpoints[:start]

    def _answered(self, endpoint: str) -> None:
        """`endpoint` just answered: if the preferred one failed lately, prefer this one, so
        the next call of any thread goes where an answer came from rather than round the ring
        (which may lead back to a frozen member)."""
        with self._lock:
            preferred = self.endpoints[self._preferred % len(self.endpoints)]
            failed = self._failed_at.get(preferred)
            if (preferred != endpoint and failed is not None
                    and time.monotonic() - failed < 2 * self.timeout + 1.0):
                self._preferred = self.endpoints.index(endpoint)

    def _demote(self, endpoint: str) -> None:
        with self._lock:
            self._failed_at[endpoint] = time.monotonic()
            if self.endpoints[self._preferred % len(self.endpoints)] == endpoint:
                self._preferred = (self._preferred + 1) % len(self.endpoints)
            watches = [c for c in self._children if isinstance(c, Watch)]
        # A member cut off in a minority still streams (its progress notifications go on) but
        # never sees another change: a watch left there would miss the questions and claims
        # the rest of the site writes. When a request fails on it, move the streams too.
        for watch in watches:
            watch.leave(endpoint)

    def _post_once(self, endpoint: str, path: str, payload: dict[str, Any], timeout: float,
                   operation: str) -> dict[str, Any]:
        client = self._client(endpoint)
        client.timeout = max(0.05, timeout)
        try:
            result = client.post(client.get_url(path), json=payload)
        except _RETRYABLE as exc:
            if isinstance(exc, gw_exc.Etcd3Exception) and exc.detail_text:
                message = _error_detail(exc)[1]
            else:
                message = str(exc) or type(exc).__name__
            if "SSLError" in message or "CERTIFICATE" in message:
                message += _TLS_HINT
            elif self.scheme == "http" and "without response" in message:
                message += " [a member serving TLS drops plain HTTP like this: use https://]"
            raise _Retryable(endpoint, message) from exc
        except gw_exc.Etcd3Exception as exc:
            code, message = _error_detail(exc)
            if code in (14, 4) or "leader changed" in message or "no leader" in message:
                raise _Retryable(endpoint, message) from exc
            if code == 11 and "compacted" in message:
                raise CompactedError(operation, message, payload.get("revision")) from exc
            if code == 5 and "lease" in message:
                raise LeaseNotFoundError(operation, payload.get("lease") or payload.get("ID"),
                                         message) from exc
            raise EtcdRequestError(operation, code, message) from exc
        if not isinstance(result, dict):
            raise EtcdRequestError(operation, None, f"unexpected answer {result!r}")
        error = result.get("error")
        if isinstance(error, dict) and "result" not in result:
            # A streamed call (the keepalive) that failed still answers HTTP 200, the error as
            # its body: e.g. a leader thawed after a freeze, stepping down. Read as "no TTL" it
            # would be taken for an expired lease.
            raise _Retryable(endpoint, str(error.get("message") or error))
        return result

    def _call(
        self,
        path: str,
        payload: dict[str, Any],
        operation: str,
        *,
        deadline: float | None = None,
        attempts: list[int] | None = None,
    ) -> dict[str, Any]:
        """POST with per-call timeout, rotating endpoints on failure until the deadline."""
        retry = Retry(deadline=deadline or self.deadline, retry_on=(_Retryable,),
                      initial_delay=0.05, max_delay=0.5)
        endpoints = self._endpoint_order()
        counter = attempts if attempts is not None else [0]

        def attempt(remaining: float) -> dict[str, Any]:
            counter[0] += 1
            endpoint = next(endpoints)
            try:
                return self._post_once(endpoint, path, payload,
                                       min(self.timeout, max(remaining, 0.05)), operation)
            except _Retryable as exc:
                self._demote(exc.endpoint)
                raise

        def note(attempt_no: int, exc: BaseException, pause: float) -> None:
            log.debug("etcd %s attempt %d failed (%s); retrying in %.2f s",
                      operation, attempt_no, exc, pause)

        try:
            return retry.call(attempt, on_retry=note)
        except RetryError as exc:
            raise EtcdUnavailableError(self.endpoints, exc.elapsed, str(exc.last_error),
                                       operation) from exc

    # ------------------------------------------------------------------ keys

    def _full(self, key: str) -> bytes:
        if key.startswith("/"):
            raise ValueError(f"keys are relative to the site prefix {self.prefix!r}: {key!r}")
        return self._prefix_bytes + key.encode("utf-8")

    def _relative(self, full: bytes) -> str:
        if full.startswith(self._prefix_bytes):
            full = full[len(self._prefix_bytes):]
        return full.decode("utf-8", errors="replace")

    def _kv(self, raw: dict[str, Any]) -> KeyValue:
        return KeyValue(
            key=self._relative(_unb64(raw.get("key"))),
            value=_unb64(raw.get("value")),
            create_revision=int(raw.get("create_revision", 0)),
            mod_revision=int(raw.get("mod_revision", 0)),
            version=int(raw.get("version", 0)),
            lease=int(raw.get("lease", 0)),
        )

    @staticmethod
    def _revision(result: dict[str, Any]) -> int:
        return int(result.get("header", {}).get("revision", 0))

    # ------------------------------------------------------------------ reads

    def revision(self) -> int:
        """The store's current revision (a cheap linearizable read)."""
        result = self._call("kv/range", {"key": _b64(self._full("")), "count_only": True,
                                         "range_end": _b64(_range_end(self._full("")))},
                            "read revision")
        return self._revision(result)

    def get(self, key: str, *, revision: int | None = None,
            keys_only: bool = False) -> KeyValue | None:
        """`keys_only`: without the value (empty), to learn a big key's revisions cheaply."""
        res = self._range(key, prefix=False, revision=revision, keys_only=keys_only)
        return res.kvs[0] if res.kvs else None

    def get_prefix(self, prefix: str = "", *, revision: int | None = None) -> GetResult:
        """All keys under `prefix` (relative) in one snapshot, sorted by key."""
        return self._range(prefix, prefix=True, revision=revision)

    def get_prefixes(self, prefixes: Sequence[str]) -> GetResult:
        """Every key under each of `prefixes` in one request at one revision (a transaction of
        range reads), so a caller sees one moment without reading prefixes it does not need."""
        ranges = []
        for prefix in prefixes:
            full = self._full(prefix)
            ranges.append({"request_range": {"key": _b64(full),
                                             "range_end": _b64(_range_end(full)),
                                             "sort_order": 1, "sort_target": 0}})
        result = self._call("kv/txn", {"compare": [], "success": ranges},
                            f"read {self.prefix}{{{','.join(prefixes)}}}")
        kvs = [self._kv(raw) for response in result.get("responses", [])
               for raw in response.get("response_range", {}).get("kvs", [])]
        return GetResult(kvs=kvs, revision=self._revision(result))

    def _range(self, key: str, *, prefix: bool, revision: int | None,
               keys_only: bool = False) -> GetResult:
        full = self._full(key)
        payload: dict[str, Any] = {"key": _b64(full), "sort_order": 1, "sort_target": 0}
        if prefix:
            payload["range_end"] = _b64(_range_end(full))
        if revision is not None:
            payload["revision"] = revision
        if keys_only:
            payload["keys_only"] = True
        result = self._call("kv/range", payload, f"read {self.prefix}{key}")
        kvs = [self._kv(raw) for raw in result.get("kvs", [])]
        return GetResult(kvs=kvs, revision=self._revision(result))

    # ------------------------------------------------------------------ writes

    def put(self, key: str, value: str | bytes, *, lease: Lease | int | None = None) -> int:
        """Unconditional write; returns the revision it was written at."""
        payload: dict[str, Any] = {"key": _b64(self._full(key)), "value": _b64(_to_bytes(value))}
        lease_id = _lease_id(lease)
        if lease_id:
            payload["lease"] = lease_id
        return self._revision(self._call("kv/put", payload, f"write {self.prefix}{key}"))

    def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete the key (or every key under it); returns how many were deleted."""
        full = self._full(key)
        payload: dict[str, Any] = {"key": _b64(full)}
        if prefix:
            payload["range_end"] = _b64(_range_end(full))
        result = self._call("kv/deleterange", payload, f"delete {self.prefix}{key}")
        return int(result.get("deleted", 0))

    def _txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        read_back: bytes,
        operation: str,
    ) -> tuple[bool, int, KeyValue | None, int]:
        """Run one transaction whose failure branch reads `read_back`.

        Returns (succeeded, header revision, key read on failure, attempts used).
        """
        payload = {
            "compare": compare,
            "success": success,
            "failure": [{"request_range": {"key": _b64(read_back)}}],
        }
        attempts = [0]
        result = self._call("kv/txn", payload, operation, attempts=attempts)
        succeeded = bool(result.get("succeeded", False))  # absent on failure (gateway quirk)
        current: KeyValue | None = None
        if not succeeded:
            for response in result.get("responses", []):
                kvs = response.get("response_range", {}).get("kvs", [])
                if kvs:
                    current = self._kv(kvs[0])
        return succeeded, self._revision(result), current, attempts[0]

    def create_if_absent(
        self, key: str, value: str | bytes, *, lease: Lease | int | None = None
    ) -> CreateResult:
        """The claim: create `key` only if it does not exist, in one compare-and-create.

        On success the fencing token is the returned revision (the key's create revision).
        """
        full = self._full(key)
        data = _to_bytes(value)
        lease_id = _lease_id(lease)
        put: dict[str, Any] = {"key": _b64(full), "value": _b64(data)}
        if lease_id:
            put["lease"] = lease_id
        ok, rev, current, attempts = self._txn(
            [{"key": _b64(full), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
            [{"request_put": put}],
            full,
            f"claim {self.prefix}{key}",
        )
        if ok:
            kv = KeyValue(self._relative(full), data, rev, rev, 1, lease_id)
            return CreateResult(True, rev, kv)
        if (attempts > 1 and current is not None and current.value == data
                and current.lease == lease_id and current.version == 1):
            # Our own earlier attempt succeeded but its answer was lost.
            return CreateResult(True, current.create_revision, current)
        return CreateResult(False, rev, current)

    def _compare_revision(self, full: bytes, expected: int, target: str) -> dict[str, Any]:
        if target not in ("mod", "create"):
            raise ValueError("target must be 'mod' or 'create'")
        field = "mod_revision" if target == "mod" else "create_revision"
        return {"key": _b64(full), "result": "EQUAL", "target": target.upper(),
                field: str(expected)}

    def put_if_revision(
        self,
        key: str,
        value: str | bytes,
        expected_revision: int,
        *,
        target: str = "mod",
        lease: Lease | int | None = None,
    ) -> int | None:
        """Write only if the key's mod (or create) revision still equals `expected_revision`.

        Returns the new revision, or None when the key changed meanwhile (compare-and-set lost).
        """
        full = self._full(key)
        data = _to_bytes(value)
        lease_id = _lease_id(lease)
        put: dict[str, Any] = {"key": _b64(full), "value": _b64(data)}
        if lease_id:
            put["lease"] = lease_id
        ok, rev, current, attempts = self._txn(
            [self._compare_revision(full, expected_revision, target)],
            [{"request_put": put}], full, f"conditional write {self.prefix}{key}")
        if ok:
            return rev
        if (attempts > 1 and current is not None and current.value == data
                and current.lease == lease_id
                and (target == "mod" or current.create_revision == expected_revision)):
            return current.mod_revision
        return None

    def delete_if_revision(self, key: str, expected_revision: int, *, target: str = "mod"
                           ) -> bool:
        """Delete only if the key's mod (or create) revision still equals `expected_revision`.

        After a retried attempt, a key already gone counts as deleted (our own first try).
        """
        full = self._full(key)
        ok, _rev, current, attempts = self._txn(
            [self._compare_revision(full, expected_revision, target)],
            [{"request_delete_range": {"key": _b64(full)}}], full,
            f"conditional delete {self.prefix}{key}")
        return ok or (attempts > 1 and current is None)

    def put_fenced(
        self,
        key: str,
        value: str | bytes,
        *,
        claim_key: str,
        token: int,
        lease: Lease | int | None = None,
    ) -> int:
        """Write `key` only while `claim_key` still carries fencing token `token`.

        Raises FencingError when the claim is gone or re-made (a stale token); re-applying after
        an ambiguous timeout is harmless because the comparison is on the claim, not on `key`.
        """
        claim_full = self._full(claim_key)
        put: dict[str, Any] = {"key": _b64(self._full(key)), "value": _b64(_to_bytes(value))}
        lease_id = _lease_id(lease)
        if lease_id:
            put["lease"] = lease_id
        ok, rev, current, _ = self._txn(
            [self._compare_revision(claim_full, token, "create")], [{"request_put": put}],
            claim_full, f"fenced write {self.prefix}{key}")
        if not ok:
            raise FencingError(claim_key, token, current.create_revision if current else None)
        return rev

    def delete_fenced(self, key: str, *, claim_key: str, token: int, prefix: bool = False) -> int:
        """Delete `key` (or the prefix) only while `claim_key` carries `token`; returns revision."""
        claim_full = self._full(claim_key)
        full = self._full(key)
        delete: dict[str, Any] = {"key": _b64(full)}
        if prefix:
            delete["range_end"] = _b64(_range_end(full))
        ok, rev, current, _ = self._txn(
            [self._compare_revision(claim_full, token, "create")],
            [{"request_delete_range": delete}], claim_full, f"fenced delete {self.prefix}{key}")
        if not ok:
            raise FencingError(claim_key, token, current.create_revision if current else None)
        return rev

    def release_claim(self, claim_key: str, token: int) -> bool:
        """Delete the claim only if it is still ours (same token); False if it was not."""
        return self.delete_if_revision(claim_key, token, target="create")

    # ------------------------------------------------------------------ leases

    def grant_lease(self, ttl: float) -> Lease:
        """Grant a lease of at least `ttl` seconds (etcd rounds up to whole seconds, min ~2 s)."""
        asked = max(1, int(-(-ttl // 1)))
        result = self._call("lease/grant", {"TTL": asked, "ID": 0}, f"grant {asked} s lease")
        if result.get("error"):
            raise EtcdRequestError("grant lease", None, str(result["error"]))
        return Lease(id=int(result["ID"]), ttl=float(result.get("TTL", asked)))

    def _post_to(self, endpoint: str | None, path: str, payload: dict[str, Any], timeout: float,
                 operation: str) -> dict[str, Any]:
        """One request to one member (the preferred one when None), no retry: for the lease
        keeper, which has its own clock and asks several members itself. A failure that says
        "this member, now" demotes it and raises EtcdUnavailableError."""
        target = endpoint if endpoint is not None else next(self._endpoint_order())
        try:
            result = self._post_once(target, path, payload, timeout, operation)
        except _Retryable as exc:
            self._demote(exc.endpoint)
            raise EtcdUnavailableError([target], timeout, str(exc), operation) from exc
        self._answered(target)
        return result

    def keepalive_once(self, lease: Lease | int, *, timeout: float | None = None,
                       endpoint: str | None = None) -> float | None:
        """Refresh once; the new TTL, or None when the lease has already expired or was revoked.

        With `timeout`, a single attempt bounded by it, to `endpoint` (default: the preferred
        one), for the keeper, which has its own clock; otherwise the usual retry with deadline.
        """
        lease_id = _lease_id(lease)
        payload = {"ID": lease_id}
        if timeout is not None:
            result = self._post_to(endpoint, "lease/keepalive", payload, timeout,
                                   "lease keepalive")
        else:
            result = self._call("lease/keepalive", payload, "lease keepalive")
        ttl = result.get("result", {}).get("TTL")
        if ttl is None or int(ttl) <= 0:  # gateway quirk: an expired lease comes back without TTL
            return None
        return float(ttl)

    def lease_time_to_live(self, lease: Lease | int, *, timeout: float | None = None,
                           endpoint: str | None = None) -> float | None:
        """Seconds etcd still gives the lease (whole seconds, rounded down: 0 is under one),
        or None when etcd no longer knows it (expired or revoked: its keys are gone). Asks the
        leader (a follower forwards), without refreshing anything. `timeout`/`endpoint` as for
        `keepalive_once`."""
        payload = {"ID": _lease_id(lease)}
        if timeout is not None:
            result = self._post_to(endpoint, "kv/lease/timetolive", payload, timeout,
                                   "lease time-to-live")
        else:
            result = self._call("kv/lease/timetolive", payload, "lease time-to-live")
        ttl = int(result.get("TTL", -1))
        return None if ttl < 0 else float(ttl)

    def revoke_lease(self, lease: Lease | int) -> None:
        """Revoke (deleting every key attached); a lease already gone is not an error."""
        with contextlib.suppress(LeaseNotFoundError):
            self._call("kv/lease/revoke", {"ID": _lease_id(lease)}, "lease revoke")

    def hold_lease(
        self,
        ttl: float,
        *,
        on_lost: Callable[[str], None] | None = None,
        interval: float | None = None,
        role: str = "node",
    ) -> LeaseKeeper | ProcessLeaseKeeper:
        """Grant a lease and keep it alive in the background until `stop()`: in a thread, or
        in the helper process (`lease_keeper`; an own `interval` means a thread); `role` labels its
        `hotspare_lease_held` gauge."""
        asked_at = time.monotonic()
        helper = self._helper() if self.lease_keeper == "process" and interval is None else None
        lease = self.grant_lease(ttl)
        if helper is not None:
            held = helper.keep(lease, asked_at, role, on_lost)
            if held is not None:
                self._track(held)
                return held
            log.warning("the lease keeper process keeps %d leases already; lease %x is kept by "
                        "a thread of the node instead", SLOTS, lease.id)
        keeper = LeaseKeeper(self, lease, on_lost=on_lost, interval=interval, granted_at=asked_at,
                             role=role, hedges=self.hedges)
        self._track(keeper)
        keeper.start()
        return keeper

    def _helper(self) -> LeaseProcess | None:
        """The running helper process, started if need be (by one caller at a time); None (a
        keeper thread, said in the log) when it cannot start."""
        with self._helper_lock:
            helper = self._lease_process
            if helper is not None and helper.alive():
                return helper
            self._lease_process = None
            try:
                helper = LeaseProcess(self)
            except OSError as exc:
                log.warning("could not start the lease keeper process (%s); the lease is kept by "
                            "a thread of the node instead, which a node short of CPU can lose",
                            exc)
                return None
            if not helper.started():
                log.warning("the lease keeper process (pid %d) did not start within %.0f s; the "
                            "lease is kept by a thread of the node instead, which a node short "
                            "of CPU can lose", helper.pid, READY_TIMEOUT)
                helper.close()
                return None
            self._lease_process = helper
            return helper

    # ------------------------------------------------------------------ watches

    def watch_prefix(
        self,
        prefix: str,
        callback: Callable[[WatchBatch], None],
        *,
        from_revision: int | None = None,
    ) -> Watch:
        """Call `callback` for changes under `prefix` from `from_revision` (default: from now).

        The callback must only wake a level-triggered reconcile: after a compaction it gets a
        snapshot instead of the lost changes, and after a reconnect it may see a change twice.
        """
        if from_revision is None:
            from_revision = self.get_prefix(prefix).revision + 1
        watch = Watch(self, prefix, callback, from_revision)
        self._track(watch)
        watch.start()
        return watch

    def history(self, key: str, *, from_revision: int = 1, prefix: bool = False,
               quiet: float = 0.5, limit_time: float = 10.0) -> list[KeyChange]:
        """Every change to `key` (or under it) since `from_revision`, replayed from etcd's history.

        This is how tests and audits answer "was there ever more than one claim?": etcd keeps
        every revision until compaction, and a watch started at an old revision replays them.
        Raises CompactedError once `from_revision` is compacted: history cannot be recovered then.
        """
        target = self.revision()
        if from_revision > target:
            return []
        full = self._full(key)
        create: dict[str, Any] = {"key": _b64(full), "start_revision": from_revision}
        if prefix:
            create["range_end"] = _b64(_range_end(full))
        found: list[KeyChange] = []
        deadline = time.monotonic() + limit_time
        endpoint = next(self._endpoint_order())
        client = self._client(endpoint)
        try:
            response = client.session.post(client.get_url("watch"),
                                           json={"create_request": create}, stream=True,
                                           timeout=(self.timeout, quiet))
        except requests.exceptions.RequestException as exc:
            raise EtcdUnavailableError([endpoint], 0.0, str(exc), "history replay") from exc
        try:
            for chunk in _stream_lines(response):
                result = chunk.get("result", {})
                if result.get("canceled"):
                    raise CompactedError("history replay", "required revision has been compacted"
                                         f" (compacted up to {result.get('compact_revision')})",
                                         from_revision)
                for raw in result.get("events", []):
                    found.append(self._change(raw))
                if found and found[-1].kv.mod_revision >= target:
                    break
                if time.monotonic() > deadline:
                    break
        except requests.exceptions.ConnectionError:
            pass  # read timeout: no more history arrived within `quiet`
        finally:
            response.close()
        return [e for e in found if e.kv.mod_revision <= target]

    def _change(self, raw: dict[str, Any]) -> KeyChange:
        etype = ChangeType.DELETE if raw.get("type") == "DELETE" else ChangeType.PUT
        return KeyChange(type=etype, kv=self._kv(raw.get("kv", {})))

    # ------------------------------------------------------------------ admin

    def compact(self, revision: int) -> None:
        """Discard history before `revision` (tests and maintenance)."""
        self._call("kv/compaction", {"revision": revision, "physical": True}, "compaction")

    def _track(self, child: LeaseKeeper | ProcessLeaseKeeper | Watch) -> None:
        with self._lock:
            self._children = [c for c in self._children if c.alive()]
            self._children.append(child)

    def close(self) -> None:
        """Stop every keeper and watch this coordinator started (leases are not revoked)."""
        with self._lock:
            children, self._children = self._children, []
        with self._helper_lock:
            helper, self._lease_process = self._lease_process, None
        for child in children:
            if isinstance(child, (LeaseKeeper, ProcessLeaseKeeper)):
                child.stop(revoke=False)
            else:
                child.stop()
        if helper is not None:
            helper.close()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lease_id(lease: Lease | int | None) -> int:
    if lease is None:
        return 0
    return lease.id if isinstance(lease, Lease) else int(lease)


def _stream_lines(response: requests.Response) -> Iterator[dict[str, Any]]:
    """Parse the gateway's watch stream: one JSON object per chunk/line."""
    buffer = b""
    for piece in response.iter_content(chunk_size=None):
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield from _parse_stream_line(line)
    if buffer.strip():
        yield from _parse_stream_line(buffer)


def _parse_stream_line(line: bytes) -> Iterator[dict[str, Any]]:
    data = json.loads(line)
    if isinstance(data, dict):
        if "error" in data and "result" not in data:
            raise requests.exceptions.ConnectionError(str(data["error"]))
        yield data


def _shutdown_response(response: requests.Response | None, close: bool = True) -> None:
    """Unblock a thread reading a streaming response by shutting its socket down. `close=False`
    when another thread still reads it: closing under a reader leaves urllib3 reading from a
    file object that is gone (AttributeError), and the reader should see only the end of the
    stream."""
    if response is None:
        return
    with contextlib.suppress(Exception):
        fp = response.raw._fp  # type: ignore[attr-defined]
        sock = socket.fromfd(fp.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
    if close:
        with contextlib.suppress(Exception):
            response.close()


class LeaseKeeper:
    """Keeps one lease alive, and knows on its own clock when it may have expired.

    The holder may rely on the lease while `valid_for() > 0`: that is the time of the last *sent*
    keepalive that etcd acknowledged plus the TTL etcd returned. etcd counts its TTL from when it
    received that request, later than we sent it, so our estimate runs out first even when etcd
    is unreachable and says nothing.

    One member of three frozen or killed must cost nobody a lease: etcd keeps leases through a
    leader election (the new leader gives every lease its TTL afresh), so what matters is that
    keepalives reach a healthy member. Each keepalive goes to the preferred member; when that
    has failed (a killed one refuses, a frozen one times out) the next member is asked at once,
    and when it has not answered within `hedge_delay` (a frozen member accepts the connection
    and says nothing) the next member is asked too (a hedge), but only while the node's
    `HedgePolicy` allows: an overloaded cluster, slow for every keeper, must not get every
    keepalive twice. The first answer counts. A request stays bounded by the coordinator's
    request timeout, not by the time the lease has left, so an answer that comes late still
    counts as evidence.

    When the estimate runs out (during an election a keepalive may find no leader for a second
    or two) the lease is *in doubt*, not lost: the keeper asks etcd (TimeToLive, any member)
    whether it still holds the lease. etcd deletes a lease's keys only when it revokes the
    lease, and a revoked lease is gone for good (a keepalive on it is refused), so "still held"
    means none of its keys ever went, and keeping on is safe. Only "gone" (or a keepalive
    answered without a TTL) makes the lease lost; a lost lease is never revived: the holder
    grants a new one and re-checks what it held.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        lease: Lease,
        *,
        on_lost: Callable[[str], None] | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        granted_at: float | None = None,
        role: str = "node",
        hedge_delay: float | None = None,
        hedges: HedgePolicy | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """`on_change`: called from the keeper's thread each time its estimate, doubt or loss
        changes, for a keeper whose holder lives in another process (`lease_process`)."""
        self.coordinator = coordinator
        self._on_change = on_change
        self.lease = lease
        self.role = role
        self._held = metrics.LEASE_HELD.labels(role)
        self._on_lost = on_lost
        self._clock = clock
        self.interval = interval if interval is not None else max(0.2, lease.ttl / 3.0)
        self.hedge_delay = (hedge_delay if hedge_delay is not None
                            else min(0.25, max(0.05, lease.ttl / 10.0)))
        self.hedges = hedges if hedges is not None else HedgePolicy()
        # Count from when the grant was asked for (conservative), else from now.
        self._expires_at = (granted_at if granted_at is not None else clock()) + lease.ttl
        self._doubt_since: float | None = None
        self._state_lock = threading.Lock()
        self._settled = threading.Event()  # set while the lease is not in doubt
        self._settled.set()
        self._stop = threading.Event()
        self._wake = threading.Event()  # a holder found the estimate run out: verify now
        self.lost = threading.Event()
        self.lost_reason: str | None = None
        self.last_error: str | None = None
        self.doubts = 0  # times the estimate ran out and etcd then said the lease still held
        # One request in flight per member at most, across rounds: a member slow to answer is
        # not asked again until that request ends, but its answer still counts when it comes.
        self._inflight: dict[str, tuple[Future[float | None], float]] = {}
        self._pool = ThreadPoolExecutor(max_workers=len(coordinator.endpoints) + 1,
                                        thread_name_prefix=f"lease-{lease.id:x}-ask")
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.id:x}", daemon=True)

    @property
    def id(self) -> int:
        return self.lease.id

    @property
    def expires_at(self) -> float:
        """When our estimate runs out, on this keeper's clock."""
        return self._expires_at

    @property
    def doubt_since(self) -> float | None:
        return self._doubt_since

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("lease %x: reporting its state failed", self.lease.id)

    def start(self) -> None:
        self._held.set(1)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def valid_for(self) -> float:
        """Seconds the holder may still rely on the lease; 0 or less: it may have expired (in
        doubt until etcd answers) or is lost."""
        if self.lost.is_set():
            return 0.0
        return self._expires_at - self._clock()

    def in_doubt(self) -> bool:
        """Our estimate ran out and etcd has not yet said whether it still holds the lease."""
        return not self.lost.is_set() and self.valid_for() <= 0.0

    def assumed_lost(self) -> bool:
        """True once the lease is lost: etcd said it expired. While it is in doubt, waits for
        etcd's verdict, but only within one request timeout of the doubt beginning (a node
        thawed after a long freeze learns the truth before it acts), then answers False: hold
        on, nobody can act on the lease's expiry before etcd is reachable again either."""
        if self.lost.is_set():
            return True
        if self.valid_for() > 0.0:
            return False
        since = self._doubt()  # the keeper may be between rounds: the doubt starts now
        patience = since + self.coordinator.timeout + self.hedge_delay - self._clock()
        if patience > 0 and threading.current_thread() is not self._thread:
            self._settled.wait(patience)
        return self.lost.is_set()

    def _declare_lost(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost.set()
        self._settled.set()
        self._held.set(0)
        log.warning("lease %x lost: %s", self.lease.id, reason)
        self._changed()
        if self._on_lost is not None:
            try:
                self._on_lost(reason)
            except Exception:
                log.exception("lease-lost callback failed")

    def _ask_one(self, endpoint: str, verify: bool) -> float | None:
        """One member: the TTL it gives the lease now (None: etcd says it is gone). To verify a
        lease in doubt, TimeToLive first (it only reads), then the keepalive that extends it."""
        c = self.coordinator
        if verify:
            left = c.lease_time_to_live(self.lease, timeout=c.timeout, endpoint=endpoint)
            if left is None:
                return None
        started = time.monotonic()
        ttl = c.keepalive_once(self.lease, timeout=c.timeout, endpoint=endpoint)
        self.hedges.answered(endpoint, time.monotonic() - started)
        return ttl

    def _round(self, verify: bool, skip: str | None = None
               ) -> tuple[str, float, float | None] | None:
        """Ask the members (but `skip`), the preferred first, until one answers: (the member,
        when the request was sent, the TTL it gave or None for "gone"). None when every member
        failed (the caller pauses). After a failure the next member is asked at once; before
        an answer (a hedge) only as `self.hedges` allows (`hedging.HedgePolicy`: the member is
        slow for itself, and the budget has a token), and with one hedge in flight at most."""
        pending: dict[Future[float | None], tuple[str, float]] = {}
        queue = [e for e in self.coordinator.endpoints_by_preference() if e != skip]
        asked, asked_at = "", 0.0  # the member asked last, and when
        hedged = no_budget = False
        while not self._stop.is_set():
            now = self._clock()
            launch = bool(queue) and not pending
            if queue and len(pending) == 1 and not no_budget:
                delay = self.hedges.delay_for(asked, self.hedge_delay)
                if delay < self.coordinator.timeout and now - asked_at >= delay:
                    running = self._inflight.get(queue[0])
                    if running is not None and not running[0].done():
                        launch = True  # adopting a request already sent costs nothing
                    elif self.hedges.take():
                        launch = hedged = True
                    else:
                        no_budget = True
            if launch:
                endpoint = queue.pop(0)
                running = self._inflight.get(endpoint)
                if running is not None and not running[0].done():
                    # adopt: its answer counts for this round
                    pending[running[0]] = (endpoint, running[1])
                    asked, asked_at = endpoint, running[1]
                else:
                    sent = self._clock()
                    try:
                        future = self._pool.submit(self._ask_one, endpoint, verify)
                    except RuntimeError:
                        # The interpreter is exiting (this thread is a daemon): stop quietly.
                        self._stop.set()
                        return None
                    self._inflight[endpoint] = (future, sent)
                    pending[future] = (endpoint, sent)
                    asked, asked_at = endpoint, sent
                continue
            if not pending:
                return None
            done, _ = wait(list(pending), timeout=self.hedge_delay, return_when=FIRST_COMPLETED)
            for future in done:
                endpoint, sent = pending.pop(future)
                try:
                    ttl = future.result()
                except CoordinationError as exc:
                    self.last_error = str(exc)
                    continue
                except Exception as exc:  # a keeper thread must not die of a surprise
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("lease %x keepalive failed unexpectedly: %s", self.lease.id,
                                self.last_error)
                    continue
                if not hedged:
                    self.hedges.earn()
                return endpoint, sent, ttl
        return None

    def _doubt(self) -> float:
        """Enter doubt (once); when it began. The gauge stays at 1: etcd may well hold it."""
        with self._state_lock:
            if self._doubt_since is not None:
                return self._doubt_since
            if self.lost.is_set() or self._stop.is_set():
                return self._clock()
            self._doubt_since = since = self._clock()
            self._settled.clear()
        self._wake.set()
        self._changed()
        waiting = sorted(e for e, (f, _sent) in list(self._inflight.items()) if not f.done())
        why = (f"last error: {self.last_error}" if self.last_error is not None else
               f"sent to {', '.join(waiting)}, not answered yet" if waiting else
               "none failed or is unanswered: this process did not get to send one in time, "
               "so it or its machine is short of CPU")
        log.warning("lease %x (%s) may have expired: no keepalive acknowledged for %.0f s "
                    "(%s); asking etcd whether it still holds it",
                    self.lease.id, self.role, self.lease.ttl, why)
        return since

    def _settle(self, sent: float, ttl: float) -> None:
        self._expires_at = max(self._expires_at, sent + ttl)
        self.last_error = None
        with self._state_lock:
            since, self._doubt_since = self._doubt_since, None
            self._settled.set()
        if since is not None:
            self.doubts += 1
        self._changed()
        if since is not None:
            log.info("lease %x (%s) still held: etcd kept it through %.1f s without an "
                     "acknowledged keepalive (an etcd election or a slow member); nothing was lost",
                     self.lease.id, self.role, self._clock() - since)

    def _run(self) -> None:
        retry_pause = min(0.25, self.hedge_delay)
        wait_for = self.interval
        while True:
            self._wake.wait(wait_for)
            self._wake.clear()
            if self._stop.is_set():
                return
            verify = self._clock() >= self._expires_at
            if verify:
                self._doubt()
            answer = self._round(verify)
            if self._stop.is_set():
                return
            if answer is None:  # no member answered: try again soon
                wait_for = retry_pause
                continue
            endpoint, sent, ttl = answer
            if ttl is None and len(self.coordinator.endpoints) > 1:
                # One member's word is not enough: just after a frozen leader was thawed, one
                # member answered "no such lease" while etcd kept its keys
                # (tests/e2e/test_etcd_member_faults.py). Another member forwards to the leader.
                log.info("lease %x (%s): %s says etcd no longer holds it; asking another "
                         "member", self.lease.id, self.role, endpoint)
                second = self._round(True, skip=endpoint)
                if self._stop.is_set():
                    return
                if second is not None:
                    if second[2] is not None:
                        log.warning("lease %x (%s): %s said etcd no longer holds it, but %s "
                                    "says it does; keeping it", self.lease.id, self.role,
                                    endpoint, second[0])
                    endpoint, sent, ttl = second
            if ttl is None:
                self._declare_lost("etcd says the lease has expired"
                                   + (f" (asked after {self._clock() - self._doubt_since:.1f} s "
                                      f"in doubt; last error: {self.last_error})"
                                      if self._doubt_since is not None else ""))
                self._pool.shutdown(wait=False)
                return
            self._settle(sent, ttl)
            wait_for = self.interval

    def stop(self, *, revoke: bool = True) -> None:
        """Stop refreshing; with `revoke`, also delete the lease (and its keys) now."""
        self._stop.set()
        self._wake.set()
        self._held.set(0)
        self._settled.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.coordinator.timeout + 1.0)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if revoke:
            with contextlib.suppress(CoordinationError):
                self.coordinator.revoke_lease(self.lease)


REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
"""etcd's require-leader flag, through its HTTP gateway: a member that has no leader refuses a
new watch at once (503 `no leader`, tried), and by etcd's source ends an open one after three
election timeouts without a leader."""


class Watch:
    """A prefix watch in a thread that survives broken streams and compaction.

    It remembers the revision after the last event delivered and reopens the stream there, on
    any endpoint. If that revision has been compacted, etcd cancels the watch; we then read the
    whole prefix, hand the callback that snapshot, and continue from the snapshot's revision.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        prefix: str,
        callback: Callable[[WatchBatch], None],
        from_revision: int,
    ) -> None:
        self.coordinator = coordinator
        self.prefix = prefix
        self.callback = callback
        self.next_revision = from_revision
        self.reconnects = 0
        self.resyncs = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._response: requests.Response | None = None
        self._endpoint: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{prefix}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def leave(self, endpoint: str) -> None:
        """Drop the stream if it is on `endpoint`: it reopens, from the next revision, on the
        endpoint the coordinator prefers now."""
        if self._endpoint == endpoint and threading.current_thread() is not self._thread:
            _shutdown_response(self._response, close=False)

    def _deliver(self, batch: WatchBatch) -> None:
        try:
            self.callback(batch)
        except Exception:
            log.exception("watch callback for %s failed", self.prefix)

    def _resync(self) -> None:
        snapshot = self.coordinator.get_prefix(self.prefix)
        self.resyncs += 1
        self.next_revision = snapshot.revision + 1
        self._deliver(WatchBatch(revision=snapshot.revision, resynced=True,
                                 snapshot=snapshot.kvs))

    def _run(self) -> None:
        c = self.coordinator
        full = c._full(self.prefix)
        pause = 0.05
        while not self._stop.is_set():
            endpoint = next(c._endpoint_order())
            client = c._client(endpoint)
            # progress_notify makes a member that is alive but idle send a heartbeat at its
            # configured interval, so silence longer than watch_idle_timeout means a dead stream.
            create: dict[str, Any] = {"key": _b64(full), "range_end": _b64(_range_end(full)),
                                      "start_revision": self.next_revision,
                                      "progress_notify": True}
            try:
                self._endpoint = endpoint
                self._response = client.session.post(
                    client.get_url("watch"), json={"create_request": create}, stream=True,
                    headers=REQUIRE_LEADER, timeout=(c.timeout, c.watch_idle_timeout))
                if self._response.status_code != 200:
                    raise requests.exceptions.ConnectionError(
                        f"HTTP {self._response.status_code}: {self._response.text[:200]}")
                for chunk in _stream_lines(self._response):
                    if self._stop.is_set():
                        return
                    result = chunk.get("result", {})
                    if result.get("canceled"):
                        if int(result.get("compact_revision", 0)) > 0:
                            # Our revision is gone: the stream stays open but will say nothing.
                            self._resync()
                            break
                        raise requests.exceptions.ConnectionError(
                            f"watch cancelled: {result.get('cancel_reason', 'no reason given')}")
                    raw_changes = result.get("events", [])  # etcd calls key changes "events"
                    if not raw_changes:
                        continue
                    changes = [c._change(raw) for raw in raw_changes]
                    self.next_revision = max(e.kv.mod_revision for e in changes) + 1
                    self._deliver(WatchBatch(revision=c._revision(result), changes=changes))
                    pause = 0.05
                # Falling out of the loop (stream closed, or a resync): reopen at next_revision.
            except (requests.exceptions.RequestException, ValueError, CoordinationError) as exc:
                if self._stop.is_set():
                    return
                self.last_error = f"{endpoint}: {exc}"
                is_idle = isinstance(exc, requests.exceptions.ConnectionError) and (
                    "Read timed out" in str(exc))
                if not is_idle:
                    c._demote(endpoint)
                    self.reconnects += 1
                    self._stop.wait(pause)
                    pause = min(1.0, pause * 2)
            except Exception as exc:  # a watch thread must never die: reopen whatever broke
                if self._stop.is_set():
                    return
                self.last_error = f"{endpoint}: {type(exc).__name__}: {exc}"
                log.warning("etcd watch on %s broke unexpectedly (%s); reopening it from "
                            "revision %d", self.prefix or "/", self.last_error,
                            self.next_revision)
                self.reconnects += 1
                self._stop.wait(pause)
                pause = min(1.0, pause * 2)
            finally:
                _shutdown_response(self._response)
                self._response = None
                self._endpoint = None

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        _shutdown_response(self._response)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
