"""`site apply` writes the whole site document (~1 MB at 10 000 cameras) conditionally. On a
loaded etcd an attempt can time out after etcd committed it; the retry then finds the revision
moved. That is this apply's own write, not another operator's: it must say "applied"."""

from __future__ import annotations

import argparse
from typing import cast

from hotspare.cli import cmd_site_apply
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import Lease
from hotspare.site.model import SiteConfig
from hotspare.site_secret import SiteSecret
from hotspare.sitestate import applied as site_config
from hotspare.sitestate import layout
from tests.support.fake_site_state import FakeEtcd
from tests.support.site_api import site_config as example_site

SECRET = SiteSecret((bytes(range(32)),))
ARGS = argparse.Namespace(drop_refused_licences=False, strict=False)


class CommittedThenTimedOut(FakeEtcd):
    """The first conditional write is committed but its answer lost; the retry's compare fails."""

    def put_if_revision(self, key: str, value: str | bytes, expected_revision: int, *,
                        target: str = "mod", lease: Lease | int | None = None) -> int | None:
        super().put_if_revision(key, value, expected_revision, target=target, lease=lease)
        return super().put_if_revision(key, value, expected_revision, target=target, lease=lease)


def _site() -> SiteConfig:
    return site_config.seal_passwords(example_site(), SECRET)


def test_a_write_committed_by_a_timed_out_attempt_counts_as_applied() -> None:
    etcd = CommittedThenTimedOut()
    assert cmd_site_apply._apply_with(ARGS, _site(), [], cast(Coordinator, etcd)) == 0
    stored = etcd.get(layout.SITE_CONFIG)
    assert stored is not None and stored.mod_revision > 0


def test_another_operators_write_still_refuses() -> None:
    other = example_site().model_copy(update={"recording_servers": example_site()
                                              .recording_servers[:1]})

    class Raced(FakeEtcd):
        def put_if_revision(self, key: str, value: str | bytes, expected_revision: int, *,
                            target: str = "mod", lease: Lease | int | None = None) -> int | None:
            site_config.apply(cast(Coordinator, self), other, SECRET)  # lands first
            return super().put_if_revision(key, value, expected_revision, target=target,
                                           lease=lease)

    raced = Raced()
    assert cmd_site_apply._apply_with(ARGS, _site(), [], cast(Coordinator, raced)) == 3
    stored = raced.get(layout.SITE_CONFIG)
    assert stored is not None
    assert [s.name for s in site_config.decode(stored.value).recording_servers] == ["rec-1"]
