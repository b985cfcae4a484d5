"""A node's etcd lease kept alive by a small helper process, so that a busy node keeps it.

Why a process: a lease keeper thread needs a dozen turns of the interpreter lock (GIL) for one
keepalive (the HTTP request, TLS, JSON). A node whose own Python threads want more than one
core — a spare recording 64 cameras while it opens 64 standby sessions at a handback — gives
such a thread a turn only every tens of milliseconds, and its keepalives came seconds late: the
spare lost its lease at 4 of 12 handbacks (bench/README.md, *The spare's lease lost at the
handback*; `bench.lease_keeper` reproduces it without cameras). The helper process has a GIL of
its own and runs the same `LeaseKeeper`; the node only writes its monotonic clock into a shared
page a few times per TTL (one turn of the lock each), and reads the keeper's estimate from the
same page without asking anyone.

What the lease then means is unchanged: the node is alive and running Python. The helper keeps
the lease only while it hears the node's heartbeat: a node not heard from for a whole TTL that
did not run meanwhile (stopped, frozen; its CPU time, from the OS, did not grow), or not heard
from for three TTLs whatever it did (a thread spinning with the lock held), has its lease
revoked by the helper, which first marks it lost on the page so the node never relies on it
afterwards. A node killed
outright closes the helper's stdin: the helper exits without revoking, and etcd lets the lease
expire on its TTL, as it did with a keeper thread. A helper that dies makes its leases lost at
once for the node, which then grants a new lease (starting a new helper) as after any loss.

This module is the node's side; `lease_helper` is the helper's, and `lease_page` the page they
share.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

from hotspare import metrics
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.lease_page import (
    DOUBT_SINCE,
    DOUBTS,
    EXPIRES,
    KEEPING,
    LOST,
    SLOTS,
    STATE,
    STOPPED,
    Page,
)
from hotspare.coordination.models import Lease

log = logging.getLogger("hotspare.coordination.lease_process")

BEATS_PER_TTL = 16
HELPER_SILENT = 1.0
"""Seconds without the helper's own beat after which the node stops waiting for its verdict."""
READY_TIMEOUT = 20.0
"""Seconds a new helper may take to start (imports on a loaded host) before the node falls
back to a keeper thread and says so."""


class EtcdConnection(Protocol):
    """What the node's side needs of its `Coordinator` (which imports this module)."""

    timeout: float

    def spawn_settings(self) -> dict[str, Any]: ...

    def revoke_lease(self, lease: Lease | int) -> None: ...

    def lease_time_to_live(self, lease: Lease | int, *, timeout: float | None = None,
                           endpoint: str | None = None) -> float | None: ...


class LeaseProcess:
    """The node's side of one helper process: starts it, beats the heartbeat, hands it leases
    and reads their state back. One per `Coordinator`, started by its first `hold_lease`."""

    def __init__(self, coordinator: EtcdConnection) -> None:
        self.coordinator = coordinator
        self.page, self._path = Page.create()
        self._lock = threading.Lock()
        self._keepers: dict[int, ProcessLeaseKeeper] = {}  # by slot, until the slot is free
        self._free = list(range(SLOTS))
        self._generation = 0  # tells a slot's leases apart in messages (a slot is reused)
        self._ready = threading.Event()
        self._gone = threading.Event()
        self._closing = False
        self._beat_every = 0.25
        self.beat_gap_max = 0.0
        """The longest time between two beats of the heartbeat thread (a node short of CPU)."""
        self.beat()
        # A session (process group) of its own: a Ctrl+C meant for the node is the node's to
        # handle; the helper ends when the node does (its stdin closes).
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "hotspare.coordination.lease_helper"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            start_new_session=sys.platform != "win32",
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._send({"op": "config", "page": str(self._path), "node_pid": os.getpid(),
                    **coordinator.spawn_settings()})
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,),
                                        name="lease-process-read", daemon=True)
        self._reader.start()
        self._beater = threading.Thread(target=self._beat_loop, name="lease-process-beat",
                                        daemon=True)
        self._beater.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def started(self, timeout: float = READY_TIMEOUT) -> bool:
        """Whether the helper came up (imports done, page mapped) within `timeout`."""
        if not self._ready.wait(timeout):
            return False
        if sys.platform != "win32":  # both have it mapped: the name is no longer needed
            with contextlib.suppress(OSError):
                self._path.unlink()
        return not self._gone.is_set()

    def alive(self) -> bool:
        return not self._gone.is_set() and self._proc.poll() is None

    def beat(self) -> None:
        self.page.heartbeat = time.monotonic()

    def _beat_loop(self) -> None:
        last = time.monotonic()
        while not self._gone.wait(self._beat_every):
            self.beat()
            now = time.monotonic()
            self.beat_gap_max = max(self.beat_gap_max, now - last)
            last = now

    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            try:
                self._stdin.write(json.dumps(message).encode("utf-8") + b"\n")
                self._stdin.flush()
            except (OSError, ValueError):
                pass  # the helper is gone; the reader marks its leases lost

    def keep(self, lease: Lease, granted_at: float, role: str,
             on_lost: Callable[[str], None] | None) -> ProcessLeaseKeeper | None:
        """Hand the helper a lease just granted. None when every slot is in use."""
        with self._lock:
            if not self._free:
                return None
            slot = self._free.pop(0)
            self._generation += 1
            keeper = ProcessLeaseKeeper(self, slot, self._generation, lease, role, on_lost)
            self._keepers[slot] = keeper
        self.page.set_field(slot, EXPIRES, granted_at + lease.ttl)
        self.page.set_field(slot, DOUBT_SINCE, 0.0)
        self.page.set_field(slot, DOUBTS, 0.0)
        self.page.set_field(slot, STATE, KEEPING)
        self._beat_every = min(self._beat_every, lease.ttl / BEATS_PER_TTL)
        self.beat()
        self._send({"op": "keep", "slot": slot, "gen": keeper.generation, "lease": lease.id,
                    "ttl": lease.ttl, "granted_at": granted_at, "role": role})
        return keeper

    def release(self, keeper: ProcessLeaseKeeper) -> None:
        """The holder is done with it. Its slot is free once the helper has said too that it
        no longer keeps it (`stopped`), whichever comes first."""
        self.page.set_field(keeper.slot, STATE, STOPPED)
        with self._lock:
            keeper.released = True
            if keeper.acknowledged:
                self._free_slot(keeper)
                return
        self._send({"op": "stop", "slot": keeper.slot, "gen": keeper.generation})

    def _free_slot(self, keeper: ProcessLeaseKeeper) -> None:
        if self._keepers.get(keeper.slot) is keeper:
            del self._keepers[keeper.slot]
            self._free.append(keeper.slot)

    def _keeper(self, message: dict[str, Any]) -> ProcessLeaseKeeper | None:
        """The lease a message is about; None for one already gone from its slot."""
        keeper = self._keepers.get(int(message["slot"]))
        return keeper if keeper is not None and keeper.generation == message.get("gen") else None

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            op = message.get("op")
            if op == "ready":
                self._ready.set()
            elif op == "log":
                logging.getLogger(str(message.get("name", "hotspare"))).log(
                    int(message.get("level", logging.INFO)), "%s", message.get("msg", ""))
            elif op == "lost":
                with self._lock:
                    keeper = self._keeper(message)
                if keeper is not None:
                    keeper.noticed_lost()
            elif op == "stopped":
                with self._lock:
                    keeper = self._keeper(message)
                    if keeper is not None:
                        keeper.acknowledged = True
                        if keeper.released:
                            self._free_slot(keeper)
        code = self._proc.wait()
        self._gone.set()
        self._ready.set()
        with self._lock:
            keepers = list(self._keepers.values())
        for keeper in keepers:
            if self.page.field(keeper.slot, STATE) == KEEPING:
                self.page.mark_lost(keeper.slot, f"its lease keeper process (pid {self.pid}) "
                                    f"exited with code {code}, so nothing keeps it alive")
                keeper.noticed_lost()
        if not self._closing and (keepers or code not in (0, None)):
            log.warning("the lease keeper process (pid %d) exited with code %s; a new one starts "
                        "with the next lease", self.pid, code)

    def close(self) -> None:
        """Stop the helper (its leases are not revoked: `ProcessLeaseKeeper.stop` does that)."""
        self._closing = True
        self._gone.set()
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()
        try:
            self._proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(2.0)
        with contextlib.suppress(OSError):
            self._path.unlink()


class ProcessLeaseKeeper:
    """The node's handle on one lease kept by its helper: the same questions as `LeaseKeeper`
    (`valid_for`, `assumed_lost`, `stop`), answered from the shared page."""

    def __init__(self, process: LeaseProcess, slot: int, generation: int, lease: Lease, role: str,
                 on_lost: Callable[[str], None] | None) -> None:
        self.process = process
        self.slot = slot
        self.generation = generation
        self.released = False  # the holder stopped it
        self.acknowledged = False  # the helper no longer keeps it
        self.lease = lease
        self.role = role
        self.lost = threading.Event()
        self._on_lost = on_lost
        self._held = metrics.LEASE_HELD.labels(role)
        self._held.set(1)
        self._stopped = False
        c = process.coordinator
        self._patience = c.timeout + min(0.25, max(0.05, lease.ttl / 10.0))

    @property
    def id(self) -> int:
        return self.lease.id

    @property
    def lost_reason(self) -> str | None:
        return self.process.page.reason(self.slot) if self.lost.is_set() else None

    @property
    def doubts(self) -> int:
        return int(self.process.page.field(self.slot, DOUBTS))

    def alive(self) -> bool:
        return not self._stopped and not self.lost.is_set()

    def noticed_lost(self) -> None:
        """The page says lost: tell the holder once (gauge, callback)."""
        if self._stopped or self.lost.is_set():
            return
        self.lost.set()
        self._held.set(0)
        if self._on_lost is not None:
            try:
                self._on_lost(self.process.page.reason(self.slot))
            except Exception:
                log.exception("lease-lost callback failed")

    def valid_for(self) -> float:
        """Seconds the holder may still rely on the lease (see `LeaseKeeper.valid_for`)."""
        self.process.beat()
        if self.lost.is_set():
            return 0.0
        if self.process.page.field(self.slot, STATE) == LOST:
            self.noticed_lost()
            return 0.0
        return self.process.page.field(self.slot, EXPIRES) - time.monotonic()

    def in_doubt(self) -> bool:
        return not self.lost.is_set() and self.valid_for() <= 0.0

    def assumed_lost(self) -> bool:
        """As `LeaseKeeper.assumed_lost`: lost when the helper says so; in doubt, wait for its
        verdict, but only within one request timeout of the doubt beginning, then hold on (etcd
        is slow or away for the helper too). Unless the helper itself has stopped beating (it
        is stopped or hung): then the node asks etcd, one request."""
        if self.valid_for() > 0.0:
            return False
        if self.lost.is_set():
            return True
        page = self.process.page
        since = page.field(self.slot, DOUBT_SINCE) or page.field(self.slot, EXPIRES)
        deadline = since + self._patience
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if self.valid_for() > 0.0:
                return False
            if self.lost.is_set():
                return True
        if time.monotonic() - page.helper_beat < HELPER_SILENT:
            return False
        return self._ask_etcd()

    def _ask_etcd(self) -> bool:
        c = self.process.coordinator
        try:
            left = c.lease_time_to_live(self.lease, timeout=c.timeout)
        except CoordinationError:
            return False  # nobody can act on its expiry before etcd is reachable either
        if left is not None:
            return False
        page = self.process.page
        if page.field(self.slot, STATE) == KEEPING:
            page.mark_lost(self.slot, f"etcd says the lease has expired; its lease keeper "
                           f"process (pid {self.process.pid}) did not say so (stopped or hung)")
        self.noticed_lost()
        return True

    def stop(self, *, revoke: bool = True) -> None:
        """Stop keeping it; with `revoke`, also delete the lease (and its keys) now."""
        if self._stopped:
            return
        self._stopped = True
        self._held.set(0)
        self.process.release(self)
        if revoke:
            with contextlib.suppress(CoordinationError):
                self.process.coordinator.revoke_lease(self.lease)
