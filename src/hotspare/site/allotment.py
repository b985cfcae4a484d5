"""Dividing the licence pool among the spares.

Rules (docs/licences.md):
- Spares are taken in name order. The first N spares, N = failover-server licences, are licensed;
  the rest are unlicensed and cover nothing. Name order, not file order, so reordering site.toml
  never moves a licence.
- Camera licences are divided evenly among the licensed spares. The remainder goes one each to the
  first licensed spares in name order, so the allotments add up exactly to the pool.
- With no licensed spare nothing can be allotted; the camera licences are reported as unallotted.
- The allotment depends on configuration and licences only, never on which spares are up: a spare
  going down must not shrink or grow another spare's allotment in the middle of a takeover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hotspare.site.pool import LicencePool


@dataclass(frozen=True)
class Allotment:
    camera_licences: Mapping[str, int] = field(default_factory=dict)
    """Licensed spare name → its allotment (failover camera licences)."""
    unlicensed: tuple[str, ...] = ()
    """Spares beyond the number of failover-server licences, in name order."""
    unused_server_licences: int = 0
    unallotted_camera_licences: int = 0

    def is_licensed(self, spare: str) -> bool:
        return spare in self.camera_licences

    def of(self, spare: str) -> int:
        """A spare's allotment; 0 for an unlicensed or unknown spare."""
        return self.camera_licences.get(spare, 0)

    @property
    def licensed(self) -> tuple[str, ...]:
        return tuple(self.camera_licences)


def allot(pool: LicencePool, spare_names: Iterable[str]) -> Allotment:
    names = sorted(set(spare_names))
    licensed = names[: pool.failover_server_licences]
    unlicensed = tuple(names[pool.failover_server_licences :])
    unused = pool.failover_server_licences - len(licensed)
    if not licensed:
        return Allotment({}, unlicensed, unused, pool.failover_camera_licences)
    base, remainder = divmod(pool.failover_camera_licences, len(licensed))
    shares = {name: base + (1 if index < remainder else 0) for index, name in enumerate(licensed)}
    return Allotment(shares, unlicensed, unused, 0)
