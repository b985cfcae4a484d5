"""Read the frames a user receives: follow an HLS playlist or download segments over the API,
demux exactly the bytes served, and name every frame by its SEI tag.

The index can be right while the served bytes hold a frame twice (docs/design.md, decision 13);
these helpers look only at what the API hands out, as a player or a downloading user would.
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin

import av
import httpx

from hotspare.camerasim.sei import FrameTag, find_tags
from tests.support.camsim import CameraSim, now_us
from tests.support.site import TOKEN, FailoverSite

_ATTR = re.compile(r'([A-Z-]+)=("[^"]*"|[^,]*)')


@dataclass
class ServedFrames:
    """Frames in the order served, and what was odd about the serving."""

    tags: list[FrameTag] = field(default_factory=list)
    pieces: int = 0
    cut_pieces: int = 0  # pieces served cut (an overlapped tail left out)
    untagged: int = 0  # packets without a tag (a partial first access unit at a run's join)
    not_keyframe_starts: list[str] = field(default_factory=list)

    def twice(self) -> list[int]:
        counts = Counter(t.frame_no for t in self.tags)
        return sorted(n for n, c in counts.items() if c > 1)

    def numbers(self) -> list[int]:
        return [t.frame_no for t in self.tags]


def _range(value: str) -> tuple[int, int]:
    """`length@offset` of EXT-X-BYTERANGE / BYTERANGE= as (offset, length)."""
    length, _, offset = value.strip('"').partition("@")
    return int(offset or 0), int(length)


def _fetch(client: httpx.Client, url: str, byte_range: tuple[int, int] | None,
           cache: dict[str, bytes] | None = None) -> bytes:
    """The bytes at `url`, or the `byte_range` of them. With a `cache`, a URL is fetched whole
    once and its ranges sliced from that (the same bytes a Range request gets: the node answers
    ranges with Starlette's own slicing, tested in tests/unit/test_api_hls.py), which halves the
    requests when a playlist names a file for both its EXT-X-MAP and its media."""
    if cache is not None and byte_range is not None:
        if url not in cache:
            cache[url] = _fetch(client, url, None)
        offset, length = byte_range
        data = cache[url][offset : offset + length]
        assert len(data) == length, f"{url}: range {byte_range} past the end ({len(cache[url])})"
        return data
    headers = {}
    if byte_range is not None:
        offset, length = byte_range
        headers["Range"] = f"bytes={offset}-{offset + length - 1}"
    answer = client.get(url, headers=headers)
    if answer.status_code == 404:
        raise _Gone(url)
    answer.raise_for_status()
    return answer.content


def _read_piece(data: bytes, what: str, into: ServedFrames) -> None:
    into.pieces += 1
    with av.open(io.BytesIO(data), format="mp4") as container:
        stream = container.streams.video[0]
        first = True
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if first and not packet.is_keyframe:
                into.not_keyframe_starts.append(what)
            first = False
            tags = find_tags(bytes(packet))
            if not tags:
                into.untagged += 1
            into.tags.extend(tags)


class _Gone(Exception):
    """A listed segment is no longer there (a spare deletes what it has re-inserted)."""


def playlist_frames(client: httpx.Client, url: str, attempts: int = 30) -> ServedFrames:
    """Every frame a player gets from the HLS playlist at `url`: each media segment fetched as
    listed (its URI and byte range, behind its EXT-X-MAP), demuxed on its own. A playlist naming
    a segment that has gone meanwhile (404: a spare deletes each segment it has re-inserted) is
    fetched again, as a player would reload it, until re-insert has moved on."""
    for attempt in range(attempts):
        try:
            return _playlist_frames(client, url)
        except _Gone:
            if attempt == attempts - 1:
                raise
            time.sleep(0.3)
    raise AssertionError("unreachable")


def _playlist_frames(client: httpx.Client, url: str) -> ServedFrames:
    out = ServedFrames()
    for segment_url, data in playlist_pieces(client, url):
        out.cut_pieces += int("end_us=" in segment_url)
        _read_piece(data, segment_url, out)
    return out


def playlist_pieces(client: httpx.Client, url: str) -> Iterator[tuple[str, bytes]]:
    """(media URL, init + media bytes) of every media segment of the HLS playlist at `url`, as a
    player fetches them; a listed segment gone meanwhile raises _Gone."""
    answer = client.get(url)
    answer.raise_for_status()
    init: tuple[str, tuple[int, int] | None] | None = None
    init_cache: dict[tuple[str, tuple[int, int] | None], bytes] = {}
    files: dict[str, bytes] = {}
    pending_range: tuple[int, int] | None = None
    for line in answer.text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            attrs = dict(_ATTR.findall(line[len("#EXT-X-MAP:"):]))
            map_url = urljoin(url, attrs["URI"].strip('"'))
            init = (map_url, _range(attrs["BYTERANGE"]) if "BYTERANGE" in attrs else None)
        elif line.startswith("#EXT-X-BYTERANGE:"):
            pending_range = _range(line.split(":", 1)[1])
        elif line and not line.startswith("#"):
            assert init is not None, f"{url}: media segment {line} without EXT-X-MAP"
            if init not in init_cache:
                init_cache[init] = _fetch(client, *init, files)
            segment_url = urljoin(url, line)
            media = _fetch(client, segment_url, pending_range, files)
            yield segment_url, init_cache[init] + media
            pending_range = None


def download_frames(client: httpx.Client, base_url: str, camera: str, from_us: int,
                    to_us: int, *, raw: bool = False) -> ServedFrames:
    """Every frame a user gets by downloading each listed segment of a camera from one node
    (`GET /segments/{id}/file`, the default form), in the list's order; a segment the node
    serves nothing of (`409 not_served`) gives nothing."""
    out = ServedFrames()
    for url, cut, data in downloaded_pieces(client, base_url, camera, from_us, to_us, raw=raw):
        out.cut_pieces += int(cut)
        _read_piece(data, url, out)
    return out


def downloaded_pieces(client: httpx.Client, base_url: str, camera: str, from_us: int,
                      to_us: int, *, raw: bool = False) -> Iterator[tuple[str, bool, bytes]]:
    """(URL, served cut, bytes) of every listed segment of a camera downloaded from one node."""
    after: str | None = None
    while True:
        params: dict[str, str | int] = {"from": from_us, "to": to_us, "limit": 1000}
        if after is not None:
            params["after"] = after
        page = client.get(f"{base_url}/api/v1/cameras/{camera}/segments", params=params)
        page.raise_for_status()
        body = page.json()
        for segment in body["segments"]:
            url = f"{base_url}/api/v1/segments/{segment['segment_id']}/file"
            answer = client.get(url, params={"raw": "1"} if raw else None)
            if answer.status_code == 409 and answer.json().get("error") == "not_served":
                continue  # every frame of it is served by other segments: nothing to download
            answer.raise_for_status()
            yield url, "hotspare-served-frames" in answer.headers, answer.content
        after = body.get("next")
        if after is None:
            return


def missing_between(served: ServedFrames, delivered: dict[int, int]) -> list[int]:
    """Frames the camera delivered (number -> wall µs) between the first and last served one that
    were not served."""
    numbers = set(served.numbers())
    if not numbers:
        return sorted(delivered)
    first, last = min(numbers), max(numbers)
    return sorted(n for n in delivered if first <= n <= last and n not in numbers)


WAYS = ("live", "node VOD", "site VOD", "download")  # live first: its window moves on
STORED = "stored files"
"""Not a way users receive video: every listed segment's stored file whole (`raw=1`), which is
what playlists and downloads served before the served-span rule. Measured for comparison in the
same run (a failover does not always leave overlaps), never asserted."""


@dataclass(frozen=True)
class WayResult:
    """Per camera, for one way of receiving video: frames served twice and frames missing."""

    way: str
    twice: dict[str, list[int]]
    missing: dict[str, list[int]]
    bad_starts: dict[str, list[str]]
    cut_pieces: dict[str, int]

    def line(self) -> str:
        cams = sorted(self.twice)
        return (f"{self.way}: twice per camera {[len(self.twice[c]) for c in cams]}, "
                f"missing per camera {[len(self.missing[c]) for c in cams]}, "
                f"cut pieces per camera {[self.cut_pieces[c] for c in cams]}, "
                f"pieces not starting on a keyframe "
                f"{sum(len(v) for v in self.bad_starts.values())}")


def served_frames(base_url: str, token: str, cameras: list[str], from_us: int, to_us: int, *,
                  ways: tuple[str, ...], delivered: dict[str, dict[int, int]],
                  ) -> dict[str, WayResult]:
    """What each way of receiving video serves from the node at `base_url` (its own playlists
    and downloads, and the site playlist that node answers), per camera: the frames served twice
    and the frames the camera delivered between the first and last served one that are missing.
    `delivered`: camera -> frame number -> wall µs (the camera sim's log)."""
    results: dict[str, WayResult] = {}
    span = f"from={from_us}&to={to_us}"

    def one(client: httpx.Client, way: str, camera: str) -> ServedFrames:
        if way == "node VOD":
            return playlist_frames(
                client, f"{base_url}/api/v1/cameras/{camera}/playback.m3u8?{span}")
        if way == "live":
            return playlist_frames(client, f"{base_url}/api/v1/cameras/{camera}/live.m3u8")
        if way == "site VOD":
            return playlist_frames(
                client, f"{base_url}/api/v1/site/cameras/{camera}/playback.m3u8?{span}")
        if way == "download":
            return download_frames(client, base_url, camera, from_us, to_us)
        if way == STORED:
            return download_frames(client, base_url, camera, from_us, to_us, raw=True)
        raise ValueError(f"unknown way {way!r}; one of {WAYS}")

    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30.0) as client, \
            ThreadPoolExecutor(max_workers=4) as pool:
        for way in ways:
            twice: dict[str, list[int]] = {}
            missing: dict[str, list[int]] = {}
            bad: dict[str, list[str]] = {}
            cut: dict[str, int] = {}
            served = dict(zip(cameras, pool.map(lambda c, w=way: one(client, w, c), cameras),
                              strict=True))
            for camera, got in served.items():
                assert got.tags, f"{way}: nothing served for {camera}"
                assert all(t.camera_id == camera for t in got.tags), (way, camera)
                twice[camera] = got.twice()
                missing[camera] = [] if way == "live" else missing_between(got, delivered[camera])
                bad[camera] = got.not_keyframe_starts
                cut[camera] = got.cut_pieces
            results[way] = WayResult(way, twice, missing, bad, cut)
    return results


def delivered_frames(sim: CameraSim, cameras: list[str],
                     until_us: int) -> dict[str, dict[int, int]]:
    """camera -> frame number -> wall µs of every frame the sim delivered (logged to `until_us`)."""
    out: dict[str, dict[int, int]] = {}
    for camera in cameras:
        sim.wait_logged(camera, until_us)
        out[camera] = {r.frame: r.wall_us for r in sim.frames(camera) if r.delivered}
    return out


def check_served(site: FailoverSite, node: str, server: str, from_us: int,
                 ways: tuple[str, ...], phase: str,
                 cameras: list[str] | None = None) -> list[tuple[str, WayResult]]:
    """`served_frames` from a running `node` of the site for `server`'s cameras (or `cameras`
    of them), up to now;
    printed (the before/after table of issue 13 reads these lines) and returned for
    `assert_served_once` at the end of the test, so that every way is measured before any
    assertion stops the test."""
    assert site.sim is not None
    started = time.monotonic()
    to_us = now_us()
    cameras = cameras or site.cameras[server]
    base = site.api_url(node)
    results = served_frames(base, TOKEN, cameras, from_us, to_us, ways=ways,
                            delivered=delivered_frames(site.sim, cameras, to_us))
    for result in results.values():
        print(f"served [{phase}] via {node}: {result.line()}")
    print(f"served [{phase}]: checked in {time.monotonic() - started:.1f} s")
    return [(phase, r) for r in results.values()]


def assert_served_once(site: FailoverSite, server: str,
                       measured: list[tuple[str, WayResult]],
                       allowed: list[tuple[int, int]] | None) -> None:
    """No frame served twice by any way; no piece that does not start on a keyframe; and no
    frame missing outside the `allowed` windows (wall µs; None: missing frames not checked)."""
    assert site.sim is not None
    walls = {c: {r.frame: r.wall_us for r in site.sim.frames(c)} for c in site.cameras[server]}
    for phase, result in measured:
        if result.way == STORED:
            continue
        for camera, twice in result.twice.items():
            assert not twice, f"[{phase}] {result.way} {camera}: served twice {twice[:20]}"
            assert not result.bad_starts[camera], (phase, result.way, result.bad_starts[camera])
            if allowed is None:
                continue
            outside = [n for n in result.missing[camera]
                       if not any(a <= walls[camera][n] <= b for a, b in allowed)]
            assert not outside, (f"[{phase}] {result.way} {camera}: frames missing outside "
                                 f"{allowed}: {outside[:20]}")
