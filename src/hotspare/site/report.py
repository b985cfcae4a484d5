"""The protection report: every recording server protected or not (and why), every spare's licence.

Computed, never stored: the CLI, the API and the web UI all call `protection_report` with the
current configuration, licences and spare states, so they cannot disagree with each other or with
the spares' takeover decisions (all rules are in `hotspare.site.eligibility`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotspare.site.allotment import allot
from hotspare.site.eligibility import (
    DOWN,
    Protection,
    SpareState,
    SpareStatus,
    evaluate_server,
    spare_limit,
)
from hotspare.site.licences import Licence
from hotspare.site.model import SiteConfig
from hotspare.site.pool import LicencePool


@dataclass(frozen=True)
class SpareReport:
    name: str
    licensed: bool
    allotment: int
    limit: int
    """Most cameras it may take: allotment, lowered by its `max_cameras` hint."""
    state: SpareState
    covering: str | None


@dataclass(frozen=True)
class ProtectionReport:
    site_id: str
    generated_at: datetime
    pool: LicencePool
    servers: tuple[Protection, ...]
    spares: tuple[SpareReport, ...]
    unused_server_licences: int
    unallotted_camera_licences: int

    @property
    def unprotected(self) -> tuple[Protection, ...]:
        return tuple(server for server in self.servers if not server.protected)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data for the API and `--json` output."""
        return {
            "site_id": self.site_id,
            "generated_at": self.generated_at.isoformat(),
            "pool": {
                "failover_server_licences": self.pool.failover_server_licences,
                "failover_camera_licences": self.pool.failover_camera_licences,
                "licence_ids": list(self.pool.licence_ids),
            },
            "unused_server_licences": self.unused_server_licences,
            "unallotted_camera_licences": self.unallotted_camera_licences,
            "servers": [
                {
                    "name": server.server,
                    "protected": server.protected,
                    "reasons": [
                        {"code": finding.reason.value, "message": finding.message}
                        for finding in server.findings
                    ],
                    "candidate_spares": list(server.candidate_spares),
                    "covered_by": server.covered_by,
                }
                for server in self.servers
            ],
            "spares": [
                {
                    "name": spare.name,
                    "licensed": spare.licensed,
                    "allotment": spare.allotment,
                    "limit": spare.limit,
                    "state": spare.state.value,
                    "covering": spare.covering,
                }
                for spare in self.spares
            ],
        }


def protection_report(
    site: SiteConfig,
    spare_states: Mapping[str, SpareStatus],
    licences: Sequence[Licence],
    now: datetime,
) -> ProtectionReport:
    """Spares missing from `spare_states` count as down (see `hotspare.site.eligibility`)."""
    pool = LicencePool.at(licences, now)
    allotment = allot(pool, (spare.name for spare in site.failover_servers))
    servers = tuple(
        evaluate_server(server, site.failover_servers, spare_states, pool)
        for server in site.recording_servers
    )
    spares = tuple(
        SpareReport(
            name=spare.name,
            licensed=allotment.is_licensed(spare.name),
            allotment=allotment.of(spare.name),
            limit=spare_limit(spare, allotment),
            state=spare_states.get(spare.name, DOWN).state,
            covering=spare_states.get(spare.name, DOWN).covering,
        )
        for spare in sorted(site.failover_servers, key=lambda spare: spare.name)
    )
    return ProtectionReport(
        site_id=site.site.id,
        generated_at=now,
        pool=pool,
        servers=servers,
        spares=spares,
        unused_server_licences=allotment.unused_server_licences,
        unallotted_camera_licences=allotment.unallotted_camera_licences,
    )


def render_text(report: ProtectionReport) -> str:
    """The operator's view: unprotected servers first-class, each with every reason."""
    pool = report.pool
    lines = [
        f"licences: {pool.failover_server_licences} failover-server, "
        f"{pool.failover_camera_licences} failover-camera"
        + (
            f" ({len(pool.licence_ids)} licence(s) valid)"
            if pool.licence_ids
            else " (no valid licence)"
        ),
    ]
    if report.unused_server_licences:
        lines.append(
            f"  {report.unused_server_licences} failover-server licence(s) unused "
            "(fewer spares than licences)"
        )
    if report.unallotted_camera_licences:
        lines.append(
            f"  {report.unallotted_camera_licences} failover-camera licence(s) unallotted "
            "(no licensed spare)"
        )
    lines.append("spares:")
    if not report.spares:
        lines.append("  (none)")
    for spare in report.spares:
        state = (
            f"covering {spare.covering}"
            if spare.state is SpareState.COVERING
            else spare.state.value
        )
        if spare.licensed:
            limit = f", may take up to {spare.limit}" if spare.limit != spare.allotment else ""
            licence = f"licensed, allotment {spare.allotment} cameras{limit}"
        else:
            licence = "UNLICENSED, covers nothing"
        lines.append(f"  {spare.name}: {licence}; {state}")
    lines.append("recording servers:")
    for server in report.servers:
        if server.protected:
            by = f", covered by {server.covered_by}" if server.covered_by else ""
            lines.append(
                f"  {server.server}: protected (spares: {', '.join(server.candidate_spares)}){by}"
            )
        else:
            lines.append(f"  {server.server}: UNPROTECTED, because")
            lines.extend(f"    - {finding.message}" for finding in server.findings)
    return "\n".join(lines)
