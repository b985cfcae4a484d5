"""What a playlist or the live redirect adds to the URLs it hands out: a playback grant
(hotspare.api.grants) in place of the caller's own credential.

Only a caller whose credential sat in the URL (`?token=`, or a grant: an HLS player, which cannot
add headers to the requests it makes for a playlist's URIs) gets grants in its URLs. A caller that
sent a header holds its credential itself and sends it on; its URLs carry nothing.
"""

from __future__ import annotations

from fastapi import Request

from hotspare.api.auth import PRINCIPAL_KEY, Principal, grant_of, token_from_scope
from hotspare.api.grants import GRANT_QUERY_PARAM, GrantSigner


def _signer(request: Request) -> GrantSigner:
    signer = request.app.state.grants
    assert isinstance(signer, GrantSigner)
    return signer


def _principal_name(request: Request) -> str:
    principal = request.scope.get(PRINCIPAL_KEY)
    return principal.name if isinstance(principal, Principal) else "anonymous"


def grant_query(request: Request, camera: str, from_us: int, to_us: int, *,
                extra_us: int = 0) -> str:
    """`grant=…` for `camera` over [from_us, to_us] when the caller's credential came in the
    URL, else ''. Under a grant, the new one stays inside it (range and expiry)."""
    grant = grant_of(request.scope)
    token, source = token_from_scope(request.scope)
    if grant is None and not (token and source == "query"):
        return ""
    text = _signer(request).issue(camera, from_us, to_us, _principal_name(request),
                                  extra_us=extra_us, within=grant)
    return f"{GRANT_QUERY_PARAM}={text}"
