"""Timelines: spans per run and server; gaps where nothing covers longer than the tolerance."""

from __future__ import annotations

from hotspare.store.models import SegmentInfo
from hotspare.store.timeline import build_timeline

T0 = 1_700_000_000_000_000


def seg(run: str, seq: int, start_us: int, frames: int = 10, by: str = "rs1",
        head: int = 0) -> SegmentInfo:
    return SegmentInfo(
        segment_id=hash((run, seq)) & 0xFFFF, camera_id="cam1", run_id=run, seq=seq,
        recorded_by=by, recorded_as="rs1", start_wall_us=start_us, start_media_90k=0,
        duration_90k=frames * 3600, frame_count=frames, head_skip_frames=head, bytes=1,
        init_bytes=1, sha256="0" * 64, relpath="x", reinsert_pending=False, imported_from=None,
        head_skip_90k=head * 3600,
    )


def test_adjacent_segments_make_one_span_and_edges_are_gaps() -> None:
    tl = build_timeline([seg("a", 0, T0), seg("a", 1, T0 + 400_000)], "cam1",
                        T0 - 1_000_000, T0 + 2_000_000, 45_000)
    assert [(s.start_wall_us, s.end_wall_us, s.segment_count, s.frame_count) for s in tl.spans] == [
        (T0, T0 + 800_000, 2, 20)]
    assert [(g.start_wall_us, g.end_wall_us) for g in tl.gaps] == [
        (T0 - 1_000_000, T0), (T0 + 800_000, T0 + 2_000_000)]
    assert tl.recorded_us == 800_000


def test_gap_between_runs_and_tolerance() -> None:
    segs = [seg("a", 0, T0), seg("b", 0, T0 + 400_000 + 30_000, by="spare1"),
            seg("b", 1, T0 + 830_000 + 500_000, by="spare1")]
    tl = build_timeline(segs, "cam1", T0, T0 + 1_730_000, 45_000)
    assert [(s.run_id, s.recorded_by) for s in tl.spans] == [("a", "rs1"), ("b", "spare1"),
                                                             ("b", "spare1")]
    # 30 ms between runs is within one frame + jitter; 500 ms inside run b is a gap
    assert [(g.start_wall_us, g.end_wall_us) for g in tl.gaps] == [
        (T0 + 830_000, T0 + 1_330_000)]


def test_overlapping_servers_and_skipped_head() -> None:
    segs = [seg("a", 0, T0, frames=20), seg("b", 0, T0 + 400_000, frames=20, by="spare1", head=10)]
    tl = build_timeline(segs, "cam1", T0, T0 + 1_200_000, 45_000)
    assert tl.gaps == []
    assert [(s.start_wall_us, s.end_wall_us) for s in tl.spans] == [
        (T0, T0 + 800_000), (T0 + 800_000, T0 + 1_200_000)]


def test_clipped_to_range() -> None:
    tl = build_timeline([seg("a", 0, T0, frames=100)], "cam1", T0 + 1_000_000, T0 + 2_000_000,
                        45_000)
    spans = [(s.start_wall_us, s.end_wall_us) for s in tl.spans]
    assert spans == [(T0 + 1_000_000, T0 + 2_000_000)]
    assert tl.gaps == []
