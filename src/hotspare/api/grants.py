"""Short-lived signed playback URLs ("grants"): what playlists and the live redirect put in the
URLs they hand out, instead of the user's own token (docs/design.md, decision 16).

A playlist's URIs point at other nodes (a spare, another recording server), and a URL is logged,
kept in browser history and passed on. A user token there would be a long-lived credential for
every route the user may call, handed to whichever host the URL names. A grant opens only reads of
one camera over one time range (its playlists, and the files of its segments overlapping the
range), for minutes, and no other route (`hotspare.api.roles.GRANT_ROUTES`): a read-only
credential for exactly what the playlist lists.

Form: `v1.<camera>.<from_us>.<to_us>.<expires_us>.<principal>.<signature>`. Camera ids and
principal names are identifiers (no dots), so the fields cannot be shifted into each other; the
signature is HMAC-SHA256 over the same text with a key derived from the site secret (the file
every node holds beside node.toml, never in etcd: `hotspare.site_secret`), or on a node without
one from its node credential. Rotating it rotates the key; grants signed with the old key are
refused from then on, and players get new ones at their next playlist load.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.types import Scope

from hotspare.api.problems import ApiError
from hotspare.config.models import is_identifier
from hotspare.timefmt import wall_now_us

GRANT_QUERY_PARAM = "grant"
VERSION = "v1"
DEFAULT_TTL_SECONDS = 600
_KEY_LABEL = b"hotspare playback grant key v1"
_MAX_CHARS = 400  # far above any real grant; longer text is refused before it is parsed
_MAX_US = 2**62


@dataclass(frozen=True)
class Grant:
    """What a verified grant allows: reads of `camera` overlapping [from_us, to_us] until
    `expires_us`, issued to `principal` (the user, or node, whose request minted it)."""

    camera: str
    from_us: int
    to_us: int
    expires_us: int
    principal: str


class GrantRefused(Exception):
    """A grant that is not valid (any more); `error` is the problem code the client gets."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


def grant_from_scope(scope: Scope) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == GRANT_QUERY_PARAM:
            return value
    return None


class GrantSigner:
    """Issues and verifies grants with one node's copy of the site key."""

    def __init__(self, site_secret: str | bytes, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], int] = wall_now_us) -> None:
        self.ttl_us = int(ttl_seconds * 1_000_000)
        self.clock = clock
        self.use_key(site_secret)

    def use_key(self, site_secret: str | bytes) -> None:
        """Key grants from `site_secret`: the site secret's key where the node holds one (every
        node of the site must then hold the same file), else the shared node credential. Set
        once at start, before the first request."""
        if not site_secret:
            raise ValueError("the playback grant key needs the site secret or node credential")
        material = site_secret.encode("utf-8") if isinstance(site_secret, str) else site_secret
        self._key = hmac.new(material, _KEY_LABEL, hashlib.sha256).digest()

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def issue(self, camera: str, from_us: int, to_us: int, principal: str, *,
              extra_us: int = 0, within: Grant | None = None) -> str:
        """A grant for `camera` over [from_us, to_us], valid for the TTL plus `extra_us` (a VOD
        playlist's range length: playing it takes that long). Minted under another grant
        (`within`), it never reaches beyond that grant's range or expiry."""
        expires = self.clock() + self.ttl_us + max(0, extra_us)
        if within is not None:
            from_us, to_us = max(from_us, within.from_us), min(to_us, within.to_us)
            expires = min(expires, within.expires_us)
        to_us = max(from_us, to_us)
        body = f"{VERSION}.{camera}.{from_us}.{to_us}.{expires}.{principal}"
        return f"{body}.{self._sign(body)}"

    def verify(self, text: str) -> Grant:
        """The grant `text` names, or `GrantRefused` saying why it is not valid."""
        parts = text.split(".") if len(text) <= _MAX_CHARS and text.isascii() else []
        if len(parts) != 7 or parts[0] != VERSION:
            raise GrantRefused("grant_invalid", "the `grant` in this URL is malformed; ask the "
                               "site for the playlist again")
        body, signature = ".".join(parts[:6]), parts[6]
        if not hmac.compare_digest(self._sign(body).encode("ascii"), signature.encode("ascii")):
            raise GrantRefused("grant_invalid", "the `grant` in this URL does not carry a valid "
                               "signature of this site (changed, or signed with another key); "
                               "ask the site for the playlist again")
        _, camera, from_text, to_text, expires_text, principal = parts[:6]
        # Signed by us, so well-formed unless the key is shared with something else: checked
        # anyway, so a bad field is a refusal and never a 500.
        numbers = [_number(t) for t in (from_text, to_text, expires_text)]
        if not (is_identifier(camera) and is_identifier(principal)) or None in numbers:
            raise GrantRefused("grant_invalid", "the `grant` in this URL names no valid camera "
                               "or range")
        from_us, to_us, expires_us = (n for n in numbers if n is not None)
        if expires_us <= self.clock():
            raise GrantRefused("grant_expired", "the `grant` in this URL has expired (playback "
                               "URLs are valid for minutes); load the playlist again from the "
                               "site to get fresh URLs")
        return Grant(camera, from_us, to_us, expires_us, principal)


def _number(text: str) -> int | None:
    if not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= _MAX_US else None


def check_grant(grant: Grant | None, camera: str, start_us: int, end_us: int, *,
                what: str) -> None:
    """Refuse (403) a read of `camera` over [start_us, end_us] that `grant` does not cover;
    `what` names the read for the operator. A request not made under a grant passes."""
    if grant is None:
        return
    if camera != grant.camera:
        raise ApiError(403, "grant_wrong_camera",
                       f"this URL's grant is for camera {grant.camera!r}, not {camera!r}; "
                       "ask the site for that camera's playlist")
    if start_us > grant.to_us or end_us < grant.from_us:
        raise ApiError(403, "grant_outside_range",
                       f"{what} ({start_us}..{end_us} µs) lies outside this URL's grant "
                       f"({grant.from_us}..{grant.to_us} µs); ask the site for a playlist of "
                       "that time")


def check_grant_covers(grant: Grant | None, camera: str, from_us: int, to_us: int, *,
                       what: str) -> None:
    """Like `check_grant`, but the whole of [from_us, to_us] must lie inside the grant's range
    (a playlist asked under a grant may list no more than the grant covers)."""
    check_grant(grant, camera, from_us, to_us, what=what)
    if grant is not None and (from_us < grant.from_us or to_us > grant.to_us):
        raise ApiError(403, "grant_outside_range",
                       f"{what} ({from_us}..{to_us} µs) reaches outside this URL's grant "
                       f"({grant.from_us}..{grant.to_us} µs); ask within it, or ask the site "
                       "for a new playlist")
