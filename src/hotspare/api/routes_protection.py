"""`GET /site/protection`: the live protection report (hotspare.sitestate.protection) over HTTP.

Every site node serves it (not only the master): the report matters most when the master is the
server that failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from hotspare.api.problems import COMMON_RESPONSES, ApiError
from hotspare.coordination.errors import CoordinationError
from hotspare.wire import Problem


def protection_router(source: Callable[[], dict[str, Any]]) -> APIRouter:
    """Mounted under /api/v1 behind the node's bearer token."""
    router = APIRouter(tags=["site"], responses=COMMON_RESPONSES)

    @router.get(
        "/site/protection",
        summary="Which recording servers are protected, why not, and every spare's licence",
        responses={503: {"model": Problem,
                         "description": "etcd or the site configuration is not available"}},
    )
    def get_protection() -> dict[str, Any]:
        try:
            return source()
        except CoordinationError as exc:
            raise ApiError(503, "etcd_unavailable",
                           f"live spare states cannot be read from etcd: {exc}") from None
        except LookupError as exc:
            raise ApiError(503, "no_site_configuration", str(exc)) from None

    return router
