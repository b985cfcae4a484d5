"""Typed values of the site keys, each with its parse and serialize, next to the key layout.

Parsing is lenient on purpose: a value written by a newer or broken node must not stop a spare
from deciding or the master from answering, so an unreadable value reads as its safest meaning
(an alive key that is not `confirmed`, a spare record that says "down"), never as an exception.
The revisions etcd keeps beside a value (a claim's create revision is its fencing token; an
alive key's mod revision says whether it was written after a claim) travel with the value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hotspare.coordination.models import KeyValue
from hotspare.site.eligibility import DOWN, SpareState, SpareStatus
from hotspare.site.protection_change import ServerProtectionState
from hotspare.site.report import StandbySession, parse_standby
from hotspare.site.spare_room import SpareRoom


def now_us() -> int:
    return time.time_ns() // 1000


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


def load_object(raw: str | bytes | KeyValue) -> dict[str, Any]:
    """A stored JSON object; {} for anything else (see the module docstring)."""
    data = raw.value if isinstance(raw, KeyValue) else raw
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class Alive:
    """`alive/<server>`: every camera records; `confirmed` once each committed enough segments
    to hand back. `mod_revision` is 0 until read from etcd."""

    url: str
    boot: str
    confirmed: bool
    mod_revision: int = 0

    def dumps(self) -> str:
        return _dumps({"url": self.url, "boot": self.boot, "confirmed": self.confirmed})

    @classmethod
    def parse(cls, kv: KeyValue) -> Alive:
        raw = load_object(kv)
        return cls(str(raw.get("url", "")), str(raw.get("boot", "")), bool(raw.get("confirmed")),
                   kv.mod_revision)

    def confirmed_after(self, token: int) -> bool:
        """Confirmed by a write after the claim `token`: a crashed server's key outlives the
        process until its lease runs out, still saying `confirmed`."""
        return self.confirmed and self.mod_revision > token


@dataclass(frozen=True)
class Claim:
    """`claims/<server>`: a spare's exclusive right to act for the server; `token` (the key's
    create revision) fences everything done under it."""

    spare: str
    url: str = ""
    lease: int = 0
    at_us: int = 0
    token: int = 0

    def dumps(self) -> str:
        return json.dumps({"spare": self.spare, "url": self.url, "lease": self.lease,
                           "at_us": self.at_us})

    @classmethod
    def parse(cls, kv: KeyValue) -> Claim:
        raw = load_object(kv)
        return cls(str(raw.get("spare", "?")), str(raw.get("url", "")), _int(raw.get("lease")),
                   _int(raw.get("at_us")), kv.create_revision)


@dataclass(frozen=True)
class Owner:
    """`owners/<server>`: where API clients find the server's cameras; `token` when a spare."""

    node: str
    url: str
    token: int | None = None

    def dumps(self) -> str:
        body: dict[str, Any] = {"node": self.node, "url": self.url}
        if self.token is not None:
            body["token"] = self.token
        return json.dumps(body)

    @classmethod
    def parse(cls, raw: str | bytes | KeyValue) -> Owner:
        value = load_object(raw)
        token = value.get("token")
        return cls(str(value.get("node", "")), str(value.get("url", "")),
                   None if token is None else _int(token))


@dataclass(frozen=True)
class SpareRecord:
    """`spares/<spare>`: what the spare says it does (`idle`, `covering`, `reinserting`); a
    re-insert without a claim says `idle` with `leftover`, since the spare is free meanwhile.
    `room`: its buffer store's room (`{"free_bytes", "warn_seconds"}`, site/spare_room.py); absent
    from a spare that does not measure it (read as unknown, i.e. enough)."""

    state: str
    url: str = ""
    covering: str | None = None
    leftover: str | None = None
    readable: bool = True
    room: SpareRoom | None = None

    def dumps(self) -> str:
        body: dict[str, Any] = {"state": self.state, "covering": self.covering, "url": self.url}
        if self.leftover is not None:
            body["leftover"] = self.leftover
        if self.room is not None:
            body["room"] = {"free_bytes": self.room.free_bytes,
                            "warn_seconds": self.room.warn_seconds}
        return _dumps(body)

    @classmethod
    def parse(cls, kv: KeyValue) -> SpareRecord:
        raw = load_object(kv)
        if not raw:
            return cls("down", readable=False)
        return cls(str(raw.get("state", "idle")), str(raw.get("url", "")),
                   _str(raw.get("covering")), _str(raw.get("leftover")),
                   room=_room(raw.get("room")))

    def status(self) -> SpareStatus:
        """The one rule for a spare's availability from its own record (see
        `SiteState.spare_status` for the claim that overrides it)."""
        if not self.readable:
            return DOWN
        if self.state in ("covering", "reinserting") and self.covering:
            return SpareStatus(SpareState.COVERING, self.covering, self.room)
        return SpareStatus(SpareState.IDLE, room=self.room)


def _room(raw: object) -> SpareRoom | None:
    """Unreadable: unknown (None), never "no room": a broken value must not move a claim."""
    if not isinstance(raw, dict):
        return None
    free, warn = raw.get("free_bytes"), raw.get("warn_seconds")
    if (not isinstance(free, int) or isinstance(free, bool) or free < 0
            or not isinstance(warn, int | float) or isinstance(warn, bool) or warn < 0):
        return None
    return SpareRoom(free, float(warn))


@dataclass(frozen=True)
class Covering:
    """`covering/<server>`: the covering spare's fenced heartbeat."""

    spare: str
    token: int
    at_us: int = field(default_factory=now_us)

    def dumps(self) -> str:
        return json.dumps({"spare": self.spare, "token": self.token, "at_us": self.at_us})


@dataclass(frozen=True)
class Watermarks:
    """`watermarks/<server>`: per camera, wall µs up to which video is durably committed."""

    cameras: Mapping[str, int]
    at_us: int = field(default_factory=now_us)

    def dumps(self) -> str:
        return _dumps({"cameras": dict(self.cameras), "at_us": self.at_us})

    @classmethod
    def parse(cls, kv: KeyValue) -> Watermarks:
        """Raises ValueError when unreadable: a gapless takeover then writes its whole
        pre-buffer, and the caller says so."""
        raw = load_object(kv)
        cameras = raw.get("cameras")
        if not isinstance(cameras, dict):
            raise ValueError(f"{kv.key} holds no camera watermarks")
        try:
            return cls({str(c): int(v) for c, v in cameras.items()}, _int(raw.get("at_us")))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{kv.key}: {exc}") from exc


@dataclass(frozen=True)
class Returning:
    """`returning/<server>`: cameras whose only session the covering spare holds, which the
    returning server asks it to let go."""

    blocked: tuple[str, ...]
    at_us: int = field(default_factory=now_us)
    mod_revision: int = 0

    def dumps(self) -> str:
        return json.dumps({"blocked": list(self.blocked), "at_us": self.at_us})

    @classmethod
    def parse(cls, kv: KeyValue) -> Returning:
        raw = load_object(kv)
        blocked = raw.get("blocked")
        cameras = tuple(str(c) for c in blocked) if isinstance(blocked, list) else ()
        return cls(cameras, _int(raw.get("at_us")), kv.mod_revision)


@dataclass(frozen=True)
class ReinsertProgress:
    """`reinsert/<server>/<spare>`: counts for operators; the buffer is the truth."""

    spare: str
    url: str
    total: int
    done: int = 0
    bytes: int = 0
    last: str | None = None
    duplicates: int = 0
    at_us: int = field(default_factory=now_us)

    def dumps(self) -> str:
        return json.dumps({"spare": self.spare, "url": self.url, "total": self.total,
                           "done": self.done, "bytes": self.bytes, "last": self.last,
                           "duplicates": self.duplicates, "at_us": self.at_us})

    @classmethod
    def parse(cls, raw: KeyValue | str, spare: str = "") -> ReinsertProgress:
        value = load_object(raw)
        return cls(str(value.get("spare", spare)), str(value.get("url") or ""),
                   _int(value.get("total")), _int(value.get("done")), _int(value.get("bytes")),
                   _str(value.get("last")), _int(value.get("duplicates")),
                   _int(value.get("at_us")))


@dataclass(frozen=True)
class BufferRecord:
    """`buffers/<server>/<spare>`: the spare recorded video as the server under the claim with
    `token`; kept after the claim ends, until that buffer is re-inserted."""

    spare: str
    token: int
    at_us: int = field(default_factory=now_us)

    def dumps(self) -> str:
        return json.dumps({"spare": self.spare, "token": self.token, "at_us": self.at_us})

    @classmethod
    def parse(cls, kv: KeyValue) -> BufferRecord:
        raw = load_object(kv)
        return cls(str(raw.get("spare", "")), _int(raw.get("token")), _int(raw.get("at_us")))


@dataclass(frozen=True)
class ProtectionRecord:
    """`protection/<server>`: the last announced protection state, swapped by compare-and-set."""

    state: ServerProtectionState
    node: str = ""
    at_us: int = field(default_factory=now_us)

    def dumps(self) -> str:
        return _dumps({**self.state.to_json(), "node": self.node, "at_us": self.at_us})

    @classmethod
    def parse(cls, kv: KeyValue | None) -> ProtectionRecord | None:
        if kv is None:
            return None
        raw = load_object(kv)
        if not raw:
            return None
        return cls(ServerProtectionState.from_json(raw), str(raw.get("node", "")),
                   _int(raw.get("at_us")))


def standby_dumps(status: Mapping[str, Any]) -> str:
    """`standby/<spare>`: {"cameras": {camera: {server, state, buffered_s, kbps, error}}}."""
    return _dumps(status)


def standby_parse(kv: KeyValue) -> dict[str, StandbySession]:
    """Unreadable: no sessions (they show as not running)."""
    return parse_standby(load_object(kv))
