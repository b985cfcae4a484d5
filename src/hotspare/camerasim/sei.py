"""The hotspare frame tag: an H.264/H.265 SEI message naming every frame a simulated camera sends.

Tests must be able to say exactly which frames were recorded, by whom, and with what wall time,
after the video has been through RTSP, a recorder, a segment file and a re-insert. Pixels do not
survive that reliably enough to carry a counter, but an SEI NAL unit travels with its access unit
through every copy-only step. This module is stdlib only, because both the simulator (Debian's
python with GStreamer) and the product/tests (the venv with PyAV) import it.

Layout of the SEI NAL unit (before emulation prevention)::

    0x06                      NAL header: forbidden 0, nal_ref_idc 0, type 6 (SEI)
    0x05                      payloadType 5 = user_data_unregistered
    N (ff-coded)              payloadSize
    16 bytes                  HOTSPARE_SEI_UUID
    u8                        tag format version (1)
    u64 big-endian            frame number, counted by the camera from 0, never repeats
    i64 big-endian            capture wall time, µs since the Unix epoch
    u8 + bytes                camera id, UTF-8, at most 255 bytes
    0x80                      rbsp_trailing_bits

In H.265 the same SEI message travels in a prefix SEI NAL unit (type 39) whose header is two bytes,
0x4E 0x01 (layer 0, temporal id 0); everything after the header is identical.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from hotspare.media.nal import (
    add_emulation_prevention,
    is_vcl,
    iter_annexb_nals,
    iter_avcc_nals,
    remove_emulation_prevention,
)

HOTSPARE_SEI_UUID: bytes = uuid.UUID("5d742a91-e70a-458c-b4ca-eb39c8b9ec04").bytes
"""Tells our user_data_unregistered messages from others (x264 writes its own, for example)."""

TAG_VERSION = 1
NAL_TYPE_SEI = 6
NAL_TYPE_SEI_HEVC_PREFIX = 39
_HEVC_SEI_HEADER = bytes([NAL_TYPE_SEI_HEVC_PREFIX << 1, 1])
CODECS = ("h264", "h265")
SEI_USER_DATA_UNREGISTERED = 5
_BODY = struct.Struct(">BQqB")  # version, frame_no, capture_wall_us, len(camera_id)


@dataclass(frozen=True, slots=True)
class FrameTag:
    """One frame as the camera named it; equality lets tests compare sets of frames directly."""

    camera_id: str
    frame_no: int
    capture_wall_us: int


# ---------------------------------------------------------------------------------------- building


def _ff_coded(value: int) -> bytes:
    """SEI payloadType/payloadSize coding: runs of 0xFF then the remainder."""
    return b"\xff" * (value // 255) + bytes([value % 255])


def build_sei_payload(camera_id: str, frame_no: int, capture_wall_us: int) -> bytes:
    """The user_data_unregistered payload (UUID included), unescaped."""
    cam = camera_id.encode("utf-8")
    if len(cam) > 255:
        raise ValueError(f"camera id is {len(cam)} bytes in UTF-8; the tag allows at most 255")
    if not 0 <= frame_no < 2**64:
        raise ValueError(f"frame number {frame_no} does not fit an unsigned 64-bit integer")
    return HOTSPARE_SEI_UUID + _BODY.pack(TAG_VERSION, frame_no, capture_wall_us, len(cam)) + cam


def build_sei_nal(
    camera_id: str, frame_no: int, capture_wall_us: int, codec: str = "h264"
) -> bytes:
    """A complete SEI NAL unit (header included, no start code), escaped and ready to insert."""
    if codec not in CODECS:
        raise ValueError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
    payload = build_sei_payload(camera_id, frame_no, capture_wall_us)
    rbsp = _ff_coded(SEI_USER_DATA_UNREGISTERED) + _ff_coded(len(payload)) + payload + b"\x80"
    header = bytes([NAL_TYPE_SEI]) if codec == "h264" else _HEVC_SEI_HEADER
    return header + add_emulation_prevention(rbsp)


def build_sei_annexb(
    camera_id: str, frame_no: int, capture_wall_us: int, codec: str = "h264"
) -> bytes:
    """The SEI NAL with a 4-byte start code, for splicing into an Annex-B access unit."""
    return b"\x00\x00\x00\x01" + build_sei_nal(camera_id, frame_no, capture_wall_us, codec)


# ----------------------------------------------------------------------------------------- parsing


def _sei_header_size(nal: bytes) -> int:
    """1 for an H.264 SEI NAL, 2 for an H.265 prefix/suffix SEI NAL, 0 for anything else.

    The codec is not known here (the same readers serve both), and some H.265 NAL headers look
    like an H.264 SEI (an IDR_W_RADL slice starts 0x26); parse_sei_nal rejects those cheaply
    because our UUID, which holds no zero byte and so is never escaped, is not in them.
    """
    if not nal or nal[0] & 0x80:
        return 0
    if nal[0] & 0x1F == NAL_TYPE_SEI:
        return 1
    if (nal[0] >> 1) & 0x3F in (39, 40) and len(nal) > 1 and nal[1] & 0x07:
        return 2
    return 0


def parse_sei_nal(nal: bytes) -> list[FrameTag]:
    """Every hotspare tag in one SEI NAL unit (header included); others and junk are ignored."""
    header = _sei_header_size(nal)
    if not header or HOTSPARE_SEI_UUID not in nal:
        return []
    rbsp = remove_emulation_prevention(nal[header:])
    tags: list[FrameTag] = []
    pos = 0
    n = len(rbsp)
    while pos < n and not (rbsp[pos] == 0x80 and pos == n - 1):
        ptype = 0
        while pos < n and rbsp[pos] == 0xFF:
            ptype += 255
            pos += 1
        if pos >= n:
            break
        ptype += rbsp[pos]
        pos += 1
        psize = 0
        while pos < n and rbsp[pos] == 0xFF:
            psize += 255
            pos += 1
        if pos >= n:
            break
        psize += rbsp[pos]
        pos += 1
        payload = rbsp[pos : pos + psize]
        pos += psize
        if len(payload) < psize:
            break
        if ptype == SEI_USER_DATA_UNREGISTERED:
            tag = _decode_payload(payload)
            if tag is not None:
                tags.append(tag)
    return tags


def _decode_payload(payload: bytes) -> FrameTag | None:
    if len(payload) < 16 + _BODY.size or payload[:16] != HOTSPARE_SEI_UUID:
        return None
    version, frame_no, wall_us, cam_len = _BODY.unpack_from(payload, 16)
    if version != TAG_VERSION:
        return None
    start = 16 + _BODY.size
    cam = payload[start : start + cam_len]
    if len(cam) != cam_len:
        return None
    return FrameTag(cam.decode("utf-8", errors="replace"), frame_no, wall_us)


def find_tags_annexb(data: bytes) -> list[FrameTag]:
    """Tags in an Annex-B byte stream (raw .h264, MPEG-TS payloads, the simulator's clips)."""
    tags: list[FrameTag] = []
    for start, end in iter_annexb_nals(data):
        if _sei_header_size(data[start : start + 2]):
            tags.extend(parse_sei_nal(data[start:end]))
    return tags


def find_tags_avcc(data: bytes, length_size: int = 4) -> list[FrameTag]:
    """Tags in length-prefixed data, e.g. `bytes(packet)` of an MP4/RTSP packet read by PyAV."""
    tags: list[FrameTag] = []
    for start, end in iter_avcc_nals(data, length_size):
        if _sei_header_size(data[start : start + 2]):
            tags.extend(parse_sei_nal(data[start:end]))
    return tags


def find_tags(data: bytes) -> list[FrameTag]:
    """Tags in a packet whose framing is not known in advance.

    PyAV hands RTSP packets over in Annex-B form but MP4 packets length-prefixed; a 4-byte length
    rarely parses cleanly as Annex-B and vice versa, so try the framing the bytes look like first.
    """
    if data[:4] == b"\x00\x00\x00\x01" or data[:3] == b"\x00\x00\x01":
        tags = find_tags_annexb(data)
        if tags:
            return tags
        return find_tags_avcc(data)
    tags = find_tags_avcc(data)
    return tags if tags else find_tags_annexb(data)


def first_vcl_offset(au: bytes, codec: str = "h264") -> int:
    """Offset of the start code of the first slice NAL in an Annex-B access unit.

    SEI must precede the first VCL NAL of its access unit, so the simulator splices its tag here.
    Returns len(au) when there is no slice (which a valid access unit never is).
    """
    for start, _end in iter_annexb_nals(au):
        if is_vcl(au[start], codec):
            sc = start - 3
            if sc > 0 and au[sc - 1] == 0:
                sc -= 1
            return sc
    return len(au)
