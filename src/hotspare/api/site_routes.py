"""The site API (`/api/v1/site/...`): the whole site as one API, served by the master.

Every site node mounts it (see `hotspare.node.site_node`), because it needs nothing but etcd and
the other nodes' APIs: so the spare that assumes the master's identity serves it at the master's
published address without any role transfer, and clients follow `GET /site/endpoints` to find
that address. Clients should still talk to the master (docs/site-api.md). Authentication is the
node's bearer-token middleware, in front of these routes like all others; each route's role (all
`viewer`: they only read) is declared in `hotspare.api.roles.ROUTE_ROLES`. The URLs the site
playlist and the live redirect hand out point at other nodes, so they never carry the caller's
token: a caller whose credential came in the URL gets a playback grant in them instead
(hotspare.api.playback_urls), which every node of the site verifies with the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from hotspare.api import site_merge, site_state
from hotspare.api.hls import PlaylistItem, cut_playlist, vod_playlist
from hotspare.api.params import CameraParam, FromParam, MaxGapParam, ToParam, check_range_length
from hotspare.api.playback_urls import grant_query
from hotspare.api.problems import CAMERA_RESPONSES, COMMON_RESPONSES, ApiError
from hotspare.api.status_cache import StatusCache
from hotspare.client.node_client import NodeClient
from hotspare.config.models import is_identifier
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.events import read_events
from hotspare.store.served import Serve
from hotspare.timefmt import TimeFormatError, parse_wall_time, wall_now_us
from hotspare.wire import (
    MAX_PLAYLIST_SEGMENTS,
    MAX_SEGMENT_RANGE_US,
    MAX_SUMMARY_RANGE_US,
    MAX_TIMELINE_RUNS,
    NEXT_FROM_HEADER,
    Problem,
    SiteTimelineOut,
)

MPEGURL = "application/vnd.apple.mpegurl"
DEFAULT_RANGE_US = 3_600_000_000
LIVE_GRANT_PAST_US = 3_600_000_000
"""How far back a live redirect's grant reaches: past every node's live window."""
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "etcd or the site configuration is not available"},
}
_PLAYLIST: dict[int | str, dict[str, Any]] = {
    **CAMERA_RESPONSES, **_UNAVAILABLE,
    200: {"content": {MPEGURL: {"schema": {"type": "string"}}}, "description": "an HLS playlist"},
}


@dataclass
class SiteApi:
    """What the site routes need: etcd, the applied site, the site token (every node of a site
    shares it, so the master may call the others), and seams for tests."""

    coord: Coordinator
    current: Callable[[], AppliedSite | None]
    token: str
    protection_report: Callable[[], dict[str, Any]] | None = None
    client: site_merge.ClientFactory | None = None
    clock: Callable[[], int] = wall_now_us

    def applied(self) -> AppliedSite:
        applied = self.current()
        if applied is None:
            raise ApiError(503, "no_site_configuration",
                           "this node has no site configuration yet; run `hotspare site apply`")
        return applied

    def node_client(self, url: str) -> NodeClient:
        if self.client is not None:
            return self.client(url)
        return NodeClient(url, self.token, timeout=site_merge.NODE_TIMEOUT_SECONDS)


@contextmanager
def _etcd() -> Iterator[None]:
    try:
        yield
    except CoordinationError as exc:
        raise ApiError(503, "etcd_unavailable",
                       f"the site's state cannot be read from etcd: {exc}") from None


def _range(api: SiteApi, from_: str | None, to: str | None, max_us: int,
           what: str) -> tuple[int, int]:
    try:
        to_us = parse_wall_time(to) if to is not None else api.clock()
        from_us = parse_wall_time(from_) if from_ is not None else max(0, to_us - DEFAULT_RANGE_US)
    except TimeFormatError as exc:
        raise ApiError(400, "bad_time", str(exc)) from None
    if from_us > to_us:
        raise ApiError(400, "bad_range", "`from` is after `to`; swap them or widen the range")
    check_range_length(from_us, to_us, max_us, what)
    return from_us, to_us


def _camera_server(applied: AppliedSite, camera: str) -> str:
    if not is_identifier(camera):
        raise ApiError(400, "bad_camera_id",
                       f"camera id {camera!r} is not valid: use lower-case letters, digits, "
                       "'-' and '_' (at most 63 characters)")
    server = site_state.camera_server(applied.config, camera)
    if server is None:
        raise ApiError(404, "unknown_camera",
                       f"camera {camera!r} is not in the site configuration; "
                       "GET /api/v1/site/cameras lists them")
    return server


def _ask_holders(api: SiteApi, camera: str, from_: str | None, to: str | None,
                 call: Callable[[NodeClient, int, int], Any], max_us: int, what: str,
                 ) -> tuple[str, int, int, list[site_merge.SourceResult]]:
    """Ask every node that may hold `camera`'s video (its server, a covering or re-inserting
    spare) the same question over the same range, in parallel."""
    applied = api.applied()
    server = _camera_server(applied, camera)
    from_us, to_us = _range(api, from_, to, max_us, what)
    with _etcd():
        snap = site_state.read_snapshot(api.coord)
    holders = site_state.holders(server, applied.config, snap)
    results = site_merge.ask_all(holders, lambda c: call(c, from_us, to_us), api.node_client)
    return server, from_us, to_us, results


def site_router(api: SiteApi) -> APIRouter:
    router = APIRouter(tags=["site"], responses=COMMON_RESPONSES)

    def protection_report() -> dict[str, Any] | None:
        if api.protection_report is None:
            return None
        try:
            return api.protection_report()
        except (CoordinationError, LookupError):
            return None

    status = StatusCache()

    @router.get("/site/servers", responses=_UNAVAILABLE, response_model=dict[str, Any],
                summary="Recording servers (state, owner, protection, re-insert) and spares")
    def servers() -> Response:
        applied = api.applied()
        with _etcd():
            snap = site_state.read_snapshot(api.coord)
        view = status.get((snap.fingerprint, applied.mod_revision, id(applied)),
                          lambda: site_state.servers_view(applied, snap, protection_report()))
        # Plain JSON values already: FastAPI's generic encoder would cost more than the view.
        return JSONResponse({**view, "revision": snap.revision})

    @router.get("/site/cameras", responses=_UNAVAILABLE,
                summary="Every camera, its recording server and the node serving it now")
    def cameras() -> dict[str, Any]:
        applied = api.applied()
        with _etcd():
            snap = site_state.read_snapshot(api.coord)
        return {"cameras": site_state.cameras_view(applied.config, snap)}

    @router.get("/site/endpoints", responses=_UNAVAILABLE,
                summary="The master's current URL and every node's, to find the master again")
    def endpoints() -> dict[str, Any]:
        applied = api.applied()
        with _etcd():
            snap = site_state.read_snapshot(api.coord)
        return site_state.endpoints_view(applied.config, snap)

    @router.get("/site/events", responses=_UNAVAILABLE,
                summary="Site events, oldest first; poll with `after` = the last `wall_us` seen")
    def events(
        after: Annotated[int | None, Query(ge=0, le=2**62, description=(
            "only events after this time, µs since the epoch (UTC)"))] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="at most this many, newest")] = 200,
    ) -> dict[str, Any]:
        with _etcd():
            found, _revision = read_events(api.coord)
        if after is not None:
            found = [e for e in found if e.wall_us > after]
        found = found[-limit:]
        return {"events": [{"wall_us": e.wall_us, "node": e.node, "kind": e.kind,
                            "server": e.server, "message": e.message, "data": e.data}
                           for e in found],
                "last_wall_us": found[-1].wall_us if found else after}

    @router.get("/site/cameras/{camera}/timeline", responses={**CAMERA_RESPONSES, **_UNAVAILABLE},
                response_model=SiteTimelineOut,
                summary="A camera's timeline merged across its server and the spares holding video",
                description=f"At most {MAX_SUMMARY_RANGE_US // 86_400_000_000} d per request "
                "(`400 range_too_large`). Each node answers a bounded timeline; when one was cut, "
                f"or the merge holds more than {MAX_TIMELINE_RUNS} runs, the answer covers "
                "[from, `next_from_wall_us`) (`truncated`): ask again from there.",
                openapi_extra={"x-hotspare-limits": {"max_range_us": MAX_SUMMARY_RANGE_US,
                                                     "max_runs": MAX_TIMELINE_RUNS}})
    def timeline(camera: CameraParam, from_: FromParam = None, to: ToParam = None,
                 max_gap_us: MaxGapParam = None) -> SiteTimelineOut:
        server, from_us, to_us, results = _ask_holders(
            api, camera, from_, to, lambda c, f, t: c.timeline(camera, f, t),
            MAX_SUMMARY_RANGE_US, "the site timeline")
        gap = site_merge.DEFAULT_MAX_GAP_US if max_gap_us is None else max_gap_us
        return site_merge.merge_timeline(camera, server, from_us, to_us, results, gap,
                                         max_runs=MAX_TIMELINE_RUNS)

    @router.get("/site/cameras/{camera}/playback.m3u8", response_class=Response,
                responses=_PLAYLIST,
                summary="HLS VOD playlist whose segments point at whichever node holds each",
                description=f"At most {MAX_SEGMENT_RANGE_US // 3_600_000_000} h per request "
                f"(`400 range_too_large`) and {MAX_PLAYLIST_SEGMENTS} segments per playlist: "
                "each node is asked for at most that many, and a playlist holding more ends at "
                f"a time named in the `{NEXT_FROM_HEADER}` header (ask again with `from` = it).",
                openapi_extra={"x-hotspare-limits": {"max_range_us": MAX_SEGMENT_RANGE_US,
                                                     "max_segments": MAX_PLAYLIST_SEGMENTS}})
    def playback(request: Request, camera: CameraParam, from_: FromParam = None,
                 to: ToParam = None) -> Response:
        server, from_us, to_us, results = _ask_holders(
            api, camera, from_, to,
            lambda c, f, t: site_merge.segment_pages(c, camera, f, t, MAX_PLAYLIST_SEGMENTS),
            MAX_SEGMENT_RANGE_US, "a playlist")
        served = site_merge.served_segments(results, prefer=server)
        chosen, next_from = cut_playlist(served, lambda s: s.segment.start_wall_us,
                                         MAX_PLAYLIST_SEGMENTS, from_us)
        cut = site_merge.unread_from(results)
        if cut is not None and (next_from is None or cut < next_from):
            cut = max(cut, from_us + 1)
            chosen = [s for s in chosen if s.segment.start_wall_us < cut]
            next_from = cut
        # A segment cut here is served cut by the node holding it (`end_us`).
        items = [PlaylistItem(s.segment,
                              f"{s.item.url}/api/v1/segments/{s.segment.segment_id}/file",
                              s.end_wall_us if s.serve is Serve.BEFORE else None)
                 for s in chosen]
        text = vod_playlist(items, grant_query(request, camera, from_us, to_us,
                                               extra_us=to_us - from_us), next_from)
        partial = [r.node for r in results if not r.ok]
        headers = {"Cache-Control": "no-cache"}
        if partial:
            headers["Hotspare-Partial"] = ",".join(partial)
        if next_from is not None:
            headers[NEXT_FROM_HEADER] = str(next_from)
        return Response(text, media_type=MPEGURL, headers=headers)

    @router.get("/site/cameras/{camera}/live.m3u8", status_code=307, response_class=Response,
                responses={**CAMERA_RESPONSES, **_UNAVAILABLE,
                           307: {"description": "to the live playlist of the node serving the "
                                                "camera now (its server, or the covering spare)"}},
                summary="Redirect to the camera's live playlist on its current owner")
    def live(request: Request, camera: CameraParam) -> Response:
        applied = api.applied()
        server = _camera_server(applied, camera)
        with _etcd():
            snap = site_state.read_snapshot(api.coord)
        _node, url = site_state.owner_of(server, applied.config, snap)
        signer = request.app.state.grants
        now = signer.clock()
        grant = grant_query(request, camera, max(0, now - LIVE_GRANT_PAST_US),
                            now + signer.ttl_us)
        target = f"{url}/api/v1/cameras/{camera}/live.m3u8{'?' + grant if grant else ''}"
        return RedirectResponse(target, status_code=307, headers={"Cache-Control": "no-store"})

    return router
