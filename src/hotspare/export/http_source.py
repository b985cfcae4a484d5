"""The export's reads over HTTP: the site playlist from this node's own site API, pieces and
segment metadata from the nodes the playlist points at, all with the site's node credential."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from hotspare.export.build import FetchFailed, PlaylistPage, public_url
from hotspare.export.playlist import Fetch, PlaylistError, parse_vod
from hotspare.tls import explain
from hotspare.wire import API_PREFIX, NEXT_FROM_HEADER

TIMEOUT_SECONDS = 30.0


class HttpSource:
    def __init__(self, site_url: str, token: str, verify: ssl.SSLContext | bool,
                 node_names: Mapping[str, str]) -> None:
        """`node_names`: node URL -> name, to say in the manifest who served each piece."""
        self._site = site_url.rstrip("/")
        self._names = {u.rstrip("/"): n for u, n in node_names.items()}
        self._http = httpx.Client(timeout=TIMEOUT_SECONDS, verify=verify,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def playlist(self, camera: str, from_us: int, to_us: int) -> PlaylistPage:
        url = f"{self._site}{API_PREFIX}/site/cameras/{camera}/playback.m3u8"
        try:
            answer = self._http.get(url, params={"from": from_us, "to": to_us})
        except httpx.HTTPError as exc:
            raise FetchFailed(f"the site playlist at {url}: {explain(exc)}") from None
        if answer.status_code != 200:
            raise FetchFailed(f"the site playlist at {url} answered {answer.status_code}: "
                              f"{answer.text[:300]}")
        try:
            entries = parse_vod(answer.text, str(answer.url))
        except PlaylistError as exc:
            raise FetchFailed(f"the site playlist at {url}: {exc}") from None
        partial = [n for n in answer.headers.get("Hotspare-Partial", "").split(",") if n]
        next_from = answer.headers.get(NEXT_FROM_HEADER)
        return PlaylistPage(entries, partial, int(next_from) if next_from else None)

    def fetch(self, what: Fetch) -> bytes:
        headers = {} if what.byte_range is None else {"Range": what.byte_range.header()}
        node = self.node_of(what.url)
        try:
            answer = self._http.get(what.url, headers=headers)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{node} ({public_url(what.url)}): {explain(exc)}") from None
        if answer.status_code not in (200, 206):
            raise FetchFailed(f"{node} answered {answer.status_code} for "
                              f"{public_url(what.url)}: {answer.text[:200]}")
        data = answer.content
        if what.byte_range is not None:
            if answer.status_code == 200:  # a server ignoring Range sent the whole file
                data = data[what.byte_range.offset:what.byte_range.offset + what.byte_range.length]
            if len(data) != what.byte_range.length:
                raise FetchFailed(f"{node} sent {len(data)} bytes of {public_url(what.url)}, "
                                  f"{what.byte_range.length} were listed")
        return data

    def segment(self, base_url: str, segment_id: int) -> dict[str, Any] | None:
        try:
            answer = self._http.get(f"{base_url}{API_PREFIX}/segments/{segment_id}")
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        body: dict[str, Any] = answer.json()
        return body

    def node_of(self, url: str) -> str:
        for base, name in self._names.items():
            if url.startswith(base + "/"):
                return name
        parts = url.split("/")
        return parts[2] if len(parts) > 2 else url
