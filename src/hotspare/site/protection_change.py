"""What changed in a recording server's protection, said so an operator knows what to do.

Pure: the live monitor (`hotspare.failover.protection.ProtectionMonitor`) computes a
`ServerProtectionState` from each protection report, stores it in etcd, and calls
`describe_change` with the stored and the new state to word the event. Kept apart from etcd so the
wording and the "is this a change?" rule are unit-tested without a site.

A change is a change of *protected / unprotected* or of the *set of reason codes*. The messages
carry live details (which spare is down, which one covers what); a change of details alone is not
an event, otherwise every handback on a one-spare site would re-announce every other server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hotspare.site.eligibility import Reason, ServerProtection

ADVICE: dict[Reason, str] = {
    Reason.NETBSD: (
        "move its cameras to a server on another platform, or accept that it is not protected"
    ),
    Reason.FRAME_GRABBER: (
        "move its analog cameras to network encoders recorded by another server, or accept "
        "that it is not protected"
    ),
    Reason.TOO_MANY_CAMERAS: (
        "move cameras from it to another recording server, or add failover-camera licences "
        "(and check the spares' max_cameras)"
    ),
    Reason.NO_SPARES: "add a failover server ([[failover_servers]] in site.toml, then site apply)",
    Reason.NO_LICENSED_SPARE: (
        "install a valid failover-server licence (site apply); `hotspare protection` shows "
        "which licences count"
    ),
    Reason.NO_FREE_SPARE: (
        "start the spares that are down, wait for the covering spare's handback, or add a spare"
    ),
    Reason.SPARE_UNLICENSED: "install another failover-server licence",
    Reason.SPARE_NOT_FREE: "start the spare, or wait until it is free",
    Reason.SPARE_BUFFER_LOW: (
        "free space in the spare's data folder (or let its pending re-inserts finish), or give "
        "it a larger disk"
    ),
    Reason.SPARE_NO_ROOM: "free space in the spare's data folder now, or give it a larger disk",
}


def advice(reason: Reason | str) -> str:
    try:
        return ADVICE[Reason(reason)]
    except ValueError:
        return "see docs/licences.md"


@dataclass(frozen=True)
class ServerProtectionState:
    """One server's protection as stored under `protection/<server>` and compared for changes."""

    protected: bool
    reasons: tuple[str, ...]
    messages: tuple[str, ...]

    @classmethod
    def of(cls, protection: ServerProtection) -> ServerProtectionState:
        return cls(
            protected=protection.protected,
            reasons=tuple(finding.reason.value for finding in protection.findings),
            messages=tuple(finding.message for finding in protection.findings),
        )

    @property
    def fingerprint(self) -> tuple[bool, tuple[str, ...]]:
        """What counts for "did it change": protected or not, and the reason codes."""
        return self.protected, tuple(sorted(set(self.reasons)))

    def to_json(self) -> dict[str, Any]:
        return {
            "protected": self.protected,
            "reasons": list(self.reasons),
            "messages": list(self.messages),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ServerProtectionState:
        return cls(
            protected=bool(raw.get("protected")),
            reasons=tuple(str(r) for r in raw.get("reasons", ())),
            messages=tuple(str(m) for m in raw.get("messages", ())),
        )


@dataclass(frozen=True)
class ProtectionChange:
    server: str
    message: str
    data: dict[str, Any]


def describe_change(
    server: str, old: ServerProtectionState | None, new: ServerProtectionState
) -> ProtectionChange | None:
    """The event for a change, or None when there is nothing to tell.

    `old` is None when the server was never evaluated before (a new site or a new server): an
    unprotected server is announced, a protected one is not (nothing needs doing).
    """
    if old is not None and old.fingerprint == new.fingerprint:
        return None
    if old is None and new.protected:
        return None
    todo = [advice(code) for code in dict.fromkeys(new.reasons)]
    data: dict[str, Any] = {
        "protected": new.protected,
        "reasons": list(new.reasons),
        "was_protected": None if old is None else old.protected,
        "previous_reasons": [] if old is None else list(old.reasons),
        "advice": todo,
    }
    if new.protected:
        cleared = ", ".join(old.reasons) if old is not None and old.reasons else "none"
        return ProtectionChange(
            server, f"{server} is protected again (resolved: {cleared})", data
        )
    because = "; ".join(new.messages)
    to_do = "; ".join(todo)
    if old is None:
        head = f"{server} is UNPROTECTED"
    elif old.protected:
        head = f"{server} is now UNPROTECTED (was protected)"
    else:
        added = [r for r in new.reasons if r not in old.reasons]
        gone = [r for r in old.reasons if r not in new.reasons]
        notes = ([f"new: {', '.join(added)}"] if added else []) + (
            [f"no longer: {', '.join(gone)}"] if gone else []
        )
        head = f"{server} is still UNPROTECTED, for changed reasons ({'; '.join(notes)})"
    return ProtectionChange(server, f"{head}: {because}. To do: {to_do}", data)
