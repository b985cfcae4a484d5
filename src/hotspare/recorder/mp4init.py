"""Length of a fragmented MP4's init section (ftyp + moov), which the store indexes as init_bytes.

HLS serves the init section separately (EXT-X-MAP), and the store's salvage needs it too; reading
the top-level box headers after close costs a few small reads and needs no muxer internals.
"""

from __future__ import annotations

import struct
from pathlib import Path

_INIT_BOXES = {b"ftyp", b"moov", b"free", b"skip", b"styp", b"uuid"}


def init_length(path: Path) -> int:
    """Bytes before the first `moof` (or end of file when no fragment was ever written)."""
    size = path.stat().st_size
    offset = 0
    seen_moov = False
    with path.open("rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:
                box_size = size - offset
            if box_type not in _INIT_BOXES or box_size < 8:
                break
            seen_moov = seen_moov or box_type == b"moov"
            offset += box_size
    if not seen_moov:
        raise ValueError(f"{path}: no moov box in the init section")
    return offset
