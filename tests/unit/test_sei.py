"""The SEI frame tag: build, escape, and find again in both framings a recorder can meet."""

from __future__ import annotations

import pytest

from hotspare.camerasim.sei import (
    HOTSPARE_SEI_UUID,
    FrameTag,
    build_sei_annexb,
    build_sei_nal,
    build_sei_payload,
    find_tags,
    find_tags_annexb,
    find_tags_avcc,
    first_vcl_offset,
    parse_sei_nal,
)
from hotspare.media.nal import (
    add_emulation_prevention,
    iter_annexb_nals,
    remove_emulation_prevention,
)

# Minimal stand-ins for the NAL units around a tag; their content does not matter to the parser.
SPS = bytes.fromhex("6764001facd9")
PPS = bytes.fromhex("68ebe3cb")
IDR = bytes.fromhex("6588840021")
SLICE = bytes.fromhex("419a2438")


def annexb(*nals: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def avcc(*nals: bytes) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


def test_round_trip_annexb_and_avcc() -> None:
    tag = FrameTag("cam-7", 123_456_789, 1_764_104_400_123_456)
    sei = build_sei_nal(tag.camera_id, tag.frame_no, tag.capture_wall_us)
    assert sei[0] == 0x06
    assert sei[1] == 0x05  # user_data_unregistered
    assert sei[-1] == 0x80  # rbsp trailing bits
    assert find_tags_annexb(annexb(SPS, PPS, sei, IDR)) == [tag]
    assert find_tags_avcc(avcc(SPS, PPS, sei, IDR)) == [tag]
    assert parse_sei_nal(sei) == [tag]


def test_payload_that_needs_emulation_prevention() -> None:
    # Frame 1 is 00 00 00 00 00 00 00 01 and wall time 0 is eight zero bytes: start-code lookalikes.
    tag = FrameTag("c", 1, 0)
    payload = build_sei_payload(tag.camera_id, tag.frame_no, tag.capture_wall_us)
    assert b"\x00\x00\x01" in payload and b"\x00\x00\x00" in payload
    sei = build_sei_nal(tag.camera_id, tag.frame_no, tag.capture_wall_us)
    for bad in (b"\x00\x00\x00", b"\x00\x00\x01", b"\x00\x00\x02"):
        assert bad not in sei, f"{bad.hex()} left unescaped"
    assert b"\x00\x00\x03" in sei
    stream = annexb(SPS, sei, IDR)
    # Splitting the stream must not cut inside the tag.
    assert [stream[s] & 0x1F for s, _ in iter_annexb_nals(stream)] == [7, 6, 5]
    assert find_tags_annexb(stream) == [tag]
    assert find_tags_avcc(avcc(sei, IDR)) == [tag]


def test_escape_rules() -> None:
    assert add_emulation_prevention(b"\x00\x00\x00") == b"\x00\x00\x03\x00"
    assert add_emulation_prevention(b"\x00\x00\x03") == b"\x00\x00\x03\x03"
    assert add_emulation_prevention(b"\x00\x00\x04") == b"\x00\x00\x04"
    assert add_emulation_prevention(b"\x00\x00\x00\x00\x00") == b"\x00\x00\x03\x00\x00\x03\x00"
    for raw in (b"", b"\x00" * 9, b"\x00\x00\x03\x00\x00\x01", bytes(range(5)) * 3):
        assert remove_emulation_prevention(add_emulation_prevention(raw)) == raw


@pytest.mark.parametrize("frame_no", [0, 1, 255, 2**32, 2**64 - 1])
@pytest.mark.parametrize("wall_us", [0, -1, 1_764_104_400_000_000, 2**63 - 1])
def test_extremes_round_trip(frame_no: int, wall_us: int) -> None:
    sei = build_sei_nal("cam-1", frame_no, wall_us)
    assert parse_sei_nal(sei) == [FrameTag("cam-1", frame_no, wall_us)]


def test_long_and_unicode_camera_id() -> None:
    cam = "kamera-ü-" + "x" * 230  # payload > 255 bytes: payloadSize needs the 0xFF escape
    sei = build_sei_nal(cam, 5, 6)
    assert len(build_sei_payload(cam, 5, 6)) > 255
    assert find_tags_annexb(annexb(sei, SLICE)) == [FrameTag(cam, 5, 6)]
    with pytest.raises(ValueError):
        build_sei_nal("x" * 256, 1, 1)
    with pytest.raises(ValueError):
        build_sei_nal("c", -1, 1)


def test_other_sei_and_other_uuids_are_ignored() -> None:
    foreign_uuid = bytes(16)
    foreign = bytes([0x06, 0x05, 20]) + foreign_uuid + b"x264" + b"\x80"
    recovery_point = bytes.fromhex("0606018480")  # payload type 6, not ours
    ours = build_sei_nal("cam-1", 9, 10)
    stream = annexb(foreign, recovery_point, ours, SLICE)
    assert find_tags_annexb(stream) == [FrameTag("cam-1", 9, 10)]
    assert find_tags_annexb(annexb(foreign, SLICE)) == []


def test_several_messages_in_one_sei_nal() -> None:
    first = build_sei_nal("a", 1, 2)
    second = build_sei_nal("b", 3, 4)
    # Two sei_message()s in one NAL: header once, trailing bits once.
    merged_rbsp = remove_emulation_prevention(first[1:-1]) + remove_emulation_prevention(second[1:])
    merged = b"\x06" + add_emulation_prevention(merged_rbsp)
    assert parse_sei_nal(merged) == [FrameTag("a", 1, 2), FrameTag("b", 3, 4)]


def test_truncated_data_gives_what_it_has() -> None:
    ours = build_sei_nal("cam-1", 1, 2)
    packet = avcc(ours, IDR)
    assert find_tags_avcc(packet[:-3]) == [FrameTag("cam-1", 1, 2)]
    assert find_tags_avcc(avcc(ours)[:-5]) == []
    assert parse_sei_nal(ours[: len(ours) // 2]) == []
    assert parse_sei_nal(b"") == []


def test_find_tags_guesses_the_framing() -> None:
    sei = build_sei_nal("cam-2", 77, 88)
    assert find_tags(annexb(SPS, PPS, sei, IDR)) == [FrameTag("cam-2", 77, 88)]
    assert find_tags(avcc(SPS, PPS, sei, IDR)) == [FrameTag("cam-2", 77, 88)]
    three_byte_start_codes = b"\x00\x00\x01" + sei + b"\x00\x00\x01" + SLICE
    assert find_tags(three_byte_start_codes) == [FrameTag("cam-2", 77, 88)]


def test_first_vcl_offset_is_where_the_tag_goes() -> None:
    au = annexb(b"\x09\xf0", SPS, PPS, IDR)
    k = first_vcl_offset(au)
    assert au[k:].startswith(b"\x00\x00\x00\x01" + IDR)
    spliced = au[:k] + build_sei_annexb("cam-1", 4, 5) + au[k:]
    assert [spliced[s] & 0x1F for s, _ in iter_annexb_nals(spliced)] == [9, 7, 8, 6, 5]
    assert find_tags_annexb(spliced) == [FrameTag("cam-1", 4, 5)]
    assert first_vcl_offset(annexb(SPS, PPS)) == len(annexb(SPS, PPS))


def test_uuid_is_fixed() -> None:
    # Recordings made today must still be readable by tomorrow's tests: never change it.
    assert HOTSPARE_SEI_UUID.hex() == "5d742a91e70a458cb4caeb39c8b9ec04"


# H.265 stand-ins: VPS/SPS/PPS, an IDR_W_RADL slice (0x26 0x01 reads as an H.264 SEI header too)
# and a TRAIL_R slice.
HEVC_VPS = bytes.fromhex("40010c01ffff")
HEVC_SPS = bytes.fromhex("42010101")
HEVC_PPS = bytes.fromhex("4401c172")
HEVC_IDR = bytes.fromhex("2601af00") + bytes(64) + bytes.fromhex("0380")
HEVC_TRAIL = bytes.fromhex("0201d0a4")


def test_h265_tag_round_trip_in_both_framings() -> None:
    nal = build_sei_nal("door", 12345, 1_764_104_400_123_456, codec="h265")
    assert nal[:2] == b"\x4e\x01"  # prefix SEI, layer 0, temporal id 0
    tag = FrameTag("door", 12345, 1_764_104_400_123_456)
    au = annexb(HEVC_VPS, HEVC_SPS, HEVC_PPS, nal, HEVC_IDR)
    assert find_tags_annexb(au) == [tag]
    assert find_tags_avcc(avcc(HEVC_VPS, nal, HEVC_IDR)) == [tag]
    assert find_tags(au) == [tag]
    assert build_sei_annexb("door", 12345, 1_764_104_400_123_456, "h265") == b"\0\0\0\1" + nal


def test_h265_slices_that_look_like_h264_sei_give_no_tag() -> None:
    assert parse_sei_nal(HEVC_IDR) == []
    assert find_tags_annexb(annexb(HEVC_VPS, HEVC_IDR, HEVC_TRAIL)) == []


def test_h265_first_vcl_offset_and_unknown_codec() -> None:
    au = annexb(HEVC_VPS, HEVC_SPS, HEVC_PPS, HEVC_IDR)
    assert au[first_vcl_offset(au, "h265") :] == annexb(HEVC_IDR)
    # The same bytes read as H.264: 0x40/0x42/0x44 are types 0/2/4, so 0x42 is a "slice".
    assert first_vcl_offset(au, "h264") < first_vcl_offset(au, "h265")
    with pytest.raises(ValueError, match="codec"):
        build_sei_nal("door", 1, 1, codec="vp8")
