"""A node re-reads the site configuration every few seconds; re-validating an unchanged one cost
43 ms of CPU at 10 000 cameras (bench/site_scale), so `applied.read` reuses the copy it holds while
the stored revision is the same, and decodes again as soon as it changes."""

from __future__ import annotations

from typing import cast

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.site_secret import SiteSecret
from hotspare.sitestate import applied as site_config
from hotspare.sitestate.snapshot import STATE_PREFIXES
from tests.support.fake_site_state import FakeEtcd
from tests.support.site_api import site_config as example_site

SECRET = SiteSecret((bytes(range(32)),))


def test_an_unchanged_revision_reuses_the_configuration_and_a_new_one_is_decoded() -> None:
    etcd = FakeEtcd()
    coord = cast(Coordinator, etcd)
    site_config.apply(coord, example_site(), SECRET)
    first = site_config.read(coord)
    assert first is not None
    again = site_config.read(coord, first)
    assert again is not None and again.config is first.config
    assert again.mod_revision == first.mod_revision
    changed = example_site().model_copy(update={"recording_servers": example_site()
                                                .recording_servers[:1]})
    site_config.apply(coord, changed, SECRET)
    fresh = site_config.read(coord, first)
    assert fresh is not None and fresh.mod_revision > first.mod_revision
    assert fresh.config is not first.config
    assert [s.name for s in fresh.config.recording_servers] == [
        example_site().recording_servers[0].name]


def test_the_snapshot_leaves_the_commit_watermarks_out() -> None:
    """Every node reads a snapshot each second; the watermarks were ~90 % of its bytes."""
    assert "watermarks/" not in STATE_PREFIXES
