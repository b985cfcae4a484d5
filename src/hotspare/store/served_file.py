"""The bytes served of a segment whose tail is cut (hotspare.store.served): the stored file's own
init section and fragments before the cut, and the fragment holding the cut rewritten to end there.

Nothing is decoded or remuxed: the init section is byte for byte the stored one (so a playlist can
point its EXT-X-MAP at the stored file), whole fragments are copied, and the one fragment that is
cut keeps its first samples: its `trun` lists fewer of them, the boxes around it shrink by as
much, and its `mdat` ends after the last sample kept. With one fragment per frame (the recorder's
default) a cut always falls between fragments; with time-based fragments (`fragment_seconds`) it
usually falls inside one. Only the shape FFmpeg writes is rewritten (the video's `traf` holding
`tfhd`, `tfdt` and one `trun` with a data offset, `mdat` right after `moof`); anything else is
refused with the reason rather than served wrong. The audio of a fragment that is cut is dropped
with the fragment's other tracks (at most one fragment of audio, none with per-frame fragments):
its samples span the whole fragment, so some of them would play after the cut.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hotspare.store import mp4
from hotspare.store.models import SegmentInfo, ticks_to_us
from hotspare.store.served import frames_before, half_frame_us

# The box flags the walker reads (ISO/IEC 14496-12 8.8.7, 8.8.8), shared with it.
_TRUN_DATA_OFFSET = mp4._TRUN_DATA_OFFSET
_TRUN_FIRST_SAMPLE_FLAGS = mp4._TRUN_FIRST_SAMPLE_FLAGS
_TRUN_FIELDS = (mp4._TRUN_DURATION, mp4._TRUN_SIZE, mp4._TRUN_FLAGS, mp4._TRUN_CTS)


@dataclass(frozen=True)
class ServedFile:
    """A standalone fragmented MP4 of the served frames: `init + media`."""

    init: bytes
    media: bytes
    frames: int
    duration_90k: int

    @property
    def data(self) -> bytes:
        return self.init + self.media


def served_frame_count(info: mp4.Mp4Info, segment: SegmentInfo, end_wall_us: int) -> int:
    """Frames of the file served when its segment is served up to `end_wall_us` (the frames
    starting before it, within half a frame; hotspare.store.served)."""
    walls = [segment.start_wall_us + ticks_to_us(start - info.start_media_90k)
             for start, _ in info.frame_times_90k()]
    return frames_before(walls, end_wall_us, half_frame_us(segment))


def served_file(path: Path, segment: SegmentInfo, end_wall_us: int) -> ServedFile:
    """The served form of `segment` (its file at `path`) cut at `end_wall_us`."""
    info = mp4.parse_path(path)
    keep = served_frame_count(info, segment, end_wall_us)
    if keep <= 0:
        raise mp4.Mp4Error(f"no frame of segment {segment.segment_id} starts before "
                           f"{end_wall_us}; nothing to serve")
    times = info.frame_times_90k()
    keep = min(keep, len(times))
    duration = times[keep - 1][0] + times[keep - 1][1] - times[0][0]
    with path.open("rb") as f:
        init = _read(f, 0, info.init_bytes)
        if keep == len(times):
            return ServedFile(init, _read(f, info.init_bytes, info.readable_bytes
                                          - info.init_bytes), keep, duration)
        before = 0
        for fragment in info.fragments:
            count = len(fragment.sample_durations)
            if before + count >= keep:
                break
            before += count
        media = _read(f, info.init_bytes, fragment.offset - info.init_bytes)
        if keep - before == count:
            media += _read(f, fragment.offset, fragment.end - fragment.offset)
        else:
            media += _cut_fragment(f, fragment, keep - before, info.video_track_id)
    return ServedFile(init, media, keep, duration)


def _read(f: BinaryIO, offset: int, length: int) -> bytes:
    f.seek(offset)
    data = f.read(length)
    if len(data) != length:
        raise mp4.Mp4Error(f"short read at byte {offset}: the file changed while being served")
    return data


def _boxes(buf: bytes | bytearray, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, box start, box end) of the boxes packed in buf[start:end], 32-bit sizes only."""
    out = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        if size < 8 or pos + size > end:
            raise mp4.Mp4Error(f"box {kind!r} at {pos} of a moof has size {size}: a 64-bit or "
                               "broken size is not rewritten")
        out.append((kind, pos, pos + size))
        pos += size
    return out


def _only(boxes: list[tuple[bytes, int, int]], kind: bytes, where: str) -> tuple[int, int]:
    found = [(a, b) for k, a, b in boxes if k == kind]
    if len(found) != 1:
        raise mp4.Mp4Error(f"{where}: {len(found)} {kind.decode()} boxes; only one is rewritten")
    return found[0]


def _cut_fragment(f: BinaryIO, fragment: mp4.Fragment, keep: int, track_id: int) -> bytes:
    """The fragment's `moof`+`mdat` holding only the first `keep` samples of track `track_id`
    (the video) and nothing of any other track."""
    where = f"fragment at byte {fragment.offset}"
    head = _read(f, fragment.offset, 8)
    stored_size, moof_type = struct.unpack(">I4s", head)
    if moof_type != b"moof" or stored_size < 16:
        raise mp4.Mp4Error(f"{where}: not a moof with a 32-bit size")
    moof = bytearray(_read(f, fragment.offset, stored_size))
    dropped = _drop_other_trafs(moof, track_id, where)
    moof_size = len(moof)
    struct.pack_into(">I", moof, 0, moof_size)
    traf_start, traf_end = _only(_boxes(moof, 8, moof_size), b"traf", where)
    in_traf = _boxes(moof, traf_start + 8, traf_end)
    kinds = {k for k, _, _ in in_traf}
    if kinds - {b"tfhd", b"tfdt", b"trun"}:
        raise mp4.Mp4Error(f"{where}: traf holds {sorted(k.decode() for k in kinds)}; only "
                           "tfhd, tfdt and trun are rewritten")
    trun_start, trun_end = _only(in_traf, b"trun", where)
    tfhd_start, _ = _only(in_traf, b"tfhd", where)
    tflags = int.from_bytes(moof[trun_start + 9 : trun_start + 12], "big")
    (count,) = struct.unpack_from(">I", moof, trun_start + 12)
    if not tflags & _TRUN_DATA_OFFSET:
        raise mp4.Mp4Error(f"{where}: trun without a data offset")
    offset_pos = trun_start + 16
    entries = offset_pos + 4 + (4 if tflags & _TRUN_FIRST_SAMPLE_FLAGS else 0)
    per = 4 * sum(bool(tflags & m) for m in _TRUN_FIELDS)
    if entries + per * count > trun_end or keep >= count:
        raise mp4.Mp4Error(f"{where}: trun lists {count} samples, asked to keep {keep}")
    sizes = _sample_sizes(moof, tfhd_start, entries, per, tflags, count, where)
    (data_offset,) = struct.unpack_from(">i", moof, offset_pos)
    mdat_head = _read(f, fragment.offset + stored_size, 8)
    mdat_size, mdat_type = struct.unpack(">I4s", mdat_head)
    if mdat_type != b"mdat" or mdat_size < 8:
        raise mp4.Mp4Error(f"{where}: no mdat with a 32-bit size right after the moof")
    gap = data_offset - stored_size - 8  # bytes between the mdat header and the first sample
    kept = sum(sizes[:keep])
    if gap < 0 or gap + sum(sizes) > mdat_size - 8:
        raise mp4.Mp4Error(f"{where}: sample data lies outside its mdat")
    shrink = per * (count - keep)
    struct.pack_into(">I", moof, trun_start + 12, keep)
    struct.pack_into(">i", moof, offset_pos, data_offset - shrink - dropped)
    del moof[entries + per * keep : entries + per * count]
    for box_start, box_end in ((0, moof_size), (traf_start, traf_end), (trun_start, trun_end)):
        struct.pack_into(">I", moof, box_start, box_end - box_start - shrink)
    payload = _read(f, fragment.offset + stored_size + 8, gap + kept)
    return bytes(moof) + struct.pack(">I4s", 8 + gap + kept, b"mdat") + payload


def _drop_other_trafs(moof: bytearray, track_id: int, where: str) -> int:
    """Remove from `moof` (its size field left stale) every traf not of `track_id`; the bytes
    removed. The other tracks' samples may stay in the mdat as unreferenced bytes."""
    removed = 0
    for kind, start, end in reversed(_boxes(moof, 8, len(moof))):
        if kind != b"traf":
            continue
        tfhd_start, _ = _only(_boxes(moof, start + 8, end), b"tfhd", where)
        if struct.unpack_from(">I", moof, tfhd_start + 12)[0] != track_id:
            del moof[start:end]
            removed += end - start
    return removed


def _sample_sizes(moof: bytes | bytearray, tfhd_start: int, entries: int, per: int, tflags: int,
                  count: int, where: str) -> list[int]:
    if tflags & mp4._TRUN_SIZE:
        skip = 4 if tflags & mp4._TRUN_DURATION else 0
        return [struct.unpack_from(">I", moof, entries + i * per + skip)[0] for i in range(count)]
    flags = int.from_bytes(moof[tfhd_start + 9 : tfhd_start + 12], "big")
    pos = tfhd_start + 16
    if flags & mp4._TFHD_BASE_DATA_OFFSET:
        raise mp4.Mp4Error(f"{where}: tfhd with an explicit base data offset is not rewritten")
    pos += 4 if flags & mp4._TFHD_SAMPLE_DESCRIPTION_INDEX else 0
    pos += 4 if flags & mp4._TFHD_DEFAULT_DURATION else 0
    if not flags & mp4._TFHD_DEFAULT_SIZE:
        raise mp4.Mp4Error(f"{where}: sample sizes are given nowhere")
    return [struct.unpack_from(">I", moof, pos)[0]] * count
