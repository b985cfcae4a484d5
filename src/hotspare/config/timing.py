"""How a node's timing settings must relate to each other, stated once and checked once.

Each setting alone has a range (its `Field`); the rules here are the ones between settings, which
a range cannot express: detection, leases and etcd calls lean on each other, and a combination
that breaks one of them fails only under a failure, when it is too late to find out. The models
in `hotspare.config.models` call `check_relations` for their own table; docs/configuration.md,
"Timing relations", lists the same rules (a unit test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic_core import PydanticCustomError

DESIGNATED_GRACE_SECONDS = 1.0
"""How long other spares leave a failed server to its designated (pre-buffering) spare. Fixed in
code, and defined here because the probe settings must fit inside it; failover reads it here."""

ERROR_TYPE = "timing_relation"
"""The pydantic error type of a broken relation; `describe_validation_error` renders it with the
fields' full paths."""


@dataclass(frozen=True)
class Relation:
    """`sum(left) op factor * right`, where each side names fields of one table (`section`) or,
    on the right, a fixed value of the code (`fixed`, described by `fixed_label`)."""

    section: Literal["site", "recording"]
    left: tuple[str, ...]
    op: Literal["<", "<="]
    reason: str
    right: str | None = None
    factor: float = 1.0
    fixed: float | None = None
    fixed_label: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return self.left + ((self.right,) if self.right is not None else ())

    def holds(self, values: Mapping[str, float]) -> bool:
        total = sum(values[name] for name in self.left)
        bound = self.bound(values)
        return total < bound if self.op == "<" else total <= bound

    def bound(self, values: Mapping[str, float]) -> float:
        if self.right is not None:
            return self.factor * values[self.right]
        assert self.fixed is not None
        return self.fixed

    def template(self) -> str:
        """The rule with `{0}`, `{1}`… standing for the fields, in `fields` order."""
        left = " + ".join(f"{{{i}}}" for i in range(len(self.left)))
        verb = {"<": "less than", "<=": "at most"}[self.op]
        if self.right is None:
            right = f"{self.fixed:g} s ({self.fixed_label})"
        else:
            index = f"{{{len(self.left)}}}"
            right = {1.0: index, 0.5: f"half of {index}"}.get(self.factor,
                                                              f"{self.factor:g} × {index}")
        subject = "together " if len(self.left) > 1 else ""
        return f"{left} must {subject}be {verb} {right}"

    def statement(self, prefix: str = "") -> str:
        """The rule without values, as the docs list it (`prefix`: e.g. "site.")."""
        return self.template().format(*(f"`{prefix}{name}`" for name in self.fields))


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "site", ("probe_timeout_seconds",), "<", right="lease_ttl_seconds",
        reason="a hung server is taken over once its lease has expired and a probe has timed "
        "out; a probe allowed to wait longer than the lease, not the lease, would decide how long "
        "its cameras go unrecorded",
    ),
    Relation(
        "site", ("probe_interval_seconds", "probe_timeout_seconds"), "<=",
        fixed=DESIGNATED_GRACE_SECONDS, fixed_label="the designated spare's grace",
        reason="the spare that pre-buffers a server's gapless cameras may reach its verdict one "
        "probe interval plus one probe timeout after another spare, which leaves the server to it "
        "for only this grace; later, the other spare claims and the cameras lose the takeover "
        "window",
    ),
    Relation(
        "site", ("etcd_request_timeout_seconds",), "<=", right="lease_ttl_seconds", factor=0.5,
        reason="a keepalive goes out every third of the lease; one that hangs on a dead etcd "
        "member for the whole request timeout must leave time to retry on another member before "
        "the lease runs out",
    ),
    Relation(
        "site", ("etcd_request_timeout_seconds",), "<=", right="etcd_deadline_seconds",
        factor=0.5,
        reason="an etcd operation that hung on one dead member for the whole request timeout "
        "must still have time to try another member before its deadline",
    ),
    Relation(
        "recording", ("reconnect_initial_seconds",), "<=", right="reconnect_max_seconds",
        reason="the delay between reconnects starts at the initial value and doubles up to the "
        "maximum",
    ),
)


def check_relations(section: str, model: object) -> None:
    """Raise for the first broken relation of `section`, whose fields `model` holds; the error's
    context carries the template and field names, so the message can name each field by its full
    path (`load.py`)."""
    for relation in RELATIONS:
        if relation.section != section:
            continue
        values = {name: float(getattr(model, name)) for name in relation.fields}
        if relation.holds(values):
            continue
        template = relation.template() + ": " + relation.reason
        shown = [f"{name} ({values[name]:g})" for name in relation.fields]
        raise PydanticCustomError(
            ERROR_TYPE, "{text}",
            {"text": template.format(*shown), "template": template,
             "fields": list(relation.fields), "values": [values[n] for n in relation.fields]},
        )
