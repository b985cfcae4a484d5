"""The protection report, live: configuration + licences + the spares' states, one snapshot.

`hotspare.site.report.protection_report` is pure; this feeds it what the running site says: each
spare's availability (`SiteState.spare_status`, the one rule the spares' takeover decisions use
too) and the spares' hot-standby sessions for gapless cameras (`standby/<spare>`), all from one
`SiteState`. The same function backs `hotspare protection`, `GET /api/v1/site/protection` on every
site node, and the protection monitor (hotspare.failover.protection), so the three can never
disagree with each other or with the spares' takeover decisions (`site/eligibility.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.site.eligibility import SpareStatus
from hotspare.site.model import SiteConfig
from hotspare.site.report import ProtectionReport, StandbySession, protection_report
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.snapshot import SiteState


def live_spare_states(state: SiteState, site: SiteConfig) -> dict[str, SpareStatus]:
    """Each configured spare's availability (no record: down; a claim held: covering)."""
    return state.spare_statuses(s.name for s in site.failover_servers)


def live_standby(state: SiteState, site: SiteConfig) -> dict[str, dict[str, StandbySession]]:
    """What each configured spare publishes under `standby/<spare>` (lease-bound: a spare that is
    down has none)."""
    return {s.name: dict(state.standby[s.name]) for s in site.failover_servers
            if s.name in state.standby}


def live_report(source: Coordinator | SiteState, applied: AppliedSite,
                now: datetime | None = None) -> ProtectionReport:
    """Spare states, claims and standby sessions from one snapshot (read now from a
    coordinator, or one the caller already holds)."""
    state = source if isinstance(source, SiteState) else SiteState.read(source)
    return protection_report(applied.config, live_spare_states(state, applied.config),
                             applied.licences.licences, now or datetime.now(UTC),
                             live_standby(state, applied.config))


def report_json(report: ProtectionReport, applied: AppliedSite) -> dict[str, Any]:
    """The report plus the licences the stored configuration names that do not count."""
    data = report.to_dict()
    data["config_revision"] = applied.mod_revision
    data["refused_licences"] = [
        {"source": r.source, "reason": r.reason.value, "message": str(r)}
        for r in applied.licences.refused
    ]
    return data
