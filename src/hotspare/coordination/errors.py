"""Errors of the coordination layer, importable without pulling in an etcd client.

Each message is written for the operator who reads it in a log: what was tried, for how long, what
failed last, and what to check.
"""

from __future__ import annotations

from collections.abc import Sequence


class CoordinationError(RuntimeError):
    """Base class: something about etcd stopped a coordination step."""


class EtcdUnavailableError(CoordinationError):
    """No endpoint answered within the deadline."""

    def __init__(
        self, endpoints: Sequence[str], elapsed: float, last_error: str, operation: str = ""
    ) -> None:
        self.endpoints = list(endpoints)
        self.elapsed = elapsed
        self.last_error = last_error
        self.operation = operation
        what = f" during {operation}" if operation else ""
        super().__init__(
            f"etcd unreachable at {', '.join(self.endpoints)} for {elapsed:.1f} s{what} "
            f"(last error: {last_error}); check that the etcd members are running and that this "
            "node can reach their client ports"
        )


class EtcdRequestError(CoordinationError):
    """etcd answered but refused the request for a reason retrying will not fix."""

    def __init__(self, operation: str, code: int | None, message: str) -> None:
        self.operation = operation
        self.code = code
        self.message = message
        super().__init__(f"etcd refused {operation}: {message} (gRPC code {code})")


class CompactedError(EtcdRequestError):
    """The revision asked for has been compacted away; history before it is gone for good."""

    def __init__(self, operation: str, message: str, revision: int | None = None) -> None:
        super().__init__(operation, 11, message)
        self.revision = revision


class LeaseNotFoundError(EtcdRequestError):
    """The lease expired or was revoked; anything that was attached to it is already deleted."""

    def __init__(self, operation: str, lease_id: int | None, message: str) -> None:
        super().__init__(operation, 5, message)
        self.lease_id = lease_id


class FencingError(CoordinationError):
    """A write under a claim was refused because the claim's fencing token no longer matches.

    This means another spare (or a later claim of our own) holds the claim now: the caller must stop
    acting for that server at once.
    """

    def __init__(self, key: str, expected: int, actual: int | None) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        now = "is gone" if actual is None else f"now has token {actual}"
        super().__init__(
            f"fencing token {expected} for {key} is stale: the claim {now}; "
            "stop acting under this claim"
        )
