"""Cross-origin reads between the nodes of a site, for the master's web UI.

The UI is loaded from the master, but a playlist's segments and a live view are fetched from
whichever node holds the video, and after a master failover the page asks other nodes for the
endpoint list. Browsers allow those cross-origin reads only if the node says so. Allowing any
origin is safe here because authentication is a bearer token the page adds itself, never a cookie
or other ambient credential: a foreign page without the token reads nothing but 401s.
Preflight requests (`OPTIONS`) are answered by this middleware before the token check, since
browsers never send credentials with them.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from hotspare.wire import NEXT_FROM_HEADER

EXPOSED_HEADERS = ["Content-Range", "Content-Length", "Accept-Ranges", "X-Segment-SHA256",
                   "Hotspare-Partial", NEXT_FROM_HEADER]


def allow_site_cors(app: FastAPI) -> None:
    """Add last, so it wraps the token check: preflights and 401s carry the CORS headers too."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_credentials=False,
        allow_methods=["GET", "HEAD"],
        allow_headers=["Authorization", "Range"],
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
