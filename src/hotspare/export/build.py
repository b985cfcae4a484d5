"""Building an export: read the site playlist page by page, fetch each piece from the node that
holds it, join the pieces into one clip, and describe all of it in a signed manifest.

The clip is made of exactly what the site serves to players (`playback.m3u8`), so whatever the
playlist does to give every frame once (trimmed forms, byte ranges) the export inherits. Source
metadata (hash, who recorded it, run, seq) comes from the holder's own segment route.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotspare.api.hls import GAP_TOLERANCE_US
from hotspare.export.clip import ClipError, ClipWriter, PlacedPiece
from hotspare.export.manifest import FORMAT, encode_runs, sign, ticks_to_us
from hotspare.export.playlist import Entry, Fetch
from hotspare.timefmt import format_wall_us, wall_now_us

log = logging.getLogger("hotspare.export")

_SEGMENT_URI = re.compile(r"^(?P<base>.*)/api/v1/segments/(?P<id>\d+)(/|$)")
PDT_MATCH_US = 1_000  # PROGRAM-DATE-TIME carries milliseconds
RECENT_US = 10_000_000  # a range ending this close to now may end in video not yet stored


class ExportFailed(Exception):
    """The export cannot produce a clip; `error` is a stable code, str() is for the operator."""

    def __init__(self, error: str, detail: str) -> None:
        self.error = error
        super().__init__(detail)


class FetchFailed(Exception):
    """A node did not hand out a piece; the message names the node and why."""


@dataclass(frozen=True)
class PlaylistPage:
    entries: list[Entry]
    partial_nodes: list[str]
    next_from_us: int | None


class Source(Protocol):
    """Where an export reads from: the site playlist and the nodes it points at."""

    def playlist(self, camera: str, from_us: int, to_us: int) -> PlaylistPage: ...

    def fetch(self, what: Fetch) -> bytes: ...

    def segment(self, base_url: str, segment_id: int) -> dict[str, Any] | None: ...

    def node_of(self, url: str) -> str: ...


@dataclass
class Progress:
    """What a status route reports while an export runs (read from another thread)."""

    pieces_total: int = 0
    pieces_done: int = 0
    bytes_done: int = 0
    frames_done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def view(self) -> dict[str, int]:
        with self.lock:
            return {"pieces_total": self.pieces_total, "pieces_done": self.pieces_done,
                    "bytes_done": self.bytes_done, "frames_done": self.frames_done}


@dataclass(frozen=True)
class ExportRequest:
    site_id: str
    camera: str
    from_us: int
    to_us: int
    exported_by: str


def public_url(url: str) -> str:
    """A URL without its query: a `?token=` must never reach a manifest."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _all_entries(source: Source, request: ExportRequest) -> tuple[list[Entry], list[str]]:
    entries: list[Entry] = []
    partial: list[str] = []
    start = request.from_us
    while True:
        page = source.playlist(request.camera, start, request.to_us)
        entries += page.entries
        partial += [n for n in page.partial_nodes if n not in partial]
        if page.next_from_us is None or page.next_from_us <= start:
            return entries, partial
        start = page.next_from_us


def _segment_meta(source: Source, entry: Entry, cache: dict[tuple[str, int], Any],
                  ) -> dict[str, Any] | None:
    match = _SEGMENT_URI.match(public_url(entry.media.url))
    if match is None:
        return None
    key = (match["base"], int(match["id"]))
    if key not in cache:
        cache[key] = source.segment(*key)
    meta: dict[str, Any] | None = cache[key]
    return meta


def _whole_file(entry: Entry, meta: dict[str, Any] | None, data: bytes) -> bool | None:
    """True/False when the piece is the whole stored file (so its hash can be checked)."""
    if meta is None or entry.init.url != entry.media.url:
        return None
    init, media = entry.init.byte_range, entry.media.byte_range
    if init is None or media is None or init.offset != 0:
        return None
    if init.length != media.offset or media.offset + media.length != meta.get("bytes"):
        return None
    return hashlib.sha256(data).hexdigest() == meta.get("sha256")


def _wall_of(entry: Entry, meta: dict[str, Any] | None) -> int | None:
    """The piece's first frame: the playlist's time, to the µs when it is the segment's start."""
    if entry.wall_us is None:
        return None if meta is None else int(meta["start_wall_us"])
    if meta is not None and abs(int(meta["start_wall_us"]) - entry.wall_us) < PDT_MATCH_US:
        return int(meta["start_wall_us"])
    return entry.wall_us


def _piece_record(index: int, entry: Entry, node: str, meta: dict[str, Any] | None,
                  placed: PlacedPiece, checked: bool | None) -> dict[str, Any]:
    durations = placed.durations
    last_wall = placed.first_frame_wall_us + ticks_to_us(sum(durations[:-1]))
    return {
        "index": index,
        "node": node,
        "url": public_url(entry.media.url),
        "segment_id": None if meta is None else meta.get("segment_id"),
        "recorded_by": None if meta is None else meta.get("recorded_by"),
        "recorded_as": None if meta is None else meta.get("recorded_as"),
        "run_id": None if meta is None else meta.get("run_id"),
        "seq": None if meta is None else meta.get("seq"),
        "source_sha256": None if meta is None else meta.get("sha256"),
        "source_hash_checked": checked,
        "first_frame_wall_us": placed.first_frame_wall_us,
        "last_frame_wall_us": last_wall,
        "end_wall_us": placed.first_frame_wall_us + ticks_to_us(sum(durations)),
        "frame_count": placed.frame_count,
        "clip_first_pts": placed.clip_first_pts,
        "frame_durations": encode_runs(durations),
    }


def _gap(start: int, end: int, cause: str, detail: str) -> dict[str, Any]:
    return {"start_wall_us": start, "end_wall_us": end, "length_us": end - start,
            "cause": cause, "detail": detail}


def find_gaps(request: ExportRequest, pieces: list[dict[str, Any]],
              failed: list[dict[str, Any]], partial: list[str],
              now_us: int) -> list[dict[str, Any]]:
    """Every stretch of the requested range no piece covers, with its cause where known: a piece
    the playlist listed but its node did not hand out; else, when a node did not answer the
    site, maybe its video; else no video was recorded."""
    unknown = ("node(s) " + ", ".join(partial) + " did not answer the site when the export "
               "was made; video they hold, if any, is missing here") if partial else ""

    def hole(start: int, end: int) -> list[dict[str, Any]]:
        if end - start <= GAP_TOLERANCE_US:
            return []
        lost = [f for f in failed if f["start_wall_us"] < end and f["end_wall_us"] > start]
        if lost:
            nodes = sorted({f["node"] for f in lost})
            reasons = "; ".join(f["error"] for f in lost[:3])
            return [_gap(start, end, "node_unreachable",
                         f"{', '.join(nodes)} did not hand out {len(lost)} piece(s): {reasons}")]
        if unknown:
            return [_gap(start, end, "node_not_answering", unknown)]
        return [_gap(start, end, "no_video_recorded",
                     "no node of the site holds video of this camera for this time")]

    gaps: list[dict[str, Any]] = []
    at = request.from_us
    for piece in pieces:
        gaps += hole(at, piece["first_frame_wall_us"])
        at = max(at, piece["end_wall_us"])
    tail = hole(at, request.to_us)
    if tail and tail[0]["cause"] == "no_video_recorded" and request.to_us > now_us - RECENT_US:
        tail[0].update(cause="not_yet_stored", detail="the range ends less than "
                       f"{RECENT_US // 1_000_000} s before the export: video being recorded "
                       "is stored a segment at a time and may not be stored yet")
    return gaps + tail


def _with_replacements(source: Source, request: ExportRequest, entry: Entry,
                       failed: list[dict[str, Any]]) -> Iterator[Entry]:
    """The listed entry; if it could not be fetched, what the site serves for its time now.

    Between reading the playlist and fetching, re-insert may move a spare's segment to its
    server and delete the spare's copy: the video still exists, at another URL."""
    before = len(failed)
    yield entry
    if len(failed) == before or entry.wall_us is None:
        return
    start, end = entry.wall_us, entry.wall_us + max(1, int(entry.duration_s * 1_000_000))
    try:
        page = source.playlist(request.camera, start, end)
    except FetchFailed:
        return
    replacements = [e for e in page.entries if e.media.url != entry.media.url
                    and e.wall_us is not None and start - PDT_MATCH_US <= e.wall_us < end]
    if replacements:
        failed.pop()
        log.info("export of %s: %s is gone; %d piece(s) now served for its time",
                 request.camera, public_url(entry.media.url), len(replacements))
    yield from replacements


def build_export(request: ExportRequest, source: Source, key: Ed25519PrivateKey,
                 clip_path: Path, progress: Progress,
                 cancelled: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Write the clip to `clip_path` and return the signed manifest. Raises ExportFailed when
    there is nothing to export; the caller removes `clip_path` then."""
    entries, partial = _all_entries(source, request)
    with progress.lock:
        progress.pieces_total = len(entries)
    meta_cache: dict[tuple[str, int], Any] = {}
    pieces: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    writer: ClipWriter | None = None
    try:
        for listed in entries:
            if cancelled():
                raise ExportFailed("cancelled", "the export was cancelled")
            for entry in _with_replacements(source, request, listed, failed):
                node = source.node_of(entry.media.url)
                try:
                    meta = _segment_meta(source, entry, meta_cache)
                    init = source.fetch(entry.init)
                    media = source.fetch(entry.media)
                    wall = _wall_of(entry, meta)
                    if wall is None:
                        raise ClipError(f"{public_url(entry.media.url)}: the playlist gives no "
                                        "wall time for it")
                    if writer is None:
                        writer = ClipWriter(clip_path)
                    placed = writer.add(init + media, wall, public_url(entry.media.url))
                except (FetchFailed, ClipError) as exc:
                    start = entry.wall_us or 0
                    log.warning("export of %s: %s", request.camera, exc)
                    failed.append({"node": node, "error": str(exc), "start_wall_us": start,
                                   "end_wall_us": start + int(entry.duration_s * 1_000_000),
                                   "url": entry.media.url})
                    continue
                checked = _whole_file(entry, meta, init + media)
                pieces.append(_piece_record(len(pieces), entry, node, meta, placed, checked))
                with progress.lock:
                    progress.pieces_done += 1
                    progress.bytes_done += len(init) + len(media)
                    progress.frames_done += placed.frame_count
    finally:
        if writer is not None:
            writer.close()
    if not pieces:
        why = f"; {len(failed)} piece(s) could not be fetched" if failed else ""
        raise ExportFailed("no_video", f"no video of camera {request.camera!r} between "
                           f"{format_wall_us(request.from_us)} and "
                           f"{format_wall_us(request.to_us)} could be exported{why}")
    digest = hashlib.sha256()
    with clip_path.open("rb") as clip:
        while chunk := clip.read(1 << 20):
            digest.update(chunk)
    now = wall_now_us()
    manifest = {
        "format": FORMAT,
        "site_id": request.site_id,
        "camera": request.camera,
        "exported_by": request.exported_by,
        "created_wall_us": now,
        "created": format_wall_us(now, millis=False),
        "requested": {"from_wall_us": request.from_us, "to_wall_us": request.to_us,
                      "from": format_wall_us(request.from_us, millis=False),
                      "to": format_wall_us(request.to_us, millis=False)},
        "clip": {"sha256": digest.hexdigest(), "bytes": clip_path.stat().st_size,
                 "frame_count": sum(p["frame_count"] for p in pieces),
                 "time_base": "1/90000",
                 "first_frame_wall_us": pieces[0]["first_frame_wall_us"],
                 "end_wall_us": pieces[-1]["end_wall_us"]},
        "pieces": pieces,
        "gaps": find_gaps(request, pieces, failed, partial, now),
        "nodes_not_answering": partial,
    }
    return sign(manifest, key)
