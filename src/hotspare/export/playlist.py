"""Reading an HLS VOD playlist as a list of pieces to fetch, whatever produced it.

The export builds its clip from exactly what the site playlist serves to players, so it must not
assume how the playlist cuts segments (whole files, byte ranges of a file, trimmed forms): each
media entry is its URI and byte range, behind the latest EXT-X-MAP, with the latest
PROGRAM-DATE-TIME and whether a discontinuity precedes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin

from hotspare.timefmt import TimeFormatError, parse_wall_time

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


class PlaylistError(Exception):
    """The playlist cannot be read as a VOD playlist of fMP4 segments."""


@dataclass(frozen=True)
class ByteRange:
    offset: int
    length: int

    def header(self) -> str:
        return f"bytes={self.offset}-{self.offset + self.length - 1}"


@dataclass(frozen=True)
class Fetch:
    url: str
    byte_range: ByteRange | None


@dataclass(frozen=True)
class Entry:
    """One media segment of the playlist: its init section, its media, and its first frame's
    wall time (PROGRAM-DATE-TIME, µs; None if the playlist gave none)."""

    init: Fetch
    media: Fetch
    wall_us: int | None
    duration_s: float
    discontinuity: bool


def _byte_range(text: str, previous_end: int | None, where: str) -> ByteRange:
    """`length[@offset]`; without an offset the range follows the previous one (RFC 8216)."""
    length_text, at, offset_text = text.strip().strip('"').partition("@")
    try:
        length = int(length_text)
        if at:
            offset = int(offset_text)
        elif previous_end is not None:
            offset = previous_end
        else:
            raise PlaylistError(f"{where}: byte range {text!r} has no offset and follows none")
    except ValueError:
        raise PlaylistError(f"{where}: byte range {text!r} is not `length@offset`") from None
    if length < 1 or offset < 0:
        raise PlaylistError(f"{where}: byte range {text!r} is empty or negative")
    return ByteRange(offset, length)


def parse_vod(text: str, base_url: str) -> list[Entry]:
    """Every media entry of `text`, URIs made absolute against `base_url`."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "#EXTM3U":
        raise PlaylistError("not an HLS playlist (no #EXTM3U first line)")
    entries: list[Entry] = []
    init: Fetch | None = None
    wall_us: int | None = None
    duration = 0.0
    discontinuity = False
    pending: str | None = None
    last_end: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        where = f"playlist line {number}"
        if line.startswith("#EXT-X-MAP:"):
            attrs = {k: v.strip('"') for k, v in _ATTR.findall(line[len("#EXT-X-MAP:"):])}
            if "URI" not in attrs:
                raise PlaylistError(f"{where}: EXT-X-MAP without URI")
            rng = _byte_range(attrs["BYTERANGE"], None, where) if "BYTERANGE" in attrs else None
            init = Fetch(urljoin(base_url, attrs["URI"]), rng)
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            try:
                wall_us = parse_wall_time(line.split(":", 1)[1])
            except TimeFormatError as exc:
                raise PlaylistError(f"{where}: {exc}") from None
        elif line.startswith("#EXTINF:"):
            try:
                duration = float(line.split(":", 1)[1].split(",", 1)[0])
            except ValueError:
                raise PlaylistError(f"{where}: EXTINF {line!r} has no duration") from None
        elif line.startswith("#EXT-X-BYTERANGE:"):
            pending = line.split(":", 1)[1]
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line and not line.startswith("#"):
            if init is None:
                raise PlaylistError(f"{where}: media segment {line!r} has no EXT-X-MAP before it "
                                    "(the export needs fMP4 segments)")
            url = urljoin(base_url, line)
            rng = _byte_range(pending, last_end.get(url), where) if pending is not None else None
            if rng is not None:
                last_end[url] = rng.offset + rng.length
            entries.append(Entry(init, Fetch(url, rng), wall_us, duration, discontinuity))
            pending, wall_us, discontinuity = None, None, False
    return entries
