"""The page a node shares with its lease keeper process (`lease_process`, `lease_helper`).

A small memory-mapped file of doubles: the node's heartbeat, the helper's, then per lease slot
when our
estimate runs out, the slot's state, since when the lease is in doubt and how often it was;
then per slot the reason it was lost. Both processes read and write it without a system call or
a lock: each field has one writer at a time (each heartbeat its process; a slot: the helper while it
keeps the lease, the node before handing it over and once the helper is gone or silent), and a
double is stored whole. Times are `time.monotonic()`, one clock for every process of a machine
(Linux's CLOCK_MONOTONIC, and the system-wide counters Python uses on macOS and Windows).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

SLOTS = 16
"""Leases one helper keeps at once (a node holds one; the rest is room for re-grants)."""
FIELDS = 4
REASON_BYTES = 510  # UTF-8, after a 2-byte length
HEADER = 2  # the node's last heartbeat, the helper's
DOUBLES = HEADER + SLOTS * FIELDS
PAGE_BYTES = DOUBLES * 8 + SLOTS * (REASON_BYTES + 2)

# A slot's fields, and its states.
EXPIRES, STATE, DOUBT_SINCE, DOUBTS = 0, 1, 2, 3
FREE, KEEPING, LOST, STOPPED = 0.0, 1.0, 2.0, 3.0

SILENCE_FRACTION = 1.0
"""The helper revokes a lease once the node has been silent this fraction of the lease's TTL
and has not run meanwhile (stopped, frozen): no later than a keeper thread's lease ran out, one
TTL after its last keepalive."""
STARVED_FRACTION = 3.0
"""A node that has run during its silence (its CPU time grew) is short of CPU or of its
interpreter lock, not stopped: its heartbeat thread beat up to 2 s late with 128 busy threads on
2 busy cores (`bench/lease_keeper`). It keeps its lease until silent this fraction of the TTL,
so that a node spinning with the lock held still loses it."""


class Page:
    """The shared page over one mapping; see the module's docstring for what is where."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._map = mapped
        self.doubles = memoryview(mapped).cast("B").cast("d")

    @classmethod
    def open(cls, path: Path) -> Page:
        with path.open("r+b") as file:
            return cls(mmap.mmap(file.fileno(), PAGE_BYTES))

    @classmethod
    def create(cls) -> tuple[Page, Path]:
        """A new zeroed page in a file of its own (Linux: in /dev/shm, memory only)."""
        import tempfile

        shm = Path("/dev/shm")
        folder = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        fd, name = tempfile.mkstemp(prefix="hotspare-lease-", suffix=".page", dir=folder)
        with os.fdopen(fd, "r+b") as file:
            file.write(b"\0" * PAGE_BYTES)
            file.flush()
            return cls(mmap.mmap(file.fileno(), PAGE_BYTES)), Path(name)

    @property
    def heartbeat(self) -> float:
        """When the node last beat (written by the node, read by the helper)."""
        return float(self.doubles[0])

    @heartbeat.setter
    def heartbeat(self, value: float) -> None:
        self.doubles[0] = value

    @property
    def helper_beat(self) -> float:
        """When the helper's heartbeat watch last ran (the other way round)."""
        return float(self.doubles[1])

    @helper_beat.setter
    def helper_beat(self, value: float) -> None:
        self.doubles[1] = value

    def field(self, slot: int, index: int) -> float:
        return float(self.doubles[HEADER + slot * FIELDS + index])

    def set_field(self, slot: int, index: int, value: float) -> None:
        self.doubles[HEADER + slot * FIELDS + index] = value

    def reason(self, slot: int) -> str:
        start = DOUBLES * 8 + slot * (REASON_BYTES + 2)
        length = int.from_bytes(self._map[start:start + 2], "little")
        return self._map[start + 2:start + 2 + length].decode("utf-8", "replace")

    def set_reason(self, slot: int, text: str) -> None:
        data = text.encode("utf-8")[:REASON_BYTES]
        start = DOUBLES * 8 + slot * (REASON_BYTES + 2)
        self._map[start + 2:start + 2 + len(data)] = data
        self._map[start:start + 2] = len(data).to_bytes(2, "little")

    def mark_lost(self, slot: int, reason: str) -> None:
        """The reason first, then the state: a reader that sees LOST finds the reason."""
        self.set_reason(slot, reason)
        self.set_field(slot, STATE, LOST)
