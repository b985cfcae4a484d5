"""The box walker against real fragmented MP4 files made by FFmpeg (through PyAV)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotspare.store import mp4
from hotspare.store.synth import decode_count, write_segment


def test_complete_segment(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    write_segment(path, start_media_90k=900_000, frames=12, gop=5)
    info = mp4.parse_path(path)
    assert info.complete
    assert info.timescale == 90_000
    assert info.start_media_90k == 900_000
    assert info.frame_count == 12
    assert info.duration_90k == 12 * 3600
    assert len(info.fragments) == 3  # a fragment per keyframe interval: 5 + 5 + 2 frames
    assert [len(f.sample_durations) for f in info.fragments] == [5, 5, 2]
    assert all(f.first_sample_is_sync for f in info.fragments)
    assert info.readable_bytes == info.file_bytes == path.stat().st_size
    assert 0 < info.init_bytes < info.fragments[0].end
    assert sum(info.frame_durations_90k()) == info.duration_90k


def test_other_timescale_is_converted_to_90k(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    write_segment(path, start_media_90k=90_000, frames=10, timescale=1000)
    info = mp4.parse_path(path)
    assert info.timescale != 90_000
    assert info.start_media_90k == 90_000
    assert info.duration_90k == 36_000
    assert info.frame_durations_90k() == [3600] * 10


def test_every_cut_point_gives_the_last_complete_fragment(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    write_segment(path, frames=12, gop=5)
    data = path.read_bytes()
    full = mp4.parse_path(path)
    ends = [f.end for f in full.fragments]
    cut_path = tmp_path / "cut.mp4"
    for cut in range(0, len(data), 7):
        cut_path.write_bytes(data[:cut])
        if cut < full.init_bytes:
            with pytest.raises(mp4.Mp4Error):
                mp4.parse_path(cut_path)
            continue
        info = mp4.parse_path(cut_path)
        expected = [e for e in ends if e <= cut]
        assert info.readable_bytes == (expected[-1] if expected else full.init_bytes), cut
        assert len(info.fragments) == len(expected)
        assert info.complete == (cut in ends)


def test_salvaged_prefix_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    write_segment(path, frames=12, gop=5)
    info = mp4.parse_path(path)
    cut = info.fragments[1].end + 10  # into the third fragment
    path.write_bytes(path.read_bytes()[:cut])
    partial = mp4.parse_path(path)
    assert not partial.complete and partial.trailing_note
    path.write_bytes(path.read_bytes()[: partial.readable_bytes])
    assert decode_count(path) == partial.frame_count == 10


def test_garbage_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(b"\x00\x00\x00\x08junk" + b"x" * 100)
    with pytest.raises(mp4.Mp4Error):
        mp4.parse_path(path)
    path.write_bytes(b"")
    with pytest.raises(mp4.Mp4Error):
        mp4.parse_path(path)


def test_impossible_box_size_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    write_segment(path, frames=5)
    data = bytearray(path.read_bytes())
    info = mp4.parse_path(path)
    data[info.init_bytes : info.init_bytes + 4] = (3).to_bytes(4, "big")  # moof size 3 < header
    path.write_bytes(bytes(data))
    broken = mp4.parse_path(path)
    assert broken.fragments == ()
    assert broken.trailing_note


def test_recorder_style_fragment_per_frame(tmp_path: Path) -> None:
    """The recorder's muxer settings: one fragment per frame, timestamps not rebased."""
    path = tmp_path / "s.mp4"
    write_segment(path, start_media_90k=123_300, frames=12,
                  movflags="frag_every_frame+empty_moov+default_base_moof+frag_discont",
                  options={"avoid_negative_ts": "disabled", "flush_packets": "1"})
    info = mp4.parse_path(path)
    assert info.complete and len(info.fragments) == 12
    assert (info.start_media_90k, info.frame_count, info.duration_90k) == (123_300, 12, 43_200)
    path.write_bytes(path.read_bytes()[: info.fragments[7].end + 3])
    cut = mp4.parse_path(path)
    assert cut.frame_count == 8 and cut.readable_bytes == info.fragments[7].end


def test_mdat_to_end_of_file_cut_short_is_not_complete(tmp_path: Path) -> None:
    path = tmp_path / "s.mp4"
    write_segment(path, frames=10, gop=5)
    info = mp4.parse_path(path)
    data = bytearray(path.read_bytes()[: info.fragments[1].end])
    # rewrite the last mdat's size as 0 ("extends to end of file"), then cut into its payload
    pos = info.fragments[1].offset
    moof_size = int.from_bytes(data[pos : pos + 4], "big")
    mdat = pos + moof_size
    assert data[mdat + 4 : mdat + 8] == b"mdat"
    data[mdat : mdat + 4] = b"\0\0\0\0"
    path.write_bytes(bytes(data[:-20]))
    cut = mp4.parse_path(path)
    assert cut.frame_count == 5 and cut.readable_bytes == info.fragments[0].end
