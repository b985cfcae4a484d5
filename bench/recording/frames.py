"""Which tagged frames a set of MP4 files holds (demux only, no decode)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import av

from hotspare.camerasim.sei import find_tags


def frame_numbers(files: Iterable[Path]) -> Counter[int]:
    """Frame number → how many times it was stored (should be 1)."""
    seen: Counter[int] = Counter()
    for path in files:
        try:
            with av.open(str(path)) as container:
                for packet in container.demux(container.streams.video[0]):
                    if packet.size:
                        for tag in find_tags(bytes(packet)):
                            seen[tag.frame_no] += 1
        except (av.FFmpegError, IndexError):
            continue  # an unreadable file holds no frames; it shows up as missing ones
    return seen
