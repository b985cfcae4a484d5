"""`GET /metrics`: the node's Prometheus metrics, behind the same token as every other route
(Prometheus sends it with `authorization: {credentials: …}` in its scrape config)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from hotspare.api.context import context_of
from hotspare.api.problems import COMMON_RESPONSES
from hotspare.metrics import exposition

router = APIRouter(tags=["metrics"], responses=COMMON_RESPONSES)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics (text format)",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "cameras by state, last-frame age, segment commit "
                                            "latency, segments and bytes committed, events"}})
def metrics(request: Request) -> Response:
    ctx = context_of(request)
    return Response(exposition(ctx.health, ctx.clock), media_type=CONTENT_TYPE_LATEST)
