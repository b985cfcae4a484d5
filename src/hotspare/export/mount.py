"""Adding the export routes to a site node: its key file, its work folder, and how it reads."""

from __future__ import annotations

from fastapi import FastAPI

from hotspare.api import site_state
from hotspare.api.site_routes import SiteApi
from hotspare.config.models import NodeConfig
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.export.build import Source
from hotspare.export.http_source import HttpSource
from hotspare.export.jobs import ExportJobs
from hotspare.export.routes import export_router, signing_key
from hotspare.sitestate.view import SiteView
from hotspare.tls import PeerTls
from hotspare.wire import API_PREFIX


def mount_export(app: FastAPI, config: NodeConfig, coord: Coordinator, view: SiteView,
                 token: str, peers: PeerTls, own_url: str) -> None:
    """The export reads the site playlist from this node's own site API (`own_url`), so it gets
    exactly what a player gets, and fetches each piece from the node the playlist names."""
    assert config.site is not None
    api = SiteApi(coord, lambda: view.current, token)

    def source() -> Source:
        names: dict[str, str] = {}
        applied = view.current
        if applied is not None:
            listing = site_state.endpoints_view(applied.config, site_state.read_snapshot(coord))
            names = {str(n["url"]): str(n["name"]) for n in listing["nodes"] if n.get("url")}
        return HttpSource(own_url, token, peers.verify, names)

    jobs = ExportJobs(config.data_dir / "exports",
                      signing_key(config.site.export_signing_key_file), source)
    jobs.clear()
    app.include_router(export_router(api, jobs, config.name), prefix=API_PREFIX)
