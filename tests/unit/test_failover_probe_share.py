"""The idle spares' shares of the probing: each server probed by two, a dead spare leaves none
unprobed, and a server only some spares may take is probed by those."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspare.config.models import SiteMembership
from hotspare.failover.detection import ServerTrack
from hotspare.failover.probe import ProbeKind, ProbeResult
from hotspare.failover.probe_share import probers, share
from hotspare.failover.spare_detect import Detector
from hotspare.failover.spare_view import SpareView
from hotspare.failover.spare_work import SpareContext
from hotspare.site.eligibility import IDLE, SpareStatus
from hotspare.site.licences import Licence
from hotspare.site.model import RecordingServerConfig, SiteConfig
from hotspare.site.pool import LicenceMerge
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.snapshot import SiteState
from hotspare.sitestate.values import Alive
from hotspare.store.segment_store import SegmentStore
from tests.support.fake_site_state import FakeEvents, FakeSite
from tests.unit.test_failover_spare_agent import LICENCE as ONE_SPARE

SERVERS = [f"rec-{n:02d}" for n in range(1, 25)]
SPARES = ["spare-1", "spare-2", "spare-3", "spare-4"]
UP = ProbeResult(ProbeKind.RECORDING)
DEAD = ProbeResult(ProbeKind.REFUSED, "connection refused")


def test_each_server_has_two_probers_and_a_spare_probes_about_half_of_four() -> None:
    counts = {server: 0 for server in SERVERS}
    for spare in SPARES:
        mine = share(spare, SERVERS, SPARES, lambda _spare, _server: True)
        assert 0 < len(mine) < len(SERVERS)
        for server in mine:
            counts[server] += 1
    assert set(counts.values()) == {2}


def test_with_two_idle_spares_or_fewer_every_one_probes_every_server() -> None:
    assert share("spare-1", SERVERS, ["spare-1", "spare-2"], lambda *_: True) == set(SERVERS)
    assert share("spare-1", SERVERS, [], lambda *_: True) == set(SERVERS)


def test_a_spare_leaving_moves_only_its_own_servers() -> None:
    before = {s: set(probers(s, SPARES)) for s in SERVERS}
    after = {s: set(probers(s, SPARES[:-1])) for s in SERVERS}
    for server in SERVERS:
        if "spare-4" not in before[server]:
            assert after[server] == before[server]
        else:
            assert before[server] - {"spare-4"} < after[server]


def test_only_spares_that_may_take_a_server_probe_it_and_two_any_when_none_may() -> None:
    def may_take(spare: str, server: str) -> bool:
        return server != "rec-01" or spare in ("spare-3", "spare-4")

    takers = [s for s in SPARES if "rec-01" in share(s, SERVERS, SPARES, may_take)]
    assert takers == ["spare-3", "spare-4"]
    nobody = [s for s in SPARES if "rec-01" in share(s, SERVERS, SPARES, lambda *_: False)]
    assert len(nobody) == 2  # they report why they may not


# ------------------------------------------------------------------ the detector on its share

LICENCE = Licence(ONE_SPARE.document.model_copy(
    update={"failover_server_licences": 4, "failover_camera_licences": 100}), source="test")
CONFIG = SiteConfig.model_validate({
    "site": {"id": "t"},
    "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
    "recording_servers": [
        {"name": name, "address": f"{name}.test:8600", "role": "master" if n == 0 else "recording",
         "cameras": [{"id": f"{name}-a", "url": f"rtsp://10.0.0.{n + 1}/a"}]}
        for n, name in enumerate(SERVERS)],
    "failover_servers": [{"name": name, "address": f"{name}.test:8600"} for name in SPARES],
})
APPLIED = AppliedSite(CONFIG, 1, LicenceMerge((LICENCE,), (), ()))


class Source:
    current = APPLIED

    def maybe_reload(self) -> None:
        pass


class Prober:
    """`dead`: servers whose port refuses; `asked`: every server probed, in order."""

    def __init__(self, dead: set[str]) -> None:
        self.dead = dead
        self.asked: list[str] = []

    def probe(self, address: str) -> ProbeResult:
        server = address.split(".")[0]
        self.asked.append(server)
        return DEAD if server in self.dead else UP


class NoPlan:
    def designated(self, server: str) -> str | None:
        return None

    def for_spare(self, spare: str) -> list[object]:
        return []


@pytest.fixture
def detectors(tmp_path: Path) -> Iterator[dict[str, Detector]]:
    out, stores = {}, []
    for spare in SPARES:
        idle = SegmentStore.open(tmp_path / spare, spare)
        stores.append(idle)
        ctx = SpareContext(spare, f"http://{spare}.test:8600", FakeSite(), FakeEvents(),
                           SpareView(idle, lambda _store: None),
                           SiteMembership(id="t", etcd_endpoints=["https://127.0.0.1:2379"]),
                           Source())
        out[spare] = Detector(ctx, Prober(set()))  # type: ignore[arg-type]
    yield out
    for detector in out.values():
        detector.close()
    for store in stores:
        store.close()


def one_round(detector: Detector, states: dict[str, SpareStatus], dead: set[str],
              alive: set[str] | None = None) -> tuple[list[str], list[str]]:
    """(servers probed, servers claimed) in one round of `detector`."""
    prober = Prober(dead)
    detector.prober = prober  # type: ignore[assignment]
    claimed: list[str] = []

    def claim(server: RecordingServerConfig, reason: str, track: ServerTrack) -> bool:
        claimed.append(server.name)
        return True

    live = set(SERVERS) if alive is None else alive
    state = SiteState(alive={s: Alive(f"http://{s}.test:8600", "boot", True) for s in live})
    detector.run(state, states, NoPlan(), lambda: IDLE, claim)  # type: ignore[arg-type]
    return prober.asked, claimed


def test_a_dead_process_is_claimed_in_one_round_though_one_of_its_probers_is_dead(
        detectors: dict[str, Detector]) -> None:
    """spare-4 is killed: its record (idle) stays until its lease runs out, so the shares do not
    change yet; every server still has a living prober that claims it in its first round."""
    states = dict.fromkeys(SPARES, IDLE)
    living = {name: d for name, d in detectors.items() if name != "spare-4"}
    probed_by: dict[str, set[str]] = {s: set() for s in SERVERS}
    for name, detector in detectors.items():
        asked, _ = one_round(detector, states, set())
        assert len(set(asked)) < len(SERVERS)  # a share, not every server
        for server in asked:
            probed_by[server].add(name)
    assert all(len(spares) == 2 for spares in probed_by.values())
    for server in SERVERS:
        claimers = [name for name, d in living.items()
                    if server in one_round(d, states, {server})[1]]
        assert claimers, f"{server} (probed by {sorted(probed_by[server])}) not claimed"
        for detector in living.values():
            detector.tracks.clear()


def test_once_a_dead_spares_record_is_gone_the_others_cover_its_servers(
        detectors: dict[str, Detector]) -> None:
    states = {name: IDLE for name in SPARES if name != "spare-4"}
    probed_by: dict[str, int] = dict.fromkeys(SERVERS, 0)
    for name in states:
        for server in set(one_round(detectors[name], states, set())[0]):
            probed_by[server] += 1
    assert set(probed_by.values()) == {2}


def test_every_idle_spare_probes_a_server_whose_lease_is_gone(
        detectors: dict[str, Detector]) -> None:
    states = dict.fromkeys(SPARES, IDLE)
    for detector in detectors.values():
        asked, _ = one_round(detector, states, set(), alive=set(SERVERS) - {"rec-07"})
        assert "rec-07" in asked
