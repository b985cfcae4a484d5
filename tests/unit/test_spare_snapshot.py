"""A spare reads the site 4 times a second; it never looks at owner records or announced protection
states (one of each per server: two thirds of the keys at 200 servers), so its snapshot leaves them
out, while the full snapshot (protection monitor, site API) still has them."""

from __future__ import annotations

from typing import cast

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.sitestate import layout
from hotspare.sitestate.snapshot import SPARE_PREFIXES, STATE_PREFIXES, SiteState
from hotspare.sitestate.values import Alive, Owner
from tests.support.fake_site_state import FakeSite


def test_the_spares_snapshot_leaves_out_owners_and_protection_only() -> None:
    site = FakeSite()
    site.etcd.put(layout.alive("rec-1"), Alive("http://rec-1:8600", "b", True).dumps())
    site.etcd.put(layout.owner("rec-1"), Owner("rec-1", "http://rec-1:8600").dumps())
    site.etcd.put(layout.protection("rec-1"), '{"state": "protected"}')
    spare = site.read()
    assert set(spare.alive) == {"rec-1"}
    assert spare.owners == {} and spare.protection == {}
    full = SiteState.read(cast(Coordinator, site.etcd))
    assert set(full.owners) == {"rec-1"} and set(full.protection) == {"rec-1"}
    assert set(STATE_PREFIXES) - set(SPARE_PREFIXES) == {layout.OWNERS_PREFIX,
                                                          layout.PROTECTION_PREFIX}
