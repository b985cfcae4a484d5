"""A node re-reads the site configuration every few seconds; re-validating an unchanged one cost
43 ms of CPU at 10 000 cameras (bench/site_scale), and sending it ~1 MB, so `applied.read` asks
only for the stored revision while it holds that one, and reads and decodes again as soon as it
changes."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import ChangeType, KeyChange, WatchBatch
from hotspare.site_secret import SiteSecret
from hotspare.sitestate import applied as site_config
from hotspare.sitestate import layout
from hotspare.sitestate.snapshot import STATE_PREFIXES
from hotspare.sitestate.view import SiteView
from tests.support.fake_site_state import FakeEtcd
from tests.support.site_api import site_config as example_site

SECRET = SiteSecret((bytes(range(32)),))


def test_an_unchanged_revision_reuses_the_configuration_and_a_new_one_is_decoded() -> None:
    etcd = FakeEtcd()
    coord = cast(Coordinator, etcd)
    site_config.apply(coord, example_site(), SECRET)
    first = site_config.read(coord)
    assert first is not None
    sent = etcd.values_read
    again = site_config.read(coord, first)
    assert again is not None and again.config is first.config
    assert again.mod_revision == first.mod_revision
    assert etcd.values_read == sent  # only the revision was read, not the ~1 MB value
    changed = example_site().model_copy(update={"recording_servers": example_site()
                                                .recording_servers[:1]})
    site_config.apply(coord, changed, SECRET)
    fresh = site_config.read(coord, first)
    assert fresh is not None and fresh.mod_revision > first.mod_revision
    assert etcd.values_read == sent + 1
    assert fresh.config is not first.config
    assert [s.name for s in fresh.config.recording_servers] == [
        example_site().recording_servers[0].name]


def test_the_snapshot_leaves_the_commit_watermarks_out() -> None:
    """Every node reads a snapshot each second; the watermarks were ~90 % of its bytes."""
    assert "watermarks/" not in STATE_PREFIXES


def test_a_watched_change_is_taken_from_the_event_not_read_again(tmp_path: Path) -> None:
    """Every node watches `config/`; its event carries the whole new document. Read again, each
    node had the ~1 MB document sent twice per change (bench/site_scale, 10 000 cameras)."""
    etcd = FakeEtcd()
    coord = cast(Coordinator, etcd)
    site_config.apply(coord, example_site(), SECRET)
    view = SiteView(coord, tmp_path / "site-cache.json")
    first = view.load_initial(1.0)
    assert first is not None
    seen: list[int] = []
    view.on_change(lambda applied: seen.append(applied.mod_revision))
    changed = example_site().model_copy(update={"recording_servers": example_site()
                                                .recording_servers[:1]})
    site_config.apply(coord, changed, SECRET)
    new_event = etcd.get(layout.SITE_CONFIG)
    assert new_event is not None
    sent = etcd.values_read
    view.wake(WatchBatch(new_event.mod_revision, [KeyChange(ChangeType.PUT, new_event)]))
    assert etcd.values_read == sent  # nothing read: the event had it
    assert seen == [new_event.mod_revision]
    current = view.current
    assert current is not None and len(current.config.recording_servers) == 1


def test_a_late_watch_event_never_takes_the_view_back(tmp_path: Path) -> None:
    """A read may already have given a newer revision than a watch event delivered after it."""
    etcd = FakeEtcd()
    coord = cast(Coordinator, etcd)
    site_config.apply(coord, example_site(), SECRET)
    old_event = etcd.get(layout.SITE_CONFIG)
    assert old_event is not None
    changed = example_site().model_copy(update={"recording_servers": example_site()
                                                .recording_servers[:1]})
    site_config.apply(coord, changed, SECRET)
    view = SiteView(coord, tmp_path / "site-cache.json")
    newest = view.load_initial(1.0)
    assert newest is not None and newest.mod_revision > old_event.mod_revision
    seen: list[int] = []
    view.on_change(lambda applied: seen.append(applied.mod_revision))
    view.wake(WatchBatch(old_event.mod_revision, [KeyChange(ChangeType.PUT, old_event)]))
    current = view.current
    assert current is not None and current.mod_revision == newest.mod_revision
    assert seen == []
