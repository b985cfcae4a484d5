"""The master's site API in process, for the site-API tests: a fake etcd and three real node APIs.

rec-2 is down and covered by spare-1: rec-2's store holds cam-1's video up to the crash, the
spare's buffer holds what it recorded since. The `site` fixture (tests/unit/conftest.py) is
`open_site`; `FakeCoord` and `site_config` serve the tests that build their own app.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hotspare.api.app import API_PREFIX, create_app
from hotspare.api.site_cors import allow_site_cors
from hotspare.api.site_routes import SiteApi, site_router
from hotspare.client.node_client import NodeClient
from hotspare.config.models import ApiUser
from hotspare.site.model import SiteConfig
from hotspare.site.pool import LicenceMerge
from hotspare.sitestate import layout
from hotspare.sitestate.applied import AppliedSite
from hotspare.store.segment_store import SegmentStore
from hotspare.web.ui import mount_web_ui
from tests.support.api_node import T0, TOKEN, record_run
from tests.support.fake_site_state import FakeEtcd

REC1, REC2, SPARE = "http://rec-1.test:8600", "http://rec-2.test:8600", "http://spare-1.test:8600"
SEG_US = 400_000  # record_run's segments: 10 frames at 25 fps
CAMERA_PASSWORD = "s3cret-camera-pass"


FakeCoord = FakeEtcd
"""The site API reads etcd through the site-state layer; the one fake of it serves here too."""


def site_config() -> SiteConfig:
    return SiteConfig.model_validate({
        "site": {"id": "t"},
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [
            {"name": "rec-1", "address": "rec-1.test:8600", "role": "master",
             "cameras": [{"id": "cam-m", "url": "rtsp://10.0.0.9/m"}]},
            {"name": "rec-2", "address": "rec-2.test:8600",
             "cameras": [{"id": "cam-1", "name": "gate", "url": "rtsp://10.0.0.8/s",
                          "username": "admin", "password": CAMERA_PASSWORD}]},
        ],
        "failover_servers": [{"name": "spare-1", "address": "spare-1.test:8600"}],
    })


@dataclass
class Site:
    coord: FakeCoord
    master: TestClient
    nodes: dict[str, TestClient]
    unreachable: set[str]
    stores: dict[str, SegmentStore]


def _node_app(store: SegmentStore, name: str, cameras: set[str],
              users: Sequence[ApiUser] = ()) -> FastAPI:
    return create_app(store, health=dict, token=TOKEN, server_name=name,
                      known_cameras=lambda: cameras, clock=lambda: T0 + 60_000_000, users=users)


@contextmanager
def open_site(tmp_path: Path, users: Sequence[ApiUser] = ()) -> Iterator[Site]:
    """`users`: the same `[api] users` on every node, as a site configures them."""
    rec1 = SegmentStore.open(tmp_path / "rec-1", "rec-1")
    rec2 = SegmentStore.open(tmp_path / "rec-2", "rec-2")
    spare = SegmentStore.open(tmp_path / "spare-1", "spare-1")
    record_run(rec2, "cam-1", T0, 3)
    record_run(spare, "cam-1", T0 + 3 * SEG_US, 3, recorded_as="rec-2", end=False)
    coord = FakeCoord({
        layout.alive("rec-1"): {"url": REC1, "confirmed": True},
        layout.claim("rec-2"): {"spare": "spare-1", "url": SPARE},
        layout.owner("rec-2"): {"node": "spare-1", "url": SPARE, "token": 5},
        layout.owner("rec-1"): {"node": "rec-1", "url": REC1},
        layout.spare("spare-1"): {"state": "covering", "covering": "rec-2", "url": SPARE},
        layout.event(T0, "spare-1", "ab12"): {"wall_us": T0, "node": "spare-1", "kind": "claimed",
                                             "server": "rec-2", "message": "claimed", "data": {}},
        layout.event(T0 + 5, "spare-1", "cd34"): {"wall_us": T0 + 5, "node": "spare-1",
                                                 "kind": "recording", "server": "rec-2",
                                                 "message": "recording", "data": {}},
    })
    applied = AppliedSite(site_config(), 3, LicenceMerge((), (), ()))
    nodes: dict[str, TestClient] = {}
    unreachable: set[str] = set()

    def client(url: str) -> NodeClient:
        if url in unreachable:
            def refuse(request: httpx.Request) -> httpx.Response:
                raise httpx.ConnectError("connection refused", request=request)
            return NodeClient(url, TOKEN, http=httpx.Client(transport=httpx.MockTransport(refuse),
                                                            base_url=url))
        return NodeClient(url, TOKEN, http=nodes[url])

    master_app = _node_app(rec1, "rec-1", {"cam-m"}, users)
    api = SiteApi(coord, lambda: applied, TOKEN, client=client,  # type: ignore[arg-type]
                  clock=lambda: T0 + 10_000_000)
    master_app.include_router(site_router(api), prefix=API_PREFIX)
    allow_site_cors(master_app)
    mount_web_ui(master_app)
    try:
        with TestClient(master_app, base_url=REC1) as master, \
                TestClient(_node_app(rec2, "rec-2", {"cam-1"}, users), base_url=REC2) as n2, \
                TestClient(_node_app(spare, "spare-1", {"cam-1"}, users), base_url=SPARE) as ns:
            nodes.update({REC1: master, REC2: n2, SPARE: ns})
            yield Site(coord, master, nodes, unreachable,
                       {"rec-1": rec1, "rec-2": rec2, "spare-1": spare})
    finally:
        for store in (rec1, rec2, spare):
            store.close()
