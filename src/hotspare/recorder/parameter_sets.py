"""A keyframe's parameter sets (SPS/PPS, and VPS for H.265) and the picture size they describe.

A camera that changes its resolution mid-stream sends new parameter sets in band, before its next
IDR, in the same RTSP session. An fMP4 file's init section carries one set (`avcC`/`hvcC`), so
the recorder starts a new segment whose init carries the new one (docs/recorder.md, *Camera
faults*). Only the few bytes before a keyframe's first slice are read, once a GOP: no decode.
"""

from __future__ import annotations

from hotspare.media.nal import is_vcl, iter_annexb_nals, nal_type, remove_emulation_prevention

_PARAMETER_SET_TYPES = {"h264": {7, 8}, "hevc": {32, 33, 34}}
_SPS_TYPE = {"h264": 7, "hevc": 33}
CODECS = frozenset(_PARAMETER_SET_TYPES)
"""FFmpeg codec names whose parameter sets are followed."""


def parameter_sets(access_unit: bytes, codec: str) -> tuple[bytes, ...]:
    """The distinct parameter-set NAL units before the first slice of an Annex-B access unit,
    in order of first appearance (empty when it carries none in band, or the codec is not
    H.264/H.265). A set repeated in one access unit counts once: an RTP payloader that sends
    the sets before every keyframe, in front of the encoder's own, repeats them there, and
    that is not a change of parameters."""
    wanted = _PARAMETER_SET_TYPES.get(codec)
    if wanted is None:
        return ()
    found: list[bytes] = []
    for start, end in iter_annexb_nals(access_unit):
        if is_vcl(access_unit[start], codec):
            break
        nal = access_unit[start:end]
        if nal_type(nal[0], codec) in wanted and nal not in found:
            found.append(nal)
    return tuple(found)


def annexb(nals: tuple[bytes, ...]) -> bytes:
    """NAL units with 4-byte start codes: extradata FFmpeg's MP4 muxer turns into avcC/hvcC."""
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def picture_size(nals: tuple[bytes, ...], codec: str) -> tuple[int, int] | None:
    """(width, height) in pixels from the first SPS among `nals`, cropping applied; None when
    there is no SPS or it cannot be read."""
    sps = next((n for n in nals if n and nal_type(n[0], codec) == _SPS_TYPE.get(codec)), None)
    if sps is None:
        return None
    try:
        if codec == "h264":
            return _h264_size(_Bits(remove_emulation_prevention(sps[1:])))
        return _hevc_size(_Bits(remove_emulation_prevention(sps[2:])))
    except IndexError:  # a truncated SPS
        return None


class _Bits:
    """Big-endian bit reader with Exp-Golomb codes (H.264 7.2, H.265 7.2)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self._data[self._pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise IndexError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _h264_size(bits: _Bits) -> tuple[int, int]:
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        unit_x = 2 if chroma in (1, 2) else 1
        unit_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
        width -= (left + right) * unit_x
        height -= (top + bottom) * unit_y
    return width, height


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        last = nxt or last


def _hevc_size(bits: _Bits) -> tuple[int, int]:
    bits.u(4)  # sps_video_parameter_set_id
    sub_layers = bits.u(3)  # sps_max_sub_layers_minus1
    bits.u(1)  # sps_temporal_id_nesting_flag
    bits.u(88)  # general profile: space, tier, idc, compatibility and constraint flags
    bits.u(8)  # general_level_idc
    present = [(bits.u(1), bits.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        bits.u(2 * (8 - sub_layers))  # reserved_zero_2bits
    for profile_present, level_present in present:
        bits.u(88 if profile_present else 0)
        bits.u(8 if level_present else 0)
    bits.ue()  # sps_seq_parameter_set_id
    chroma = bits.ue()
    if chroma == 3:
        bits.u(1)  # separate_colour_plane_flag
    width, height = bits.ue(), bits.ue()
    if bits.u(1):  # conformance_window_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        unit_x = 2 if chroma in (1, 2) else 1
        unit_y = 2 if chroma == 1 else 1
        width -= (left + right) * unit_x
        height -= (top + bottom) * unit_y
    return width, height
