"""H.264/H.265 NAL units: walking Annex-B and length-prefixed data, types, escaping.

Shared by the camera simulator (which splices its frame tags into access units), the recorder
(which reads a keyframe's in-band parameter sets) and the tests' frame readers. Pure standard
library: a few bytes before each slice are all any of them reads, never the picture.
"""

from __future__ import annotations

from collections.abc import Iterator


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """Escape 00 00 0x (x <= 3) so that the payload can never be mistaken for a start code."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def remove_emulation_prevention(ebsp: bytes) -> bytes:
    """Undo add_emulation_prevention; a 03 is dropped only right after two zero bytes."""
    if b"\x00\x00\x03" not in ebsp:
        return ebsp
    out = bytearray()
    zeros = 0
    for byte in ebsp:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def iter_annexb_nals(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each NAL unit's bytes (start code excluded) in an Annex-B byte stream.

    Trailing zero bytes before the next start code belong to the 4-byte start code (or are
    trailing_zero_8bits), so they are trimmed from the NAL.
    """
    n = len(data)
    pos = data.find(b"\x00\x00\x01")
    while pos != -1:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = n if nxt == -1 else nxt
        stop = end
        while stop > start and data[stop - 1] == 0:
            stop -= 1
        if stop > start:
            yield start, stop
        pos = nxt


def iter_avcc_nals(data: bytes, length_size: int = 4) -> Iterator[tuple[int, int]]:
    """(start, end) of each NAL unit in length-prefixed (AVCC / MP4 sample) data.

    Stops quietly at a truncated length rather than raising: a packet cut short by a crash should
    still give up the tags it does contain.
    """
    pos = 0
    n = len(data)
    while pos + length_size <= n:
        size = int.from_bytes(data[pos : pos + length_size], "big")
        start = pos + length_size
        end = start + size
        if size == 0 or end > n:
            return
        yield start, end
        pos = end


def nal_type(first_byte: int, codec: str = "h264") -> int:
    """The NAL unit type from the first header byte (5 bits in H.264, 6 in H.265)."""
    return first_byte & 0x1F if codec == "h264" else (first_byte >> 1) & 0x3F


def is_vcl(first_byte: int, codec: str = "h264") -> bool:
    """A slice NAL: H.264 types 1-5, H.265 types 0-31."""
    t = nal_type(first_byte, codec)
    return 1 <= t <= 5 if codec == "h264" else t <= 31
