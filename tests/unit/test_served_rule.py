"""The served-span rule (hotspare.store.served): every frame once, every served piece starting on
a keyframe, whatever the overlaps between one camera's segments."""

from __future__ import annotations

from hotspare.store.models import SegmentInfo
from hotspare.store.served import Serve, frames_before, half_frame_us, segment_spans

T0 = 1_764_000_000_000_000
FRAME_US = 100_000  # 10 fps
FRAME_90K = 9_000


def seg(segment_id: int, start_us: int, frames: int, *, run: str = "r1", head: int = 0,
        tail: int = 0) -> SegmentInfo:
    return SegmentInfo(
        segment_id=segment_id, camera_id="cam", run_id=run, seq=segment_id, recorded_by="n",
        recorded_as="n", start_wall_us=T0 + start_us, start_media_90k=0,
        duration_90k=frames * FRAME_90K, frame_count=frames, head_skip_frames=head,
        bytes=1000, init_bytes=100, sha256="0" * 64, relpath=f"{segment_id}.mp4",
        reinsert_pending=False, imported_from=None, tail_skip_frames=tail,
        head_skip_90k=head * FRAME_90K, tail_skip_90k=tail * FRAME_90K)


def plan(*segments: SegmentInfo) -> list[tuple[Serve, int]]:
    return [(s.serve, s.end_wall_us - T0) for s in segment_spans(list(segments))]


def test_back_to_back_segments_are_served_whole() -> None:
    assert plan(seg(1, 0, 10), seg(2, 1_000_000, 10)) == [
        (Serve.ALL, 1_000_000), (Serve.ALL, 2_000_000)]


def test_overlap_cuts_the_earlier_tail_at_the_later_start() -> None:
    # the server's last segment (crashed mid-way) and the spare's first, starting 0.3 s earlier
    assert plan(seg(1, 0, 10), seg(2, 700_000, 10, run="r2")) == [
        (Serve.BEFORE, 700_000), (Serve.ALL, 1_700_000)]


def test_input_order_does_not_matter_and_is_kept() -> None:
    assert plan(seg(2, 700_000, 10, run="r2"), seg(1, 0, 10)) == [
        (Serve.ALL, 1_700_000), (Serve.BEFORE, 700_000)]


def test_a_segment_inside_another_is_not_served() -> None:
    assert plan(seg(1, 0, 20), seg(2, 500_000, 5, run="r2")) == [
        (Serve.ALL, 2_000_000), (Serve.NOTHING, 500_000)]


def test_same_start_serves_the_longer_only() -> None:
    assert plan(seg(1, 0, 5), seg(2, 0, 10, run="r2")) == [
        (Serve.NOTHING, 0), (Serve.ALL, 1_000_000)]
    # equal copies (split brain): one of them
    assert [s for s, _ in plan(seg(1, 0, 10), seg(2, 0, 10, run="r2"))].count(Serve.ALL) == 1


def test_anchor_rounding_within_half_a_frame_is_no_overlap() -> None:
    # the next segment starts 30 µs "early" (RTCP refinement): nothing is cut
    assert plan(seg(1, 0, 10), seg(2, 1_000_000 - 30, 10)) == [
        (Serve.ALL, 1_000_000), (Serve.ALL, 2_000_000 - 30)]
    # a start differing by less than half a frame is the same start
    assert plan(seg(1, 0, 5), seg(2, 40_000, 10, run="r2"))[0][0] is Serve.NOTHING


def test_chain_of_overlaps_cuts_each_earlier_one() -> None:
    got = plan(seg(1, 0, 10), seg(2, 500_000, 10, run="r2"), seg(3, 800_000, 10, run="r3"))
    assert got == [(Serve.BEFORE, 500_000), (Serve.BEFORE, 800_000), (Serve.ALL, 1_800_000)]


def test_tail_skip_is_a_cut_even_without_the_covering_segment() -> None:
    assert plan(seg(1, 0, 10, tail=3)) == [(Serve.BEFORE, 700_000)]
    # and agrees with the later segment's start when it is there
    assert plan(seg(1, 0, 10, tail=3, run="spare"), seg(2, 700_000, 10)) == [
        (Serve.BEFORE, 700_000), (Serve.ALL, 1_700_000)]


def test_head_skipped_frames_are_served_and_the_earlier_tail_cut() -> None:
    # the spare's first segment, imported: its first 4 frames are also in the server's last one
    got = plan(seg(1, 0, 10), seg(2, 600_000, 10, run="spare", head=4))
    assert got == [(Serve.BEFORE, 600_000), (Serve.ALL, 1_600_000)]


def test_frames_before_uses_half_a_frame() -> None:
    walls = [T0 + i * FRAME_US for i in range(10)]
    half = half_frame_us(seg(1, 0, 10))
    assert half == FRAME_US // 2
    assert frames_before(walls, T0 + 700_000, half) == 7
    assert frames_before(walls, T0 + 700_000 - 40, half) == 7  # the later anchor a bit early
    assert frames_before(walls, T0 + 700_000 + 40, half) == 7  # or a bit late
    assert frames_before(walls, T0 + 2_000_000, half) == 10


def test_every_frame_once_over_many_layouts() -> None:
    """Frames on a 10 fps grid: whatever the overlaps, the served frames are each grid time once,
    and every segment serves a prefix of its frames (its keyframe start kept)."""
    layouts = [
        [(0, 10), (300_000, 10), (500_000, 30), (900_000, 3), (3_000_000, 10)],
        [(0, 20), (0, 20), (1_000_000, 5), (1_900_000, 10), (2_000_000, 1)],
        [(0, 5), (500_000, 5), (200_000, 2), (1_000_000, 10), (400_000, 30)],
    ]
    for layout in layouts:
        segments = [seg(i, start, n, run=f"r{i}") for i, (start, n) in enumerate(layout, 1)]
        served: list[int] = []
        for span in segment_spans(segments):
            walls = [span.segment.start_wall_us + i * FRAME_US
                     for i in range(span.segment.frame_count)]
            if span.serve is Serve.NOTHING:
                continue
            keep = frames_before(walls, span.end_wall_us, half_frame_us(span.segment))
            assert keep > 0
            served += walls[:keep]
        every = {s.start_wall_us + i * FRAME_US for s in segments for i in range(s.frame_count)}
        assert sorted(served) == sorted(every), layout

