"""Site events (suspected, claimed, recording, returned, re-inserting n/N, done, refused, …).

Stored in etcd so every node and `hotspare events` see one history; bounded to the newest N so a
flapping site cannot grow etcd without limit. Writing an event never fails the step it reports:
an event lost to an etcd outage is logged locally instead.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from hotspare import metrics
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import KeyValue
from hotspare.sitestate import layout

log = logging.getLogger("hotspare.sitestate.events")

KINDS = ("suspected", "claimed", "recording", "returned", "handback", "reinserting", "done",
         "refused", "stood_down", "lost_claim", "not_recording", "config", "protection",
         "gapless_fallback", "blocked", "released", "early_deleted", "displaced")
for _kind in KINDS:  # exported as 0 from the start, so increase() sees the first event
    metrics.EVENTS.labels(_kind)


@dataclass(frozen=True)
class Event:
    wall_us: int
    node: str
    kind: str
    server: str | None
    message: str
    data: dict[str, Any]

    @classmethod
    def from_kv(cls, kv: KeyValue) -> Event:
        return cls.from_dict(json.loads(kv.value))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        """From the stored JSON, which is also the site API's shape of an event."""
        return cls(int(raw["wall_us"]), str(raw["node"]), str(raw["kind"]), raw.get("server"),
                   str(raw.get("message", "")), dict(raw.get("data") or {}))

    def line(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.wall_us / 1e6))
        millis = (self.wall_us // 1000) % 1000
        server = f" {self.server}" if self.server else ""
        return f"{stamp}.{millis:03d}Z {self.node:<12} {self.kind:<12}{server}: {self.message}"


def event_dumps(body: dict[str, Any]) -> str:
    return json.dumps(body)


class EventSink(Protocol):
    """Where the failover agents report (`EventLog`; a list in the unit tests)."""

    def emit(self, kind: str, server: str | None, message: str, **data: Any) -> None: ...


class EventLog:
    """Appends events under `events/`; prunes to `keep` every few writes."""

    def __init__(self, coord: Coordinator, node: str, keep: int = 1000) -> None:
        self._coord = coord
        self._node = node
        self._keep = keep
        self._writes = 0
        self._lock = threading.Lock()

    def emit(self, kind: str, server: str | None, message: str, **data: Any) -> None:
        wall_us = time.time_ns() // 1000
        body = {"wall_us": wall_us, "node": self._node, "kind": kind, "server": server,
                "message": message, "data": data}
        log.info("event %s %s: %s", kind, server or "-", message)
        metrics.EVENTS.labels(kind).inc()
        if kind in metrics.TAKEOVER_KINDS:
            metrics.TAKEOVERS.labels(kind, server or "").inc()
        try:
            self._coord.put(layout.event(wall_us, self._node, secrets.token_hex(2)),
                            event_dumps(body))
        except CoordinationError as exc:
            log.warning("event %s not stored in etcd (%s)", kind, exc)
            return
        with self._lock:
            self._writes += 1
            due = self._writes % 20 == 0
        if due:
            self.prune()

    def prune(self) -> None:
        try:
            found = self._coord.get_prefix(layout.EVENTS_PREFIX)
            for kv in found.kvs[: max(0, len(found.kvs) - self._keep)]:
                self._coord.delete(kv.key)
        except CoordinationError as exc:
            log.warning("event pruning skipped (%s)", exc)


def read_events(coord: Coordinator, limit: int | None = None) -> tuple[list[Event], int]:
    """Stored events oldest first, and the revision they were read at (to follow from)."""
    found = coord.get_prefix(layout.EVENTS_PREFIX)
    events = []
    for kv in found.kvs:
        try:
            events.append(Event.from_kv(kv))
        except (ValueError, KeyError, TypeError):
            continue
    if limit is not None:
        events = events[-limit:]
    return events, found.revision
